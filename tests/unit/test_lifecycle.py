"""Create, edit, destroy and maintenance through the operations API, on two nodes in memory:
the order of the steps, what each node holds afterwards, and that any failure, an
interruption included, puts both nodes back as they were and says so. No root, no lab."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from skutui.cluster import drill, lifecycle, transaction
from skutui.cluster.lifecycle import master_down
from skutui.cluster.operations import ClusterOperations
from skutui.domain.errors import BadInput, Failed, Interrupted, Refused, ValidationError
from skutui.domain.model import Role
from skutui.domain.values import format_seconds
from skutui.domain.wire import EditRequest
from tests.unit.fake_nodes import (
    FINGERPRINT,
    LINK_ADDRESSES,
    A,
    B,
    Connected,
    Pair,
    cluster,
    operations,
    request,
)


@pytest.fixture(autouse=True)
def quick(monkeypatch):
    """A settled cluster at once: no wait for a notify that the fakes never delay, and a
    short election bound for the nodes that never settle."""
    monkeypatch.setattr(lifecycle, "NOTIFY_MARGIN", 0.0)
    monkeypatch.setattr(lifecycle, "ELECTION_MARGIN", 0.2)
    monkeypatch.setattr(transaction, "RESTORE_RETRY_DELAY", 0.0)


@pytest.fixture
def pair() -> Pair:
    return Pair()


@pytest.fixture
def ops(pair: Pair, tmp_path: Path) -> ClusterOperations:
    return operations(pair, tmp_path)


def untouched(pair: Pair) -> bool:
    return all(node.cluster is None and not node.running and node.pinned is None
               for node in pair.nodes)


# --- create ----------------------------------------------------------------------------------


async def test_create_erases_the_peer_configures_both_and_starts_this_node_first(pair, ops, tmp_path):
    lines: list[str] = []
    config = await ops.create(request(), lines.append)

    assert config.nodes == (A, B) and config.interface == "eth0"
    assert config.floating_ips == ("198.18.0.100/24",) and config.check_interval == 0.1
    assert config.synced_paths == (str(tmp_path / "etc"),)
    assert pair.steps() == [
        ("node-a", "inventory"), ("node-b", "inventory"),
        ("node-a", "snapshot"), ("node-b", "snapshot"),
        ("node-b", "erase"),
        ("node-a", "apply", config), ("node-b", "apply", config),
        ("node-a", "pin_peer_link", B.ip, LINK_ADDRESSES["node-b"]),
        ("node-b", "pin_peer_link", A.ip, LINK_ADDRESSES["node-a"]),
        ("node-a", "start"), ("node-b", "start"),
    ]
    assert pair.a.cluster == pair.b.cluster == config
    assert pair.a.pinned == (B.ip, LINK_ADDRESSES["node-b"])
    assert pair.b.pinned == (A.ip, LINK_ADDRESSES["node-a"])
    assert (pair.a.current_role, pair.b.current_role) == (Role.MASTER, Role.BACKUP)
    assert pair.authenticated == [(B.ip, A.ip)]
    assert pair.connected == [Connected(B.ip, B.ip)]
    hold = format_seconds(lifecycle.master_down(config, "node-b"))
    assert lines == [
        "Connecting to 198.18.0.2",
        f"Host key of 198.18.0.2: {FINGERPRINT}",
        "Listening for other VRRP routers for 0.3 s",
        "Erasing the cluster configuration of node-b",
        "Writing the configuration on node-a",
        "Writing the configuration on node-b",
        f"Pinning MAC addresses: node-a {LINK_ADDRESSES['node-a']}, "
        f"node-b {LINK_ADDRESSES['node-b']}",
        "Starting node-a",
        "node-a is master",
        "Starting node-b",
        "node-b is backup",
        f"Checking for {hold} s that node-b hears node-a",
        "Cluster created: node-a and node-b",
    ]


async def test_create_with_failback_to_the_peer_waits_for_it_to_take_over(pair, ops):
    lines: list[str] = []
    config = await ops.create(request(failback="remote"), lines.append)
    assert config.failback == "node-b"
    assert (pair.a.current_role, pair.b.current_role) == (Role.BACKUP, Role.MASTER)
    started = lines.index("Starting node-b")
    assert lines[started:started + 3] == ["Starting node-b", "node-b is master", "node-a is backup"]


async def test_create_refuses_when_a_check_fails_and_changes_nothing(pair, ops):
    pair.b.version = "0.0.9"
    with pytest.raises(Failed, match=r"^pre-flight failed: Same skutui version: "
                                     r"0\.1\.0 here, 0\.0\.9 on the peer$"):
        await ops.create(request(), lambda line: None)
    assert [step for _, step, *_ in pair.steps()] == ["inventory", "inventory"]
    assert untouched(pair)


STEPS = [("node-b", "erase"), ("node-a", "apply"), ("node-b", "apply"),
         ("node-a", "pin_peer_link"), ("node-b", "pin_peer_link"), ("node-a", "start"),
         ("node-b", "start"), ("node-a", "facts"), ("node-b", "facts")]


@pytest.mark.parametrize("name,step", STEPS, ids=[f"{n}-{s}" for n, s in STEPS])
async def test_any_failed_step_rolls_both_nodes_back(pair, ops, name, step):
    node = pair.a if name == "node-a" else pair.b
    node.fail[step] = Failed(f"{name}: {step} went wrong")
    lines: list[str] = []
    with pytest.raises(Failed) as raised:
        await ops.create(request(), lines.append)

    assert str(raised.value) == f"{name}: {step} went wrong; both nodes were rolled back as they were"
    assert type(raised.value) is Failed
    assert untouched(pair)
    after = pair.steps("set_maintenance")
    rollback = after[after.index(("node-a", "stop")):]
    assert rollback == [("node-a", "stop"), ("node-b", "stop"),
                        ("node-b", "restore"), ("node-a", "restore")]
    assert lines[-3:] == [f"Failed: {name}: {step} went wrong", "Rolling back node-b",
                          "Rolling back node-a"]
    assert "Cluster created: node-a and node-b" not in lines


async def test_a_peer_that_does_not_hear_this_node_is_split_brain_and_rolled_back(pair, ops):
    reads = []

    def deafen() -> None:
        reads.append(1)
        if len(reads) == 2:  # seen as backup once, then VRRP is lost
            pair.b.deaf = True
            pair.elect()

    pair.b.before["facts"] = deafen
    with pytest.raises(Failed) as raised:
        await ops.create(request(), lambda line: None)
    message = str(raised.value)
    assert message.startswith("node-b made itself master instead of staying backup")
    assert "split brain" in message and "between 198.18.0.1 and 198.18.0.2" in message
    assert message.endswith("; both nodes were rolled back as they were")
    assert untouched(pair)


async def test_a_peer_that_takes_the_master_role_before_it_is_held_is_split_brain(pair, ops):
    """node-b read as backup at its first look, then made itself master, and node-a heard its
    adverts and stepped down before it was read again: the cause is still node-b's."""
    reads = []

    def overtaken() -> None:
        reads.append(1)
        if len(reads) == 2:  # master after its own start; then node-b's start overtakes it
            pair.b.deaf = True
            pair.b.current_role = Role.MASTER
            pair.a.current_role = Role.BACKUP

    pair.a.before["facts"] = overtaken
    lines: list[str] = []
    with pytest.raises(Failed) as raised:
        await ops.create(request(), lines.append)
    assert "node-b is backup" in lines
    assert str(raised.value).startswith("node-b made itself master instead of staying backup")
    assert untouched(pair)


