"""``skutui node …``: the steps one node runs on itself.

The lifecycle on the master runs these on the peer over SSH, and so does the master's agent
for the sync and the replication (``manifest``, ``sync-apply``, ``sync-put``, ``sync-get``,
``replay``); they read JSON on stdin where they take data and print JSON on stdout, so that
nothing secret ever sits in an argument. The peer reaches them through ``skutui node
serve``, the forced command of its key, which runs the steps
:data:`skutui.domain.trust.SERVED_NODE_STEPS` names and nothing else.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import os
import select
import socket
import sys
from collections.abc import Iterator
from pathlib import PurePosixPath

from skutui.cli import main as cli_main
from skutui.cli.common import EXIT_BAD_INPUT, EXIT_OK, CommandError, Once, print_json
from skutui.cli.exec import positive_seconds
from skutui.cli.node_drill import register_node_step as register_drill_step
from skutui.cli.node_history import register_node_step as register_history_step
from skutui.domain import codec, trust, validation
from skutui.domain.model import Role
from skutui.domain.paths import Paths
from skutui.system import authorized_keys
from skutui.system.change import Change, ChangeBusy, ChangeGuard, Record, read_record, unrecorded
from skutui.system.journal import Entry, Journal, JournalError, apply_entry
from skutui.system.node import LocalNode, SnapshotError

HOLD_SILENCE = 30.0
"""Seconds ``skutui node change`` holds this node's change lock without a sign of life from
the node that asked: after that it ends, and the lock with it (that node lost power)."""


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


def _agent_state(args) -> int:
    """As ``facts``: the other node's hand-over keeps this running with ``--stream``, so a
    read never waits for a process to start."""
    node = _node()
    for _ in sys.stdin if args.stream else [None]:
        print(json.dumps(node.agent_state()), flush=True)
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


def _erase(args) -> int:
    _node().erase(keep_keys=args.keep_keys)
    return 0


def _maintenance(args) -> int:
    print(_node().set_maintenance(args.state == "on"))
    return 0


def _pin_peer_link(args) -> int:
    """The peer's address and link-layer address as JSON on standard input."""
    request = request_from_stdin("pin request")
    address, link_address = request.get("address"), request.get("link_address")
    if not isinstance(address, str) or not (link_address is None or isinstance(link_address, str)):
        raise CommandError('the pin request needs "address" (text) and "link_address" '
                           "(text or null)", EXIT_BAD_INPUT)
    try:
        print(_node().pin_peer_link(validation.ip_address(address, "address"), link_address))
    except ValueError as exc:
        raise CommandError(f"refusing to pin: {exc}", EXIT_BAD_INPUT) from None
    return 0


def _lines(fd: int, silence: float) -> Iterator[str]:
    """Lines read from ``fd`` until end of input, or until nothing came for ``silence``."""
    pending = b""
    while True:
        while b"\n" in pending:
            line, _, pending = pending.partition(b"\n")
            yield line.decode("utf-8", "replace")
        ready, _, _ = select.select([fd], [], [], silence)
        if not ready:
            return
        chunk = os.read(fd, 65536)
        if not chunk:
            return
        pending += chunk


def _change(args) -> int:
    """This node's side of a cluster change started on the peer: it takes this node's change
    lock and writes this node's rollback snapshot (``begin``), answers signs of life, and
    removes the record (``end``). The lock ends with this process: when the change ends,
    when the connection drops, or after HOLD_SILENCE without a word."""
    paths = Paths.from_env()
    guard = ChangeGuard(paths)

    def answer(data: dict) -> None:
        print(json.dumps(data), flush=True)

    for line in _lines(sys.stdin.fileno(), HOLD_SILENCE):
        request = json.loads(line)
        op = request.get("op")
        if op == "begin" and not guard.lock.held:
            change = Change.from_dict(request["change"])
            try:
                guard.hold(change, recovering=bool(request.get("recovering")))
            except ChangeBusy as exc:
                answer({"busy": str(exc)})
                return EXIT_OK
            try:
                shot = LocalNode(paths).snapshot() if request.get("snapshot") else None
                if shot is not None:
                    guard.keep(Record(change, [shot]))
            except OSError as exc:  # an atomic write that failed left no record
                guard.release()
                answer({"failed": unrecorded(socket.gethostname(), exc)})
                return EXIT_OK
            answer({"ok": True, "snapshot": shot})
        elif op == "end":
            if request.get("clear", True):
                guard.clear()
            guard.release()
            answer({"ok": True})
            return EXIT_OK
        elif op != "alive":
            answer({"error": f"unknown request {op!r}"})
    return EXIT_OK


