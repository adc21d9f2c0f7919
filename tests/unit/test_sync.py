"""The configuration sync against a real SSH server (asyncssh's, see tests/fakes_ssh.py)
whose ``skutui node`` commands run skutui's own backup-side code on the fake's files."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shlex
import stat
from pathlib import Path, PurePosixPath

import asyncssh
import pytest

from skutui.agent.link import PeerLink
from skutui.agent.sync.backup import (
    answer_line,
    apply_checked,
    apply_request,
    read_synced,
    stage_contents,
)
from skutui.agent.sync.master import SPLIT_BRAIN_RETRY, NotMaster, Pusher, SyncService
from skutui.agent.sync.transport import SshRemoteTree
from skutui.agent.sync.tree import manifest_document, scan, stat_entry
from skutui.domain import trust
from skutui.domain.generation import Generation
from skutui.domain.model import Node
from skutui.domain.paths import Paths
from skutui.domain.syncplan import (
    MANIFEST_VERSION,
    PeerIsMaster,
    PeerNewer,
    SyncError,
    SyncFilter,
    TermRefused,
    plan_changes,
    refusal,
    sync_request,
    synced_roots,
    within_roots,
)
from skutui.peer import PeerConnection, ensure_local_key, pin_peer
from skutui.system import generation
from skutui.system.daemons import Keepalived
from skutui.system.journal import Entry, apply_entry
from tests.fakes_ssh import FakePeer
from tests.unit.node_steps import make_master, node_lines, node_step


class SkutuiPeer(FakePeer):
    """A fake backup: ``skutui node manifest | sync-apply | sync-put | sync-get | replay``
    run the real code on the files under ``root`` (as "/"), inside ``synced``, its own
    synced paths (as its cluster.toml would name them). As under skutui's key, it serves no
    SFTP and refuses any command its forced command would not run."""

    def __init__(self, root: Path, *, local_dir: PurePosixPath, **options) -> None:
        super().__init__(root, sftp=False, **options)
        self.role = "backup"
        self.local_dir = local_dir
        self.synced = [local_dir.parent]
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
        try:
            trust.served(process.command)
        except trust.KeyRefused as exc:
            process.stderr.write(f"skutui: {exc}\n".encode())
            process.exit(2)
            return
        self.commands.append(process.command)
        if argv[2] == "replay":
            return await self._replay(process)
        kept = {"sync-put": stage_contents, "sync-apply": self.apply, "sync-get": read_synced}
        if argv[2] in kept:
            return await self._request_lines(process, argv[2], kept[argv[2]])
        try:
            answer = await self._manifest(argv[2], argv[3:])
        except Exception as exc:  # noqa: BLE001 - what skutui's CLI prints for its errors
            process.stderr.write(f"skutui: {exc}\n".encode())
            process.exit(1)
            return
        process.stdout.write(json.dumps(answer).encode() + b"\n")
        process.exit(0)

    async def _manifest(self, step: str, args: list[str]) -> dict:
        if step != "manifest":
            raise ValueError(f"unknown step {step}")
        excluded = [a.split("=", 1)[1] for a in args if a.startswith("--exclude=")]
        roots = [a for a in args if not a.startswith("--")]
        refused = within_roots(roots, self.synced)
        if refused:
            raise SyncError("refusing to list " + "; ".join(refused))
        document = await asyncio.to_thread(manifest_document, roots,
                                           [*excluded, str(self.local_dir)], under=self.root)
        return {**document, "generation": generation.read(self.generation_file).to_dict(),
                "role": self.role}

    def apply(self, request: dict, roots: list[PurePosixPath], *, under: Path,
              own_excluded: tuple[PurePosixPath, ...]) -> dict:
        """As `skutui node sync-apply` serves a request: this node's role, at this moment."""
        return apply_checked(request, roots, hostname="node-b", master=self.role == "master",
                             generation_file=self.generation_file,
                             set_aside_root=self.path(str(self.local_dir / "set-aside")),
                             under=under, own_excluded=own_excluded)

    @property
    def generation_file(self) -> Path:
        return self.path(str(self.local_dir / "generation"))

    async def _request_lines(self, process, step: str, serve) -> None:
        """Like `skutui node sync-put | sync-apply | sync-get`: an answer a line for each
        line, until end of input."""
        async for line in process.stdin:
            if not line.endswith(b"\n"):
                break  # the channel closed: asyncssh hands over an empty remainder
            answer = await asyncio.to_thread(answer_line, line, step, lambda request: serve(
                request, self.synced, under=self.root, own_excluded=(self.local_dir,)))
            process.stdout.write(json.dumps(answer).encode() + b"\n")
        process.exit(0)

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
    assert backup.commands == before  # no manifest, and the push's steps kept running


