"""The control socket (state, event stream, root only) and the agent that serves it."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import stat
import time
from pathlib import Path

import pytest

from skutui.agent import control as served
from skutui.agent import link, replication_supervisor, role_supervisor, services
from skutui.agent.control import ControlServer, EventBus
from skutui.agent.main import Agent
from skutui.domain.model import ClusterConfig, Node, Role
from skutui.domain.paths import Paths
from skutui.system import control
from skutui.system.control import ControlError
from skutui.system.hook import Moment, read_mark
from skutui.system.journal import Journal
from skutui.system.node import LocalNode
from tests.unit.test_sync import assert_same, connection_to, start_skutui_peer, wait_until, write


@pytest.fixture
async def server(tmp_path: Path):
    bus = EventBus("node-a")
    woken = []
    srv = ControlServer(tmp_path / "run" / "control.sock", bus,
                        lambda: {"role": "master", "sync": True}, on_wake=lambda: woken.append(1))
    await srv.start()
    srv.woken = woken
    yield srv
    await srv.close()


def ask(path: Path, op: str, **fields):
    return asyncio.to_thread(control.request, path, op, **fields)


async def test_the_socket_is_root_only_and_serves_the_state(server: ControlServer):
    assert stat.S_IMODE(os.stat(server.path).st_mode) == 0o600
    assert stat.S_ISSOCK(os.stat(server.path).st_mode)
    answer = await ask(server.path, "state")
    assert answer == {"ok": True, "state": {"role": "master", "sync": True}}
    await ask(server.path, "wake")
    assert server.woken == [1]
    with pytest.raises(ControlError, match="unknown request 'reboot'"):
        await ask(server.path, "reboot")
    assert not [p for p in server.path.parent.iterdir() if p.name.startswith(".")]


async def test_a_caller_that_is_not_root_is_refused(server: ControlServer, monkeypatch):
    monkeypatch.setattr(served, "peer_uid", lambda sock: 1000)
    with pytest.raises(ControlError, match="root only"):
        await ask(server.path, "state")


async def test_events_stream_as_json_lines_recent_first(server: ControlServer):
    server.bus.emit("sync", "pushed to node-b: 1 written", written=["/etc/skutui/x"])
    received: list[dict] = []

    def follow():
        for event in control.stream_events(server.path, recent=5):
            received.append(event)
            if len(received) == 3:
                return

    reader = asyncio.create_task(asyncio.to_thread(follow))
    await wait_until(lambda: len(received) >= 1)
    await asyncio.sleep(0.05)  # the reader is subscribed once it got the recent ones
    server.bus.emit("peer", "node-b (10.0.0.2) is unreachable: refused", level="warning")
    assert await ask(server.path, "post", event={"kind": "role", "message": "backup -> master",
                                                "data": {"role": "master"}}) == {"ok": True}
    await asyncio.wait_for(reader, 5)
    assert [e["kind"] for e in received] == ["sync", "peer", "role"]
    for event in received:
        assert {"time", "node", "kind", "level", "message"} <= set(event)
        assert event["node"] == "node-a" and event["time"].endswith("Z")
    assert received[0]["data"] == {"written": ["/etc/skutui/x"]}
    assert received[1]["level"] == "warning" and received[2]["data"] == {"role": "master"}


async def test_a_reader_that_falls_behind_is_told_and_dropped(server: ControlServer, monkeypatch):
    monkeypatch.setattr(served, "SUBSCRIBER_QUEUE", 3)
    queue = server.bus.subscribe()
    for n in range(5):
        server.bus.emit("sync", f"push {n}")
    assert queue.qsize() == 3 and list(queue._queue)[-1] is None
    server.bus.emit("sync", "after")
    assert queue.qsize() == 3  # no longer subscribed


async def test_one_agent_per_socket_and_stale_sockets_are_replaced(server: ControlServer,
                                                                   tmp_path: Path):
    second = ControlServer(server.path, EventBus("node-a"), dict)
    with pytest.raises(ControlError, match="another skutui agent already serves"):
        await second.start()
    stale_path = tmp_path / "stale.sock"
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(stale_path))
    stale.close()  # what a killed agent leaves behind
    third = ControlServer(stale_path, EventBus("node-a"), lambda: {"fresh": True})
    await third.start()
    try:
        assert (await ask(stale_path, "state"))["state"] == {"fresh": True}
    finally:
        await third.close()
    assert not stale_path.exists()


def test_clients_explain_a_missing_agent(tmp_path: Path):
    with pytest.raises(ControlError, match="agent is not running.*skutui node start"):
        control.request(tmp_path / "none.sock", "state")
    assert control.post_event(tmp_path / "none.sock", "role", "x") is False


async def test_follow_events_yields_the_dicts_the_server_sends(server: ControlServer):
    server.bus.emit("sync", "pushed to node-b: 1 written", written=["/etc/skutui/x"])
    stream = control.follow_events(server.path, recent=5)
    async with contextlib.aclosing(stream):
        first = await asyncio.wait_for(anext(stream), 5)  # subscribed before it was sent
        server.bus.emit("peer", "node-b (10.0.0.2) is unreachable: refused", level="warning")
        await ask(server.path, "post", event={"kind": "role", "message": "backup -> master",
                                              "data": {"role": "master"}})
        rest = [await asyncio.wait_for(anext(stream), 5) for _ in range(2)]
    assert [first, *rest] == server.bus.recent(3)
    assert [e["kind"] for e in rest] == ["peer", "role"]


async def test_follow_events_takes_a_line_of_any_length(server: ControlServer):
    """A sync event names every path it pushed: longer than asyncio's default line limit."""
    written = [f"/etc/skutui/conf.d/{n:06}.cfg" for n in range(5000)]
    server.bus.emit("sync", "reconciled with node-b", written=written)
    async with contextlib.aclosing(control.follow_events(server.path, recent=1)) as stream:
        event = await asyncio.wait_for(anext(stream), 5)
    assert len(json.dumps(event)) > 64 * 1024 and event["data"]["written"] == written