def _recover(args) -> int:
    """Finish a change interrupted without its rollback: from the node that started it,
    both nodes; ``--here``, this node alone from its own snapshot (its peer is gone)."""
    paths = Paths.from_env()
    if args.here:
        record = read_record(paths)
        if record is None:
            print("no interrupted change left anything to roll back on this node")
            return EXIT_OK
        guard = ChangeGuard(paths)
        guard.hold(Change(f"rollback of the interrupted {record.change.what}",
                          socket.gethostname()), recovering=True)
        try:
            LocalNode(paths).restore(record.snapshots[0])
            guard.clear()
        finally:
            guard.release()
        print(f"this node is back as it was before the {record.change.what} started on "
              f"{record.change.node} at {record.change.started}")
        return EXIT_OK
    # The operations API (and SSH) load only for a rollback that involves the peer.
    from skutui.cluster.operations import build_service

    async def main() -> str | None:
        service = build_service(paths)
        try:
            return await service.finish_interrupted(lambda line: print(line, flush=True))
        finally:
            await service.close()

    print(asyncio.run(main()) or "no interrupted change left anything to roll back")
    return EXIT_OK


def _authorize_key(args) -> int:
    """The peer's key (on standard input) allowed skutui's steps here, from ``--from``."""
    try:
        public_key = " ".join(trust.public_key_fields(sys.stdin.read(), "the key on standard "
                                                                        "input")[:2])
        changed = authorized_keys.authorize(Paths.from_env().authorized_keys, public_key,
                                            args.from_address, only=args.only,
                                            replacing=args.replacing)
    except trust.NotAPublicKey as exc:
        raise CommandError(str(exc), EXIT_BAD_INPUT) from None
    print("authorized" if changed else "already authorized")
    return EXIT_OK


def _new_key(args) -> int:
    # asyncssh makes the key: slow to import, and only the key rotation needs it
    from skutui.peer.keys import new_key

    print(new_key(Paths.from_env()))
    return EXIT_OK


def _prove_key(args) -> int:
    # asyncssh: slow to import, and only the key rotation needs it
    from skutui.peer.keys import prove_key

    print(asyncio.run(prove_key(Paths.from_env(), args.to)))
    return EXIT_OK


def _commit_key(args) -> int:
    # asyncssh reads the keys: slow to import, and only the key rotation needs it
    from skutui.peer.keys import commit_key

    try:
        old, new = commit_key(Paths.from_env())
    except FileNotFoundError as exc:
        raise CommandError(str(exc)) from None
    print_json({"old": old, "new": new})
    return EXIT_OK


def _pin_host_key(args) -> int:
    """The peer's host key (on standard input) pinned for ``--address``, in place of the
    one pinned: the peer sends it over the connection its pin already authenticated."""
    # asyncssh checks the key: slow to import, and only the key rotation needs it
    from skutui.peer.hostkeys import KnownHosts
    from skutui.peer.keys import checked_public_key

    try:
        key = checked_public_key(sys.stdin.read(), "the peer's host key")
    except ValueError as exc:
        raise CommandError(str(exc), EXIT_BAD_INPUT) from None
    KnownHosts(Paths.from_env().known_hosts).set(args.address, " ".join(key.split()[:2]))
    return EXIT_OK


def _serve(args) -> int:
    """The forced command of the peer's key (sshd hands the request over in
    ``SSH_ORIGINAL_COMMAND``): one of skutui's own steps runs, in this process; anything
    else (a shell, another command, SFTP) is refused before anything runs."""
    return cli_main.run(trust.served(os.environ.get("SSH_ORIGINAL_COMMAND")))


