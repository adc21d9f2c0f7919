"""``skutui node …``: the steps one node runs on itself.

The lifecycle on the master runs these on the peer over SSH, and so does the master's agent
for the sync and the replication (``manifest``, ``sync-apply``, ``replay``); they read JSON
on stdin where they take data and print JSON on stdout, so that nothing secret ever sits in
an argument.
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
from pathlib import PurePosixPath

from skutui.cli.common import EXIT_BAD_INPUT, EXIT_OK, CommandError, print_json
from skutui.domain import codec
from skutui.domain.model import Role
from skutui.domain.paths import Paths
from skutui.system.journal import Entry, Journal, JournalError, apply_entry
from skutui.system.node import LocalNode, SnapshotError


def _node() -> LocalNode:
    return LocalNode(Paths.from_env())


def _answer(method: str):
    """A step that prints what this node answers, as one JSON document."""

    def run(args) -> int:
        answer = getattr(_node(), method)()
        json.dump(answer.to_dict() if hasattr(answer, "to_dict") else answer, sys.stdout)
        sys.stdout.write("\n")
        return 0

    return run


def _facts(args) -> int:
    """Facts once, or with ``--stream`` one line of facts for each line read, until end of
    input: the console keeps this running on the peer instead of starting it per read."""
    node = _node()
    for _ in sys.stdin if args.stream else [None]:
        print(json.dumps(node.facts().to_dict()), flush=True)
    return 0


def _restore(args) -> int:
    snapshot = request_from_stdin("snapshot")
    try:
        _node().restore(snapshot)
    except SnapshotError as exc:
        raise CommandError(str(exc), EXIT_BAD_INPUT) from None
    return 0


def _apply(args) -> int:
    """A bad cluster.toml on standard input is bad input (exit 2), as is a bad file."""
    config = codec.load_bytes(sys.stdin.buffer.read(), source="standard input")
    _node().apply(config)
    return 0


def _simple(method: str):
    def run(args) -> int:
        getattr(_node(), method)()
        return 0

    return run


def _maintenance(args) -> int:
    print(_node().set_maintenance(args.state == "on"))
    return 0


def register(commands: argparse._SubParsersAction, name: str, help: str) -> None:
    node = commands.add_parser(name, help=help)
    steps = node.add_subparsers(title="operations", metavar="OPERATION", required=True)
    for name, func, text in (
        ("inventory", _answer("inventory"), "print what pre-flight compares, as JSON"),
        ("reload", _simple("reload"), "re-render the daemon configurations and reload keepalived"),
        ("snapshot", _answer("snapshot"), "print the files and daemons a rollback restores, as JSON"),
        ("restore", _restore, "restore a snapshot read from standard input"),
        ("apply", _apply, "write the cluster.toml read from standard input and the daemon configurations"),
        ("start", _simple("start"), "start conntrackd, keepalived and the agent"),
        ("stop", _simple("stop"), "stop them and release any floating IP"),
        ("erase", _simple("erase"), "stop and remove this node's cluster configuration"),
    ):
        step = steps.add_parser(name, help=text)
        step.set_defaults(func=func)
    facts = steps.add_parser("facts", help="print this node's facts as JSON")
    facts.add_argument("--stream", action="store_true",
                       help="print them again for each line read on standard input")
    facts.set_defaults(func=_facts)
    register_node_steps(steps)
    maintenance = steps.add_parser("maintenance", help="put this node in or out of maintenance")
    maintenance.add_argument("state", choices=("on", "off"))
    maintenance.set_defaults(func=_maintenance)


# --- the steps the master's agent runs on the backup: manifest, sync-apply, replay; journal ---

def _refuse_if_master(paths: Paths, what: str) -> None:
    """Two masters pushing at each other would overwrite each other: the receiving side
    refuses while it believes it is the master itself."""
    if LocalNode(paths).effective_role() is Role.MASTER:
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


def _print_answer(data: dict) -> int:
    json.dump(data, sys.stdout)
    sys.stdout.write("\n")
    return EXIT_OK


def _manifest(args: argparse.Namespace) -> int:
    # `skutui node` runs over SSH once per call: only the sync's own steps load its parts.
    from skutui.agent.sync.tree import manifest_document
    from skutui.domain.syncplan import synced_roots

    paths = Paths.from_env()
    roots, refused = synced_roots(args.roots, paths.config_root)
    if refused:
        raise CommandError("refusing to list " + "; ".join(refused), EXIT_BAD_INPUT)
    excluded = [*args.exclude, str(paths.local_dir)]
    return _print_answer(manifest_document([str(r) for r in roots], excluded))


def _sync_apply(args: argparse.Namespace) -> int:
    # `skutui node` runs over SSH once per call: only the sync's own steps load its parts.
    from skutui.agent.sync.backup import apply_request
    from skutui.domain.syncplan import SyncError

    paths = Paths.from_env()
    _refuse_if_master(paths, "configuration from the peer")
    request = request_from_stdin("sync request")
    try:
        return _print_answer(apply_request(request, own_excluded=(PurePosixPath(paths.local_dir),)))
    except (KeyError, TypeError, ValueError) as exc:
        raise CommandError(f"the sync request is not valid ({type(exc).__name__}: {exc}); "
                           "are both nodes on the same skutui version?", EXIT_BAD_INPUT) from None
    except (SyncError, OSError) as exc:
        raise CommandError(str(exc)) from None


def _replay(args: argparse.Namespace) -> int:
    """One JSON entry a line on standard input, one JSON answer a line on standard output
    (the outcome, or ``{"refused": why}``), until end of input: the master keeps this
    running over its connection, so no process is started per command."""
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
