"""Failover records: the new master writes one with the old master's side, gives it a copy,
and completes it when the old master answers again; the old master says when and why it
stopped. The peer here is a second history store behind a fake connection that answers
``skutui node history`` as the step does."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from skutui.agent import failover as failover_module
from skutui.agent.control import EventBus
from skutui.agent.failover import FailoverRecorder
from skutui.agent.history import HistoryWriter
from skutui.domain import history
from skutui.domain.model import ClusterConfig, Node
from skutui.domain.paths import Paths
from skutui.peer import PeerUnreachable
from skutui.system.history import HistoryStore
from tests.fakes import LOCAL, REMOTE, default_cluster

A, B = LOCAL.hostname, REMOTE.hostname


@dataclass
class Result:
    stdout: str


class PeerHistory:
    """The other node's `skutui node history` over a connection that may be cut."""

    def __init__(self, store: HistoryStore) -> None:
        self.store = store
        self.reachable = True
        self.asked = 0

    async def run_checked(self, argv, *, input=None, timeout=None) -> Result:
        if not self.reachable:
            raise PeerUnreachable("198.18.0.1", "connection refused")
        self.asked += 1
        if "--put" in argv:
            self.store.add(json.loads(input))
            return Result("[]")
        kinds = [argv[i + 1] for i, word in enumerate(argv) if word == "--kind"]
        since = history.parse_since(argv[argv.index("--since") + 1], time.time())
        return Result(json.dumps(self.store.records(since=since, kinds=kinds)))


class Link:
    def __init__(self, connection: PeerHistory, peer: Node) -> None:
        self.connection = connection
        self.node = peer
        self.up: bool | None = True


class Keepalived:
    def __init__(self) -> None:
        self.alive = True

    def pids(self) -> list[int]:
        return []

    def running(self) -> bool:
        return self.alive


class FakeNode:
    def __init__(self) -> None:
        self.keepalived = Keepalived()
        self.maintenance = False
        self.down: set[str] = set()

    def in_maintenance(self) -> bool:
        return self.maintenance

    def interface_up(self, name: str) -> bool:
        return name not in self.down


class Side:
    """One node: its history, its event bus with the recorder listening, what it reported."""

    def __init__(self, tmp: Path, me: str, peer: Node, peer_store: HistoryStore,
                 config: ClusterConfig) -> None:
        self.paths = Paths(config_root=tmp / me / "etc", run_dir=tmp / me / "run")
        self.store = HistoryStore(self.paths.history_file)
        self.writer = HistoryWriter(self.store)
        self.writer.start()
        self.bus = EventBus(me)
        self.node = FakeNode()
        self.peer = PeerHistory(peer_store)
        self.link = Link(self.peer, peer)
        self.sync: dict | None = {"running": True, "pending_changes": 0, "pending_since": None}
        self.queue = 0
        self.recorder = FailoverRecorder(
            self.node, self.paths, me, self.bus.emit, self.writer, self.store,
            config=lambda: config, link=lambda: self.link, sync_status=lambda: self.sync,
            replication_queue=lambda: self.queue)
        self.bus.listeners += [self.writer.event, self.recorder.event]
        self.seen: list[dict] = []
        self.bus.listeners.append(self.seen.append)

    def kinds(self, kind: str) -> list[dict]:
        return [e for e in self.seen if e["kind"] == kind]

    async def settle(self) -> None:
        for _ in range(200):
            if not self.recorder._tasks:
                break
            await asyncio.sleep(0.01)
        await self.writer.flush()

    async def close(self) -> None:
        await self.writer.stop()


@pytest.fixture
def quick(monkeypatch):
    monkeypatch.setattr(failover_module, "RELEASE_RETRY_DELAY", 0.01)
    monkeypatch.setattr(failover_module, "DEATH_CONFIRM", 0.01)