async def test_a_push_starts_no_process_on_the_peer(master: Paths, backup, connection):
    """The push's steps are started on the peer while the trees are compared, and kept:
    the first push after a comparison, and every one after it, only sends lines."""
    files = sample_tree(master.config_root)
    first = make_pusher(master, connection)
    await first.reconcile()
    first.remote.close()
    pusher = Pusher([PurePosixPath(master.config_root)],
                    SyncFilter((PurePosixPath(master.local_dir),)),
                    SshRemoteTree(connection, warm=True), may_push=is_master(master))
    before = len(backup.commands)
    assert not (await pusher.reconcile()).changed
    await wait_until(lambda: len(backup.commands) == before + 3)
    started = backup.commands[before:]
    assert sorted(c.split()[2] for c in started) == ["manifest", "sync-apply", "sync-put"]
    for text in ("maxconn 5000", "maxconn 6000"):
        write(files[1], f"global\n  {text}\n")
        assert (await pusher.push([files[1]])).written == [str(files[1])]
        assert_same(files[1], backup)
    assert backup.commands[before:] == started


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
    backup.synced.append(PurePosixPath(extra_root))
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


async def test_a_link_planted_on_the_backup_carries_no_push_outside_and_is_reported(
        master: Paths, backup, connection, tmp_path: Path):
    """On the backup, conf.d inside the synced folder is made a link to a folder outside.
    The master's push of a file under it writes nothing outside (not even the staged
    contents, which wait in the synced folder itself) and the event names the link; the
    next whole-tree comparison puts a folder in the link's place and the file in it."""
    root = master.config_root
    sample_tree(root)
    cfg = write(root / "conf.d" / "site.cfg", "first\n")
    events = Events()
    service = service_for(master, connection, events)
    task = asyncio.create_task(service.run())
    try:
        await wait_until(lambda: service.last_reconcile is not None)
        assert_same(cfg, backup)
        outside = tmp_path / "backup" / "outside"
        outside.mkdir()
        (outside / "site.cfg").write_text("the backup's own, outside the synced folder\n")
        linked = backup.path(str(root / "conf.d"))
        backup.path(str(cfg)).unlink()
        linked.rmdir()
        linked.symlink_to(outside)

        def seen_outside() -> dict:
            return {p.name: (p.read_bytes(), stat.S_IMODE(p.lstat().st_mode), p.lstat().st_uid)
                    for p in outside.iterdir()}

        before = seen_outside()
        write(cfg, "second\n", 0o4755)
        await wait_until(lambda: any("refused" in m for m in events.messages()))
        [said] = [m for m in events.messages() if "refused" in m]
        assert f"{root / 'conf.d'} is a symbolic link (to {outside})" in said, said
        assert said.startswith("sync to node-b failed: the peer refused 1 path(s), nothing "
                               "was written outside its synced paths")
        assert seen_outside() == before
        service.request_reconcile()  # as the retry does, 30 s later
        await wait_until(lambda: not linked.is_symlink() and backup.path(str(cfg)).is_file()
                         and backup.path(str(cfg)).read_text() == "second\n")
        await service.flush()
        assert_same(cfg, backup)
        assert seen_outside() == before
        staged = [n for n in os.listdir(backup.path(str(root))) if n.endswith(".skutui-sync")]
        assert staged == [], "the staged contents left by the refusal are swept"
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


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
    roots = [PurePosixPath(root)]
    base = {"excluded": ["/etc/skutui/local"]}
    for bad in ("/etc/passwd", "/etc/skutui/../passwd", "/etc/skutui/local/role",
                "/etc/skutui/.hidden/x", "relative"):
        with pytest.raises(SyncError, match="refusing"):
            apply_request({**base, "delete": [bad]}, roots, under=tmp_path)
    with pytest.raises(SyncError, match="synced path itself"):
        apply_request({**base, "delete": [root]}, roots, under=tmp_path)
    with pytest.raises(SyncError, match="outside the synced paths"):  # the request's roots
        apply_request({"roots": ["/etc"], "delete": ["/etc/passwd"]}, roots, under=tmp_path)
    with pytest.raises(SyncError, match="no synced path is configured"):
        apply_request({"roots": [root], "delete": ["/etc/skutui/x"]}, [], under=tmp_path)
    with pytest.raises(SyncError, match="refusing"):  # its own local part, whatever is sent
        apply_request({"delete": ["/etc/skutui/local/id_ed25519"]}, roots,
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


def test_node_manifest_and_sync_apply_on_this_machine(tmp_path: Path, monkeypatch):
    """The commands the master runs on the backup, run here on real paths; sync-apply kept
    running, as the master keeps it, the node changed between two of its requests."""
    paths = Paths(config_root=tmp_path / "etc" / "skutui")
    write(paths.config_root / "cluster.toml", "x", 0o600)
    write(paths.role_file, "backup\n", 0o600)
    code, document = node_step(["manifest", str(paths.config_root)], "", monkeypatch, paths)
    assert code == 0 and document["version"] == MANIFEST_VERSION
    assert set(document["entries"]) == {str(paths.config_root),
                                        str(paths.config_root / "cluster.toml")}
    assert document == {**manifest_document([str(paths.config_root)], [str(paths.local_dir)]),
                        "generation": {"number": 0, "node": "", "term": None}, "role": "backup"}

    cluster = str(paths.config_root / "cluster.toml")
    entry = dict(document["entries"][cluster], mode=0o640)
    request = json.dumps({"delete": [], "entries": {cluster: entry}})
    # Metadata alone, checked against the contents: same contents settle, others are stale.
    verified = json.dumps({"delete": [], "entries": {cluster: entry}, "verify": [cluster]})
    keepalived_running = False

    def requests():
        nonlocal keepalived_running
        yield "{}"
        yield request
        yield verified
        (paths.config_root / "cluster.toml").write_text("y")
        yield verified
        # A master whose keepalived died (no transition rewrote the role file) takes the
        # new master's configuration; a live master refuses it.
        make_master(paths, monkeypatch)
        monkeypatch.setattr(Keepalived, "running_since",
                            lambda self: 0.0 if keepalived_running else None)
        yield request
        keepalived_running = True
        yield request

    ready, applied, settled, stale, taken, refused = node_lines(["sync-apply"], requests(),
                                                                monkeypatch, paths)
    done = {"deleted": 0, "settled": 1, "missing": [], "stale": [], "set_aside": [],
            "refused": []}
    assert ready == {} and applied == settled == taken == done
    assert stale == {**done, "settled": 0, "stale": [cluster]}
    assert stat.S_IMODE((paths.config_root / "cluster.toml").stat().st_mode) == 0o640
    # what the master reads to know it is split brain
    assert refused[TermRefused.KEY] == TermRefused.MASTER_TOO and "master too" in refused["message"]


def test_the_kept_sync_apply_reads_the_held_generation_at_each_request(tmp_path: Path,
                                                                      monkeypatch):
    """A request that made this node hold a generation refuses an older one right after,
    in the same kept step."""
    paths = Paths(config_root=tmp_path / "etc" / "skutui")
    write(paths.config_root / "cluster.toml", "x", 0o600)
    write(paths.role_file, "backup\n", 0o600)
    newer, older = ({"number": n, "node": "node-a", "term": None} for n in (6, 5))
    committed, refused = node_lines(
        ["sync-apply"], [json.dumps({"generation": newer, "commit": True}),
                         json.dumps({"generation": older})], monkeypatch, paths)
    assert "error" not in committed and generation.read(paths.generation_file).number == 6
    assert refused[TermRefused.KEY] == TermRefused.NEWER_HELD
    assert refused["generation"]["number"] == 6


def test_a_bad_line_to_the_kept_sync_apply_is_answered_and_the_next_is_served(tmp_path: Path,
                                                                             monkeypatch):
    paths = Paths(config_root=tmp_path / "etc" / "skutui")
    write(paths.config_root / "cluster.toml", "x", 0o600)
    write(paths.role_file, "backup\n", 0o600)
    bad = ["not json", "[1]", "null", '"text"', '{"delete": 5}', '{"entries": []}',
           '{"entries": {"/etc/passwd": {}}}', '{"generation": {"number": -1}}']
    *errors, served = node_lines(["sync-apply"], [*bad, json.dumps({"generation": {}})],
                                 monkeypatch, paths)
    assert len(errors) == len(bad) and all(set(e) == {"error"} for e in errors), errors
    assert "is not JSON" in errors[0]["error"] and "not a JSON object" in errors[1]["error"]
    assert "is not valid" in errors[4]["error"]
    assert "outside the synced paths" in errors[6]["error"]
    assert served == {"deleted": 0, "settled": 0, "missing": [], "stale": [], "set_aside": [],
                      "refused": []}


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
    apply_request({"entries": {"/etc/app/f": entry}}, [PurePosixPath("/etc/app")], under=tmp_path)
    assert (target.stat().st_uid, target.stat().st_gid) == (0, 0)


# --- what is never pushed, and what a dropped connection leaves -------------------------------

async def test_an_80_mib_file_is_skipped_and_said_while_haproxy_cfg_arrives(master: Paths,
                                                                         backup, connection):
    root = master.config_root
    big = root / "captures" / "big.pcap"
    big.parent.mkdir(parents=True)
    with open(big, "wb") as out:
        out.truncate(80 * 1024 * 1024)  # sorted before haproxy/: it used to block everything
    cfg = write(root / "haproxy" / "haproxy.cfg", "global\n  maxconn 100\n")
    events = Events()
    service = service_for(master, connection, events)
    await service.flush()
    assert_same(cfg, backup)
    assert not backup.path(str(big)).exists() and service.last_error is None
    [said] = [m for m in events.messages() if m.startswith("not pushed")]
    assert f"{big}: 80.0 MiB, more than the 64 MiB the sync takes" in said
    write(cfg, "global\n  maxconn 200\n")
    await service.pusher.push([cfg])
    await service.flush()
    assert_same(cfg, backup)
    assert len([m for m in events.messages() if m.startswith("not pushed")]) == 1, (
        "said once, not at every push")


async def test_a_cluster_toml_that_does_not_validate_stays_on_the_master(master: Paths, backup,
                                                                        connection):
    from skutui.agent.sync_supervisor import cluster_file_check

    good = ('schema_version = 1\ninterface = "eth0"\ncheck_interval = 1\n\n'
            '[nodes.node-a]\nip = "198.18.0.1"\n\n[nodes.node-b]\nip = "198.18.0.2"\n')
    toml = write(master.cluster_file, good, 0o600)
    cfg = write(master.config_root / "haproxy.cfg", "global\n")
    pusher = Pusher([PurePosixPath(master.config_root)],
                    SyncFilter((PurePosixPath(master.local_dir),)), SshRemoteTree(connection),
                    may_push=is_master(master), check_file=cluster_file_check(master))
    events = Events()
    service = SyncService(pusher, report=events, peer_name="node-b", peer_ready=lambda: True,
                          peer_lost=lambda exc: None)
    await service.flush()
    assert_same(toml, backup)
    write(toml, good.replace("check_interval = 1", "check_interval = [oops"), 0o600)
    write(cfg, "global\n  maxconn 5\n")
    service.request_reconcile()
    await service.flush()
    assert backup.path(str(toml)).read_text() == good, "the backup keeps its valid copy"
    assert_same(cfg, backup)
    [said] = [m for m in events.messages() if m.startswith("not pushed")]
    assert f"{toml}: it does not validate" in said and "line" in said
    write(toml, good.replace("check_interval = 1", "check_interval = 2"), 0o600)
    await pusher.push([toml])
    assert "check_interval = 2" in backup.path(str(toml)).read_text()


async def test_contents_left_staged_by_a_dropped_connection_are_removed_at_the_next_reconcile(
        master: Paths, backup, connection):
    files = sample_tree(master.config_root)
    pusher = make_pusher(master, connection)
    await pusher.reconcile()
    left = [backup.path(str(files[1].with_name(f".haproxy.cfg.{'ab' * 8}.skutui-sync"))),
            backup.path(str(files[1].with_name(f"..haproxy.cfg.{'cd' * 8}.skutui-sync.1a2b3c4d.tmp")))]
    for path in left:
        path.write_text("half of a push")
    editor = backup.path(str(files[1].with_name(".haproxy.cfg.swp")))
    editor.write_text("not ours")
    await pusher.reconcile()
    assert not any(path.exists() for path in left) and editor.exists()


# --- generations: the backup checks before anything is put in place; a newer peer wins -------

def terms(master: Paths, term: str | None = "boot/100"):
    from skutui.agent.sync_supervisor import Generations

    return Generations(master, "node-a", lambda: term)


def hold(path: Path, number: int, node: str, term: str | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"number": number, "node": node, "term": term}))