async def test_a_master_stepping_down_while_the_cluster_settles_is_named(pair, ops):
    reads = []

    def step_down() -> None:
        reads.append(1)
        if len(reads) == 3:  # master, master again (with node-b), then it steps down
            pair.a.current_role = Role.BACKUP

    pair.a.before["facts"] = step_down
    with pytest.raises(Failed, match="^node-a turned backup instead of staying master while "
                                     "the cluster settled; both nodes were rolled back"):
        await ops.create(request(), lambda line: None)
    assert untouched(pair)


async def test_a_node_that_never_takes_its_role_is_a_failure(pair, ops):
    pair.b.deaf = True  # master as soon as it starts: never the backup it should be
    with pytest.raises(Failed, match="^node-b made itself master instead of staying backup: it "
                                     "does not hear the other node's VRRP adverts.*both nodes "
                                     "were rolled back as they were$"):
        await ops.create(request(), lambda line: None)
    assert untouched(pair)


async def test_ctrl_c_during_create_is_interrupted_and_rolled_back(pair, ops):
    pair.b.fail["start"] = KeyboardInterrupt()
    lines: list[str] = []
    with pytest.raises(Interrupted) as raised:
        await ops.create(request(), lines.append)
    assert str(raised.value) == "interrupted; both nodes were rolled back as they were"
    assert raised.value.exit_code == 130
    assert untouched(pair)
    assert lines[-2:] == ["Rolling back node-b", "Rolling back node-a"]