@pytest.fixture
async def pair(tmp_path: Path, quick):
    """node-a (the old master) and node-b (the new one), each the other's peer."""
    config = default_cluster()
    a_store = HistoryStore(tmp_path / A / "etc" / "local" / "state" / "history.sqlite")
    b_store = HistoryStore(tmp_path / B / "etc" / "local" / "state" / "history.sqlite")
    a = Side(tmp_path, A, REMOTE, b_store, config)
    b = Side(tmp_path, B, LOCAL, a_store, config)
    yield a, b
    await a.close()
    await b.close()


def take_over(side: Side, failed: list[str] | None = None) -> None:
    """keepalived's MASTER line, then the outcome of the MASTER steps."""
    side.bus.emit("role", "keepalived moved this node to MASTER", role="master",
                  cause="keepalived MASTER")
    side.bus.emit("service", "MASTER steps done", role="master", cause="keepalived MASTER",
                  failed=failed or [], seconds=0.042)


def master_then(side: Side, state: str) -> None:
    side.bus.emit("role", "agent started; this node is master", role="master", cause="agent start")
    side.bus.emit("role", f"keepalived moved this node to {state}", role=state.lower() if
                  state != "FAULT" else "maintenance", cause=f"keepalived {state}")


# --- the old master's side ------------------------------------------------------------------------


async def test_a_killed_keepalived_is_released_at_the_moment_it_died(pair):
    a, _ = pair
    a.bus.emit("role", "agent started; this node is master", role="master", cause="agent start")
    a.sync = {"running": True, "pending_changes": 2, "pending_since": 1000.0}
    a.queue = 3
    a.node.keepalived.alive = False
    a.recorder._keepalived_died(1001.5)
    a.sync = None  # the sync stops right after: what it had then is what counts
    await a.settle()
    [release] = a.kinds("release")
    data = release["data"]
    assert data["cause"] == history.CAUSE_KEEPALIVED
    assert data["released"] == history.iso(1001.5)
    assert (data["sync_pending"], data["sync_lag"], data["replication_queue"]) == (2, 1.5, 3)
    # keepalived's role change comes later from the agent's round: still one release.
    a.bus.emit("role", "master -> backup: keepalived is not running", role="backup",
               previous="master", cause="keepalived is not running")
    await a.settle()
    assert len(a.kinds("release")) == 1


async def test_a_restarted_vrrp_child_is_no_release(pair):
    a, _ = pair
    a.bus.emit("role", "agent started; this node is master", role="master", cause="agent start")
    a.recorder._keepalived_died(1000.0)
    await a.settle()
    assert a.kinds("release") == []


@pytest.mark.parametrize("maintenance,drill,down,cause", [
    (True, None, set(), history.CAUSE_MAINTENANCE),
    (True, "drill-1", set(), history.CAUSE_DRILL),
    (False, None, {"eth1"}, history.CAUSE_LINK),
    (False, None, set(), history.CAUSE_STEPPED_DOWN),
])
async def test_fault_says_why(pair, maintenance, drill, down, cause):
    a, _ = pair
    a.node.maintenance, a.node.down = maintenance, down
    if drill:
        a.paths.run_dir.mkdir(parents=True)
        a.paths.drill_mark.write_text(drill + "\n")
    master_then(a, "FAULT")
    await a.settle()
    [release] = a.kinds("release")
    assert release["data"]["cause"] == cause
    assert release["data"].get("drill") == drill


# --- the new master's side ------------------------------------------------------------------------