async def test_the_backup_refuses_an_older_generation_before_anything_is_in_place(
        master: Paths, backup, connection):
    cfg = write(master.config_root / "haproxy.cfg", "old from node-a\n")
    theirs = write(backup.path(str(cfg)), "newer, served by node-b\n")
    hold(backup.generation_file, 6, "node-b")
    hold(master.generation_file, 5, "node-a")
    pusher = Pusher([PurePosixPath(master.config_root)],
                    SyncFilter((PurePosixPath(master.local_dir),)), SshRemoteTree(connection),
                    may_push=is_master(master), terms=terms(master))
    with pytest.raises(PeerNewer) as raised:
        await pusher.reconcile()
    assert raised.value.generation.number == 6
    # A master that pushed all the same (an older skutui, a bug): the backup refuses it
    # before the staged contents are put in place.
    token = "0123456789abcdef"
    await SshRemoteTree(connection).put(str(cfg), token, b"old from node-a\n")
    entry = stat_entry(cfg)
    request = sync_request(SyncFilter((PurePosixPath(master.local_dir),)),
                           entries={str(cfg): entry}, stage=token, place=[str(cfg)],
                           generation={"number": 5, "node": "node-a"}, commit=True)
    with pytest.raises(PeerNewer, match=r"refusing configuration of generation 5 \(node-a\).*"
                                        r"holds generation 6 \(node-b\), which is newer"):
        await SshRemoteTree(connection).apply(request)
    assert theirs.read_text() == "newer, served by node-b\n"
    assert generation.read(backup.generation_file).number == 6