async def test_follow_events_ends_when_the_agent_stops(server: ControlServer):
    received: list[dict] = []

    async def follow() -> None:
        async for event in control.follow_events(server.path):
            received.append(event)

    reader = asyncio.create_task(follow())
    await wait_until(lambda: server.bus._subscribers)
    server.bus.emit("agent", "agent stopping")
    await wait_until(lambda: received)
    await server.close()
    await asyncio.wait_for(reader, 5)
    assert [e["message"] for e in received] == ["agent stopping"]


async def test_follow_events_ends_when_the_agent_dies_mid_line(tmp_path: Path):
    async def dying(reader, writer) -> None:
        await reader.readline()
        writer.write(control.encode({"kind": "agent", "message": "whole"}) + b'{"kind": "sy')
        await writer.drain()
        writer.close()

    path = tmp_path / "dying.sock"
    dead = await asyncio.start_unix_server(dying, str(path))
    try:
        events = [e async for e in control.follow_events(path)]
    finally:
        dead.close()
    assert events == [{"kind": "agent", "message": "whole"}]


async def test_follow_events_explains_a_missing_or_refusing_agent(server: ControlServer,
                                                                  tmp_path: Path, monkeypatch):
    with pytest.raises(ControlError, match="agent is not running.*skutui node start"):
        await anext(control.follow_events(tmp_path / "none.sock"))
    monkeypatch.setattr(served, "peer_uid", lambda sock: 1000)
    with pytest.raises(ControlError, match="refused the event stream: .*root only"):
        await anext(control.follow_events(server.path))


async def test_skutui_events_json_prints_one_object_per_line(server: ControlServer, capsys,
                                                             monkeypatch):
    from skutui.cli.common import CommandError
    from skutui.cli.main import build_parser

    parser = build_parser(["events"])
    monkeypatch.setattr(Paths, "control_socket", property(lambda self: server.path))
    server.bus.emit("replication", "#1 applied on the peer: true", seq=1)
    args = parser.parse_args(["events", "--json", "--recent", "1"])
    reader = asyncio.create_task(asyncio.to_thread(args.func, args))
    await asyncio.sleep(0.2)
    server.bus.emit("service", "haproxy is not running on the master", level="error")
    await asyncio.sleep(0.1)
    await server.close()  # the agent stops: the stream ends and says so
    with pytest.raises(CommandError, match="agent stopped"):
        await asyncio.wait_for(reader, 5)
    lines = capsys.readouterr().out.splitlines()
    events = [json.loads(line) for line in lines]
    assert [e["kind"] for e in events] == ["replication", "service"]
    assert all({"kind", "node", "message", "time"} <= set(e) for e in events)