def _hand_over(args) -> int:
    print(f"{_node().hand_over(args.timeout):.3f}")
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
        ("units", _simple("units_follow_cluster"), "write skutui's drop-ins on Debian's "
                                                   "keepalived and conntrackd units (a node "
                                                   "in a cluster), or remove them"),
        ("prepare", _simple("prepare"), "before keepalived starts (its unit runs this): "
                                        "skutui's table, so no floating IP is held unguarded"),
        ("stop", _simple("stop"), "stop them and release any floating IP"),
        ("serve", _serve, "run the step the peer's key asks for (its forced command)"),
        ("commit", _simple("commit_connections"),
         "commit the peer's connections, as conntrackd received them, to this node's kernel"),
    ):
        step = steps.add_parser(name, help=text)
        step.set_defaults(func=func)
    facts = steps.add_parser("facts", help="print this node's facts as JSON")
    facts.add_argument("--stream", action="store_true",
                       help="print them again for each line read on standard input")
    facts.set_defaults(func=_facts)
    agent_state = steps.add_parser("agent-state", help="print what this node's agent says of "
                                   "itself (role, priority) as JSON; {} if it is not running")
    agent_state.add_argument("--stream", action="store_true",
                             help="one line for each line read on standard input")
    agent_state.set_defaults(func=_agent_state)
    _register_key_steps(steps)
    register_node_steps(steps)
    register_history_step(steps)
    register_drill_step(steps)
    pin = steps.add_parser("pin-peer-link", help="pin the peer's link-layer address on the "
                           "cluster NIC (JSON on standard input)")
    pin.set_defaults(func=_pin_peer_link)
    erase = steps.add_parser("erase", help="stop and remove this node's cluster configuration "
                                           "and the peer's key")
    erase.add_argument("--keep-keys", action="store_true",
                       help="leave the peer's key allowed (cluster create, right after the "
                            "key exchange)")
    erase.set_defaults(func=_erase)
    maintenance = steps.add_parser("maintenance", help="put this node in or out of maintenance")
    maintenance.add_argument("state", choices=("on", "off"))
    maintenance.set_defaults(func=_maintenance)
    steps.add_parser("change", help="hold this node for a change started on the peer "
                                    "(JSON lines on standard input)").set_defaults(func=_change)
    recover = steps.add_parser("recover", help="roll back a change interrupted without its "
                                               "rollback")
    recover.add_argument("--here", action="store_true",
                         help="this node alone, from its own snapshot (the node that started "
                              "the change is gone)")
    recover.set_defaults(func=_recover)
    hand_over = steps.add_parser("hand-over", help="rank this master below the peer and wait "
                                 "until the peer took over the floating IPs")
    hand_over.add_argument("--timeout", action=Once, type=positive_seconds, required=True,
                           metavar="SECONDS")
    hand_over.set_defaults(func=_hand_over)


def _ip(text: str) -> str:
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an IP address") from None


def _key_body(text: str) -> str:
    try:
        return trust.key_body(text)
    except trust.NotAPublicKey as exc:
        raise argparse.ArgumentTypeError(f"{exc}; give the old key's second field, as in its "
                                         ".pub file") from None


def _register_key_steps(steps: argparse._SubParsersAction) -> None:
    """What ``skutui cluster rekey`` runs on both nodes."""
    authorize = steps.add_parser("authorize-key", help="allow the peer's key read from standard "
                                                       "input skutui's steps here")
    authorize.add_argument("--from", dest="from_address", required=True, metavar="IP", type=_ip,
                           help="the peer's cluster IP: the only address the key works from")
    authorize.add_argument("--only", action="store_true",
                           help="and no other skutui key (the old one goes)")
    authorize.add_argument("--replacing", action="append", default=[], metavar="BODY",
                           type=_key_body,
                           help="with --only: the old key's base64 body, removed whatever its "
                                "line holds")
    authorize.set_defaults(func=_authorize_key)
    steps.add_parser("new-key", help="make this node's next key beside the one in use; print "
                                     "its public key").set_defaults(func=_new_key)
    prove = steps.add_parser("prove-key", help="log in to the peer with the next key")
    prove.add_argument("--to", required=True, metavar="IP", type=_ip, help="the peer's cluster IP")
    prove.set_defaults(func=_prove_key)
    steps.add_parser("commit-key", help="make the next key this node's key; print both as "
                                        "JSON").set_defaults(func=_commit_key)
    pin = steps.add_parser("pin-host-key", help="pin the peer's host key read from standard "
                                                "input")
    pin.add_argument("--address", required=True, metavar="IP", type=_ip, help="the peer's cluster IP")
    pin.set_defaults(func=_pin_host_key)


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


def own_synced_roots(paths: Paths) -> list[PurePosixPath]:
    """The folders this node takes from its peer: its own cluster.toml's synced paths,
    whatever a request names. A cluster.toml that cannot be read leaves skutui's own folder
    alone, so that the master can put a good one back."""
    # `skutui node` runs over SSH once per call: only the sync's own steps load its parts.
    from skutui.domain.syncplan import synced_roots

    try:
        config = LocalNode(paths).config()
    except codec.ConfigError:
        return [PurePosixPath(paths.config_root)]
    if config is None:
        raise CommandError(f"no cluster is configured on this node ({socket.gethostname()}); "
                           "it takes no configuration from a peer")
    return synced_roots(config.synced_paths, paths.config_root)[0]