async def test_a_cancelled_create_is_interrupted_and_rolled_back(pair, ops):
    """What asyncio.run does on Ctrl+C: the running task is cancelled."""
    started = asyncio.Event()

    async def hang() -> None:
        started.set()
        await asyncio.Event().wait()

    pair.b.before["apply"] = hang
    task = asyncio.create_task(ops.create(request(), lambda line: None))
    await started.wait()
    task.cancel()
    with pytest.raises(Interrupted, match="^interrupted; both nodes were rolled back as they were$"):
        await task
    assert untouched(pair)
    assert ("node-a", "restore") in pair.log and ("node-b", "restore") in pair.log


async def test_a_rollback_that_fails_too_says_so(pair, ops):
    pair.b.fail["start"] = Failed("node-b: keepalived did not start")
    pair.b.fail["restore"] = Failed("node-b: lost the SSH connection")
    lines: list[str] = []
    with pytest.raises(Failed) as raised:
        await ops.create(request(), lines.append)
    assert str(raised.value) == ("node-b: keepalived did not start; rollback incomplete: "
                                 "node-b: node-b: lost the SSH connection; the next skutui "
                                 "command on this node tries again")
    assert pair.a.record is not None and pair.a.holder is None, "kept for the next command"
    assert "rolled back as they were" not in str(raised.value)
    assert pair.log.count(("node-b", "restore")) == transaction.RESTORE_ATTEMPTS
    assert pair.a.cluster is None and not pair.a.running, "this node was still restored"


async def test_a_node_that_cannot_be_stopped_is_still_restored(pair, ops):
    pair.b.fail["start"] = Failed("node-b: keepalived did not start")
    pair.b.fail["stop"] = Failed("node-b: lost the SSH connection")
    with pytest.raises(Failed, match="; both nodes were rolled back as they were$"):
        await ops.create(request(), lambda line: None)
    assert ("node-b", "restore") in pair.log and untouched(pair)


async def test_an_interrupted_create_whose_rollback_fails_says_the_rollback_failed(pair, ops):
    pair.a.fail["start"] = KeyboardInterrupt()
    pair.a.fail["restore"] = OSError("disk full")
    with pytest.raises(Failed, match="rollback incomplete: node-a: disk full; the next"):
        await ops.create(request(), lambda line: None)


# --- locks and rollback records ------------------------------------------------------------


async def test_a_change_writes_both_snapshots_before_its_first_step_and_removes_them(pair, ops):
    seen: dict[str, object] = {}

    def at_erase() -> None:
        seen["a"], seen["b"] = pair.a.record, pair.b.record

    pair.b.before["erase"] = at_erase
    await ops.create(request(), lambda line: None)
    a, b = seen["a"], seen["b"]
    assert a is not None and b is not None
    assert a.change.what == "cluster create" and a.change.node == "node-a"
    assert len(a.snapshots) == 2 and a.snapshots[1]["config"] is None, "both, on this node"
    assert len(b.snapshots) == 1, "the peer keeps its own"
    assert pair.a.record is None and pair.b.record is None
    assert pair.a.holder is None and pair.b.holder is None
    [first, *_] = [step for step in pair.log if step[1] not in ("facts", "config")
                   and step[1] != "inventory"]
    assert first == ("node-a", "begin_change", "cluster create")


