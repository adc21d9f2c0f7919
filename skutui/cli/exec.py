"""``skutui exec``: run a command on the master, then replay it on the backup through the
replication journal, in order, once."""

from __future__ import annotations

import argparse
import math
import shlex
import socket
import subprocess
import sys

from skutui.cli.common import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_OK, CommandError, Once
from skutui.domain.model import Role
from skutui.domain.paths import Paths
from skutui.system import control
from skutui.system.journal import Journal, JournalError
from skutui.system.node import LocalNode

DEFAULT_WAIT = 30.0
"""Seconds ``skutui exec`` waits for the backup's answer before leaving it queued."""
SECONDS_MAX = 86400.0
"""The most ``--wait`` and ``--command-timeout`` take: a day. Far longer overflows the
system's own waits (poll() counts milliseconds in a C int: about 24 days), which would
fail only after the command ran."""


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds")
    return value


def _wait(text: str) -> float:
    """``--wait``: 0 (do not wait) or more seconds."""
    seconds = _seconds(text)
    if not 0 <= seconds <= SECONDS_MAX:
        raise argparse.ArgumentTypeError(f"{text!r} is out of range; give 0 to {SECONDS_MAX:g} seconds")
    return seconds


def _command_timeout(text: str) -> float:
    seconds = _seconds(text)
    if not 0 < seconds <= SECONDS_MAX:
        raise argparse.ArgumentTypeError(
            f"{text!r} is out of range; give more than 0 seconds, at most {SECONDS_MAX:g}")
    return seconds


def _note(text: str) -> None:
    print(f"skutui: {text}", file=sys.stderr, flush=True)


# --- skutui exec ---------------------------------------------------------------------------

def _exec(args: argparse.Namespace) -> int:
    """Run on the master, then replicate through the journal; the exit status is the
    command's own here, or 1 if it failed on the backup."""
    argv = list(args.command)
    if argv and argv[0] == "--":
        argv = argv[1:]
    if not argv:
        raise CommandError("nothing to run: give the command after --, e.g. "
                           "`skutui exec -- service haproxy reload`", EXIT_BAD_INPUT)
    paths = Paths.from_env()
    node = LocalNode(paths)
    config = node.config()
    if config is None:
        raise CommandError("no cluster is configured on this node, so there is no peer to "
                           "replicate to; run the command directly")
    hostname = socket.gethostname()
    try:
        peer = config.peer_of(hostname)
    except KeyError:
        raise CommandError(f"this node's hostname {hostname} is not in {paths.cluster_file}") from None
    role = node.effective_role()
    if role is not Role.MASTER:
        raise CommandError(f"`skutui exec` runs on the master: this node ({hostname}) is "
                           f"{role.value}. Run it on {peer.hostname} ({peer.ip}) if that is "
                           "the master.")
    journal = Journal(paths.journal_dir)
    command = shlex.join(argv)
    try:
        journal.check_room()
    except JournalError as exc:
        raise CommandError(str(exc)) from None
    try:
        code = subprocess.run(argv).returncode
    except FileNotFoundError:
        raise CommandError(f"{argv[0]}: command not found on this node; nothing was "
                           "replicated", 127) from None
    except PermissionError:
        raise CommandError(f"{argv[0]}: permission denied; nothing was replicated",
                           126) from None
    if code != 0:
        _note(f"`{command}` failed here with exit status {code}; it was not replicated to "
              f"{peer.hostname}")
        return code
    try:
        entry = journal.append(argv, origin=hostname, timeout=args.command_timeout)
    except JournalError as exc:
        raise CommandError(f"`{command}` ran here but cannot be queued for {peer.hostname}: "
                           f"{exc}") from None
    wait = 0.0 if args.no_wait else max(args.wait, 0.0)
    try:
        control.request(paths.control_socket, "wake", timeout=wait + control.CLIENT_TIMEOUT,
                        **({} if args.no_wait else {"seq": entry.seq, "wait": wait}))
    except (control.ControlError, OSError):
        _note(f"queued as #{entry.seq} for {peer.hostname}; the agent is not running on this "
              "node, so it replays when the agent starts (`skutui node start`)")
        return EXIT_OK
    if args.no_wait:
        _note(f"queued as #{entry.seq} for {peer.hostname}")
        return EXIT_OK
    outcome = journal.outcome(entry.seq)
    if outcome is None:
        _note(f"#{entry.seq} is queued for {peer.hostname}: no answer within {args.wait:g} s "
              "(is it away?). It replays in order when it answers; follow it with "
              "`skutui events`")
        return EXIT_OK
    if outcome.ok:
        _note(f"#{entry.seq} replicated to {peer.hostname}")
        return EXIT_OK
    _note(f"#{entry.seq} FAILED on {peer.hostname}: {outcome.describe()}")
    return EXIT_FAILED


def register(commands: argparse._SubParsersAction, name: str, help: str) -> None:
    run = commands.add_parser(
        name, help=help,
        description="Run COMMAND here (the master); if it succeeds, queue it in the "
                    "replication journal so the backup runs it too, in order, once. While "
                    "the backup is away it waits on disk and replays when it returns.")
    run.add_argument("--no-wait", action="store_true",
                     help="do not wait for the backup's answer")
    run.add_argument("--wait", action=Once, type=_wait, default=DEFAULT_WAIT, metavar="SECONDS",
                     help=f"how long to wait for the backup's answer (default {DEFAULT_WAIT:g}, at "
                          f"most {SECONDS_MAX:g})")
    run.add_argument("--command-timeout", action=Once, type=_command_timeout, default=300.0,
                     metavar="SECONDS",
                     help="how long the command may run on the backup (default 300, at most "
                          f"{SECONDS_MAX:g})")
    run.add_argument("command", nargs=argparse.REMAINDER, metavar="-- COMMAND [ARG…]")
    run.set_defaults(func=_exec)

