"""The agent's part in a takeover, on a node in memory: a dead master's hand-over in its
order, the keepalived watch woken by the process's end, the guard steps of the transitions,
and what the cluster link watch reports."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest

from skutui.agent import takeover, transitions
from skutui.agent.cluster_link import ClusterLinkWatch
from skutui.domain import firewall
from skutui.domain.model import ClusterConfig, Node, Role
from skutui.domain.paths import Paths
from skutui.domain.vrrp import Advert, Heard
from skutui.system.firewall import pin_peer_link

CONFIG = ClusterConfig(interface="eth0", nodes=(Node("node-a", "198.18.0.1"), Node("node-b", "198.18.0.2")),
                       floating_ips=("198.18.0.100/24",))
HEARD = Heard(3, 51, 100, 1.0, ("198.18.0.100",))


class Steps(list):
    """Everything the fakes were asked, in order."""


class FakeFirewall:
    def __init__(self, steps: Steps, counts: dict[str, int] | None = None) -> None:
        self.steps = steps
        self.counts = counts or {}

    def guard(self, config, hostname, armed):
        self.steps.append(("guard", armed))

    def counters(self):
        return {name: firewall.Counter(count, count * 32) for name, count in self.counts.items()}


class FakeKeepalived:
    def __init__(self, process: subprocess.Popen | None = None) -> None:
        self.process = process

    def pids(self):
        return [self.process.pid] if self.process and self.process.poll() is None else []

    def running(self):
        return bool(self.pids())


class FakeNode:
    def __init__(self, steps: Steps, role: Role = Role.MASTER, held: list[str] | None = None,
                 keepalived: FakeKeepalived | None = None) -> None:
        self.steps = steps
        self.current = role
        self.held = list(held or [])
        self.firewall = FakeFirewall(steps)
        self.keepalived = keepalived or FakeKeepalived()

    def config(self):
        return CONFIG

    def role(self):
        return self.current

    def floating_ips_held(self, config):
        return list(self.held)

    def release_floating_ips(self, config):
        released, self.held = self.held, []
        self.steps.append(("release", released))
        return released


class FakeListener:
    def __init__(self, steps: Steps, heard: Heard | None = HEARD) -> None:
        self.steps, self.heard = steps, heard

    def __call__(self, interface, local_ip, group):
        self.steps.append(("listen", interface, local_ip, group))
        return self

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.steps.append(("listened",))

    def wait(self, sender, router_id, timeout):
        self.steps.append(("wait", sender, router_id, timeout))
        return self.heard


def sender(steps: Steps, error: OSError | None = None):
    def send(advert: Advert, interface: str) -> None:
        steps.append(("send", advert.priority, advert.destination, interface))
        if error:
            raise error
    return send


def test_a_dead_master_tells_the_peer_then_keeps_the_floating_ips_until_it_is_master():
    steps = Steps()
    node = FakeNode(steps, held=["198.18.0.100/24"])
    leave = takeover.take_leave(node, CONFIG, "node-a", send=sender(steps),
                                listener=FakeListener(steps))
    assert steps == [
        ("guard", True),
        ("listen", "eth0", "198.18.0.1", None),
        ("send", 0, "198.18.0.2", "eth0"),
        ("wait", "198.18.0.2", 51, takeover.handover_timeout(CONFIG, "node-a")),
        ("listened",),
        ("release", ["198.18.0.100/24"]),
    ]
    assert leave.was_master and leave.told == "198.18.0.2" and leave.taken_over is not None
    assert leave.released == ["198.18.0.100/24"] and leave.failed == []
    message = takeover.leave_message(leave, CONFIG, "node-a")
    assert message.startswith("keepalived is not running on this node; told node-b to take over "
                              "now (VRRP priority 0 to 198.18.0.2); node-b was master ")
    assert message.endswith("ms later; released 198.18.0.100/24")


def test_the_peers_whole_master_down_interval_is_waited_for_at_most():
    assert takeover.handover_timeout(CONFIG, "node-a") == pytest.approx(
        3 + 156 / 256 + takeover.HANDOVER_MARGIN)
    failback = ClusterConfig(interface="eth0", nodes=CONFIG.nodes, failback="node-a",
                             check_interval=0.1)
    assert takeover.handover_timeout(failback, "node-a") == pytest.approx(
        0.3 + 206 / 2560 + takeover.HANDOVER_MARGIN)


def test_a_peer_never_heard_as_master_still_gets_the_floating_ips_released():
    steps = Steps()
    node = FakeNode(steps, held=["198.18.0.100/24"])
    leave = takeover.take_leave(node, CONFIG, "node-a", send=sender(steps),
                                listener=FakeListener(steps, heard=None))
    assert leave.taken_over is None and leave.released == ["198.18.0.100/24"]
    assert "node-b was not heard as master" in takeover.leave_message(leave, CONFIG, "node-a")


def test_the_multicast_heartbeat_tells_the_group_and_listens_on_it():
    steps = Steps()
    config = ClusterConfig(interface="eth0", nodes=CONFIG.nodes, floating_ips=CONFIG.floating_ips,
                           heartbeat_transport="multicast")
    takeover.take_leave(FakeNode(steps, held=["198.18.0.100/24"]), config, "node-a",
                        send=sender(steps), listener=FakeListener(steps))
    assert ("listen", "eth0", "198.18.0.1", "224.0.0.18") in steps
    assert ("send", 0, "224.0.0.18", "eth0") in steps


def test_a_backup_whose_keepalived_died_sends_nothing():
    steps = Steps()
    leave = takeover.take_leave(FakeNode(steps, role=Role.BACKUP), CONFIG, "node-b",
                                send=sender(steps), listener=FakeListener(steps))
    assert steps == [("guard", True), ("release", [])]
    assert not leave.was_master and leave.told is None


def test_an_advert_the_kernel_refuses_is_reported_and_the_floating_ips_released():
    steps = Steps()
    leave = takeover.take_leave(FakeNode(steps, held=["198.18.0.100/24"]), CONFIG, "node-a",
                                send=sender(steps, PermissionError(1, "Operation not permitted")),
                                listener=FakeListener(steps))
    assert leave.failed == ["priority-0 advert to 198.18.0.2: Operation not permitted"]
    assert leave.told is None and leave.released == ["198.18.0.100/24"]


async def test_the_watch_takes_leave_when_keepalived_ends_not_at_its_next_look(monkeypatch):
    """A process stands in for keepalived: its end wakes the watch through its pidfd, long
    before the watch would look again."""
    monkeypatch.setattr(takeover, "WATCH_INTERVAL", 60.0)
    steps = Steps()
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    node = FakeNode(steps, held=["198.18.0.100/24"], keepalived=FakeKeepalived(process))
    events: list[tuple[str, str, dict]] = []

    def report(kind, message, **data):
        events.append((kind, message, data))

    watch = takeover.KeepalivedWatch(node, report, lambda: CONFIG, "node-a", send=sender(steps),
                                     listener=FakeListener(steps))
    task = asyncio.create_task(watch.run())
    try:
        await asyncio.sleep(0.3)
        assert steps == [], "keepalived runs: nothing to do"
        process.kill()
        for _ in range(100):
            if events:
                break
            await asyncio.sleep(0.02)
        process.wait()
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert [kind for kind, _, _ in events] == ["service"]
    kind, message, data = events[0]
    assert data["told"] == "198.18.0.2" and data["released"] == ["198.18.0.100/24"]
    assert data["level"] == "warning" and data["service"] == "keepalived"
    assert ("send", 0, "198.18.0.2", "eth0") in steps


async def test_leave_is_taken_once_per_death_and_no_floating_ip_stays_meanwhile():
    steps = Steps()
    node = FakeNode(steps, held=["198.18.0.100/24"])
    events: list[str] = []
    watch = takeover.KeepalivedWatch(node, lambda kind, message, **data: events.append(message),
                                     lambda: CONFIG, "node-a", send=sender(steps),
                                     listener=FakeListener(steps))
    assert (await watch.check()) is not None
    assert await watch.check() is None
    node.held = ["198.18.0.100/24"]  # something put it back while keepalived stays dead
    assert await watch.check() is None
    assert events[-1] == "keepalived is not running: released floating IPs 198.18.0.100/24"
    assert [step for step in steps if step[0] == "send"] == [("send", 0, "198.18.0.2", "eth0")]


def test_the_master_steps_disarm_the_guard_right_after_the_commit(monkeypatch):
    steps = Steps()
    node = FakeNode(steps)
    monkeypatch.setattr(transitions, "_conntrack_steps",
                        lambda node, flags: [steps.append(("conntrackd", *f)) for f in flags] and [])
    assert transitions.to_master(node) == []
    assert steps == [("conntrackd", "-c"), ("guard", False), ("conntrackd", "-f"),
                     ("conntrackd", "-R"), ("conntrackd", "-B")]
    steps.clear()
    transitions.to_fault(node)
    assert steps[0] == ("guard", True)
    steps.clear()
    node.conntrackd = FakeKeepalived(subprocess.Popen([sys.executable, "-c", "pass"]))
    node.conntrackd.process.wait()
    node.conntrackd.start = lambda: steps.append(("conntrackd start",))
    transitions.to_backup(node)
    assert steps[:2] == [("guard", True), ("conntrackd start",)]


# --- the cluster link watch --------------------------------------------------------------------


async def test_foreign_vrrp_is_reported_once_per_burst_and_published(tmp_path: Path, monkeypatch):
    monkeypatch.setattr("skutui.agent.cluster_link.neighbour_link_address", lambda nic, ip: None)
    paths = Paths(config_root=tmp_path / "etc", run_dir=tmp_path / "run")
    steps = Steps()
    node = FakeNode(steps)
    node.firewall.counts = {firewall.FOREIGN_VRRP: 0}
    events: list[tuple[str, str, dict]] = []
    watch = ClusterLinkWatch(node, paths, lambda kind, message, **data: events.append((kind, message, data)),
                             lambda: CONFIG, "node-a")
    await watch.check()
    assert events == [] and watch.status()["dropped"] == {firewall.FOREIGN_VRRP: 0}
    node.firewall.counts[firewall.FOREIGN_VRRP] = 40
    await watch.check()
    node.firewall.counts[firewall.FOREIGN_VRRP] = 90
    await watch.check()
    assert len(events) == 1
    kind, message, data = events[0]
    assert kind == "link" and data == {"level": "warning", "counter": "foreign_vrrp", "dropped": 40}
    assert message.startswith("dropped 40 VRRP adverts for this cluster's router id 51 on eth0")
    status = watch.status()
    assert status["dropped"] == {firewall.FOREIGN_VRRP: 90}
    assert firewall.FOREIGN_VRRP in status["last_rise"]


async def test_the_peer_answering_from_another_mac_is_reported_once(tmp_path: Path, monkeypatch):
    seen = {"address": "02:00:c6:12:00:99"}
    monkeypatch.setattr("skutui.agent.cluster_link.neighbour_link_address",
                        lambda nic, ip: seen["address"])
    paths = Paths(config_root=tmp_path / "etc", run_dir=tmp_path / "run")
    pin_peer_link(paths, "198.18.0.2", "02:00:c6:12:00:02")
    events: list[dict] = []
    watch = ClusterLinkWatch(FakeNode(Steps()), paths, lambda kind, message, **data: events.append(data),
                             lambda: CONFIG, "node-a")
    await watch.check()
    await watch.check()
    assert events == [{"level": "error", "pinned": "02:00:c6:12:00:02", "seen": "02:00:c6:12:00:99"}]
    assert watch.status()["peer_link_seen"] == "02:00:c6:12:00:99"
    seen["address"] = "02:00:c6:12:00:02"
    await watch.check()
    assert len(events) == 1