async def test_the_backups_term_refusals_reach_the_master_over_the_kept_step(
        master: Paths, backup, connection):
    """Split brain and a newer generation held, refused by the kept sync-apply: the master
    reads which refusal it is, and the step goes on answering."""
    remote = SshRemoteTree(connection)
    pushed = sync_request(SyncFilter(), generation={"number": 5, "node": "node-a"})
    await remote.apply(pushed)
    started = list(backup.commands)
    backup.role = "master"
    with pytest.raises(PeerIsMaster, match="split brain"):
        await remote.apply(pushed)
    backup.role = "backup"
    hold(backup.generation_file, 6, "node-b")
    with pytest.raises(PeerNewer, match=r"holds generation 6 \(node-b\)") as raised:
        await remote.apply(pushed)
    assert raised.value.generation.number == 6
    assert "error" not in await remote.apply(sync_request(SyncFilter(), generation={
        "number": 7, "node": "node-a"}))
    assert backup.commands == started


async def test_paths_the_backup_refused_are_not_taken_for_a_refusal_of_the_push(
        master: Paths, backup, connection, tmp_path: Path):
    """An answer names the paths a link kept from the backup under "refused": the rest of
    the request was applied, which the master must know, not take for a split brain or a
    newer generation."""
    root = master.config_root
    backup.path(str(root)).mkdir(parents=True)
    backup.path(str(root / "conf.d")).symlink_to(tmp_path)
    inside = str(root / "conf.d" / "site.cfg")
    entry = {"kind": "dir", "mode": 0o750, "uid": 0, "gid": 0, "user": None, "group": None,
             "mtime_ns": 1}
    answer = await SshRemoteTree(connection).apply(sync_request(
        SyncFilter(), delete=[inside], entries={str(root / "haproxy"): entry}))
    assert answer["refused"] == [f"{inside}: {root / 'conf.d'} is a symbolic link (to "
                                 f"{tmp_path}); skutui never follows one here"]
    assert refusal(answer) is None and backup.path(str(root / "haproxy")).is_dir()