async def test_two_concurrent_edits_one_is_refused_naming_the_other(pair, ops, tmp_path):
    pair.configured(cluster())
    first_running = asyncio.Event()
    go_on = asyncio.Event()

    async def slow_apply() -> None:
        first_running.set()
        await go_on.wait()

    pair.a.before["apply"] = slow_apply
    first = asyncio.create_task(ops.edit(EditRequest({"check_interval": 0.5})))
    await asyncio.wait_for(first_running.wait(), 5)
    del pair.a.before["apply"]
    second = operations(pair, tmp_path / "second console")
    with pytest.raises(Failed, match=r"^another change is under way on node-a since \d\d:\d\d, "
                                     r"by pid \d+ \(cluster edit\)$"):
        await second.edit(EditRequest({"check_interval": 2}))
    with pytest.raises(Failed, match="another change is under way on node-a"):
        await second.set_maintenance("remote", True)
    go_on.set()
    await asyncio.wait_for(first, 5)
    assert pair.a.cluster.check_interval == 0.5 and pair.b.cluster.check_interval == 0.5
    assert not pair.b.maintenance
    assert await second.edit(EditRequest({"check_interval": 2})), "free again once it ended"


async def test_a_change_the_peer_holds_is_refused_and_this_node_is_let_go(pair, ops):
    pair.configured(cluster())
    from skutui.system.change import Change

    pair.b.holder = Change("cluster create", "node-b", pid=4242)
    with pytest.raises(Failed, match=r"^another change is under way on node-b since "
                                     r"\d\d:\d\d, by pid 4242 \(cluster create\)"):
        await ops.edit(EditRequest({"check_interval": 0.5}))
    assert pair.a.holder is None and pair.a.record is None
    assert pair.a.cluster.check_interval == 0.1


async def test_a_killed_create_is_rolled_back_on_both_nodes_by_the_next_command(pair, ops,
                                                                            tmp_path):
    """SIGKILL runs no code: what it leaves is each node as it was at that moment, with
    its rollback record and without its lock. The next command finishes the rollback."""
    left: dict = {}

    def killed_here() -> None:
        left.update({node.hostname: (node.cluster, node.running, node.current_role, node.record)
                     for node in pair.nodes})
        raise KeyboardInterrupt  # stop the fake create here; its own rollback is undone below

    pair.b.before["start"] = killed_here
    with pytest.raises(Interrupted):
        await ops.create(request(), lambda line: None)
    for node in pair.nodes:  # as SIGKILL left them: started half-way, records on disk
        node.cluster, node.running, node.current_role, node.record = left[node.hostname]
        node.killed()
    assert pair.a.running and pair.a.cluster is not None and pair.b.cluster is not None
    del pair.b.before["start"]
    said: list[str] = []
    message = await operations(pair, tmp_path).finish_interrupted(said.append)
    assert message is not None and message.startswith(
        "finished rolling back the interrupted cluster create (started ")
    assert message.endswith("node-a and node-b are as they were before it")
    assert untouched(pair) and pair.a.record is None and pair.b.record is None
    assert await operations(pair, tmp_path).finish_interrupted(said.append) is None


async def test_an_interrupted_change_on_the_peer_is_left_to_the_node_that_started_it(pair, ops):
    from skutui.system.change import Change, Record

    pair.a.record = Record(Change("cluster edit", "node-b", pid=77), [{"config": None}])
    message = await ops.finish_interrupted()
    assert message is not None and "node-b rolls it back at its next skutui command" in message
    assert "skutui node recover --here" in message and pair.a.record is not None
    with pytest.raises(Failed, match="interrupted cluster edit.*has not been rolled back"):
        await ops.create(request(), lambda line: None)


