"""The backup applies a sync request only inside its own synced folders, never through a
symbolic link. Each proof that the backup could once be steered outside them is a test
here that expects a refusal and an unchanged target: a request naming its own roots
(``/root/.ssh``, ``/etc/ssh``, ``/etc/shadow``), and a link planted inside a synced folder
(``conf.d -> /etc``) that carried a mode, an owner, a directory, a delete or a file outside.

The backup's tests run twice: with openat2, and with the walk one component at a time that
replaces it where the kernel lacks it.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from pathlib import Path, PurePosixPath

import pytest

from skutui.agent.sync.backup import apply_request
from skutui.domain.model import ClusterConfig, Node
from skutui.domain.paths import Paths
from skutui.domain.syncplan import SyncError, staged_path
from skutui.system import beneath, store
from tests.unit.node_steps import node_lines, node_step

SKUTUI = "/etc/skutui"
ROOTS = [PurePosixPath(SKUTUI)]
ADMIN = b"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOm5Tc0/o6Zv3oXn3k5w5X3bR0vS6HcBZ3kT8Y1m0oXq admin\n"
TOKEN = "0123456789abcdef"


@pytest.fixture(params=["openat2", "walk"])
def resolver(request, monkeypatch):
    """Both ways of resolving beneath a folder: openat2, and the O_NOFOLLOW walk."""
    if request.param == "openat2" and not beneath.OPENAT2.available:
        pytest.skip("this kernel has no openat2")
    monkeypatch.setattr(beneath.OPENAT2, "available", request.param == "openat2")
    return request.param


class Machine:
    """A backup's files under ``top``: skutui's synced folder, and things outside it."""

    def __init__(self, top: Path):
        self.top = top
        self.synced = self.path(SKUTUI)
        self.synced.mkdir(parents=True)
        self.shadow = self.write("/etc/shadow", b"root:$6$secret:19000::::::\n", 0o640)
        self.keys = self.write("/root/.ssh/authorized_keys", ADMIN, 0o600)
        self.host_key = self.write("/etc/ssh/ssh_host_ed25519_key", b"PRIVATE\n", 0o600)
        self.set_aside = self.path("/var/lib/skutui/set-aside/3-4")

    def path(self, name: str) -> Path:
        return self.top / name.lstrip("/")

    def write(self, name: str, data: bytes, mode: int) -> Path:
        path = self.path(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        path.chmod(mode)
        return path

    def plant(self, name: str, target: str) -> None:
        """A symbolic link inside the synced folder to ``target`` outside it (absolute, on
        this test's tree: were it followed, only the test's files would change)."""
        os.symlink(self.path(target), self.path(name))

    def outside(self) -> dict[str, tuple]:
        """Everything not under the synced folder: kind, mode, owner, mtime and contents
        (the set-aside folder, skutui's own, left out)."""
        found = {}
        for folder, dirs, files in os.walk(self.top):
            if Path(folder) == self.synced or self.synced in Path(folder).parents:
                continue
            if self.set_aside in (Path(folder), *Path(folder).parents):
                continue
            for name in dirs + files:
                path = Path(folder, name)
                if path in (self.synced, self.set_aside):
                    continue
                info = path.lstat()
                content = path.read_bytes() if stat.S_ISREG(info.st_mode) else None
                found[str(path.relative_to(self.top))] = (
                    stat.S_IFMT(info.st_mode), stat.S_IMODE(info.st_mode), info.st_uid,
                    info.st_mtime_ns, content)
        return found

    def apply(self, request: dict, set_aside: bool = False) -> dict:
        return apply_request({"generation": {}, **request}, ROOTS, under=self.top,
                             own_excluded=(PurePosixPath(SKUTUI) / "local",),
                             set_aside=self.set_aside if set_aside else None)

    def stage(self, name: str, data: bytes) -> Path:
        """As the master's SFTP write does: the contents at their staged name, 0600."""
        return self.write(staged_path(name, TOKEN, ROOTS), data, 0o600)

    def put(self, name: str, data: bytes, mode: int = 0o644) -> dict:
        """Stage ``data`` for ``name`` and ask for it in place with its entry."""
        self.stage(name, data)
        return self.apply({"stage": TOKEN, "place": [name],
                           "entries": {name: entry(mode=mode, data=data)}})


def entry(kind: str = "file", mode: int = 0o666, data: bytes = b"", **extra) -> dict:
    base = {"kind": kind, "mode": mode, "uid": 4242, "gid": 4242, "user": None, "group": None,
            "mtime_ns": 1_000_000_000}
    if kind == "file":
        base |= {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
    return base | extra


@pytest.fixture
def machine(tmp_path, resolver) -> Machine:
    return Machine(tmp_path / "backup")


def refusal(machine: Machine, link: str, target: str) -> str:
    return (f"{link} is a symbolic link (to {machine.path(target)}); skutui never follows "
            "one here")


# --- the roots are the backup's own -----------------------------------------------------------

@pytest.mark.parametrize("roots", [["/root/.ssh"], ["/etc/ssh"], ["/etc/shadow"],
                                   ["/root/.ssh", "/etc/ssh", "/etc/shadow"]])
def test_the_roots_of_a_request_are_not_the_backups(machine, roots):
    """The proof: a request with roots /root/.ssh deleted authorized_keys."""
    before = machine.outside()
    requests = [
        {"roots": roots, "delete": ["/root/.ssh/authorized_keys"]},
        {"roots": roots, "entries": {"/etc/shadow": entry()}},
        {"roots": roots, "entries": {"/etc/ssh/ssh_host_ed25519_key": entry()}},
        {"roots": roots, "entries": {"/root/.ssh": entry("dir", 0o777)}},
        {"roots": roots, "stage": TOKEN, "place": ["/etc/shadow"],
         "entries": {"/etc/shadow": entry()}},
    ]
    for request in requests:
        with pytest.raises(SyncError, match="outside the synced paths"):
            machine.apply(request)
    assert machine.outside() == before


def test_contents_are_never_staged_below_a_synced_folder():
    """The SFTP write follows links on its way; its staged name is in the synced folder
    itself, so no folder of the synced tree is on the way."""
    staged = PurePosixPath(staged_path("/etc/skutui/conf.d/deep/shadow", TOKEN, ROOTS))
    assert staged.parent == ROOTS[0]
    assert staged.name.startswith(".shadow.") and staged.name.endswith(f".{TOKEN}.skutui-sync")
    assert staged != PurePosixPath(staged_path("/etc/skutui/other/shadow", TOKEN, ROOTS))
    with pytest.raises(SyncError, match="not inside the synced paths"):
        staged_path("/etc/shadow", TOKEN, ROOTS)
    legacy = os.fsdecode(b"/etc/skutui/conf.d/l\xe9gacy.cfg")  # a name that is not UTF-8
    assert PurePosixPath(staged_path(legacy, TOKEN, ROOTS)).parent == ROOTS[0]


# --- no symbolic link followed ----------------------------------------------------------------

def test_a_link_on_the_way_carries_no_metadata_outside(machine):
    """The proof: conf.d -> /etc inside the synced folder, a metadata entry for
    conf.d/shadow, and /etc/shadow was 0666."""
    machine.plant("/etc/skutui/conf.d", "/etc")
    before = machine.outside()
    answer = machine.apply({"entries": {"/etc/skutui/conf.d/shadow": entry()}})
    assert answer["settled"] == 0
    assert answer["refused"] == [
        "/etc/skutui/conf.d/shadow: " + refusal(machine, "/etc/skutui/conf.d", "/etc")]
    assert machine.outside() == before


@pytest.mark.parametrize("request_", [
    {"entries": {"/etc/skutui/conf.d/made": entry("dir", 0o777)}},
    {"entries": {"/etc/skutui/conf.d/made/deeper": entry("dir", 0o777)}},
    {"entries": {"/etc/skutui/conf.d/evil": entry("link", target="/bin/sh")}},
    {"entries": {"/etc/skutui/conf.d/ssh": entry("dir", 0o777)}},
    {"delete": ["/etc/skutui/conf.d/shadow"]},
    {"delete": ["/etc/skutui/conf.d/ssh"]},
    {"entries": {"/etc/skutui/conf.d/shadow": entry(data=b"x")},
     "verify": ["/etc/skutui/conf.d/shadow"]},
    {"sweep": [f"/etc/skutui/conf.d/.shadow.{TOKEN}.skutui-sync"]},
], ids=["mkdir", "mkdir-deeper", "link", "chmod-dir", "delete", "delete-tree", "verify",
        "sweep"])
def test_a_link_on_the_way_carries_no_change_outside(machine, request_):
    machine.plant("/etc/skutui/conf.d", "/etc")
    machine.write(f"/etc/.shadow.{TOKEN}.skutui-sync", b"a staged name outside\n", 0o600)
    before = machine.outside()
    answer = machine.apply(request_)
    assert len(answer["refused"]) == 1 and "conf.d is a symbolic link" in answer["refused"][0]
    assert machine.outside() == before


def test_a_file_put_in_place_through_a_link_on_the_way_is_refused(machine):
    """Staged in the synced folder, then refused: the link is never followed, and the
    staged contents, never to be put in place, are removed."""
    machine.plant("/etc/skutui/conf.d", "/etc")
    before = machine.outside()
    answer = machine.put("/etc/skutui/conf.d/shadow", b"root::0:0::/:/bin/sh\n")
    assert answer["refused"] == [
        "/etc/skutui/conf.d/shadow: " + refusal(machine, "/etc/skutui/conf.d", "/etc")]
    assert answer["settled"] == 0 and answer["missing"] == []
    assert machine.outside() == before
    assert machine.shadow.read_bytes() == b"root:$6$secret:19000::::::\n"
    assert [n for n in os.listdir(machine.synced) if n.endswith(".skutui-sync")] == []


def test_a_link_deeper_down_is_refused_too(machine):
    machine.path("/etc/skutui/a/b").mkdir(parents=True)
    machine.plant("/etc/skutui/a/b/c", "/root/.ssh")
    before = machine.outside()
    answer = machine.apply({"entries": {"/etc/skutui/a/b/c/keys": entry("dir", 0o777),
                                        "/etc/skutui/a/b/c/authorized_keys": entry()}})
    assert len(answer["refused"]) == 2
    assert all("/etc/skutui/a/b/c is a symbolic link" in r for r in answer["refused"])
    answer = machine.put("/etc/skutui/a/b/c/authorized_keys", b"ssh-ed25519 AAAA\n")
    assert len(answer["refused"]) == 1 and "/etc/skutui/a/b/c is a symbolic link" in (
        answer["refused"][0])
    assert machine.outside() == before
    assert machine.keys.read_bytes() == ADMIN


def test_a_link_in_the_files_place_is_replaced_not_followed(machine):
    machine.plant("/etc/skutui/app.conf", "/etc/shadow")
    before = machine.outside()
    assert machine.apply({"entries": {"/etc/skutui/app.conf": entry(data=b"")}})["missing"] == [
        "/etc/skutui/app.conf"], "a link is not the file; the master writes it again"
    answer = machine.put("/etc/skutui/app.conf", b"mine\n", 0o644)
    assert answer["settled"] == 1 and answer["refused"] == []
    app = machine.path("/etc/skutui/app.conf")
    assert not app.is_symlink() and app.read_bytes() == b"mine\n"
    assert machine.outside() == before


def test_a_replaced_link_is_kept_aside_as_a_link(machine):
    """A file or folder kept aside before it is replaced is read through no link: a link
    is kept as the link, a linked folder's contents are not copied."""
    machine.plant("/etc/skutui/app.conf", "/etc/shadow")
    machine.plant("/etc/skutui/keys", "/root/.ssh")
    machine.stage("/etc/skutui/app.conf", b"mine\n")
    answer = machine.apply({"stage": TOKEN, "place": ["/etc/skutui/app.conf"],
                            "delete": ["/etc/skutui/keys"],
                            "entries": {"/etc/skutui/app.conf": entry(data=b"mine\n")}},
                           set_aside=True)
    assert sorted(answer["set_aside"]) == ["/etc/skutui/app.conf", "/etc/skutui/keys"]
    kept = machine.set_aside / "etc" / "skutui"
    assert os.readlink(kept / "app.conf") == str(machine.path("/etc/shadow"))
    assert os.readlink(kept / "keys") == str(machine.path("/root/.ssh"))
    assert machine.keys.read_bytes() == ADMIN


def test_a_synced_folder_itself_is_never_made_a_link_or_deleted(machine):
    for request in ({"entries": {SKUTUI: entry("link", target="/root/.ssh")}},
                    {"entries": {SKUTUI: entry()}}, {"delete": [SKUTUI]},
                    {"stage": TOKEN, "place": [SKUTUI]}):
        with pytest.raises(SyncError, match="synced path itself"):
            machine.apply(request)
    assert machine.synced.is_dir() and not machine.synced.is_symlink()


def test_paths_going_up_are_refused_before_anything_changes(machine):
    for name in ("/etc/skutui/../shadow", "/etc/skutui/./x", "/etc/skutui//x", "etc/skutui/x"):
        with pytest.raises(SyncError, match="not a normalised absolute path"):
            machine.apply({"entries": {name: entry()}})
    folder = os.open(machine.synced, os.O_RDONLY)
    try:
        with pytest.raises(beneath.UnsafePath, match="goes up"):
            beneath.open_beneath(folder, "../../etc", os.O_RDONLY)
    finally:
        os.close(folder)


def test_setuid_waits_for_the_owner(machine, monkeypatch):
    """Contents arrive staged 0600 and root's; the owner is set before the whole mode."""
    data = b"#!/bin/sh\n"
    calls = []
    real_chown, real_chmod = os.fchown, os.fchmod
    monkeypatch.setattr(os, "fchown", lambda fd, uid, gid: (calls.append("owner"),
                                                             real_chown(fd, uid, gid)))
    monkeypatch.setattr(os, "fchmod", lambda fd, mode: (calls.append(f"mode {mode:o}"),
                                                         real_chmod(fd, mode)))
    answer = machine.put("/etc/skutui/tool", data, 0o4755)
    assert answer["settled"] == 1 and calls == ["owner", "mode 4755"]
    info = machine.path("/etc/skutui/tool").stat()
    assert (stat.S_IMODE(info.st_mode), info.st_uid, info.st_gid) == (0o4755, 4242, 4242)


def test_what_the_backup_may_do_it_still_does(machine):
    """Directories, links, files and deletes inside the folder, as before."""
    data = b"global\n"
    answer = machine.apply({"entries": {"/etc/skutui/haproxy": entry("dir", 0o750),
                                        "/etc/skutui/haproxy/certs": entry("dir", 0o700),
                                        "/etc/skutui/current": entry("link", target="haproxy")}})
    assert answer == {"deleted": 0, "settled": 3, "missing": [], "stale": [], "set_aside": [],
                      "refused": []}
    assert machine.put("/etc/skutui/haproxy/haproxy.cfg", data, 0o640)["settled"] == 1
    staged = [n for n in os.listdir(machine.synced) if n.endswith(".skutui-sync")]
    assert staged == [], "the staged contents were moved in place"
    answer = machine.apply({"entries": {"/etc/skutui/haproxy/haproxy.cfg":
                                        entry(mode=0o640, data=data)},
                            "verify": ["/etc/skutui/haproxy/haproxy.cfg"]})
    assert answer["settled"] == 1
    cfg = machine.path("/etc/skutui/haproxy/haproxy.cfg")
    assert cfg.read_bytes() == data and stat.S_IMODE(cfg.stat().st_mode) == 0o640
    assert os.readlink(machine.path("/etc/skutui/current")) == "haproxy"
    assert stat.S_IMODE(machine.path("/etc/skutui/haproxy").stat().st_mode) == 0o750
    assert machine.apply({"delete": ["/etc/skutui/haproxy", "/etc/skutui/current"]})[
        "deleted"] == 2
    assert sorted(os.listdir(machine.synced)) == []


# --- the steps the peer runs: this node's own cluster.toml says what is synced ----------------

def _cluster(paths: Paths, *synced: str) -> None:
    store.save(ClusterConfig(interface="eth0", nodes=(Node("node-a", "198.18.0.1"),
                                                      Node("node-b", "198.18.0.2")),
                             synced_paths=synced), paths.cluster_file)


def test_the_steps_take_the_synced_paths_from_this_nodes_cluster_toml(tmp_path, monkeypatch):
    from skutui.cli.common import CommandError

    paths = Paths(config_root=tmp_path / "etc" / "skutui")
    paths.local_dir.mkdir(parents=True)
    paths.role_file.write_text("backup\n")
    _cluster(paths, str(paths.config_root))
    outside = tmp_path / "root" / ".ssh"
    outside.mkdir(parents=True)
    (outside / "authorized_keys").write_bytes(ADMIN)
    for listed in (str(outside), str(tmp_path / "etc")):
        with pytest.raises(CommandError, match="not one of this node's synced paths"):
            node_step(["manifest", listed], "", monkeypatch, paths)
    code, document = node_step(["manifest", str(paths.config_root)], "", monkeypatch, paths)
    assert code == 0 and str(paths.cluster_file) in document["entries"]
    request = {"roots": [str(outside)], "delete": [str(outside / "authorized_keys")],
               "generation": {}}
    [answer] = node_lines(["sync-apply"], [json.dumps(request)], monkeypatch, paths)
    assert "outside the synced paths" in answer["error"]
    assert (outside / "authorized_keys").read_bytes() == ADMIN
    # A cluster.toml that cannot be read: skutui's own folder alone, for the master to repair.
    _cluster(paths, str(paths.config_root), str(outside))
    code, _ = node_step(["manifest", str(outside)], "", monkeypatch, paths)
    assert code == 0
    paths.cluster_file.write_text("check_interval = [oops\n")
    with pytest.raises(CommandError, match="not one of this node's synced paths"):
        node_step(["manifest", str(outside)], "", monkeypatch, paths)
    [answer] = node_lines(["sync-apply"], [json.dumps(request)], monkeypatch, paths)
    assert "outside the synced paths" in answer["error"]
    assert (outside / "authorized_keys").read_bytes() == ADMIN
    code, document = node_step(["manifest", str(paths.config_root)], "", monkeypatch, paths)
    assert code == 0 and str(paths.cluster_file) in document["entries"]


def test_the_kept_sync_apply_reads_the_synced_paths_at_each_request(tmp_path, monkeypatch):
    """The master keeps sync-apply running: a folder this node's cluster.toml no longer
    names is refused from the next request on, not when the step starts again."""
    paths = Paths(config_root=tmp_path / "etc" / "skutui")
    paths.local_dir.mkdir(parents=True)
    paths.role_file.write_text("backup\n")
    outside = tmp_path / "root" / ".ssh"
    outside.mkdir(parents=True)
    (outside / "authorized_keys").write_bytes(ADMIN)
    (outside / "old.pub").write_bytes(ADMIN)
    _cluster(paths, str(paths.config_root), str(outside))

    def requests():
        yield json.dumps({"delete": [str(outside / "old.pub")], "generation": {}})
        _cluster(paths, str(paths.config_root))
        yield json.dumps({"delete": [str(outside / "authorized_keys")], "generation": {}})

    taken, refused = node_lines(["sync-apply"], requests(), monkeypatch, paths)
    assert taken["deleted"] == 1 and not (outside / "old.pub").exists()
    assert "outside the synced paths" in refused["error"]
    assert (outside / "authorized_keys").read_bytes() == ADMIN


def test_contents_staged_on_another_file_system_are_copied_whole_and_the_staged_copy_removed(
        tmp_path):
    """What a mount inside a synced folder takes: the copy beside the target, renamed over
    it; bigger than one read, so it is written in pieces."""
    from skutui.agent.sync.backup import _copy_across

    source, target = tmp_path / "staged", tmp_path / "target"
    source.mkdir()
    target.mkdir()
    data = os.urandom(3 << 20 | 5)
    (source / "s").write_bytes(data)
    (target / "f").write_bytes(b"old")
    source_fd, target_fd = os.open(source, os.O_DIRECTORY), os.open(target, os.O_DIRECTORY)
    try:
        _copy_across(source_fd, "s", target_fd, "f")
    finally:
        os.close(source_fd)
        os.close(target_fd)
    assert (target / "f").read_bytes() == data
    assert stat.S_IMODE((target / "f").stat().st_mode) == 0o600
    assert os.listdir(source) == [] and os.listdir(target) == ["f"]