def test_a_term_refusal_is_read_back_by_its_own_key():
    held = Generation(6, "node-b")
    newer = refusal(TermRefused(TermRefused.NEWER_HELD, held, "held newer").document)
    assert isinstance(newer, PeerNewer) and newer.generation == held
    assert isinstance(refusal(TermRefused(TermRefused.MASTER_TOO, held, "too").document),
                      PeerIsMaster)
    unknown = refusal({TermRefused.KEY: "a later reason", "message": "refused for a reason"})
    assert type(unknown) is SyncError and "refused for a reason" in str(unknown)
    for answer in ({"deleted": 0, "refused": ["/etc/skutui/x: a link"]}, {"refused": "master"},
                   {"data": ""}, [TermRefused.KEY], None):
        assert refusal(answer) is None, answer


async def test_a_bad_request_to_the_kept_sync_apply_fails_alone_and_a_closed_one_starts_again(
        master: Paths, backup, connection):
    remote = SshRemoteTree(connection)
    good = sync_request(SyncFilter(), generation={"number": 1, "node": "node-a"})
    with pytest.raises(SyncError, match=r"^`sync-apply` failed on the peer: refusing "
                                        r"/etc/passwd: outside the synced paths"):
        await remote.apply(sync_request(SyncFilter(), delete=["/etc/passwd"]))
    await remote.apply(good)
    assert [c.split()[2] for c in backup.commands] == ["sync-apply"]
    await connection.close()  # the connection dropped: the kept step went with it
    await remote.apply(good)
    assert [c.split()[2] for c in backup.commands] == ["sync-apply", "sync-apply"]