SIGNALS = """
import asyncio, os, signal, sys
from pathlib import Path
from tests.unit.fake_nodes import Pair, operations, request
from skutui.cluster import transaction
from skutui.domain.errors import SkutuiError

transaction.RESTORE_RETRY_DELAY = 0
pair = Pair()
ops = operations(pair, Path(sys.argv[1]))
pair.b.before["start"] = lambda: os.kill(os.getpid(), signal.{first})
pair.a.before["restore"] = lambda: os.kill(os.getpid(), signal.{second})

async def main():
    try:
        await ops.create(request(), lambda line: None)
    except SkutuiError as exc:
        print(type(exc).__name__, exc)
    print("a", pair.a.cluster is None and not pair.a.running, "b", pair.b.cluster is None and not pair.b.running)
    print("restored", [n for n, op, *_ in pair.log if op == "restore"])

asyncio.run(main())
"""


@pytest.mark.parametrize("first, second", [("SIGHUP", "SIGINT"), ("SIGTERM", "SIGHUP"),
                                           ("SIGINT", "SIGINT")])
def test_sighup_and_sigterm_roll_back_and_no_signal_stops_a_rollback(tmp_path, first, second):
    """The operator's SSH session drops (SIGHUP) in the middle of a create, and a second
    signal (Ctrl+C, another hang-up) comes while the nodes are put back: both nodes still
    end as they were, and the command ends saying so."""
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-c", SIGNALS.format(first=first, second=second),
                             str(tmp_path)], capture_output=True, text=True, timeout=60,
                            cwd=Path(__file__).parents[2])
    assert result.stdout.splitlines() == [
        f"Interrupted interrupted; {transaction.ROLLED_BACK}", "a True b True",
        "restored ['node-b', 'node-a']"], result.stdout + result.stderr


# --- edit ----------------------------------------------------------------------------------


async def test_edit_applies_and_reloads_both_nodes_and_lists_what_changed(pair, ops):
    pair.configured(cluster())
    lines = await ops.edit(EditRequest({"check_interval": 0.5, "failback": "local"}), lambda line: None)
    assert lines == ["Failback: disabled -> node-a (this node)", "Check interval: 0.1 s -> 0.5 s"]
    updated = cluster(check_interval=0.5, failback="node-a")
    assert pair.a.cluster == pair.b.cluster == updated
    assert pair.steps() == [("node-a", "snapshot"), ("node-b", "snapshot"),
                            ("node-b", "apply", updated), ("node-a", "apply", updated),
                            ("node-b", "reload"), ("node-a", "reload")]


async def test_edit_with_nothing_to_change_touches_nothing(pair, ops):
    pair.configured(cluster())
    assert await ops.edit(EditRequest({"check_interval": 0.1}), lambda line: None) == []
    assert pair.steps() == []


async def test_edit_of_tracked_interfaces_checks_the_links_of_both_nodes(pair, ops):
    pair.configured(cluster())
    assert await ops.edit(EditRequest({"tracked_interfaces": ("eth2",)}), lambda line: None) == [
        "Tracked interfaces: eth0 -> eth0, eth2"]
    with pytest.raises(ValidationError, match="^Tracked interface eth9 does not exist on this node; "):
        await ops.edit(EditRequest({"tracked_interfaces": ("eth9",)}), lambda line: None)
    pair.b.links = ["lo", "eth0"]
    before = pair.b.cluster
    with pytest.raises(ValidationError, match="^Tracked interface eth1 does not exist on node-b; enter links "
                                              "both nodes have: eth0, lo.$"):
        await ops.edit(EditRequest({"tracked_interfaces": ("eth1",)}), lambda line: None)
    assert pair.b.cluster == before


async def test_edit_places_a_floating_ip_on_a_link_both_nodes_have(pair, ops):
    pair.configured(cluster())
    assert await ops.edit(EditRequest({"floating_ips": ("198.18.0.100/24", "203.0.113.9/24@eth1")}),
                          lambda line: None) == [
        "Floating IPs: 198.18.0.100/24 -> 198.18.0.100/24, 203.0.113.9/24@eth1"]
    assert pair.b.cluster.placed_floating_ips == (("198.18.0.100/24", "eth0"), ("203.0.113.9/24", "eth1"))
    pair.b.links = ["lo", "eth0"]
    with pytest.raises(ValidationError, match="link eth2 does not exist on node-b"):
        await ops.edit(EditRequest({"floating_ips": ("203.0.113.9/24@eth2",)}), lambda line: None)


