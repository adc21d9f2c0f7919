"""The configuration sync against a real SSH server (asyncssh's, see tests/fakes_ssh.py)
whose ``skutui node`` commands run skutui's own backup-side code on the fake's files."""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import shlex
import stat
import sys
from pathlib import Path, PurePosixPath

import asyncssh
import pytest

from skutui.agent.link import PeerLink
from skutui.agent.sync.backup import apply_request
from skutui.agent.sync.master import NotMaster, Pusher, SyncService
from skutui.agent.sync.transport import SshRemoteTree
from skutui.agent.sync.tree import manifest_document, scan
from skutui.domain.model import Node
from skutui.domain.paths import Paths
from skutui.domain.syncplan import SyncError, SyncFilter, plan_changes, synced_roots
from skutui.peer import PeerConnection, ensure_local_key, pin_peer
from skutui.system.daemons import Keepalived
from skutui.system.journal import Entry, apply_entry
from tests.fakes_ssh import FakePeer


class SkutuiPeer(FakePeer):
    """A fake backup: ``skutui node manifest | sync-apply | replay`` run the real code on
    the files under ``root`` (which its SFTP server serves as "/")."""

    def __init__(self, root: Path, *, local_dir: PurePosixPath, **options) -> None:
        super().__init__(root, **options)
        self.role = "backup"
        self.local_dir = local_dir
        self.replayed: list[list[str]] = []

    @property
    def journal_dir(self) -> Path:
        return self.path(str(self.local_dir / "journal"))

    def run_replayed(self, entry: Entry) -> tuple[int, str]:
        self.replayed.append(list(entry.argv))
        if entry.argv[0] == "fail":
            return int(entry.argv[1]), " ".join(entry.argv[2:])
        return 0, ""

    async def _command(self, process: asyncssh.SSHServerProcess) -> None:
        argv = shlex.split(process.command or "")
        if argv[:2] != ["skutui", "node"] or len(argv) < 3:
            return await super()._command(process)
        self.commands.append(process.command)
        if argv[2] == "replay":
            return await self._replay(process)
        try:
            answer = await self._skutui_node(argv[2], argv[3:], process)
        except Exception as exc:  # noqa: BLE001 - what skutui's CLI prints for its errors
            process.stderr.write(f"skutui: {exc}\n".encode())
            process.exit(1)
            return
        process.stdout.write(json.dumps(answer).encode() + b"\n")
        process.exit(0)

    async def _skutui_node(self, step: str, args: list[str], process) -> dict:
        if step == "manifest":
            excluded = [a.split("=", 1)[1] for a in args if a.startswith("--exclude=")]
            roots = [a for a in args if not a.startswith("--")]
            return await asyncio.to_thread(manifest_document, roots,
                                           [*excluded, str(self.local_dir)], under=self.root)
        request = json.loads(await process.stdin.read())
        if self.role == "master":
            raise SyncError("refusing: this node is the master too")
        if step == "sync-apply":
            return await asyncio.to_thread(apply_request, request, under=self.root,
                                           own_excluded=(self.local_dir,))
        raise ValueError(f"unknown step {step}")

    async def _replay(self, process) -> None:
        """Like `skutui node replay`: an answer a line for each entry a line, until EOF."""
        async for line in process.stdin:
            if self.role == "master":
                answer = {"refused": "refusing: this node is the master too"}
            else:
                outcome = await asyncio.to_thread(apply_entry, self.journal_dir,
                                                  Entry.from_dict(json.loads(line)),
                                                  self.run_replayed)
                answer = outcome.to_dict()
            process.stdout.write(json.dumps(answer).encode() + b"\n")
        process.exit(0)


async def start_skutui_peer(root: Path, master: Paths, port: int = 0) -> SkutuiPeer:
    """A started fake backup that trusts ``master``'s key, pinned in ``master``'s known_hosts."""
    peer = await SkutuiPeer(root, local_dir=PurePosixPath(master.local_dir)).start(port)
    public = ensure_local_key(master)
    keys = peer.path("/root/.ssh/authorized_keys")
    keys.parent.mkdir(parents=True, exist_ok=True)
    keys.write_text(public + "\n")
    if port == 0:
        await pin_peer(peer.host, master.known_hosts, port=peer.port, trust_new=True)
    return peer


