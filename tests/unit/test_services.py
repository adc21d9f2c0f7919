"""The operator's services: keepalived's check script, the agent's keeper that follows the
role, and the master that hands over at once when one of its services is down. Real
processes and files, a fake init system; no keepalived, no root needed beyond /run."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import subprocess
from pathlib import Path

import pytest

from skutui.agent import service_keeper, transitions
from skutui.agent.handover import Handover
from skutui.agent.link import PeerAgentState
from skutui.agent.service_keeper import ServiceKeeper
from skutui.domain.model import ClusterConfig, Node, Role
from skutui.domain.paths import Paths
from skutui.domain.render import HANDOVER_NOW, HANDOVER_OFF, HANDOVER_YIELD
from skutui.peer import PeerUnreachable
from skutui.system import services
from skutui.system.node import LocalNode

A, B = Node("node-a", "198.18.0.1"), Node("node-b", "198.18.0.2")


@pytest.fixture
def paths(tmp_path: Path) -> Paths:
    paths = Paths(config_root=tmp_path / "etc", run_dir=tmp_path / "run")
    paths.local_dir.mkdir(parents=True)
    paths.run_dir.mkdir()
    return paths


class Init:
    """A fake ``service`` command first on PATH: ``service NAME status`` answers from a file."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir()
        script = folder / "service"
        script.write_text(f'#!/bin/sh\n[ "$2" = status ] && exec test -e "{folder}/$1.running"\nexit 1\n')
        script.chmod(0o755)

    def set(self, name: str, running: bool) -> None:
        mark = self.folder / f"{name}.running"
        if running:
            mark.touch()
        else:
            mark.unlink(missing_ok=True)


@pytest.fixture
def init(tmp_path: Path, monkeypatch) -> Init:
    fake = Init(tmp_path / "bin")
    monkeypatch.setenv("PATH", f"{fake.folder}:{os.environ['PATH']}")
    return fake


def check(*args: str) -> int:
    return subprocess.run(["/bin/sh", str(services.SERVICE_CHECK), *args], capture_output=True).returncode


def unique() -> str:
    return "skutui-test-" + secrets.token_hex(4)


# --- keepalived's check script ------------------------------------------------------------------


def test_a_pid_file_in_run_answers_without_asking_the_init_system(init):
    name = unique()
    pid_file = Path("/run") / f"{name}.pid"
    if not os.access("/run", os.W_OK):
        pytest.skip("/run is not writable")
    try:
        pid_file.write_text(f"{os.getpid()}\n")
        assert check("running", name) == 0
        dead = subprocess.Popen(["true"])
        dead.wait()
        pid_file.write_text(f"{os.getpid()}\n{dead.pid}\n")
        assert check("running", name) == 1, "one process of the service gone: down"
        pid_file.write_text("")
        init.set(name, True)
        assert check("running", name) == 0, "an empty pid file: the init system is asked"
    finally:
        pid_file.unlink(missing_ok=True)


def test_a_service_on_both_nodes_counts_as_down_unless_it_runs_or_is_being_started(init, paths):
    name = unique()
    state = str(paths.service_state_dir)
    args = ("both", name, str(paths.role_file), state)
    assert check(*args) == 1
    services.starting(paths.service_state_dir, name, True)
    assert check(*args) == 0, "the agent is starting it"
    services.starting(paths.service_state_dir, name, False)
    init.set(name, True)
    assert check(*args) == 0
    assert services.running(name) and not services.running(unique())


def test_a_master_only_service_counts_on_the_master_and_after_it_failed_there(init, paths):
    name = unique()
    args = ("master", name, str(paths.role_file), str(paths.service_state_dir))
    paths.role_file.write_text("backup\n")
    assert check(*args) == 0, "a backup cannot know better"
    paths.role_file.write_text("master\n")
    assert check(*args) == 1
    assert services.failed_here(paths.service_state_dir, [name]) == [], "the agent marks failures"
    services.mark_failed(paths.service_state_dir, [name])
    paths.role_file.write_text("backup\n")
    assert check(*args) == 1, "it failed here as master: not ready to take over"
    init.set(name, True)
    assert check(*args) == 0, "seen running again (started by hand): ready"
    assert services.failed_here(paths.service_state_dir, [name]) == []
    services.mark_failed(paths.service_state_dir, [name])
    services.forget_failures(paths.service_state_dir)
    assert services.failed_here(paths.service_state_dir, [name]) == []