async def test_edit_of_services_and_synced_paths_reaches_both_nodes(pair, ops):
    pair.configured(cluster())
    lines = await ops.edit(EditRequest({"services": "nginx", "services_on_both": "haproxy",
                                        "synced_paths": "/etc/skutui,/etc/haproxy"}), lambda line: None)
    assert lines == ["Synced paths: /etc/skutui -> /etc/skutui, /etc/haproxy",
                     "Services: none -> nginx", "Services on both: none -> haproxy"]
    assert pair.a.cluster == pair.b.cluster
    assert (pair.b.cluster.services, pair.b.cluster.services_on_both) == (("nginx",), ("haproxy",))
    with pytest.raises(ValidationError, match="^Service nginx is listed in both Services and Services on both"):
        await ops.edit(EditRequest({"services_on_both": "haproxy,nginx"}), lambda line: None)


@pytest.mark.parametrize("key,value", [("interface", "eth1"), ("virtual_router_id", 52),
                                       ("colour", "red")])
async def test_edit_refuses_what_cannot_be_changed_on_a_running_cluster(pair, ops, key, value):
    pair.configured(cluster())
    with pytest.raises(BadInput, match=f"^{key} cannot be changed on a running cluster.$"):
        await ops.edit(EditRequest({key: value}), lambda line: None)
    assert pair.steps() == []


async def test_a_failed_edit_puts_the_files_back_without_stopping_anything(pair, ops):
    pair.configured(cluster())
    pair.b.fail["reload"] = Failed("node-b: keepalived refuses the rendered configuration")
    lines: list[str] = []
    with pytest.raises(Failed, match="^node-b: keepalived refuses the rendered configuration; "
                                     "both nodes were rolled back as they were$"):
        await ops.edit(EditRequest({"check_interval": 0.5}), lines.append)
    assert pair.a.cluster == pair.b.cluster == cluster()
    assert all(node.running for node in pair.nodes)
    assert not [entry for entry in pair.log if entry[1] == "stop"]
    assert lines[-2:] == ["Rolling back node-b", "Rolling back node-a"]


async def test_edit_is_refused_on_the_backup_and_without_a_cluster(pair, ops):
    with pytest.raises(Failed, match="^No cluster is configured on this node.$"):
        await ops.edit(EditRequest({"check_interval": 0.5}), lambda line: None)
    pair.configured(cluster(), master=pair.b)
    with pytest.raises(Failed, match=r"^This node \(node-a\) is not the master; change the "
                                     r"configuration on the master node-b \(198\.18\.0\.2\)\.$"):
        await ops.edit(EditRequest({"check_interval": 0.5}), lambda line: None)
    assert pair.steps() == []


# --- destroy ---------------------------------------------------------------------------------


async def test_destroy_erases_the_backup_first_then_this_node(pair, ops):
    pair.configured(cluster())
    lines: list[str] = []
    assert await ops.destroy(lines.append) == []
    assert pair.steps() == [("node-b", "erase"), ("node-a", "erase")]
    assert lines == ["Stopping and erasing node-b", "Stopping and erasing node-a"]
    assert untouched(pair)
    assert pair.b.closed == 1, "the connection to the peer is closed"


async def test_destroy_with_the_peer_unreachable_warns_and_still_cleans_this_node(pair, ops):
    pair.configured(cluster())
    pair.b.fail["erase"] = Failed("cannot reach 198.18.0.2: connection refused")
    assert await ops.destroy(lambda line: None) == [
        "node-b was not cleaned (cannot reach 198.18.0.2: connection refused); "
        "run `skutui node erase` on it"]
    assert pair.a.cluster is None and not pair.a.running
    assert pair.b.cluster is not None