async def test_a_takeover_is_one_record_on_both_nodes_with_the_old_masters_side(pair):
    a, b = pair
    a.queue = 2
    a.bus.emit("role", "agent started; this node is master", role="master", cause="agent start")
    a.node.keepalived.alive = False
    a.recorder._keepalived_died(time.time() - 3.0)
    await a.settle()
    b.bus.emit("role", "agent started; this node is backup", role="backup", cause="agent start")
    take_over(b)
    await b.settle()
    [event] = b.kinds(history.FAILOVER)
    data = event["data"]
    assert (data["from"], data["to"], data["cause"], data["complete"]) == (A, B, history.CAUSE_KEEPALIVED, True)
    assert 2.9 < data["gap"] < 3.5
    assert data["replication_queue"] == 2
    assert data["conntrack"] == {"ok": True, "seconds": 0.042, "failed": []}
    mine, theirs = b.store.records(kinds=[history.FAILOVER]), a.store.records(kinds=[history.FAILOVER])
    assert len(mine) == 1 and len(theirs) == 1
    assert mine[0]["id"] == theirs[0]["id"] == data["id"], "one record, the same on both nodes"
    assert theirs[0]["data"]["gap"] == data["gap"]


async def test_a_failed_commit_is_in_the_record(pair):
    a, b = pair
    master_then(a, "FAULT")
    await a.settle()
    b.bus.emit("role", "agent started; this node is backup", role="backup", cause="agent start")
    take_over(b, failed=["conntrackd -c: no answer"])
    await b.settle()
    [event] = b.kinds(history.FAILOVER)
    assert event["data"]["conntrack"]["ok"] is False
    assert event["data"]["failed_steps"] == ["conntrackd -c: no answer"]
    assert event["level"] == "warning"


async def test_a_first_election_is_no_failover(pair):
    _, b = pair
    b.bus.emit("role", "agent started; this node is backup", role="backup", cause="agent start")
    take_over(b)
    await b.settle()
    assert b.kinds(history.FAILOVER) == []
    assert b.peer.asked >= 1, "the peer was asked, and it never was master"


async def test_an_old_master_that_cannot_be_asked_is_completed_when_it_answers(pair):
    a, b = pair
    master_then(a, "FAULT")  # its release is on disk, but nobody can reach it
    await a.settle()
    b.peer.reachable = False
    b.bus.emit("role", "agent started; this node is backup", role="backup", cause="agent start")
    take_over(b)
    await b.settle()
    [first] = b.kinds(history.FAILOVER)
    assert (first["data"]["cause"], first["data"]["complete"], first["data"]["gap"]) == (
        history.CAUSE_PEER_LOST, False, None)
    assert a.store.records(kinds=[history.FAILOVER]) == []
    # It answers again: the same record, completed, on both nodes.
    b.peer.reachable = True
    await b.recorder._complete()
    await b.settle()
    second = b.kinds(history.FAILOVER)[-1]
    assert second["data"]["complete"] is True
    assert second["data"]["cause"] == history.CAUSE_STEPPED_DOWN
    [kept] = b.store.records(kinds=[history.FAILOVER])
    [copy] = a.store.records(kinds=[history.FAILOVER])
    assert kept["id"] == copy["id"] and copy["data"]["complete"] is True
    assert not b.recorder._pending


async def test_pending_failovers_are_found_again_after_a_restart(pair, tmp_path):
    a, b = pair
    b.peer.reachable = False
    b.bus.emit("role", "agent started; this node is backup", role="backup", cause="agent start")
    take_over(b)
    await b.settle()
    restarted = Side(tmp_path, B, LOCAL, a.store, default_cluster())
    try:
        await restarted.recorder._load_pending()
        assert restarted.recorder._pending == b.recorder._pending != set()
    finally:
        await restarted.close()


async def test_the_takeover_waits_for_nothing_on_the_event_bus(pair, monkeypatch):
    """The listener only notes: the peer is asked in a task, after keepalived's line."""
    _, b = pair
    asked = asyncio.Event()

    async def slow(*args, **kwargs):
        asked.set()
        await asyncio.sleep(10)

    monkeypatch.setattr(b.peer, "run_checked", slow)
    b.bus.emit("role", "agent started; this node is backup", role="backup", cause="agent start")
    started = time.monotonic()
    take_over(b)
    assert time.monotonic() - started < 0.5
    await asyncio.wait_for(asked.wait(), 5)
    for task in list(b.recorder._tasks):
        task.cancel()
