"""The agent's supervisors on their own, each given a fake peer link instead of SSH."""

from __future__ import annotations

import asyncio
from pathlib import Path, PurePosixPath

import pytest

from skutui.agent import role_supervisor, sync_supervisor
from skutui.agent.replication import ReplayBlocked
from skutui.agent.replication_supervisor import ReplicationSupervisor
from skutui.agent.role_supervisor import RoleSupervisor
from skutui.agent.sync.master import SyncService
from skutui.agent.sync_supervisor import SyncSupervisor
from skutui.domain.model import Node, Role
from skutui.domain.paths import Paths
from skutui.system.journal import APPLIED, Journal, Outcome
from skutui.system.node import LocalNode
from tests.unit.test_sync import wait_until


class Events:
    def __init__(self) -> None:
        self.seen: list[tuple[str, str, str]] = []

    def __call__(self, kind: str, message: str, *, level: str = "info", **data) -> None:
        self.seen.append((kind, level, message))

    def messages(self, kind: str) -> list[str]:
        return [m for k, _, m in self.seen if k == kind]


class FakeLink:
    """A peer link whose peer is away unless ``up``: a sync given it never pushes."""

    def __init__(self, hostname: str = "node-b", *, up: bool = False, replay_target=None) -> None:
        self.node = Node(hostname, "198.18.0.2")
        self.connection = object()
        self.up = up
        self.replay_target = replay_target

    def lost(self, exc: BaseException) -> None:
        self.up = False


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


@pytest.fixture
def paths(tmp_path: Path) -> Paths:
    """This node's files under ``tmp_path``: the lab's keepalived, if one runs, is not its."""
    paths = Paths(config_root=tmp_path / "etc" / "skutui", run_dir=tmp_path / "run",
                  keepalived_conf=tmp_path / "etc" / "keepalived" / "keepalived.conf")
    paths.local_dir.mkdir(parents=True)
    return paths


# --- the sync supervisor ------------------------------------------------------------------------

async def test_the_sync_runs_only_on_a_master_with_a_peer_and_paths(paths: Paths, tmp_path: Path):
    other = tmp_path / "etc" / "haproxy"
    other.mkdir()
    roots = [PurePosixPath(paths.config_root)]
    events = Events()
    supervisor = SyncSupervisor(LocalNode(paths), paths, events)
    link = FakeLink()
    try:
        for role, some_roots, some_link in ((Role.BACKUP, roots, link), (Role.MASTER, [], link),
                                            (Role.MASTER, roots, None)):
            await supervisor.want(role, some_roots, some_link)
            assert supervisor.service is None and supervisor.status() is None
        await supervisor.want(Role.MASTER, roots, link)
        first = supervisor.service
        await wait_until(lambda: supervisor.running)
        assert supervisor.status()["roots"] == [str(paths.config_root)]
        await supervisor.want(Role.MASTER, list(roots), link)
        assert supervisor.service is first, "nothing changed: the same sync runs on"

        more = [*roots, PurePosixPath(other)]
        await supervisor.want(Role.MASTER, more, link)
        assert not first.running and supervisor.service is not first
        second = supervisor.service
        await wait_until(lambda: supervisor.running)
        await supervisor.want(Role.MASTER, more, FakeLink())  # another peer, another link
        assert not second.running and supervisor.service is not second
        await wait_until(lambda: supervisor.running)
        await supervisor.want(Role.BACKUP, more, link)
        assert supervisor.service is None and not supervisor.running
    finally:
        await supervisor.stop()
    assert events.messages("sync") == [
        f"sync watcher started on {paths.config_root}", "sync watcher stopped",
        f"sync watcher started on {paths.config_root}, {other}", "sync watcher stopped",
        f"sync watcher started on {paths.config_root}, {other}", "sync watcher stopped"]


async def test_a_failed_sync_watcher_is_reported_and_started_again_after_a_delay(
        paths: Paths, monkeypatch):
    async def broken(service: SyncService) -> None:
        raise OSError("inotify watch limit reached")

    monkeypatch.setattr(SyncService, "run", broken)
    clock = Clock()
    monkeypatch.setattr(sync_supervisor, "time", clock)
    events = Events()
    supervisor = SyncSupervisor(LocalNode(paths), paths, events)
    roots, link = [PurePosixPath(paths.config_root)], FakeLink()
    await supervisor.want(Role.MASTER, roots, link)
    await wait_until(lambda: supervisor._task.done())
    await supervisor.want(Role.MASTER, roots, link)
    assert supervisor.service is None
    assert events.seen == [("sync", "error", "the sync watcher failed: inotify watch limit "
                                             "reached; starting it again in 30 s")]
    clock.now += sync_supervisor.SYNC_RESTART_DELAY - 1
    await supervisor.want(Role.MASTER, roots, link)
    assert supervisor.service is None
    clock.now += 1
    await supervisor.want(Role.MASTER, roots, link)
    assert supervisor.service is not None
    await supervisor.stop()


# --- the replication supervisor -----------------------------------------------------------------

