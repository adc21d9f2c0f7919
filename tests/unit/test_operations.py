"""What the operations API reads for the operator: the node table, status, this node's
facts, both nodes' events; and how it keeps (and closes) the connection to the peer. Two
nodes in memory; no root, no peer, no lab."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from skutui import __version__
from skutui.cluster import operations as operations_module
from skutui.cluster.api import ClusterService, ClusterStatus
from skutui.cluster.nodeops import LocalOps, RemoteNodeError
from skutui.cluster.operations import ClusterOperations, build_service, production
from skutui.cluster.rows import HOST_KEY_CHANGED, as_dicts
from skutui.domain.errors import ValidationError
from skutui.domain.model import ClusterConfig, Node, Role, Status
from skutui.domain.paths import Paths
from skutui.domain.wire import Event, NodeRow
from skutui.peer import HostKeyChanged, PeerUnreachable
from tests.unit.fake_nodes import FINGERPRINT, A, B, Connected, Pair, cluster, operations


@pytest.fixture
def pair() -> Pair:
    return Pair()


@pytest.fixture
def ops(pair, tmp_path):
    return operations(pair, tmp_path)


HEALTHY = [
    NodeRow("local", Role.MASTER, A.ip, "node-a", Status.OK, "Node online and active"),
    NodeRow("remote", Role.BACKUP, B.ip, "node-b", Status.OK, "Node online and passive"),
]


# --- the node table ---------------------------------------------------------------------------


async def test_the_rows_of_a_healthy_cluster(pair, ops):
    pair.configured(cluster())
    assert await ops.nodes() == HEALTHY
    assert as_dicts(HEALTHY)[0] == {"node": "local", "role": "master", "ip": A.ip,
                                    "hostname": "node-a", "status": "ok", "colour": "green",
                                    "message": "Node online and active"}


async def test_no_cluster_no_rows(pair, ops):
    assert await ops.nodes() == []
    assert pair.connected == []


async def test_an_unreachable_peer_is_a_grey_row_and_this_node_still_shows(pair, ops):
    pair.configured(cluster())
    pair.b.fail["facts"] = PeerUnreachable(B.ip, "cannot reach 198.18.0.2: connection refused")
    local, remote = await ops.nodes()
    assert local == NodeRow("local", Role.MASTER, A.ip, "node-a", Status.OK, "Node online and active")
    assert remote == NodeRow("remote", Role.UNKNOWN, B.ip, "node-b", Status.UNREACHABLE, "Node unreachable")
    assert remote.colour == "grey"


async def test_a_peer_that_does_not_answer_soon_is_shown_unreachable(pair, ops, monkeypatch):
    monkeypatch.setattr(operations_module, "NODES_TIMEOUT_MIN", 0.05)
    pair.configured(cluster(check_interval=0.1))
    pair.b.before["facts"] = lambda: asyncio.sleep(30)
    started = asyncio.get_running_loop().time()
    rows = await ops.nodes()
    assert asyncio.get_running_loop().time() - started < 5
    assert rows[1].status is Status.UNREACHABLE


async def test_a_changed_host_key_is_said_in_the_peer_s_row(pair, ops, tmp_path):
    pair.configured(cluster())
    pair.b.fail["facts"] = HostKeyChanged(B.ip, 22, FINGERPRINT, "SHA256:" + "B" * 43,
                                          tmp_path / "known_hosts")
    _, remote = await ops.nodes()
    assert remote.status is Status.UNREACHABLE
    assert remote.message == f"Node unreachable: {HOST_KEY_CHANGED}"
    assert HOST_KEY_CHANGED == "its SSH host key changed; nothing is sent until it is re-pinned"


async def test_two_masters_are_a_split_brain_on_both_rows(pair, ops):
    pair.configured(cluster())
    pair.b.current_role = Role.MASTER
    rows = await ops.nodes()
    assert [(r.role, r.status, r.message) for r in rows] == [
        (Role.MASTER, Status.FAILURE, "Split brain: both nodes are master")] * 2


async def test_the_rows_while_this_node_is_in_maintenance(pair, ops):
    pair.configured(cluster())
    await ops.set_maintenance("local", True)
    assert await ops.nodes() == [
        NodeRow("local", Role.MAINTENANCE, A.ip, "node-a", Status.MAINTENANCE, "Node in maintenance mode"),
        NodeRow("remote", Role.MASTER, B.ip, "node-b", Status.OK, "Node online and active"),
    ]


async def test_a_failing_local_read_is_not_hidden(pair, ops):
    pair.configured(cluster())
    pair.a.fail["facts"] = OSError("no /proc")
    with pytest.raises(OSError, match="no /proc"):
        await ops.nodes()


# --- status ------------------------------------------------------------------------------------


async def test_status_carries_the_configuration_and_the_rows(pair, ops):
    pair.configured(cluster())
    assert await ops.status() == ClusterStatus("node-a", __version__, cluster(), HEALTHY)


async def test_status_without_a_cluster(ops):
    assert await ops.status() == ClusterStatus("node-a", __version__, None, [])


async def test_status_answers_soon_when_the_peer_does_not(pair, ops, monkeypatch):
    monkeypatch.setattr(operations_module, "STATUS_TIMEOUT", 0.05)
    pair.configured(cluster(check_interval=30.0))
    pair.b.before["facts"] = lambda: asyncio.sleep(30)
    status = await asyncio.wait_for(ops.status(), 5)
    assert [r.status for r in status.nodes] == [Status.OK, Status.UNREACHABLE]


async def test_status_of_a_node_renamed_since_the_cluster_was_made(pair, ops):
    pair.configured(cluster())
    ops.hostname = lambda: "node-c"
    status = await ops.status()
    assert status.config == cluster() and status.nodes == []


# --- this node ------------------------------------------------------------------------------


async def test_what_the_console_reads_of_this_node(pair, ops):
    assert await ops.local_hostname() == "node-a"
    assert await ops.cluster() is None
    assert [a.address for a in await ops.cluster_candidates()] == [A.ip, "203.0.113.5"]
    assert await ops.link_names() == ["lo", "eth0", "eth1", "eth2"]
    pair.configured(cluster())
    assert await ops.cluster() == cluster()
    assert await ops.is_master() is True
    pair.a.current_role = Role.BACKUP
    assert await ops.is_master() is False


async def test_the_hostname_may_be_a_function(pair, tmp_path):
    names = iter(["node-a", "node-b"])
    ops = ClusterOperations(Paths(config_root=tmp_path), hostname=lambda: next(names),
                            local=pair.a, remote=pair.remote)
    assert [await ops.local_hostname(), await ops.local_hostname()] == ["node-a", "node-b"]


async def test_the_host_key_is_asked_for_a_valid_address_only(ops):
    assert await ops.fetch_host_key(" 198.18.0.2 ") == FINGERPRINT
    with pytest.raises(ValidationError):
        await ops.fetch_host_key("198.18.0.300")


# --- the kept connection ------------------------------------------------------------------------


async def test_one_connection_serves_every_request_and_close_ends_it(pair, ops):
    pair.configured(cluster())
    await ops.nodes()
    await ops.nodes()
    await ops.set_maintenance("remote", True)
    assert pair.connected == [Connected(B.ip, "node-b")]
    await ops.close()
    assert pair.b.closed == 1
    await ops.close()
    assert pair.b.closed == 1, "closed once"
    await ops.nodes()
    assert len(pair.connected) == 2, "the next request connects again"


async def test_a_new_peer_address_replaces_the_connection_and_close_ends_both(pair, ops):
    pair.configured(cluster())
    await ops.nodes()
    moved = ClusterConfig(interface="eth0", nodes=(A, Node("node-b", "198.18.0.3")))
    pair.a.cluster = moved
    seen = []

    def remote(address, name):
        seen.append(address)
        return pair.b

    ops._connect = remote
    await ops.nodes()
    assert seen == ["198.18.0.3"]
    await ops.close()
    assert pair.b.closed == 2


# --- events ---------------------------------------------------------------------------------


async def test_events_come_from_both_nodes(pair, ops, tmp_path):
    pair.configured(cluster(check_interval=0.1))
    ops.paths.run_dir.mkdir(parents=True)
    requests: list[dict] = []

    async def agent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        requests.append(json.loads(await reader.readline()))
        writer.write(b'{"kind": "role", "message": "became master"}\nnot json\n[1]\n')
        await writer.drain()
        writer.close()

    server = await asyncio.start_unix_server(agent, path=str(ops.paths.control_socket))
    pair.b.events = ['{"kind": "sync", "message": "configuration pushed"}\n', "garbage\n"]
    seen: list[Event] = []
    stream = ops.events()
    try:
        async with asyncio.timeout(5):
            async for event in stream:
                seen.append(event)
                kinds = {(e.node, e.kind) for e in seen}
                if {("local", "role"), ("remote", "sync"), ("local", "refresh"),
                        ("remote", "refresh")} <= kinds:
                    break
    finally:
        await stream.aclose()
        server.close()
    assert Event("role", "local", "became master") in seen
    assert Event("sync", "remote", "configuration pushed") in seen
    assert requests[0] == {"op": "events", "recent": 0}


async def test_without_an_agent_or_a_cluster_the_table_is_refreshed_on_its_own(pair, ops):
    pair.a.fail["config"] = ValueError("broken cluster.toml")
    stream = ops.events()
    try:
        async with asyncio.timeout(5):
            first = await anext(stream)
    finally:
        await stream.aclose()
    assert first == Event("refresh", "local", "")


async def test_a_broken_peer_stream_is_a_refresh(pair, ops):
    pair.configured(cluster(check_interval=0.1))
    pair.b.fail["event_lines"] = RemoteNodeError("node-b: gone")
    stream = ops.events()
    seen: list[Event] = []
    try:
        async with asyncio.timeout(5):
            async for event in stream:
                seen.append(event)
                if event.node == "remote":
                    break
    finally:
        await stream.aclose()
    assert seen[-1] == Event("refresh", "remote", "")


# --- the production wiring ------------------------------------------------------------------


def test_production_reaches_for_this_machine_and_the_peer(tmp_path):
    paths = Paths(config_root=tmp_path)
    wiring = production(paths)
    assert isinstance(wiring.local, LocalOps) and wiring.local.node.paths == paths
    remote = wiring.remote(B.ip, "node-b")
    assert (remote.name, remote.peer.host, remote.peer.paths) == ("node-b", B.ip, paths)
    service = build_service(paths)
    assert isinstance(service, ClusterOperations) and isinstance(service.local, LocalOps)
    assert service.hostname is wiring.hostname


def test_the_fake_and_the_real_service_offer_the_same_operations():
    from tests.fakes import FakeClusterService

    names = {name for name in dir(ClusterService) if not name.startswith("_")}
    for implementation in (ClusterOperations, FakeClusterService):
        missing = {name for name in names if not callable(getattr(implementation, name, None))}
        assert not missing, (implementation, missing)


def test_paths_left_out_come_from_the_environment(monkeypatch, tmp_path: Path):
    monkeypatch.setenv("SKUTUI_ROOT", str(tmp_path))
    assert ClusterOperations().paths.config_root == tmp_path


def test_the_command_line_pays_for_ssh_and_netlink_only_when_it_uses_them():
    """asyncssh and pyroute2 are slow to import: ``skutui status`` without a cluster, or
    ``cluster show``, must not import them, nor the console's libraries."""
    import subprocess
    import sys

    code = ("import sys, skutui.cluster.operations, skutui.cli.cluster, skutui.cli.status; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & "
            "{'asyncssh', 'pyroute2', 'textual'}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