async def test_a_master_returning_with_older_files_takes_the_peers_first(master: Paths, backup,
                                                                        connection):
    """Failback: node-a was away while node-b served as master and was edited; node-a is
    master again with its old tree. It takes node-b's files (its own kept aside), then
    begins a newer term: nothing of node-b's is overwritten."""
    root = master.config_root
    cfg = write(root / "haproxy.cfg", "maxconn 100 (old)\n")
    gone = write(root / "removed-on-b.cfg", "deleted on node-b meanwhile\n")
    write(backup.path(str(cfg)), "maxconn 500 (edited on node-b)\n")
    added = backup.path(str(root / "added-on-b.cfg"))
    write(added, "new on node-b\n")
    hold(master.generation_file, 5, "node-a", "boot/1")
    hold(backup.generation_file, 6, "node-b", "boot/2")
    events = Events()
    pusher = Pusher([PurePosixPath(root)], SyncFilter((PurePosixPath(master.local_dir),)),
                    SshRemoteTree(connection), may_push=is_master(master), terms=terms(master))
    service = SyncService(pusher, report=events, peer_name="node-b", peer_ready=lambda: True,
                          peer_lost=lambda exc: None, node_name="node-a")
    await service.flush()  # takes node-b's files
    await service.flush()  # then pushes as the master of a new term
    assert cfg.read_text() == "maxconn 500 (edited on node-b)\n" and not gone.exists()
    assert (root / "added-on-b.cfg").read_text() == "new on node-b\n"
    assert backup.path(str(cfg)).read_text() == "maxconn 500 (edited on node-b)\n"
    said = [m for m in events.messages() if "returned with older configuration" in m]
    assert said and said[0].startswith("node-a returned with older configuration; took "
                                       "node-b's (generation 6 (node-b)")
    kept = master.set_aside_dir / "generation-5-node-a.replaced-by.generation-6-node-b"
    assert str(kept) in said[0]
    assert (kept / str(cfg).lstrip("/")).read_text() == "maxconn 100 (old)\n"
    assert (kept / str(gone).lstrip("/")).read_text() == "deleted on node-b meanwhile\n"
    assert generation.read(master.generation_file).number == 7
    assert generation.read(backup.generation_file).number == 7
    assert service.last_error is None