class Target:
    """The peer's replayer: gives the answers it is handed, in order."""

    def __init__(self, *answers) -> None:
        self.answers = list(answers)
        self.asked = 0

    async def replay(self, entry) -> Outcome:
        self.asked += 1
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


class FixedRole:
    def __init__(self, role: Role) -> None:
        self.role = role

    def effective_role(self) -> Role:
        return self.role


async def test_a_refused_replay_waits_until_the_peer_returns(tmp_path: Path):
    journal = Journal(tmp_path / "journal")
    entry = journal.append(["service", "haproxy", "reload"], origin="node-a")
    target = Target(ReplayBlocked("the peer refused #1: skutui is not installed"),
                    Outcome(1, APPLIED, 0))
    link = FakeLink(up=True, replay_target=target)
    node = FixedRole(Role.BACKUP)
    flushed: list[int] = []

    async def flush() -> None:
        flushed.append(entry.seq)

    events = Events()
    supervisor = ReplicationSupervisor(journal, node, events, link=lambda: link,
                                       before_each=flush)
    await supervisor.replicate_once()
    assert target.asked == 0 and supervisor.queued == 1, "a backup never replays"

    node.role = Role.MASTER
    await supervisor.replicate_once()
    blocked = "replication to node-b is blocked: the peer refused #1: skutui is not installed"
    assert supervisor.error == blocked and supervisor.summary()["error"] == blocked
    assert events.seen == [("replication", "error", f"{blocked}; trying again in 60 s")]
    await supervisor.replicate_once()
    assert target.asked == 1 and supervisor.queued == 1, "not asked again while blocked"

    acked = asyncio.create_task(supervisor.wait_acked(entry.seq, 5))
    await asyncio.sleep(0)  # waiting for the answer
    supervisor.peer_back()
    await supervisor.replicate_once()
    assert await asyncio.wait_for(acked, 5) == {"acked": True, "away": None}
    assert target.asked == 2 and flushed == [1, 1]
    assert supervisor.queued == 0 and supervisor.error is None
    assert events.seen[-1] == ("replication", "info",
                               "#1 applied on the peer: service haproxy reload")
    assert supervisor.summary()["pending"] == 0


async def nothing() -> None:
    pass


async def test_exec_is_told_at_once_that_the_peer_is_away(tmp_path: Path):
    journal = Journal(tmp_path / "journal")
    entry = journal.append(["true"], origin="node-a")
    link = FakeLink(up=False, replay_target=Target())
    supervisor = ReplicationSupervisor(journal, FixedRole(Role.MASTER), Events(),
                                       link=lambda: link, before_each=nothing)
    answer = await asyncio.wait_for(supervisor.wait_acked(entry.seq, 3600), 10)
    assert answer == {"acked": False, "away": "node-b"}


async def test_commands_of_a_finished_master_term_are_set_aside_and_said(tmp_path: Path):
    """Queued in an earlier term of this node, they are never replayed after the newer
    commands the peer ran as master meanwhile."""
    journal = Journal(tmp_path / "journal")
    journal.append(["ipset", "add", "blocked", "192.0.2.7"], origin="node-a", term="b/100")
    journal.append(["service", "haproxy", "reload"], origin="node-a", term="b/100")
    fresh = journal.append(["true"], origin="node-a", term="b/900")
    target = Target(Outcome(fresh.seq, APPLIED, 0))
    link = FakeLink(up=True, replay_target=target)
    events = Events()
    supervisor = ReplicationSupervisor(journal, FixedRole(Role.MASTER), events,
                                       link=lambda: link, before_each=nothing,
                                       term=lambda: "b/900")
    await supervisor.replicate_once()
    assert target.asked == 1 and journal.pending() == []
    assert [a.entry.seq for a in journal.set_aside_entries()] == [1, 2]
    [said] = [m for m in events.messages("replication") if "set aside" in m]
    assert said.startswith("2 command(s) queued in an earlier master term set aside, not "
                           "replayed: #1 `ipset add blocked 192.0.2.7`, #2")


# --- the role supervisor --------------------------------------------------------------------------

def test_keepalived_moving_the_node_starts_a_round_at_once(paths: Paths, monkeypatch):
    monkeypatch.setattr(role_supervisor, "ROLE_ANNOUNCE_GRACE", 0.0)
    rounds: list[int] = []
    link = FakeLink()
    events = Events()
    roles = RoleSupervisor(LocalNode(paths), paths, events, link=lambda: link,
                           on_moved=lambda: rounds.append(1))
    roles.note(Role.BACKUP)
    roles.fifo_line('INSTANCE "SKUTUI" MASTER 120')
    roles.fifo_line('INSTANCE "SKUTUI" MASTER 120')
    assert rounds == [1] and roles.transitions.qsize() == 1, "one transition, told twice"
    link.up = True
    roles.note(Role.BACKUP)  # a change nobody announced: its cause is worked out here
    link.up = False
    roles.note(Role.MASTER)
    assert events.messages("role") == [
        "agent started; this node is backup", "keepalived moved this node to MASTER",
        "master -> backup: keepalived is not running, so this node no longer acts as master",
        "backup -> master: keepalived made this node master (node-b is unreachable)"]
    assert rounds == [1], "only keepalived's own moves start a round"