def connection_to(peer: FakePeer, paths: Paths) -> PeerConnection:
    return PeerConnection(peer.host, paths=paths, port=peer.port, connect_timeout=2,
                          keepalive_interval=1, keepalive_count_max=2)


@pytest.fixture
def master(tmp_path: Path) -> Paths:
    paths = Paths(config_root=tmp_path / "master" / "etc" / "skutui",
                  run_dir=tmp_path / "master" / "run")
    paths.local_dir.mkdir(parents=True, mode=0o700)
    paths.role_file.write_text("master\n")
    return paths


@pytest.fixture
async def backup(tmp_path: Path, master: Paths):
    peer = await start_skutui_peer(tmp_path / "backup", master)
    yield peer
    await peer.stop()


@pytest.fixture
async def connection(backup: SkutuiPeer, master: Paths):
    conn = connection_to(backup, master)
    yield conn
    await conn.close()


def is_master(paths: Paths):
    return lambda: paths.role_file.read_text().strip() == "master"


def make_pusher(master: Paths, connection: PeerConnection) -> Pusher:
    return Pusher([PurePosixPath(master.config_root)],
                  SyncFilter((PurePosixPath(master.local_dir),)), SshRemoteTree(connection),
                  may_push=is_master(master))


def write(path: Path, text: str, mode: int = 0o644, mtime_ns: int | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(mode)
    if mtime_ns is not None:
        os.utime(path, ns=(mtime_ns, mtime_ns))
    return path


def assert_same(local: Path, peer: SkutuiPeer) -> None:
    """Byte-identical, same mode, owner and mtime on the peer (links: same target)."""
    remote = peer.path(str(local))
    mine, theirs = os.lstat(local), os.lstat(remote)
    assert stat.S_IFMT(mine.st_mode) == stat.S_IFMT(theirs.st_mode), local
    if local.is_symlink():
        assert os.readlink(local) == os.readlink(remote)
    elif local.is_file():
        assert remote.read_bytes() == local.read_bytes(), local
    if not local.is_symlink():
        assert stat.S_IMODE(theirs.st_mode) == stat.S_IMODE(mine.st_mode), local
    if not local.is_dir():
        assert theirs.st_mtime_ns == mine.st_mtime_ns, local
    assert (theirs.st_uid, theirs.st_gid) == (mine.st_uid, mine.st_gid), local


def peer_files(peer: SkutuiPeer, master: Paths) -> set[str]:
    top = peer.path(str(master.config_root))
    return {str(p.relative_to(top)) for p in top.rglob("*")}


def sample_tree(root: Path) -> list[Path]:
    return [
        write(root / "cluster.toml", "schema_version = 1\n", 0o600, 1_600_000_000_123_456_789),
        write(root / "haproxy" / "haproxy.cfg", "global\n  maxconn 100\n", 0o640),
        write(root / "haproxy" / "certs" / "site.pem", "-----BEGIN-----\n" * 50, 0o400),
    ]


async def wait_until(check, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


# --- reconcile and push ------------------------------------------------------------------

async def test_first_reconcile_copies_the_tree_exactly_and_leaves_local_parts_out(
        master: Paths, backup: SkutuiPeer, connection: PeerConnection):
    root = master.config_root
    files = sample_tree(root)
    (root / "empty").mkdir(mode=0o750)
    os.chmod(root / "empty", 0o750)
    os.symlink("haproxy/haproxy.cfg", root / "current.cfg")
    os.chown(files[1], 1234, 4321)
    write(root / ".cluster.toml.ab12.tmp", "half")
    write(root / "cluster.toml~", "old")
    write(master.local_dir / "maintenance", "0\n")

    report = await make_pusher(master, connection).reconcile()

    for path in [*files, root / "empty", root / "current.cfg", root / "haproxy"]:
        assert_same(path, backup)
    assert peer_files(backup, master) == {
        "cluster.toml", "haproxy", "haproxy/haproxy.cfg", "haproxy/certs",
        "haproxy/certs/site.pem", "empty", "current.cfg"}
    assert str(files[0]) in report.written and report.kind == "reconcile"
    assert not any(name.startswith(".") for name in os.listdir(backup.path(str(root))))


async def test_a_second_reconcile_finds_the_peer_in_step(master: Paths, connection, backup):
    sample_tree(master.config_root)
    pusher = make_pusher(master, connection)
    await pusher.reconcile()
    report = await pusher.reconcile()
    assert not report.changed and report.in_step == 6
    assert report.summary(backup.host) == f"{backup.host} is in step (6 entries compared)"


async def test_only_the_changed_file_is_pushed_byte_identical(master: Paths, backup, connection):
    files = sample_tree(master.config_root)
    pusher = make_pusher(master, connection)
    await pusher.reconcile()
    write(files[1], "global\n  maxconn 5000\n", 0o600, 1_700_000_000_000_000_001)
    before = list(backup.commands)

    report = await pusher.push([files[1]])

    assert report.written == [str(files[1])] and not report.deleted
    assert_same(files[1], backup)
    new = backup.commands[len(before):]
    assert [c.split()[2] for c in new] == ["sync-apply"]  # no manifest: only what changed


async def test_a_touched_but_unchanged_file_is_not_sent_again(master: Paths, backup, connection):
    files = sample_tree(master.config_root)
    pusher = make_pusher(master, connection)
    await pusher.reconcile()
    os.utime(files[0], ns=(1_650_000_000_000_000_000, 1_650_000_000_000_000_000))
    report = await pusher.push([files[0], files[2]])
    assert report.written == [] and report.metadata == [str(files[0])]
    assert report.in_step == 1
    assert_same(files[0], backup)


async def test_deletes_and_moves_are_propagated(master: Paths, backup, connection):
    root = master.config_root
    files = sample_tree(root)
    pusher = make_pusher(master, connection)
    await pusher.reconcile()
    files[0].unlink()
    os.rename(root / "haproxy", root / "lb")
    report = await pusher.push([files[0], root / "haproxy", root / "lb"])
    assert sorted(report.deleted) == [str(files[0]), str(root / "haproxy")]
    assert peer_files(backup, master) == {"lb", "lb/haproxy.cfg", "lb/certs", "lb/certs/site.pem"}
    assert_same(root / "lb" / "certs" / "site.pem", backup)


async def test_a_new_file_in_a_new_directory_brings_the_directory(master: Paths, backup,
                                                                   connection):
    root = master.config_root
    sample_tree(root)
    pusher = make_pusher(master, connection)
    await pusher.reconcile()
    (root / "a" / "b").mkdir(parents=True)
    os.chmod(root / "a", 0o711)
    new = write(root / "a" / "b" / "c.cfg", "c")
    await pusher.push([new])  # the directories' own events were missed
    assert_same(new, backup)
    assert_same(root / "a", backup)


async def test_a_file_replacing_a_directory_and_back(master: Paths, backup, connection):
    root = master.config_root
    sample_tree(root)
    pusher = make_pusher(master, connection)
    await pusher.reconcile()
    for path in (root / "haproxy").rglob("*"):
        if path.is_file():
            path.unlink()
    for path in sorted((root / "haproxy").rglob("*"), reverse=True):
        path.rmdir()
    (root / "haproxy").rmdir()
    write(root / "haproxy", "now a file")
    await pusher.push([root / "haproxy"])
    assert_same(root / "haproxy", backup)
    assert peer_files(backup, master) == {"cluster.toml", "haproxy"}


async def test_a_touched_file_changed_by_hand_on_the_backup_is_written_again(
        master: Paths, backup, connection):
    files = sample_tree(master.config_root)
    pusher = make_pusher(master, connection)
    await pusher.reconcile()
    backup.path(str(files[0])).write_text("edited by hand on the backup\n")
    os.utime(files[0], ns=(1_650_000_000_000_000_000, 1_650_000_000_000_000_000))
    report = await pusher.push([files[0]])
    assert report.written == [str(files[0])] and report.metadata == []
    assert_same(files[0], backup)


async def test_reconcile_by_hash_fixes_drift_on_the_backup(master: Paths, backup, connection):
    root = master.config_root
    files = sample_tree(root)
    pusher = make_pusher(master, connection)
    await pusher.reconcile()
    # drift made by hand on the backup: same size and mtime, other bytes; a lost file; a
    # mode change; an extra file and directory; and a file in its never-synced local part
    drifted = backup.path(str(files[1]))
    st = drifted.stat()
    drifted.write_text(drifted.read_text().replace("100", "999"))
    os.utime(drifted, ns=(st.st_atime_ns, st.st_mtime_ns))
    backup.path(str(files[0])).unlink()
    backup.path(str(files[2])).chmod(0o666)
    write(backup.path(str(root / "extra.cfg")), "stray")
    write(backup.path(str(root / "old" / "x.cfg")), "stray")
    own = write(backup.path(str(master.local_dir / "role")), "backup\n")

    report = await make_pusher(master, connection).reconcile()  # a fresh agent: no memory

    for path in files:
        assert_same(path, backup)
    assert sorted(report.deleted) == [str(root / "extra.cfg"), str(root / "old")]
    assert str(files[1]) in report.written and str(files[0]) in report.written
    assert str(files[2]) in report.metadata
    assert own.read_text() == "backup\n"


async def test_a_vanished_root_is_never_mirrored_as_a_delete(master: Paths, backup, connection,
                                                             tmp_path: Path):
    extra_root = tmp_path / "master" / "etc" / "haproxy"
    write(extra_root / "haproxy.cfg", "global\n")
    pusher = Pusher([PurePosixPath(master.config_root), PurePosixPath(extra_root)],
                    SyncFilter((PurePosixPath(master.local_dir),)), SshRemoteTree(connection),
                    may_push=is_master(master))
    await pusher.reconcile()
    (extra_root / "haproxy.cfg").unlink()
    extra_root.rmdir()
    await pusher.push([extra_root])
    report = await pusher.reconcile()
    assert report.absent_roots == [str(extra_root)]
    assert backup.path(str(extra_root / "haproxy.cfg")).exists()


async def test_a_backup_never_pushes(master: Paths, backup, connection):
    sample_tree(master.config_root)
    master.role_file.write_text("backup\n")
    pusher = make_pusher(master, connection)
    with pytest.raises(NotMaster):
        await pusher.reconcile()
    with pytest.raises(NotMaster):
        await pusher.push([master.config_root / "cluster.toml"])
    assert backup.commands == [] and not connection.connected


async def test_a_node_that_is_master_itself_refuses_a_push(master: Paths, backup, connection):
    sample_tree(master.config_root)
    backup.role = "master"
    with pytest.raises(SyncError, match="master too"):
        await make_pusher(master, connection).reconcile()
    assert not backup.path(str(master.config_root / "cluster.toml")).exists()


# --- the service: watcher, peer away and back ----------------------------------------------

class Events:
    def __init__(self) -> None:
        self.seen: list[tuple[str, str, str]] = []

    def __call__(self, kind: str, message: str, *, level: str = "info", **data) -> None:
        self.seen.append((kind, level, message))

    def messages(self, kind: str = "sync") -> list[str]:
        return [m for k, _, m in self.seen if k == kind]


def service_for(master: Paths, connection: PeerConnection, events: Events,
                link: PeerLink | None = None) -> SyncService:
    return SyncService(make_pusher(master, connection), report=events, peer_name="node-b",
                       peer_ready=(lambda: link.up is True) if link else (lambda: True),
                       peer_lost=link.lost if link else (lambda exc: None),
                       debounce=0.02, reconcile_every=60)


async def test_the_watcher_pushes_changes_as_they_happen(master: Paths, backup, connection):
    root = master.config_root
    files = sample_tree(root)
    events = Events()
    service = service_for(master, connection, events)
    task = asyncio.create_task(service.run())
    try:
        await wait_until(lambda: service.last_reconcile is not None)
        assert service.running
        write(files[1], "global\n  maxconn 7\n")
        await wait_until(lambda: backup.path(str(files[1])).read_text() == files[1].read_text())
        await service.flush()  # the metadata step follows the contents
        assert_same(files[1], backup)
        files[2].unlink()
        new = write(root / "new.d" / "z.cfg", "z")
        await wait_until(lambda: backup.path(str(new)).exists()
                         and not backup.path(str(files[2])).exists())
        await service.flush()
        assert_same(new, backup)
        write(master.local_dir / "maintenance", "1\n")
        await service.flush()
        assert not backup.path(str(master.local_dir / "maintenance")).exists()
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert not service.running
    assert any(m.startswith("pushed to node-b: 1 written") for m in events.messages())
    assert events.messages()[-1] == "sync watcher stopped"


async def test_changes_made_while_the_backup_is_away_arrive_when_it_returns(
        master: Paths, backup: SkutuiPeer, connection, tmp_path: Path):
    files = sample_tree(master.config_root)
    events = Events()
    link = PeerLink(Node("node-b", backup.host), connection, events)
    service = service_for(master, connection, events, link)
    link.on_up.append(service.request_reconcile)
    assert await link.probe()
    task = asyncio.create_task(service.run())
    try:
        await wait_until(lambda: service.last_reconcile is not None)
        port = backup.port
        await backup.stop()
        backup.drop_connections()
        write(files[0], "schema_version = 1\n# changed while away\n")
        files[2].unlink()
        await wait_until(lambda: not connection.connected or link.up is False)
        assert not await link.probe()
        await asyncio.sleep(0.1)
        assert backup.path(str(files[2])).exists()  # nothing could reach it

        await backup.start(port)  # the same node returns
        assert await link.probe()
        await wait_until(lambda: service.last_reconcile and service.last_error is None
                         and not backup.path(str(files[2])).exists()
                         and "while away" in backup.path(str(files[0])).read_text())
        await service.flush()  # let the reconcile in flight finish its metadata step
        assert_same(files[0], backup)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    peer_events = events.messages("peer")
    assert peer_events[0].startswith(f"node-b ({backup.host}) is reachable")
    assert any("unreachable" in m for m in peer_events)
    assert peer_events[-1].endswith("is reachable")


async def test_a_failed_push_is_reported_and_retried_by_comparing_trees(master: Paths, backup,
                                                                        connection):
    files = sample_tree(master.config_root)
    events = Events()
    service = service_for(master, connection, events)
    service.retry_after = 0.0
    backup.role = "master"
    await service.flush()
    assert service.last_error and "master too" in service.last_error
    assert events.seen[-1][1] == "error"
    backup.role = "backup"
    await service.flush()
    assert service.last_error is None
    assert_same(files[0], backup)


# --- protocol pieces and safety -------------------------------------------------------------

def test_synced_roots_refuse_system_folders_and_default_to_skutuis_own():
    roots, refused = synced_roots(["/etc/haproxy", "/etc/haproxy/conf.d", "etc/x", "/",
                                   "/etc", "/proc/sys/net", "/etc/keepalived/../skutui"],
                                  Path("/etc/skutui"))
    assert roots == [PurePosixPath("/etc/haproxy"), PurePosixPath("/etc/skutui")]
    assert len(refused) == 4 and any("system folder" in r for r in refused)
    assert synced_roots([], Path("/etc/skutui")) == ([PurePosixPath("/etc/skutui")], [])


def test_apply_refuses_paths_outside_the_roots_or_inside_the_local_part(tmp_path: Path):
    root = "/etc/skutui"
    base = {"roots": [root], "excluded": ["/etc/skutui/local"]}
    for bad in ("/etc/passwd", "/etc/skutui/../passwd", "/etc/skutui/local/role",
                "/etc/skutui/.hidden/x", "relative"):
        with pytest.raises(SyncError, match="refusing"):
            apply_request({**base, "delete": [bad]}, under=tmp_path)
    with pytest.raises(SyncError, match="synced path itself"):
        apply_request({**base, "delete": [root]}, under=tmp_path)
    with pytest.raises(SyncError, match="system folder"):
        apply_request({"roots": ["/etc"], "delete": ["/etc/passwd"]}, under=tmp_path)
    with pytest.raises(SyncError, match="refusing"):  # its own local part, whatever is sent
        apply_request({"roots": [root], "delete": ["/etc/skutui/local/id_ed25519"]},
                      under=tmp_path, own_excluded=(PurePosixPath("/etc/skutui/local"),))


def test_plan_orders_kind_changes_and_deletes_only_the_top(tmp_path: Path):
    d = {"kind": "dir", "mode": 0o755, "uid": 0, "gid": 0, "mtime_ns": 1}
    f = {"kind": "file", "sha256": "aa", "size": 1, "mode": 0o644, "uid": 0, "gid": 0,
         "mtime_ns": 1}
    local = {"/r": d, "/r/x": f}
    remote = {"/r": {**d, "mtime_ns": 99}, "/r/x": d, "/r/x/y": f, "/r/gone": d,
              "/r/gone/z": f}
    plan = plan_changes(local, remote, set(local) | set(remote))
    assert plan.deletes == ["/r/gone", "/r/x"]
    assert plan.files == ["/r/x"] and plan.in_step == 1  # directory mtimes do not count


def _node_cli(argv: list[str], stdin: str, monkeypatch, paths: Paths) -> tuple[int, dict]:
    from skutui.cli.node import register_node_steps

    parser = argparse.ArgumentParser()
    register_node_steps(parser.add_subparsers())
    args = parser.parse_args(argv)
    monkeypatch.setenv("SKUTUI_ROOT", str(paths.config_root))
    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    out = io.StringIO()
    monkeypatch.setattr(sys, "stdout", out)
    code = args.func(args)
    return code, json.loads(out.getvalue())


def test_node_manifest_and_sync_apply_on_this_machine(tmp_path: Path, monkeypatch):
    """The commands the master runs on the backup, run here on real paths."""
    from skutui.cli.common import CommandError

    paths = Paths(config_root=tmp_path / "etc" / "skutui")
    write(paths.config_root / "cluster.toml", "x", 0o600)
    write(paths.role_file, "backup\n", 0o600)
    code, document = _node_cli(["manifest", str(paths.config_root)], "", monkeypatch, paths)
    assert code == 0 and document["version"] == 1
    assert set(document["entries"]) == {str(paths.config_root),
                                        str(paths.config_root / "cluster.toml")}
    assert document == manifest_document([str(paths.config_root)], [str(paths.local_dir)])

    entry = dict(document["entries"][str(paths.config_root / "cluster.toml")], mode=0o640)
    request = {"roots": [str(paths.config_root)], "delete": [],
               "entries": {str(paths.config_root / "cluster.toml"): entry}}
    code, result = _node_cli(["sync-apply"], json.dumps(request), monkeypatch, paths)
    assert result == {"deleted": 0, "settled": 1, "missing": [], "stale": []}
    assert stat.S_IMODE((paths.config_root / "cluster.toml").stat().st_mode) == 0o640
    # Metadata alone, checked against the contents: same contents settle, others are stale.
    verified = dict(request, verify=[str(paths.config_root / "cluster.toml")])
    code, result = _node_cli(["sync-apply"], json.dumps(verified), monkeypatch, paths)
    assert result == {"deleted": 0, "settled": 1, "missing": [], "stale": []}
    (paths.config_root / "cluster.toml").write_text("y")
    code, result = _node_cli(["sync-apply"], json.dumps(verified), monkeypatch, paths)
    assert result == {"deleted": 0, "settled": 0, "missing": [],
                      "stale": [str(paths.config_root / "cluster.toml")]}

    # A master whose keepalived died (no transition rewrote the role file) takes the new
    # master's configuration; a live master refuses it.
    paths.role_file.write_text("master\n")
    monkeypatch.setattr(Keepalived, "running", lambda self: False)
    code, result = _node_cli(["sync-apply"], json.dumps(request), monkeypatch, paths)
    assert result == {"deleted": 0, "settled": 1, "missing": [], "stale": []}
    monkeypatch.setattr(Keepalived, "running", lambda self: True)
    with pytest.raises(CommandError, match="master too"):
        _node_cli(["sync-apply"], json.dumps(request), monkeypatch, paths)


def test_scan_skips_sockets_and_fifos(tmp_path: Path):
    os.mkfifo(tmp_path / "pipe")
    write(tmp_path / "real", "r")
    entries = scan([PurePosixPath(tmp_path)], SyncFilter())
    assert set(entries) == {str(tmp_path), str(tmp_path / "real")}


def test_owners_compare_and_apply_by_name_like_rsync(tmp_path: Path):
    """haproxy is uid 105 on one node and 108 on the other: same owner, nothing to do."""
    base = {"kind": "file", "sha256": "aa", "size": 1, "mode": 0o640, "mtime_ns": 1}
    master_side = {**base, "uid": 105, "gid": 105, "user": "haproxy", "group": "haproxy"}
    backup_side = {**base, "uid": 108, "gid": 108, "user": "haproxy", "group": "haproxy"}
    assert plan_changes({"/r/f": master_side}, {"/r/f": backup_side}, ["/r/f"]).in_step == 1
    unnamed = {**backup_side, "user": None}
    assert plan_changes({"/r/f": master_side}, {"/r/f": unnamed}, ["/r/f"]).settle

    target = write(tmp_path / "etc" / "app" / "f", "x")
    entry = {**base, "uid": 4242, "gid": 4242, "user": "root", "group": "root"}
    apply_request({"roots": ["/etc/app"], "entries": {"/etc/app/f": entry}}, under=tmp_path)
    assert (target.stat().st_uid, target.stat().st_gid) == (0, 0)