def test_human_lines_name_time_node_kind_and_level():
    from skutui.cli.events import format_event, format_state

    line = format_event({"time": "2024-05-01T10:00:00.000Z", "node": "node-a", "kind": "sync",
                         "level": "error", "message": "sync to node-b failed"})
    assert line.split()[1:4] == ["node-a", "sync", "ERROR"] and line.endswith("failed")
    text = "\n".join(format_state({"node": "node-a", "role": "master", "sync": True,
                                   "sync_status": {"roots": ["/etc/skutui"]},
                                   "peer": {"name": "node-b", "host": "10.0.0.2", "up": False,
                                            "error": "refused"},
                                   "replication": {"pending": 2, "acked": 7},
                                   "services": {"haproxy": False}}))
    assert "node-b (10.0.0.2) unreachable: refused" in text
    assert "watching /etc/skutui" in text and "2 queued" in text
    assert "haproxy: NOT running" in text


# --- the agent as a whole ---------------------------------------------------------------------

class Node_(LocalNode):
    """This node with a fixed cluster configuration (no keepalived needed)."""

    def __init__(self, paths: Paths, config: ClusterConfig) -> None:
        super().__init__(paths)
        self._config = config

    def config(self) -> ClusterConfig:
        return self._config

    def effective_role(self) -> Role:
        """No keepalived runs here: the role file (and the maintenance flag) say the role."""
        return self.as_held(self.role())


@pytest.fixture
def fast(monkeypatch):
    monkeypatch.setattr(link, "PEER_PROBE_INTERVAL", 0.05)
    monkeypatch.setattr(replication_supervisor, "JOURNAL_POLL_INTERVAL", 0.05)
    monkeypatch.setattr(services, "SERVICE_CHECK_INTERVAL", 0.05)


