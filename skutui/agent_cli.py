"""``skutui exec``, ``skutui events``, and the ``skutui node`` steps the master's agent runs
on the backup (``manifest``, ``sync-apply``, ``replay``) plus ``skutui node journal``.

The node steps read JSON on standard input and print JSON, like the rest of ``skutui node``.
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import socket
import subprocess
import sys
from datetime import datetime
from pathlib import PurePosixPath

from skutui.cli import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_OK, CommandError, Once, print_json
from skutui.core.model import Role
from skutui.core.paths import Paths

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


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is negative; give 0 or more")
    return value


def _note(text: str) -> None:
    print(f"skutui: {text}", file=sys.stderr, flush=True)


def _node(paths: Paths):
    from skutui.node import LocalNode

    return LocalNode(paths)


# --- skutui exec ---------------------------------------------------------------------------

def _exec(args: argparse.Namespace) -> int:
    """Run on the master, then replicate through the journal; the exit status is the
    command's own here, or 1 if it failed on the backup."""
    from skutui.agent import control
    from skutui.agent.journal import Journal, JournalError

    argv = list(args.command)
    if argv and argv[0] == "--":
        argv = argv[1:]
    if not argv:
        raise CommandError("nothing to run: give the command after --, e.g. "
                           "`skutui exec -- service haproxy reload`", EXIT_BAD_INPUT)
    paths = Paths.from_env()
    node = _node(paths)
    config = node.config()
    if config is None:
        raise CommandError("no cluster is configured on this node, so there is no peer to "
                           "replicate to; run the command directly")
    hostname = socket.gethostname()
    try:
        peer = config.peer_of(hostname)
    except KeyError:
        raise CommandError(f"this node's hostname {hostname} is not in {paths.cluster_file}")
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


def announce_transition(paths: Paths, state: str, failed: list[str]) -> bool:
    """For keepalived's notify hook, when it ran the transition itself: tell the agent how
    its steps went. Best effort: the hook's own work never waits on the agent."""
    from skutui.agent.control import post_event
    from skutui.agent.transitions import outcome_event

    message, level, data = outcome_event(state, failed)
    return post_event(paths.control_socket, "service", message, level=level, **data)


# --- skutui events -------------------------------------------------------------------------

LEVEL_MARKS = {"info": "", "warning": "WARNING ", "error": "ERROR "}


def format_event(event: dict) -> str:
    """One line for a person: local time, node, kind, level (when not info), message."""
    try:
        moment = datetime.fromisoformat(event["time"].replace("Z", "+00:00")).astimezone()
        when = moment.strftime("%H:%M:%S")
    except (KeyError, ValueError):
        when = "--:--:--"
    mark = LEVEL_MARKS.get(event.get("level", "info"), "")
    return (f"{when} {event.get('node', '?'):<12} {event.get('kind', '?'):<11} "
            f"{mark}{event.get('message', '')}")


def format_state(state: dict) -> list[str]:
    peer = state.get("peer") or {}
    replication = state.get("replication") or {}
    sync = state.get("sync_status") or {}
    up = {True: "reachable", False: "unreachable", None: "not probed yet"}[peer.get("up")]
    lines = [f"node         {state.get('node')} ({state.get('role')}), agent pid "
             f"{state.get('pid')} since {state.get('started')}"]
    if peer:
        lines.append(f"peer         {peer.get('name')} ({peer.get('host')}) {up}"
                     + (f": {peer['error']}" if peer.get("error") else ""))
    lines.append("sync         " + ("watching " + ", ".join(sync.get("roots", []))
                                    if state.get("sync") else "not running (only the master "
                                    "syncs)"))
    if sync.get("error"):
        lines.append(f"sync error   {sync['error']}")
    lines.append(f"replication  {replication.get('pending', 0)} queued, last acknowledged "
                 f"#{replication.get('acked', 0)}, {replication.get('failed_total', 0)} failed")
    if replication.get("error"):
        lines.append(f"replication  {replication['error']}")
    for name, running in sorted((state.get("services") or {}).items()):
        lines.append(f"service      {name}: {'running' if running else 'NOT running'}")
    return lines


def _events(args: argparse.Namespace) -> int:
    from skutui.agent import control

    path = Paths.from_env().control_socket
    try:
        if args.state:
            state = control.request(path, "state")["state"]
            if args.json:
                print_json(state)
            else:
                print("\n".join(format_state(state)))
            return EXIT_OK
        for event in control.stream_events(path, recent=args.recent):
            if args.json:
                print(json.dumps(event, sort_keys=True), flush=True)
            else:
                print(format_event(event), flush=True)
    except control.ControlError as exc:
        raise CommandError(str(exc)) from None
    except BrokenPipeError:
        return EXIT_OK
    raise CommandError("the skutui agent stopped; the event stream ended")