async def test_destroy_is_refused_on_the_backup(pair, ops):
    pair.configured(cluster(), master=pair.b)
    with pytest.raises(Failed, match="is not the master"):
        await ops.destroy(lambda line: None)
    assert all(node.cluster is not None for node in pair.nodes)


# --- maintenance ------------------------------------------------------------------------------


async def test_maintenance_of_the_master_hands_over_first_and_says_so(pair, ops):
    """The peer commits the connection state, then takes the floating IPs while this node
    still holds them; only then does this node enter maintenance."""
    pair.configured(cluster())
    message = await ops.set_maintenance("local", True)
    assert message == ("node-a is in maintenance; node-b committed the connection state and took over "
                       "the floating IPs (198.18.0.100/24) in 0.5 s, before this node let them go")
    assert [entry[:2] for entry in pair.steps()] == [
        ("node-b", "commit_connections"), ("node-a", "hand_over"), ("node-a", "set_maintenance")]
    timeout = [entry for entry in pair.log if entry[1] == "hand_over"][0][2]
    assert timeout == pytest.approx(master_down(cluster(), "node-b") + 2.0)
    assert (pair.a.current_role, pair.b.current_role) == (Role.MAINTENANCE, Role.MASTER)
    assert await ops.set_maintenance("local", False) == "node-a left maintenance and rejoins the cluster"
    assert (pair.a.current_role, pair.b.current_role) == (Role.BACKUP, Role.MASTER)


@pytest.mark.parametrize("peer_state,reason", [
    ("stopped", "node-b cannot take over (backup, FAILURE: not ready to take over: keepalived is down, "
                "conntrackd is down, agent is down)"),
    ("maintenance", "node-b cannot take over (maintenance, MAINTENANCE: Node in maintenance mode)"),
    ("service down", "node-b cannot take over (backup, FAILURE: not ready to take over: haproxy is down)"),
    ("unreachable", "node-b cannot take over (unknown, UNREACHABLE: Node unreachable)"),
])
async def test_maintenance_of_the_master_is_refused_when_the_peer_cannot_take_over(pair, ops, peer_state, reason):
    pair.configured(cluster())
    if peer_state == "stopped":
        pair.b.running = False
    elif peer_state == "maintenance":
        pair.b.maintenance, pair.b.current_role = True, Role.MAINTENANCE
    elif peer_state == "service down":
        pair.b.services_down = ["haproxy"]
    else:
        pair.b.fail["facts"] = Failed("cannot reach 198.18.0.2")
    with pytest.raises(Refused) as refused:
        await ops.set_maintenance("local", True)
    assert str(refused.value) == (
        f"Maintenance refused: node-a is the master and {reason}, so nobody would serve the floating "
        "IPs (198.18.0.100/24). Fix the peer first, or add --force to put node-a in maintenance anyway "
        "and leave them unserved.")
    assert pair.steps() == [] and pair.a.current_role is Role.MASTER and not pair.a.maintenance

    message = await ops.set_maintenance("local", True, force=True)
    assert message == (f"node-a is in maintenance; {reason}: the floating IPs (198.18.0.100/24) are "
                       "UNSERVED until one of the nodes can hold them again")
    assert [entry[:2] for entry in pair.steps()] == [("node-a", "set_maintenance")]


@pytest.fixture
def quick_catch_up(monkeypatch) -> None:
    monkeypatch.setattr("skutui.cluster.rows.CATCH_UP_POLL", 0.01)


def facts_read(pair: Pair, node: str) -> int:
    return sum(1 for entry in pair.log if entry[:2] == (node, "facts"))


async def test_maintenance_of_the_master_waits_for_the_push_under_way(pair, ops, quick_catch_up):
    """Just after a change the master's sync is still pushing it, and the backup is not
    ready to take over for those moments; maintenance waits for the push, not refuses."""
    pair.configured(cluster())
    pair.a.unpushed = 3
    message = await ops.set_maintenance("local", True)
    assert message.startswith("node-a is in maintenance; node-b committed the connection state")
    assert facts_read(pair, "node-a") == 4 and pair.a.unpushed == 0
    assert (pair.a.current_role, pair.b.current_role) == (Role.MAINTENANCE, Role.MASTER)