# --- the keeper ----------------------------------------------------------------------------------


class Fleet:
    """Services as the keeper sees them: ``running`` and every action taken."""

    def __init__(self) -> None:
        self.up: set[str] = set()
        self.actions: list[tuple[str, str]] = []
        self.fail: dict[str, str] = {}
        self.starting_seen: list[bool] = []
        self.paths: Paths | None = None

    def running(self, name: str) -> bool:
        return name in self.up

    def act(self, name: str, action: str) -> str | None:
        self.actions.append((name, action))
        if self.paths is not None and action == "start":
            self.starting_seen.append((self.paths.service_state_dir / f"{name}.starting").exists())
        if name in self.fail:
            return self.fail[name]
        (self.up.add if action == "start" else self.up.discard)(name)
        return None


def config(**changes) -> ClusterConfig:
    base = ClusterConfig(interface="eth0", nodes=(A, B), services=("nginx",), services_on_both=("haproxy",))
    return ClusterConfig(**{**base.__dict__, **changes})


async def settle(keeper: ServiceKeeper) -> None:
    await asyncio.gather(*keeper._tasks.values(), return_exceptions=True)


async def test_the_keeper_follows_the_role_and_never_restarts_what_died(paths):
    fleet, events = Fleet(), []
    fleet.paths = paths
    keeper = ServiceKeeper(paths, lambda kind, message, **data: events.append(message),
                           running=fleet.running, act=fleet.act)
    fleet.up.add("nginx")  # left running on a node that becomes backup
    await keeper.keep(config(), Role.BACKUP)
    await settle(keeper)
    assert sorted(fleet.actions) == [("haproxy", "start"), ("nginx", "stop")]
    assert fleet.starting_seen == [True], "keepalived's check does not count a starting service down"
    assert not (paths.service_state_dir / "haproxy.starting").exists()

    fleet.actions.clear()
    fleet.up.discard("haproxy")  # haproxy dies: keepalived moves the master, the operator restarts it
    await keeper.keep(config(), Role.BACKUP)
    await settle(keeper)
    assert fleet.actions == []

    await keeper.keep(config(), Role.MASTER)
    await settle(keeper)
    assert fleet.actions == [("nginx", "start")]
    for role in (Role.FAULT, Role.MAINTENANCE):
        fleet.actions.clear()
        fleet.up.add("nginx")
        await keeper.keep(config(), Role.MASTER)
        await settle(keeper)
        await keeper.keep(config(), role)
        await settle(keeper)
        assert fleet.actions == [("nginx", "stop")], f"a node in {role.value} stops master-only services"
    assert "nginx stopped on this node" in events


async def test_a_service_added_by_an_edit_starts_at_once_and_a_failed_start_is_tried_again(paths, monkeypatch):
    fleet, events = Fleet(), []
    keeper = ServiceKeeper(paths, lambda kind, message, **data: events.append((message, data)),
                           running=fleet.running, act=fleet.act)
    await keeper.keep(config(services=(), services_on_both=()), Role.MASTER)
    fleet.fail["nginx"] = "service nginx start: nginx.conf has an error"
    await keeper.keep(config(services=("nginx",), services_on_both=()), Role.MASTER)
    await settle(keeper)
    assert fleet.actions == [("nginx", "start")]
    message, data = events[-1]
    assert message == f"service nginx start: nginx.conf has an error; trying again in {service_keeper.RETRY_DELAY:g} s"
    assert data == {"level": "error", "service": "nginx", "running": False}
    await keeper.keep(config(services=("nginx",), services_on_both=()), Role.MASTER)
    await settle(keeper)
    assert fleet.actions == [("nginx", "start")], "not before the delay"
    del fleet.fail["nginx"]
    keeper._retry["nginx"] = 0.0
    await keeper.keep(config(services=("nginx",), services_on_both=()), Role.MASTER)
    await settle(keeper)
    assert fleet.actions == [("nginx", "start")] * 2 and "nginx" in fleet.up


