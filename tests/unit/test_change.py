"""A cluster change's lock and rollback record on one node, across real processes: one
change at a time, the refusal naming the holder, a killed holder leaving its record and
no lock, and the peer's side (`skutui node change`) holding the lock as long as it runs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from skutui.domain.paths import Paths
from skutui.system.change import Change, ChangeBusy, ChangeGuard, Record, interrupted, read_record
from skutui.system.locks import FileLock

ROOT = Path(__file__).parents[2]

HOLDER = """
import sys, time
from pathlib import Path
from skutui.domain.paths import Paths
from skutui.system.change import Change, ChangeGuard, Record
paths = Paths(config_root=Path(sys.argv[1]), run_dir=Path(sys.argv[2]))
guard = ChangeGuard(paths)
change = Change("cluster create", "node-a")
guard.hold(change)
guard.keep(Record(change, [{"files": {}, "running": {}}, {"files": {}, "running": {}}]))
print("held", flush=True)
time.sleep(600)
"""


@pytest.fixture
def paths(tmp_path: Path) -> Paths:
    return Paths(config_root=tmp_path / "etc" / "skutui", run_dir=tmp_path / "run")


def test_one_change_at_a_time_and_the_refusal_names_the_holder(paths: Paths):
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(paths.config_root),
                               str(paths.run_dir)],
                              stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        assert holder.stdout.readline() == "held\n"
        with pytest.raises(ChangeBusy, match=rf"^another change is under way on node-a since "
                                             rf"\d\d:\d\d, by pid {holder.pid} \(cluster create\)$"):
            ChangeGuard(paths).hold(Change("cluster edit", "node-b"))
        assert interrupted(paths) is None, "a change under way is not an interrupted one"
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    # Killed: no lock any more, the record stays, and nothing new starts before it is done.
    record = interrupted(paths)
    assert record is not None and record.change.what == "cluster create"
    assert record.change.pid == holder.pid and len(record.snapshots) == 2
    with pytest.raises(ChangeBusy, match=r"an interrupted cluster create \(started \d\d:\d\d on "
                                         r"node-a by pid \d+\) has not been rolled back yet"):
        ChangeGuard(paths).hold(Change("cluster edit", "node-a"))
    recovery = ChangeGuard(paths)
    recovery.hold(Change("rollback", "node-a"), recovering=True)
    recovery.clear()
    recovery.release()
    assert read_record(paths) is None and FileLock(paths.change_lock).free()


def test_the_record_is_durable_and_readable_as_written(paths: Paths):
    guard = ChangeGuard(paths)
    change = Change("cluster edit", "node-a", peer="node-b", peer_ip="198.18.0.2")
    guard.hold(change)
    try:
        guard.keep(Record(change, [{"a": 1}, {"b": 2}], stop_first=False))
        assert os.stat(paths.change_record).st_mode & 0o777 == 0o600
        record = read_record(paths)
        assert record == Record(change, [{"a": 1}, {"b": 2}], stop_first=False)
    finally:
        guard.release()


def node_change(paths: Paths, before: str = "") -> subprocess.Popen:
    """`skutui node change` as the peer runs it over SSH (``before``: code run first)."""
    code = (f"{before}\n" "import sys; from skutui.cli.main import run; from skutui.domain.paths import "
            "Paths; from pathlib import Path; p = Paths(config_root=Path(sys.argv[1]), run_dir=Path(sys.argv[2])); "
            "Paths.from_env = classmethod(lambda cls: p); sys.exit(run(['node', 'change']))")
    return subprocess.Popen([sys.executable, "-c", code, str(paths.config_root), str(paths.run_dir)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT)


def ask(process: subprocess.Popen, request: dict) -> dict:
    process.stdin.write(json.dumps(request) + "\n")
    process.stdin.flush()
    return json.loads(process.stdout.readline())


def test_the_peers_side_holds_the_lock_while_it_runs_and_snapshots_first(paths: Paths):
    change = Change("cluster create", "node-a", pid=1234)
    peer = node_change(paths)
    try:
        answer = ask(peer, {"op": "begin", "change": change.to_dict(), "snapshot": True})
        assert answer["ok"] and set(answer["snapshot"]) == {"files", "modes", "running"}
        assert read_record(paths).snapshots == [answer["snapshot"]]
        with pytest.raises(ChangeBusy, match="under way on node-a since .*by pid 1234"):
            ChangeGuard(paths).hold(Change("cluster edit", "node-b"))
        second = node_change(paths)
        try:
            refused = ask(second, {"op": "begin", "change": Change("x", "node-b").to_dict()})
            assert "under way on node-a" in refused["busy"]
        finally:
            second.stdin.close()
            second.wait(10)
        peer.stdin.write(json.dumps({"op": "alive"}) + "\n")
        assert ask(peer, {"op": "end", "clear": True}) == {"ok": True}
        assert peer.wait(10) == 0
    finally:
        if peer.poll() is None:
            peer.kill()
    assert read_record(paths) is None and FileLock(paths.change_lock).free()


def test_the_peers_lock_goes_with_its_connection(paths: Paths):
    peer = node_change(paths)
    ask(peer, {"op": "begin", "change": Change("cluster edit", "node-a").to_dict(),
               "snapshot": True})
    peer.stdin.close()  # the node that asked was killed: sshd closes the session
    assert peer.wait(10) == 0
    assert FileLock(paths.change_lock).free()
    assert interrupted(paths) is not None, "its record stays for the rollback"


def test_a_node_that_cannot_keep_its_record_refuses_the_change_before_anything_changes(
        paths: Paths):
    """A full disk on the peer: the change does not start, the refusal says which node and
    why, and the peer's lock is given back."""
    full_disk = ("import errno, skutui.system.change as c; "
                 "c.write_text_atomic = lambda *a, **k: (_ for _ in ()).throw("
                 "OSError(errno.ENOSPC, 'No space left on device'))")
    peer = node_change(paths, before=full_disk)
    try:
        answer = ask(peer, {"op": "begin", "change": Change("cluster edit", "node-a").to_dict(),
                            "snapshot": True})
        assert peer.wait(10) == 0
    finally:
        if peer.poll() is None:
            peer.kill()
    assert answer["failed"].endswith("cannot keep the change's rollback record (No space left "
                                     "on device); nothing was changed"), answer
    assert FileLock(paths.change_lock).free() and read_record(paths) is None