async def test_after_a_split_brain_the_backups_own_edits_are_kept_aside(master: Paths, backup,
                                                                       connection):
    """Both nodes ran as master and were edited; the one that stays master (the newer
    term) pushes, and the other keeps its own edits aside instead of losing them."""
    cfg = write(master.config_root / "haproxy.cfg", "edited on node-a as master\n")
    write(backup.path(str(cfg)), "edited on node-b as master\n")
    hold(backup.generation_file, 5, "node-b", "boot/2")
    hold(master.generation_file, 5, "node-a", "boot/1")
    events = Events()
    pusher = Pusher([PurePosixPath(master.config_root)],
                    SyncFilter((PurePosixPath(master.local_dir),)), SshRemoteTree(connection),
                    may_push=is_master(master), terms=terms(master, "boot/3"))
    service = SyncService(pusher, report=events, peer_name="node-b", peer_ready=lambda: True,
                          peer_lost=lambda exc: None, node_name="node-a")
    await service.flush()
    assert backup.path(str(cfg)).read_text() == "edited on node-a as master\n"
    kept = backup.path(str(master.local_dir / "set-aside"
                           / "generation-5-node-b.replaced-by.generation-6-node-a"))
    assert (kept / str(cfg).lstrip("/")).read_text() == "edited on node-b as master\n"
    [said] = [m for m in events.messages() if "kept its own versions" in m]
    assert said.startswith("node-b held files of another generation: it kept its own "
                           "versions of 1 replaced by generation 6 (node-a) in ")
    assert generation.read(backup.generation_file).number == 6
    await service.flush()
    assert not [m for m in events.messages() if "kept its own versions" in m][1:], (
        "once the backup holds the generation, pushes replace without keeping")


async def test_a_split_brain_found_by_a_push_is_asked_again_soon_not_in_30_s(master: Paths,
                                                                            backup, connection):
    """The peer became master after the last comparison: a push of one file (not a whole
    comparison, which reads the peer's role first) is refused before anything is written,
    and the master knows it is a split brain, to be asked again within seconds."""
    cfg = write(master.config_root / "haproxy.cfg", "first\n")
    events = Events()
    service = service_for(master, connection, events)
    await service.flush()
    backup.role = "master"
    write(cfg, "edited while both are master\n")
    with pytest.raises(PeerIsMaster, match="split brain"):
        await service.pusher.push([cfg])
    service._dirty.add(cfg)
    started = asyncio.get_running_loop().time()
    await service.flush()
    assert backup.path(str(cfg)).read_text() == "first\n"
    assert service._retry_at - started <= SPLIT_BRAIN_RETRY + 1
    assert events.messages()[-1].startswith("sync to node-b stopped: the peer says it is the "
                                            "master too (split brain)")


async def test_after_a_split_brain_the_master_with_the_older_term_takes_the_newer_first(
        master: Paths, backup, connection):
    """Both nodes ran as master and were edited; node-b began the newer term, but node-a
    (preferred: failback) stays master when the adverts pass again, its comparison made
    long before. Its next push is refused for the newer generation: it takes node-b's
    files first, keeping its own aside, instead of retrying the same push every 30 s."""
    root = master.config_root
    cfg = write(root / "rules.cfg", "first\n")
    hold(master.generation_file, 1, "node-a", "boot/1")
    events = Events()
    pusher = Pusher([PurePosixPath(root)], SyncFilter((PurePosixPath(master.local_dir),)),
                    SshRemoteTree(connection), may_push=is_master(master),
                    terms=terms(master, "boot/1"))
    service = SyncService(pusher, report=events, peer_name="node-b", peer_ready=lambda: True,
                          peer_lost=lambda exc: None, node_name="node-a")
    await service.flush()
    assert generation.read(backup.generation_file).number == 1
    hold(backup.generation_file, 2, "node-b", "boot/2")  # node-b's term, in the split brain
    write(backup.path(str(cfg)), "edited on node-b\n")
    write(cfg, "edited on node-a\n")
    with pytest.raises(PeerNewer):
        await pusher.push([cfg])
    assert backup.path(str(cfg)).read_text() == "edited on node-b\n"
    service._dirty.add(cfg)
    await service.flush()  # takes node-b's files
    await service.flush()  # then pushes as the master of a new term
    assert cfg.read_text() == backup.path(str(cfg)).read_text() == "edited on node-b\n"
    kept = master.set_aside_dir / "generation-1-node-a.replaced-by.generation-2-node-b"
    assert (kept / str(cfg).lstrip("/")).read_text() == "edited on node-a\n"
    said = [m for m in events.messages() if "took node-b's" in m]
    assert said and f"kept in {kept}" in said[0]
    assert generation.read(master.generation_file).number == 3
    assert generation.read(backup.generation_file).number == 3
    assert service.last_error is None