async def test_maintenance_waits_for_a_push_only_so_long(pair, ops, quick_catch_up, monkeypatch):
    monkeypatch.setattr("skutui.cluster.rows.CATCH_UP", 0.1)
    pair.configured(cluster())
    pair.a.unpushed, pair.a.stalled = 1, True
    with pytest.raises(Refused, match=r"node-b cannot take over \(backup, FAILURE: not ready to "
                                      r"take over: sync behind\)"):
        await ops.set_maintenance("local", True)
    assert facts_read(pair, "node-a") > 1
    assert pair.steps() == [] and pair.a.current_role is Role.MASTER and not pair.a.maintenance


async def test_a_peer_that_lacks_more_than_a_push_is_refused_at_once(pair, ops, quick_catch_up):
    pair.configured(cluster())
    pair.a.unpushed, pair.a.stalled = 1, True
    pair.b.services_down = ["haproxy"]
    with pytest.raises(Refused, match="not ready to take over: sync behind, haproxy is down"):
        await ops.set_maintenance("local", True)
    assert facts_read(pair, "node-a") == 1


async def test_a_drill_waits_for_the_push_under_way_and_no_longer(pair, quick_catch_up, monkeypatch):
    pair.configured(cluster())
    pair.a.unpushed = 3
    mine, theirs = await drill.check(pair.a, pair.b, cluster(), "node-a", "node-b")
    assert (mine.role, theirs.role, pair.a.unpushed) == (Role.MASTER, Role.BACKUP, 0)
    monkeypatch.setattr("skutui.cluster.rows.CATCH_UP", 0.1)
    pair.a.unpushed, pair.a.stalled = 1, True
    with pytest.raises(drill.DrillRefused, match="node-b could not take over now: the master's "
                                                 "sync: 1 change"):
        await drill.check(pair.a, pair.b, cluster(), "node-a", "node-b")


async def test_a_handover_the_peer_does_not_take_leaves_this_node_master(pair, ops):
    pair.configured(cluster())
    pair.a.fail["hand_over"] = Failed("the peer did not take over the floating IPs within 2.6 s; "
                                      "node-a stays master")
    with pytest.raises(Failed, match="node-a stays master"):
        await ops.set_maintenance("local", True)
    assert not pair.a.maintenance and pair.a.current_role is Role.MASTER


async def test_maintenance_of_the_backup_says_the_master_keeps_serving(pair, ops):
    pair.configured(cluster())
    assert await ops.set_maintenance("remote", True) == (
        "node-b is in maintenance; node-a keeps serving the floating IPs, with no backup until node-b "
        "leaves maintenance")
    assert pair.connected == [Connected(B.ip, B.hostname)]
    assert ("node-b", "set_maintenance", True) in pair.log
    assert pair.b.current_role is Role.MAINTENANCE


async def test_maintenance_refusals_are_the_node_s_own(pair, ops):
    with pytest.raises(Failed, match="^No cluster is configured on this node.$"):
        await ops.set_maintenance("local", True)
    pair.configured(cluster())
    with pytest.raises(Failed, match="^The node node-a is not under maintenance$"):
        await ops.set_maintenance("local", False)


# --- pure decisions ---------------------------------------------------------------------------


def test_master_down_grows_with_a_lower_priority():
    config = cluster(check_interval=1.0, failback="node-a")
    assert 3 < lifecycle.master_down(config, "node-a") < lifecycle.master_down(config, "node-b") < 4


def test_expected_roles_follow_failback():
    assert lifecycle.expected_roles(cluster(), "node-b") == (Role.MASTER, Role.BACKUP)
    assert lifecycle.expected_roles(cluster(failback="node-b"), "node-b") == (Role.BACKUP, Role.MASTER)
    assert lifecycle.expected_roles(cluster(failback="node-a"), "node-b") == (Role.MASTER, Role.BACKUP)