async def test_the_agent_syncs_replicates_and_reports_only_while_master(tmp_path: Path, fast):
    paths = Paths(config_root=tmp_path / "a" / "etc" / "skutui", run_dir=tmp_path / "a" / "run")
    paths.local_dir.mkdir(parents=True)
    paths.role_file.write_text("master\n")
    cluster = write(paths.config_root / "haproxy.cfg", "global\n", 0o600)
    peer = await start_skutui_peer(tmp_path / "b", paths)
    config = ClusterConfig(interface="eth0", nodes=(Node("node-a", "127.0.0.1"),
                                                    Node("node-b", peer.host)),
                           check_interval=0.05, services=("haproxy",))
    agent = Agent(paths, node=Node_(paths, config), hostname="node-a", guard=False,
                  connect=lambda node, p: connection_to(peer, p),
                  sync_options={"debounce": 0.02}, service_check=lambda name: False,
                  transition=lambda node, state: [])
    task = asyncio.create_task(agent.run())
    received: list[dict] = []
    await wait_until(lambda: paths.agent_state.exists())
    agent.roles.fifo_line('INSTANCE "SKUTUI" MASTER 120')  # keepalived makes it master

    def published() -> dict:
        try:
            return json.loads(paths.agent_state.read_text())
        except (OSError, ValueError):
            return {}

    try:
        await wait_until(lambda: published().get("sync") is True and published().get("peer"))
        await wait_until(lambda: peer.path(str(cluster)).exists()  # contents, then metadata
                         and peer.path(str(cluster)).stat().st_mtime_ns == cluster.stat().st_mtime_ns)
        assert_same(cluster, peer)
        assert published()["role"] == "master" and published()["pid"] == os.getpid()

        def follow():
            for event in control.stream_events(paths.control_socket, recent=50):
                received.append(event)
                if event["kind"] == "replication":
                    return

        reader = asyncio.create_task(asyncio.to_thread(follow))
        Journal(paths.journal_dir).append(["service", "haproxy", "reload"], origin="node-a")
        await asyncio.to_thread(control.request, paths.control_socket, "wake")
        await asyncio.wait_for(reader, 5)
        assert peer.replayed == [["service", "haproxy", "reload"]]
        state = (await asyncio.to_thread(control.request, paths.control_socket, "state"))["state"]
        assert state["sync"] is True and state["peer"]["up"] is True
        assert state["replication"]["pending"] == 0 and state["replication"]["acked"] == 1
        assert state["services"]["haproxy"] is False
        # `skutui exec` waits on the socket until the peer has answered its entry.
        entry = Journal(paths.journal_dir).append(["true"], origin="node-a")
        answer = await asyncio.to_thread(control.request, paths.control_socket, "wake",
                                         seq=entry.seq, wait=5)
        assert answer == {"ok": True, "acked": True, "away": None}
        assert Journal(paths.journal_dir).outcome(entry.seq).ok
        assert peer.replayed[-1] == ["true"]
        answer = await asyncio.to_thread(control.request, paths.control_socket, "wake",
                                         seq=entry.seq + 1, wait=0.1)
        assert answer == {"ok": True, "acked": False, "away": None}, (
            "no such entry: no answer, in time")
        assert sum(1 for c in peer.commands if c.endswith("node replay")) == 1, (
            "one replayer process on the peer serves every entry")

        agent.roles.fifo_line('INSTANCE "SKUTUI" BACKUP 120')
        await wait_until(lambda: published().get("sync") is False)
        write(paths.config_root / "late.cfg", "made on a backup")
        Journal(paths.journal_dir).append(["true"], origin="node-a")
        await asyncio.sleep(0.3)
        assert not peer.path(str(paths.config_root / "late.cfg")).exists()
        assert len(peer.replayed) == 2
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await peer.stop()
    assert not paths.agent_state.exists() and not paths.control_socket.exists()
    kinds = {(e["kind"], e["level"]) for e in received}
    assert {("role", "info"), ("peer", "info"), ("sync", "info"), ("replication", "info"),
            ("service", "error")} <= kinds
    messages = [e["message"] for e in received]
    assert "keepalived moved this node to MASTER" in messages
    assert "haproxy is not running on the master" in messages


def test_a_role_change_is_one_event_whoever_sees_it_first(tmp_path: Path, monkeypatch):
    """keepalived's hook hands a transition over when the FIFO line did not come: the
    agent takes it once, whichever of the two tells first. A change nobody announces is
    announced after the grace period."""
    monkeypatch.setattr(role_supervisor, "ROLE_ANNOUNCE_GRACE", 0.1)
    paths = Paths(config_root=tmp_path / "etc" / "skutui", run_dir=tmp_path / "run")
    paths.local_dir.mkdir(parents=True)
    config = ClusterConfig(interface="eth0", nodes=(Node("node-a", "198.18.0.1"),
                                                    Node("node-b", "198.18.0.2")))
    agent = Agent(paths, node=Node_(paths, config), hostname="node-a", guard=False)

    def roles() -> list[tuple[str, str]]:
        return [(e["data"]["role"], e["message"]) for e in agent.events.recent(50)
                if e["kind"] == "role"]

    agent.roles.note(Role.BACKUP)
    assert roles() == [("backup", "agent started; this node is backup")]
    assert agent.roles.reported("master", Moment.now())  # the hook; the FIFO line was missed
    agent.roles.note(Role.MASTER)
    assert roles()[1:] == [("master", "keepalived moved this node to MASTER")]
    agent.roles.fifo_line('INSTANCE "SKUTUI" MASTER 120')  # the same change, read late
    assert not agent.roles.reported("master", Moment.now())
    assert len(roles()) == 2 and agent.roles.transitions.qsize() == 1

    paths.role_file.write_text("backup\n")  # keepalived died: nobody will say it
    agent.roles.note(Role.BACKUP)
    assert len(roles()) == 2
    time.sleep(0.15)
    agent.roles.note(Role.BACKUP)
    agent.roles.note(Role.BACKUP)
    [(role, message)] = roles()[2:]
    assert role == "backup" and message.startswith("master -> backup: "), message