def register(commands: argparse._SubParsersAction) -> None:
    run = commands.add_parser(
        "exec", help="run a command on the master and replay it on the backup",
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

    events = commands.add_parser(
        "events", help="follow this node's agent: role changes, sync, replication, services",
        description="Print the agent's events as they happen (Ctrl-C to stop). With --json, "
                    "one JSON object a line with keys time, node, kind, level, message and "
                    "optionally data.")
    events.add_argument("--json", action="store_true", help="one JSON object per line")
    events.add_argument("--recent", action=Once, type=_count, default=10, metavar="N",
                        help="start with the last N events (default 10; 0 for only new ones)")
    events.add_argument("--state", action="store_true",
                        help="print the agent's current state and exit")
    events.set_defaults(func=_events)


# --- skutui node manifest | sync-apply | replay | journal -----------------------------------

def _refuse_if_master(paths: Paths, what: str) -> None:
    """Two masters pushing at each other would overwrite each other: the receiving side
    refuses while it believes it is the master itself."""
    if _node(paths).effective_role() is Role.MASTER:
        raise CommandError(f"refusing {what}: this node ({socket.gethostname()}) is the "
                           "master too. Two masters means split brain: check keepalived on "
                           "both nodes (`skutui status`)")


def request_from_stdin(what: str) -> dict:
    try:
        request = json.load(sys.stdin)
    except ValueError as exc:
        raise CommandError(f"the {what} on standard input is not JSON: {exc}",
                           EXIT_BAD_INPUT) from None
    if not isinstance(request, dict):
        raise CommandError(f"the {what} on standard input is not a JSON object", EXIT_BAD_INPUT)
    return request


def _answer(data: dict) -> int:
    json.dump(data, sys.stdout)
    sys.stdout.write("\n")
    return EXIT_OK


def _manifest(args: argparse.Namespace) -> int:
    from skutui.agent.sync import manifest_document, synced_roots

    paths = Paths.from_env()
    roots, refused = synced_roots(args.roots, paths.config_root)
    if refused:
        raise CommandError("refusing to list " + "; ".join(refused), EXIT_BAD_INPUT)
    excluded = [*args.exclude, str(paths.local_dir)]
    return _answer(manifest_document([str(r) for r in roots], excluded))


def _sync_apply(args: argparse.Namespace) -> int:
    from skutui.agent.sync import SyncError, apply_request

    paths = Paths.from_env()
    _refuse_if_master(paths, "configuration from the peer")
    request = request_from_stdin("sync request")
    try:
        return _answer(apply_request(request, own_excluded=(PurePosixPath(paths.local_dir),)))
    except (KeyError, TypeError, ValueError) as exc:
        raise CommandError(f"the sync request is not valid ({type(exc).__name__}: {exc}); "
                           "are both nodes on the same skutui version?", EXIT_BAD_INPUT) from None
    except (SyncError, OSError) as exc:
        raise CommandError(str(exc)) from None


def _replay(args: argparse.Namespace) -> int:
    """One JSON entry a line on standard input, one JSON answer a line on standard output
    (the outcome, or ``{"refused": why}``), until end of input: the master keeps this
    running over its connection, so no process is started per command."""
    from skutui.agent.journal import Entry, JournalError, apply_entry

    paths = Paths.from_env()
    for line in sys.stdin:
        try:
            _refuse_if_master(paths, "a replayed command")
            try:
                entry = Entry.from_dict(json.loads(line))
            except (KeyError, TypeError, ValueError) as exc:
                raise CommandError(f"the replayed entry is not valid: {exc}") from None
            answer = apply_entry(paths.journal_dir, entry).to_dict()
        except (CommandError, JournalError) as exc:
            answer = {"refused": str(exc)}
        print(json.dumps(answer), flush=True)
    return EXIT_OK


def _journal(args: argparse.Namespace) -> int:
    from skutui.agent.journal import Journal, JournalError

    journal = Journal(Paths.from_env().journal_dir)
    try:
        if args.discard:
            dropped = journal.discard_pending()
            print(f"discarded {dropped} queued command(s); they will not reach the peer")
            return EXIT_OK
        summary = journal.summary()
        pending = [e.to_dict() for e in journal.pending()] if args.json else []
    except JournalError as exc:
        raise CommandError(str(exc)) from None
    if args.json:
        print_json({**summary, "entries": pending})
    else:
        print(f"{summary['pending']} queued, last acknowledged #{summary['acked']}, "
              f"{summary['failed_total']} failed")
    return EXIT_OK


def register_node_steps(steps: argparse._SubParsersAction) -> None:
    """The ``skutui node`` operations the sync and the replication use."""
    manifest = steps.add_parser("manifest", help="print path, sha256, mode, owner and mtime "
                                                 "of every synced entry under ROOT…, as JSON")
    manifest.add_argument("--exclude", action="append", default=[], metavar="DIR",
                          help="leave this folder out (this node's local folder always is)")
    manifest.add_argument("roots", nargs="+", metavar="ROOT")
    manifest.set_defaults(func=_manifest)

    for name, func, text in (
        ("sync-apply", _sync_apply, "apply a sync request read from standard input "
                                    "(deletes, directories, links, metadata)"),
        ("replay", _replay, "run replayed journal entries, one JSON line each on standard "
                            "input, each at most once"),
    ):
        steps.add_parser(name, help=text).set_defaults(func=func)

    journal = steps.add_parser("journal", help="this node's replication journal")
    journal.add_argument("--json", action="store_true", help="also list the queued entries")
    journal.add_argument("--discard", action="store_true",
                         help="drop every queued command (they never reach the peer)")
    journal.set_defaults(func=_journal)