class DeadKeepalived(LocalNode):
    """A node whose role file says master and whose keepalived does not run (killed)."""

    def __init__(self, paths: Paths, held: list[tuple[str, str]]) -> None:
        super().__init__(paths)
        self.held = held
        paths.role_file.write_text(Role.MASTER.value + "\n")
        self.keepalived.running = lambda: False  # type: ignore[method-assign]

    def floating_ips_held(self, config: ClusterConfig) -> list[tuple[str, str]]:
        return self.held


async def test_master_only_services_stay_while_a_dead_master_still_serves_the_floating_ips(paths):
    """keepalived killed on the master: its floating IPs stay until the peer takes them, and
    so does haproxy; once they are released the node is a backup and stops it."""
    node = DeadKeepalived(paths, [("198.18.0.100/24", "eth0")])
    assert node.effective_role() is Role.BACKUP
    fleet = Fleet()
    keeper = ServiceKeeper(paths, lambda kind, message, **data: None, running=fleet.running, act=fleet.act)
    fleet.up.update({"nginx", "haproxy"})
    await keeper.keep(config(), node.services_role(config()))
    await settle(keeper)
    assert node.services_role(config()) is Role.MASTER and fleet.actions == []
    node.held = []
    await keeper.keep(config(), node.services_role(config()))
    await settle(keeper)
    assert node.services_role(config()) is Role.BACKUP and fleet.actions == [("nginx", "stop")]
    assert node.services_role(None) is Role.BACKUP


# --- the master that hands over at once ----------------------------------------------------------


class ThisNode(LocalNode):
    """This node with a fixed configuration and role (no keepalived runs here)."""

    def __init__(self, paths: Paths, role: Role) -> None:
        super().__init__(paths)
        self.held = role

    def effective_role(self) -> Role:
        return self.held


class PeerAgent:
    """The peer's ``skutui node agent-state --stream``, as the link keeps it."""

    def __init__(self, state: dict | None) -> None:
        self.state = state
        self.reads = 0

    async def read(self, timeout: float) -> dict:
        self.reads += 1
        if self.state is None:
            raise OSError("the peer's agent does not answer")
        return json.loads(json.dumps(self.state))


class Link:
    def __init__(self, state: dict | None, up: bool = True) -> None:
        self.node = B
        self.up = up
        self.agent_state = PeerAgent(state)


def handover(paths: Paths, peer: dict | None, *, role: Role = Role.MASTER, cfg: ClusterConfig | None = None):
    events: list[str] = []
    node = ThisNode(paths, role)
    link = Link(peer)
    watch = Handover(node, paths, "node-a", lambda kind, message, **data: events.append(message),
                     lambda: cfg or config(), lambda: link)
    return watch, events, link


def handover_value(paths: Paths) -> int | None:
    return int(paths.handover_file.read_text()) if paths.handover_file.exists() else None


async def test_a_master_whose_service_died_steps_down_at_once_for_a_higher_ranked_peer(paths, init):
    watch, events, link = handover(paths, {"role": "backup", "priority": 100},
                                   cfg=config(services=("nginx-" + secrets.token_hex(3),)))
    watch.priority("master", 100)
    assert watch._asking is None, "the priority did not drop"
    watch.priority("master", 1)
    await watch._asking
    assert handover_value(paths) == HANDOVER_NOW
    assert link.agent_state.reads == 1
    assert events == ["a service is down here (priority 1): handing the floating IPs to node-b (priority 100) now"]
    name = watch.config().services[0]
    assert services.failed_here(paths.service_state_dir, [name]) == [name], "down when it stepped down"
    watch.priority("fault", 0)
    assert handover_value(paths) == HANDOVER_OFF, "keepalived went to FAULT: the file has done its job"


@pytest.mark.parametrize("peer,why", [
    ({"role": "backup", "priority": 1}, "the peer is no better"),
    ({"role": "fault", "priority": 100}, "the peer is not a backup"),
    (None, "the peer cannot be asked"),
])
async def test_a_master_stays_when_the_peer_ranks_no_higher(paths, peer, why):
    watch, events, _ = handover(paths, peer)
    watch.priority("master", 1)
    await watch._asking
    assert handover_value(paths) is None, why
    assert events == []