async def test_keepalived_fifo_lines_write_the_role_announce_it_and_run_it(tmp_path: Path):
    paths = Paths(config_root=tmp_path / "etc" / "skutui", run_dir=tmp_path / "run")
    paths.local_dir.mkdir(parents=True)
    paths.run_dir.mkdir()
    config = ClusterConfig(interface="eth0", nodes=(Node("node-a", "198.18.0.1"),
                                                    Node("node-b", "198.18.0.2")))
    ran: list[str] = []

    def transition(node, state: str) -> list[str]:
        ran.append(state)
        return ["conntrackd -c: no answer"] if state == "master" else []

    agent = Agent(paths, node=Node_(paths, config), hostname="node-a", guard=False,
                  transition=transition)
    agent.roles.note(Role.BACKUP)
    for line in ('INSTANCE "SKUTUI" FAULT 0', 'GROUP "G" MASTER 0', "garbage",
                 'INSTANCE "SKUTUI" FAULT 0', 'INSTANCE "SKUTUI" MASTER 120'):
        agent.roles.fifo_line(line)
    roles = [(e["data"]["role"], e["data"]["cause"], e["message"])
             for e in agent.events.recent(50) if e["kind"] == "role"][1:]
    # FAULT without the operator's maintenance is a fault (a tracked link down), not maintenance.
    assert roles == [("fault", "keepalived FAULT", "keepalived moved this node to FAULT"),
                     ("master", "keepalived MASTER", "keepalived moved this node to MASTER")]
    assert paths.role_file.read_text() == "master\n"
    assert agent.roles.priority == 120, "every line ends with keepalived's effective priority"
    # Each state is run in the order it came, marked done for keepalived's hook, reported.
    while not agent.roles.transitions.empty():
        await agent.roles.run_transition(agent.roles.transitions.get_nowait())
    assert ran == ["fault", "master"], "the same state told twice in a row is one transition"
    mark = read_mark(paths.transition_mark)
    assert mark is not None and (mark.state, mark.phase) == ("master", "done")
    assert mark.at.this_boot() and mark.term == f"{mark.at.boot}/{mark.at.since_boot}"
    [*_, fault, master] = [e for e in agent.events.recent(50) if e["kind"] == "service"]
    assert (fault["message"], fault["level"]) == ("FAULT steps done", "info")
    assert master["message"] == "MASTER steps done; failed steps: conntrackd -c: no answer"
    assert master["level"] == "error" and master["data"]["failed"] == ["conntrackd -c: no answer"]


async def test_keepalived_s_fault_is_maintenance_only_when_the_operator_switched_it_on(tmp_path: Path):
    paths = Paths(config_root=tmp_path / "etc" / "skutui", run_dir=tmp_path / "run")
    paths.local_dir.mkdir(parents=True)
    config = ClusterConfig(interface="eth0", nodes=(Node("node-a", "198.18.0.1"),
                                                    Node("node-b", "198.18.0.2")))
    node = Node_(paths, config)
    seen: list[tuple[str, int]] = []
    agent = Agent(paths, node=node, hostname="node-a", guard=False, transition=lambda node, state: [])
    agent.roles.on_priority = lambda state, priority: seen.append((state, priority))
    agent.roles.note(Role.BACKUP)
    paths.maintenance_flag.write_text("1\n")
    agent.roles.fifo_line('INSTANCE "SKUTUI" FAULT 0')
    assert [e["data"]["role"] for e in agent.events.recent(50) if e["kind"] == "role"][-1] == "maintenance"
    assert node.effective_role() is Role.MAINTENANCE
    paths.maintenance_flag.write_text("0\n")
    assert node.effective_role() is Role.FAULT
    agent.roles.fifo_line('INSTANCE "SKUTUI" MASTER_PRIORITY 1')
    agent.roles.fifo_line('INSTANCE "SKUTUI" BACKUP_PRIORITY 100')
    assert seen == [("fault", 0), ("master", 1), ("backup", 100)]
    assert paths.role_file.read_text() == "maintenance\n", "a priority line moves no role"