def _manifest(args: argparse.Namespace) -> int:
    # `skutui node` runs over SSH once per call: only the sync's own steps load its parts.
    from skutui.agent.sync.tree import manifest_document
    from skutui.domain.syncplan import synced_roots, within_roots
    from skutui.system import generation

    paths = Paths.from_env()
    roots, refused = synced_roots(args.roots, paths.config_root)
    if not refused:
        refused = within_roots([str(r) for r in roots], own_synced_roots(paths))
    if refused:
        raise CommandError("refusing to list " + "; ".join(refused), EXIT_BAD_INPUT)
    excluded = [*args.exclude, str(paths.local_dir)]
    document = manifest_document([str(r) for r in roots], excluded)
    document["generation"] = generation.read(paths.generation_file).to_dict()
    document["role"] = LocalNode(paths).effective_role().value
    print(json.dumps(document))
    return EXIT_OK


def _sync_apply(args: argparse.Namespace) -> int:
    """Sync requests, one a line, kept running by the master as ``sync-put`` is, so that a
    push starts no process here. Each request is checked as it comes: this node's role and
    generation before anything is written, its own synced folders (never the request's);
    files of another generation are kept aside as they are replaced; a commit makes this
    node hold the master's generation."""
    # `skutui node` runs over SSH once per call: only the sync's own steps load its parts.
    from skutui.agent.sync.backup import apply_checked

    paths = Paths.from_env()

    def apply(request: dict, roots: list[PurePosixPath], *,
              own_excluded: tuple[PurePosixPath, ...]) -> dict:
        return apply_checked(
            request, roots, hostname=socket.gethostname(), generation_file=paths.generation_file,
            master=LocalNode(paths).effective_role() is Role.MASTER,
            set_aside_root=paths.set_aside_dir, own_excluded=own_excluded)

    return _request_lines("sync", apply)


def _request_lines(what: str, serve) -> int:
    """One JSON request a line on standard input, one JSON answer a line (see
    :func:`~skutui.agent.sync.backup.answer_line`), until end of input: the master keeps
    this running, so no process is started per request."""
    # `skutui node` runs over SSH once per call: only the sync's own steps load its parts.
    from skutui.agent.sync.backup import answer_line

    paths = Paths.from_env()
    excluded = (PurePosixPath(paths.local_dir),)
    for line in sys.stdin:
        answer = answer_line(line, what, lambda request: serve(
            request, own_synced_roots(paths), own_excluded=excluded))
        print(json.dumps(answer), flush=True)
    return EXIT_OK


def _sync_put(args: argparse.Namespace) -> int:
    """Contents staged in their synced folder (``{"path", "stage", "data"}``), where a
    ``sync-apply`` with the same token puts them in place after its checks."""
    # `skutui node` runs over SSH once per call: only the sync's own steps load its parts.
    from skutui.agent.sync.backup import stage_contents

    return _request_lines("staged file", stage_contents)


def _sync_get(args: argparse.Namespace) -> int:
    """A synced file's contents (``{"path"}``) for a master taking this node's files."""
    # `skutui node` runs over SSH once per call: only the sync's own steps load its parts.
    from skutui.agent.sync.backup import read_synced

    return _request_lines("file", read_synced)


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
            print(f"discarded {dropped} queued or set-aside command(s); they will not reach "
                  "the peer")
            return EXIT_OK
        summary = journal.summary()
        pending = [e.to_dict() for e in journal.pending()] if args.json else []
        aside = journal.set_aside_entries()
    except JournalError as exc:
        raise CommandError(str(exc)) from None
    if args.json:
        print_json({**summary, "entries": pending,
                    "set_aside_entries": [a.entry.to_dict() | {"note": a.note} for a in aside]})
        return EXIT_OK
    print(f"{summary['pending']} queued, last acknowledged #{summary['acked']}, "
          f"{summary['failed_total']} failed, {summary['set_aside']} set aside")
    for item in aside:
        print(f"set aside #{item.entry.seq} `{item.entry.command}` (from {item.entry.cwd}): "
              f"{item.note}")
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
        ("sync-apply", _sync_apply, "apply sync requests (deletes, directories, links, "
                                    "metadata), one JSON line each on standard input"),
        ("sync-put", _sync_put, "stage synced files' contents, one JSON line each on standard "
                                "input"),
        ("sync-get", _sync_get, "print synced files' contents, one JSON line each asked on "
                                "standard input"),
        ("replay", _replay, "run replayed journal entries, one JSON line each on standard "
                            "input, each at most once"),
    ):
        steps.add_parser(name, help=text).set_defaults(func=func)

    journal = steps.add_parser("journal", help="this node's replication journal")
    journal.add_argument("--json", action="store_true",
                         help="also list the queued and set-aside entries")
    journal.add_argument("--discard", action="store_true",
                         help="drop every queued and set-aside command (they never reach "
                              "the peer)")
    journal.set_defaults(func=_journal)
