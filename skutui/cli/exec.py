"""``skutui exec``: run a command on the master, then replay it on the backup through the
replication journal, in order, once.

Write-ahead: the command is recorded in the journal (``running``, with this process and
its working directory) before it runs here, then marked queued (it succeeded) or dropped
(it failed), so that no crash in between leaves the nodes different without a word: the
agent sets a record whose ``skutui exec`` died aside, and says so, instead of replaying it.
"""

from __future__ import annotations

import argparse
import math
import os
import shlex
import socket
import subprocess
import sys

from skutui.cli.common import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_OK, CommandError, Once, Report
from skutui.domain.model import Role
from skutui.domain.paths import Paths
from skutui.system import control
from skutui.system.hook import current_term
from skutui.system.journal import Entry, Journal, JournalError, JournalFull
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


def positive_seconds(text: str) -> float:
    """More than 0 seconds, at most a day (``--command-timeout``, a node step's ``--timeout``)."""
    seconds = _seconds(text)
    if not 0 < seconds <= SECONDS_MAX:
        raise argparse.ArgumentTypeError(
            f"{text!r} is out of range; give more than 0 seconds, at most {SECONDS_MAX:g}")
    return seconds


_report: Report | None = None
"""``--json``'s report: the notes go into its steps instead of standard error."""


def _note(text: str) -> None:
    if _report is not None and _report.json:
        _report.say(text)
        return
    print(f"skutui: {text}", file=sys.stderr, flush=True)


def _exec_reported(args: argparse.Namespace) -> int:
    """``skutui exec`` with ``--json``: the command's own output goes to standard error, so
    that standard output carries the one document."""
    global _report
    _report = Report(args)
    code = _exec(args)
    _report.done(code == 0, argv=_argv(args), exit_code=code)
    return code


def _argv(args: argparse.Namespace) -> list[str]:
    argv = list(args.command)
    return argv[1:] if argv and argv[0] == "--" else argv


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
    cwd = _working_directory()
    try:
        entry = journal.begin(argv, origin=hostname, cwd=cwd, timeout=args.command_timeout,
                              term=current_term(paths.transition_mark))
    except JournalError as exc:
        raise CommandError(str(exc) if isinstance(exc, JournalFull) else
                           f"`{command}` was not run: it cannot be recorded for "
                           f"{peer.hostname}: {exc}") from None
    code = _run_here(journal, entry, argv, cwd, quiet=args.json)
    _settle(journal, entry, peer.hostname, code)
    if code != 0:
        _note(f"`{command}` failed here with exit status {code}; it was not replicated to "
              f"{peer.hostname}")
        return code
    return _hand_over(paths, journal, entry, peer.hostname, args)


def _working_directory() -> str:
    """Where the operator is: the backup runs the command from the same directory."""
    try:
        return os.getcwd()
    except OSError:
        raise CommandError("the current directory no longer exists; cd to one that does, "
                           "on both nodes", EXIT_BAD_INPUT) from None


def _run_here(journal: Journal, entry: Entry, argv: list[str], cwd: str, *, quiet: bool = False) -> int:
    """The command's exit status here; one that cannot start is dropped from the journal.
    ``quiet``: its output goes to standard error (``--json`` keeps standard output)."""
    try:
        return subprocess.run(argv, cwd=cwd, stdout=sys.stderr if quiet else None).returncode
    except (FileNotFoundError, PermissionError) as exc:
        code, why = (127, "command not found") if isinstance(exc, FileNotFoundError) else (
            126, "permission denied")
        try:
            journal.cancel(entry.seq)
        except JournalError:
            pass  # never run anywhere: the agent sets the record aside once this process ends
        raise CommandError(f"{argv[0]}: {why} on this node; nothing was replicated",
                           code) from None


def _settle(journal: Journal, entry: Entry, peer: str, code: int) -> None:
    """Mark the record queued (it ran here with success) or drop it (it failed here). If
    the journal cannot be written now, say exactly what ran where."""
    try:
        if code == 0:
            journal.queue(entry.seq)
        else:
            journal.cancel(entry.seq)
    except JournalError as exc:
        if code == 0:
            raise CommandError(
                f"`{entry.command}` ran here (exit 0) but was NOT queued for {peer}: the "
                f"journal cannot be written ({exc}). It will not run on {peer}: run it "
                f"there by hand (from {entry.cwd}); the agent sets record #{entry.seq} "
                "aside") from None
        raise CommandError(
            f"`{entry.command}` failed here with exit status {code} and was not replicated "
            f"to {peer}; its record #{entry.seq} could not be dropped ({exc}), so the agent "
            "sets it aside", code) from None


def _hand_over(paths: Paths, journal: Journal, entry: Entry, peer: str,
               args: argparse.Namespace) -> int:
    """Wake the agent and, unless told not to, wait for the backup's answer; return at once
    when the agent knows the backup is away."""
    wait = 0.0 if args.no_wait else max(args.wait, 0.0)
    try:
        answer = control.request(paths.control_socket, "wake",
                                 timeout=wait + control.CLIENT_TIMEOUT,
                                 **({} if args.no_wait else {"seq": entry.seq, "wait": wait}))
    except (control.ControlError, OSError):
        _note(f"queued as #{entry.seq} for {peer}; the agent is not running on this "
              "node, so it replays when the agent starts (`skutui node start`)")
        return EXIT_OK
    if args.no_wait:
        _note(f"queued as #{entry.seq} for {peer}")
        return EXIT_OK
    if answer.get("away"):
        _note(f"queued as #{entry.seq}; {answer['away']} is away. It replays in order when "
              "it returns; follow it with `skutui events`")
        return EXIT_OK
    outcome = journal.outcome(entry.seq)
    if outcome is None:
        _note(f"#{entry.seq} is queued for {peer}: no answer within {args.wait:g} s "
              "(is it away?). It replays in order when it answers; follow it with "
              "`skutui events`")
        return EXIT_OK
    if outcome.ok:
        _note(f"#{entry.seq} replicated to {peer}")
        return EXIT_OK
    _note(f"#{entry.seq} FAILED on {peer}: {outcome.describe()}")
    return EXIT_FAILED


def register(commands: argparse._SubParsersAction, name: str, help: str) -> None:
    run = commands.add_parser(
        name, help=help,
        description="Run COMMAND here (the master), from the current directory; if it "
                    "succeeds, queue it in the replication journal so the backup runs it too, "
                    "from the same directory, in order, once. While the backup is away it "
                    "waits on disk and replays when it returns.")
    run.add_argument("--no-wait", action="store_true",
                     help="do not wait for the backup's answer")
    run.add_argument("--wait", action=Once, type=_wait, default=DEFAULT_WAIT, metavar="SECONDS",
                     help=f"how long to wait for the backup's answer (default {DEFAULT_WAIT:g}, at "
                          f"most {SECONDS_MAX:g})")
    run.add_argument("--command-timeout", action=Once, type=positive_seconds, default=300.0,
                     metavar="SECONDS",
                     help="how long the command may run on the backup (default 300, at most "
                          f"{SECONDS_MAX:g})")
    run.add_argument("--json", action="store_true",
                     help='one JSON document at the end: {"ok", "command", "argv", "exit_code", '
                          '"steps"}; the command\'s own output goes to standard error')
    run.add_argument("command", nargs=argparse.REMAINDER, metavar="-- COMMAND [ARG…]")
    run.set_defaults(func=_exec_reported)