async def test_an_agent_without_a_cluster_serves_its_state(tmp_path: Path, fast):
    paths = Paths(config_root=tmp_path / "etc" / "skutui", run_dir=tmp_path / "run")
    agent = Agent(paths, hostname="node-a", guard=False)
    task = asyncio.create_task(agent.run())
    try:
        await wait_until(lambda: paths.agent_state.exists())
        state = (await asyncio.to_thread(control.request, paths.control_socket, "state"))["state"]
        assert state["configured"] is False and state["sync"] is False
        assert state["peer"] is None and state["role"] == Role.UNKNOWN.value
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_the_agent_says_it_is_up_before_its_first_rounds_slow_part(tmp_path: Path, fast):
    """Starting the services at boot can take seconds; the node table must not read the
    agent as down meanwhile."""
    paths = Paths(config_root=tmp_path / "etc" / "skutui", run_dir=tmp_path / "run")
    paths.local_dir.mkdir(parents=True)
    config = ClusterConfig(interface="eth0", nodes=(Node("node-a", "198.18.0.1"),
                                                    Node("node-b", "198.18.0.2")))
    agent = Agent(paths, node=Node_(paths, config), hostname="node-a", guard=False)
    released = asyncio.Event()

    async def slow_keep(config, role) -> None:
        await released.wait()

    agent.keeper.keep = slow_keep
    task = asyncio.create_task(agent.run())
    try:
        await wait_until(lambda: paths.agent_state.exists())
        assert json.loads(paths.agent_state.read_text())["pid"] == os.getpid()
        assert not released.is_set()
    finally:
        released.set()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_the_notify_hook_hands_a_transition_to_the_agent_or_starts_it(
        tmp_path: Path, monkeypatch):
    """`skutui agent notify` runs no step and writes no role: it hands the transition
    over, with the moment the hook reported, or starts an agent that is not running."""
    from skutui.cli.agent import hand_over
    from skutui.system.daemons import AgentDaemon, Keepalived

    paths = Paths(config_root=tmp_path / "etc" / "skutui", run_dir=tmp_path / "run")
    paths.run_dir.mkdir(parents=True)
    handed: list[tuple[str, Moment]] = []
    agent = ControlServer(paths.control_socket, EventBus("node-a"), dict,
                          on_transition=lambda state, at: handed.append((state, at)) or True)
    await agent.start()
    try:
        reported = Moment.now()
        paths.keepalived_report.write_text(f"fault {reported.boot} "
                                           f"{reported.since_boot // 100}.{reported.since_boot % 100:02d}\n")
        said = await asyncio.to_thread(hand_over, paths, "fault")
        assert said == "the transition to fault was handed to the agent"
        assert handed == [("fault", reported)]
    finally:
        await agent.close()
    started: list[str] = []
    monkeypatch.setattr(AgentDaemon, "start", lambda self: started.append("agent"))
    paths.config_root.mkdir(parents=True)
    paths.cluster_file.write_text("")
    keepalived_runs = [True]
    monkeypatch.setattr(Keepalived, "running", lambda self: keepalived_runs[0])
    said = await asyncio.to_thread(hand_over, paths, "master")
    assert said.startswith("no agent answered") and started == ["agent"]
    assert not paths.role_file.exists()
    # keepalived stopped (a node being stopped or rolled back): no agent is started for it.
    keepalived_runs[0] = False
    said = await asyncio.to_thread(hand_over, paths, "backup")
    assert said.endswith("keepalived no longer runs (the node is being stopped): the "
                         "transition to backup is left") and started == ["agent"]