async def test_no_step_down_in_maintenance_nor_during_a_planned_handover(paths):
    watch, events, link = handover(paths, {"role": "backup", "priority": 100})
    watch.node.set_handover(HANDOVER_YIELD)
    watch.priority("master", 1)
    assert watch._asking is None and handover_value(paths) == HANDOVER_YIELD
    watch.node.set_handover(HANDOVER_OFF)
    paths.maintenance_flag.write_text("1\n")
    watch.priority("master", 1)
    assert watch._asking is None and link.agent_state.reads == 0


def test_a_handover_left_by_a_killed_command_is_cleared(paths):
    watch, events, _ = handover(paths, None)
    watch.node.set_handover(HANDOVER_YIELD)
    watch.clear_if_stale()
    assert handover_value(paths) == HANDOVER_YIELD
    old = paths.handover_file.stat().st_mtime - 120
    os.utime(paths.handover_file, (old, old))
    watch.clear_if_stale()
    assert handover_value(paths) == HANDOVER_OFF
    assert events == ["a handover left unfinished was cleared"]


# --- the transitions' steps: connection state only --------------------------------------------


class Steps(LocalNode):
    def __init__(self, paths: Paths, cfg: ClusterConfig, log: list[str]) -> None:
        super().__init__(paths)
        self.cfg, self.log = cfg, log
        self.conntrackd.ctl = lambda *flags, **kwargs: (  # type: ignore[method-assign]
            log.append("conntrackd " + " ".join(flags)), subprocess.CompletedProcess([], 0, "", ""))[1]
        self.conntrackd.running = lambda: True  # type: ignore[method-assign]

    def config(self) -> ClusterConfig:
        return self.cfg


def test_a_transition_commits_the_connection_state_and_leaves_the_services_to_the_keeper(
        paths, monkeypatch):
    """The agent is the only runner of transitions (keepalived's hook hands them over): its
    steps are the connection state's, and the service keeper starts and stops the services
    in the background, so a slow service never delays the commit. Nor do the steps write
    the role: the agent wrote it when it took the transition."""
    log: list[str] = []
    monkeypatch.setattr(services, "running", lambda name: False)
    monkeypatch.setattr(services, "act", lambda name, action: log.append(f"service {name} {action}"))
    node = Steps(paths, config(), log)
    assert transitions.run_transition(node, "master") == []
    assert log == ["conntrackd -c", "conntrackd -f", "conntrackd -R", "conntrackd -B"]
    log.clear()
    assert transitions.run_transition(node, "fault") == []
    assert log == ["conntrackd -t"]
    log.clear()
    assert transitions.run_transition(node, "backup") == []
    assert log == ["conntrackd -t", "conntrackd -n"]
    assert not paths.role_file.exists()


class StreamedState:
    """``skutui node agent-state --stream`` on the peer: one line out, one line back."""

    def __init__(self, answers: list[str]) -> None:
        self.answers = answers
        self.closed = False

    async def ask(self, request: str, timeout: float) -> str:
        answer = self.answers.pop(0)
        if answer == "gone":
            raise PeerUnreachable("node-b", "the connection closed")
        return answer + "\n"

    def close(self) -> None:
        self.closed = True


class Peer:
    def __init__(self, *answers: list[str]) -> None:
        self.processes = [StreamedState(list(a)) for a in answers]
        self.opened: list[list[str]] = []

    async def open_process(self, command: list[str]) -> StreamedState:
        self.opened.append(command)
        return self.processes[len(self.opened) - 1]


async def test_the_peers_agent_state_is_read_from_one_kept_process_reopened_when_it_fails():
    peer = Peer(['{"role": "backup", "priority": 100}', '{"role": "master"}', "gone"],
                ["{}"])
    state = PeerAgentState(peer)
    state.warm()
    await state._warming
    assert await state.read(2) == {"role": "master"}
    assert peer.opened == [["skutui", "node", "agent-state", "--stream"]], "one process, kept"
    with pytest.raises(PeerUnreachable):
        await state.read(2)
    assert peer.processes[0].closed
    assert await state.read(2) == {} and len(peer.opened) == 2, "a new one after a failure"
