"""Create, edit, destroy and maintenance through the operations API, on two nodes in memory:
the order of the steps, what each node holds afterwards, and that any failure, an
interruption included, puts both nodes back as they were and says so. No root, no lab."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from skutui.cluster import lifecycle, transaction
from skutui.cluster.operations import ClusterOperations
from skutui.domain.errors import BadInput, Failed, Interrupted, ValidationError
from skutui.domain.model import Role
from skutui.domain.values import format_seconds
from skutui.domain.wire import EditRequest
from tests.unit.fake_nodes import FINGERPRINT, A, B, Connected, Pair, cluster, operations, request


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
    return all(node.cluster is None and not node.running for node in pair.nodes)


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
        ("node-a", "start"), ("node-b", "start"),
    ]
    assert pair.a.cluster == pair.b.cluster == config
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


STEPS = [("node-b", "erase"), ("node-a", "apply"), ("node-b", "apply"), ("node-a", "start"),
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
    with pytest.raises(Failed, match="^node-b did not become backup \\(it is master\\); both "
                                     "nodes were rolled back as they were$"):
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
                                 "node-b: node-b: lost the SSH connection")
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
    with pytest.raises(Failed, match="rollback incomplete: node-a: disk full$"):
        await ops.create(request(), lambda line: None)


# --- edit ----------------------------------------------------------------------------------


async def test_edit_applies_and_reloads_both_nodes_and_lists_what_changed(pair, ops):
    pair.configured(cluster())
    lines = await ops.edit(EditRequest({"check_interval": 0.5, "failback": "local"}), lambda line: None)
    assert lines == ["Failback: disabled -> node-a (this node)", "Check interval: 0.1 s -> 0.5 s"]
    updated = cluster(check_interval=0.5, failback="node-a")
    assert pair.a.cluster == pair.b.cluster == updated
    assert pair.steps() == [("node-a", "snapshot"), ("node-b", "snapshot"),
                            ("node-a", "apply", updated), ("node-b", "apply", updated),
                            ("node-b", "reload"), ("node-a", "reload")]


async def test_edit_with_nothing_to_change_touches_nothing(pair, ops):
    pair.configured(cluster())
    assert await ops.edit(EditRequest({"check_interval": 0.1}), lambda line: None) == []
    assert pair.steps() == []


async def test_edit_of_tracked_interfaces_checks_this_node_s_links(pair, ops):
    pair.configured(cluster())
    assert await ops.edit(EditRequest({"tracked_interfaces": ("eth2",)}), lambda line: None) == [
        "Tracked interfaces: eth0 -> eth0, eth2"]
    with pytest.raises(ValidationError, match="eth9"):
        await ops.edit(EditRequest({"tracked_interfaces": ("eth9",)}), lambda line: None)


@pytest.mark.parametrize("key,value", [("interface", "eth1"), ("virtual_router_id", 52),
                                       ("services", ("nginx",)), ("colour", "red")])
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


async def test_maintenance_of_this_node_hands_the_floating_ips_to_the_peer(pair, ops):
    pair.configured(cluster())
    message = await ops.set_maintenance("local", True)
    assert message == "node-a is in maintenance; the peer takes over the floating IPs"
    assert (pair.a.current_role, pair.b.current_role) == (Role.MAINTENANCE, Role.MASTER)
    assert await ops.set_maintenance("local", False) == "node-a left maintenance and rejoins the cluster"
    assert (pair.a.current_role, pair.b.current_role) == (Role.BACKUP, Role.MASTER)


async def test_maintenance_of_the_peer_runs_on_the_peer(pair, ops):
    pair.configured(cluster())
    assert await ops.set_maintenance("remote", True) == (
        "node-b is in maintenance; the peer takes over the floating IPs")
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