async def test_the_agent_reads_keepalived_s_fifo_even_after_keepalived_made_a_new_one(
        tmp_path: Path, fast, monkeypatch):
    monkeypatch.setattr(role_supervisor, "FIFO_CHECK_INTERVAL", 0.05)
    paths = Paths(config_root=tmp_path / "etc" / "skutui", run_dir=tmp_path / "run")
    paths.local_dir.mkdir(parents=True)
    config = ClusterConfig(interface="eth0", nodes=(Node("node-a", "198.18.0.1"),
                                                    Node("node-b", "198.18.0.2")))
    ran: list[str] = []
    agent = Agent(paths, node=Node_(paths, config), hostname="node-a", guard=False,
                  transition=lambda node, state: ran.append(state) or [])
    events = agent.events.subscribe()
    task = asyncio.create_task(agent.run())

    async def steps_done(state: str) -> None:
        """Until the agent reports the state's steps: it does so once it has marked them
        done for keepalived's hook, so the mark is there to read."""
        while True:
            event = await asyncio.wait_for(events.get(), 5)
            cause = event.get("data", {}).get("cause")
            if event["kind"] == "service" and cause == f"keepalived {state}":
                return

    def keepalived_writes(line: str) -> None:
        fd = os.open(paths.notify_fifo, os.O_WRONLY | os.O_NONBLOCK)
        try:
            os.write(fd, line.encode() + b"\n")
        finally:
            os.close(fd)

    try:
        await wait_until(lambda: paths.notify_fifo.exists())
        assert stat.S_ISFIFO(paths.notify_fifo.stat().st_mode)
        keepalived_writes('INSTANCE "SKUTUI" MASTER 120')
        await steps_done("MASTER")
        assert ran == ["master"]
        # keepalived stopped (removing the FIFO it made) and started again with a new one.
        paths.notify_fifo.unlink()
        os.mkfifo(paths.notify_fifo, 0o600)
        holder = os.open(paths.notify_fifo, os.O_RDWR | os.O_NONBLOCK)  # keepalived's end
        try:
            keepalived_writes('INSTANCE "SKUTUI" BACKUP 120')
            await steps_done("BACKUP")
            assert ran == ["master", "backup"]
        finally:
            os.close(holder)
        assert paths.role_file.read_text() == "backup\n"
        assert paths.transition_mark.read_text().split()[0] == "backup"
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_a_fifo_that_cannot_be_opened_is_reported_and_retried_never_fatal(
        tmp_path: Path, fast, monkeypatch):
    monkeypatch.setattr(role_supervisor, "FIFO_CHECK_INTERVAL", 0.05)
    paths = Paths(config_root=tmp_path / "etc" / "skutui", run_dir=tmp_path / "run")
    paths.local_dir.mkdir(parents=True)
    paths.notify_fifo.mkdir(parents=True)  # something that is no FIFO holds its name
    config = ClusterConfig(interface="eth0", nodes=(Node("node-a", "198.18.0.1"),
                                                    Node("node-b", "198.18.0.2")))
    ran: list[str] = []
    agent = Agent(paths, node=Node_(paths, config), hostname="node-a", guard=False,
                  transition=lambda node, state: ran.append(state) or [])
    task = asyncio.create_task(agent.run())
    try:
        await wait_until(lambda: any("cannot open keepalived's notify FIFO" in e["message"]
                                     for e in agent.events.recent(50)))
        await asyncio.sleep(0.3)
        assert not task.done(), "the agent keeps running"
        said = [e for e in agent.events.recent(50) if "notify FIFO" in e["message"]]
        assert len(said) == 1 and said[0]["level"] == "error", "said once, not every retry"
        paths.notify_fifo.rmdir()
        await wait_until(lambda: stat.S_ISFIFO(paths.notify_fifo.stat().st_mode)
                         if paths.notify_fifo.exists() else False)
        fd = os.open(paths.notify_fifo, os.O_WRONLY | os.O_NONBLOCK)
        try:
            os.write(fd, b'INSTANCE "SKUTUI" FAULT 0\n')
        finally:
            os.close(fd)
        await wait_until(lambda: ran == ["fault"])
        assert any("is read again" in e["message"] for e in agent.events.recent(50))
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_one_agent_per_node_even_when_the_socket_check_would_pass(tmp_path: Path, fast):
    """Two agents started at once both find no socket: the lock, taken before the socket
    is looked at, lets one of them run."""
    paths = Paths(config_root=tmp_path / "etc" / "skutui", run_dir=tmp_path / "run")
    first = Agent(paths, hostname="node-a", guard=False)
    task = asyncio.create_task(first.run())
    try:
        await wait_until(lambda: paths.agent_state.exists())
        paths.control_socket.unlink()  # the second looks before the first bound it
        with pytest.raises(ControlError, match=rf"another skutui agent runs on this node "
                                               rf"\(pid {os.getpid()}, since "):
            await asyncio.wait_for(Agent(paths, hostname="node-a", guard=False).run(), 10)
        assert not task.done()
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
