"""Pre-flight through the operations API: the request's values refused before the peer is
asked anything, then every check in order, each failing one with what was found and how to
fix it. Two nodes in memory; no root, no peer, no lab."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import pytest

from skutui import __version__
from skutui.cluster import preflight
from skutui.cluster.nodeops import RemoteNodeError, SkutuiNotInstalled
from skutui.domain.errors import BadInput, Failed, ValidationError
from skutui.domain.model import ClusterConfig
from skutui.domain.wire import CheckResult
from skutui.system.package import package_file
from tests.unit.fake_nodes import FINGERPRINT, A, B, Pair, operations, request


@pytest.fixture
def pair() -> Pair:
    return Pair()


@pytest.fixture
def ops(pair, tmp_path):
    return operations(pair, tmp_path)


async def test_every_check_passes_in_the_order_of_the_names(pair, ops):
    lines: list[str] = []
    checks = await ops.preflight(request(), lines.append)
    assert [c.name for c in checks] == preflight.check_names() == [
        "No cluster on this node", "Peer reachable and authenticated", "Same skutui version",
        "Different hostnames", "Cluster NIC on the peer", "Links on both nodes", "keepalived installed",
        "conntrackd installed", "Clocks agree", "Virtual router id 51 free"]
    assert all(c.passed for c in checks)
    assert [c.detail for c in checks] == [
        "this node has no cluster yet",
        "logged in to 198.18.0.2 (node-b) with skutui's key",
        "0.1.0 here, 0.1.0 on the peer",
        "node-a and node-b",
        "198.18.0.2 is on eth0; this node uses eth0",
        "no link named besides the cluster NIC",
        "2.2.7 here, 2.2.7 on the peer",
        "1.4.7 here, 1.4.7 on the peer",
        "0.0 s apart",
        "no other router uses it (0 adverts heard)",
    ]
    assert lines == ["Connecting to 198.18.0.2", f"Host key of 198.18.0.2: {FINGERPRINT}",
                     "Listening for other VRRP routers for 0.3 s"]
    assert all(node.cluster is None for node in pair.nodes), "nothing changed"


async def test_links_the_settings_name_must_exist_on_both_nodes(pair, ops):
    pair.b.links = ["lo", "eth0", "eth2"]
    checks = await ops.preflight(request(tracked_interfaces="eth1,eth2",
                                         floating_ips=("198.18.0.100/24", "203.0.113.9/24@eth2")),
                                 lambda line: None)
    check = next(c for c in checks if c.name == preflight.LINKS_ON_BOTH)
    assert check == CheckResult(preflight.LINKS_ON_BOTH, False, "eth1 is missing on node-b",
                                "name links both nodes have (ip link lists them)")
    pair.b.links.append("eth1")
    checks = await ops.preflight(request(tracked_interfaces="eth1,eth2"), lambda line: None)
    assert next(c for c in checks if c.name == preflight.LINKS_ON_BOTH).detail == "eth1, eth2 on both"


async def test_create_syncs_cluster_toml_s_folder_and_the_paths_given(pair, ops):
    config = await ops.create(request(synced_paths="/etc/haproxy", services_on_both="haproxy"),
                              lambda line: None)
    assert config.synced_paths == (str(ops.paths.config_root), "/etc/haproxy")
    assert config.services_on_both == ("haproxy",)
    assert pair.b.cluster == config


async def test_the_router_check_names_the_chosen_virtual_router_id(ops):
    checks = await ops.preflight(request(virtual_router_id=7), lambda line: None)
    assert checks[-1].name == "Virtual router id 7 free" == preflight.check_names(7)[-1]


def configured(pair: Pair) -> None:
    pair.a.cluster = ClusterConfig(interface="eth0", nodes=(A, B))


def heard_other(pair: Pair) -> None:
    pair.heard = {(A.ip, 51), (B.ip, 51), ("198.18.0.9", 51), ("198.18.0.7", 52)}


FAILURES: list[tuple[str, Callable[[Pair], None], str, str]] = [
    (preflight.NO_LOCAL_CLUSTER, configured,
     "node-a already belongs to a cluster", "destroy the existing cluster first"),
    (preflight.SAME_VERSION, lambda pair: setattr(pair.b, "version", "0.0.9"),
     "0.1.0 here, 0.0.9 on the peer", "install the same skutui version on both nodes"),
    (preflight.DIFFERENT_HOSTNAMES, lambda pair: setattr(pair.b, "hostname", "node-a"),
     "node-a and node-a", "give each node its own hostname (hostnamectl set-hostname)"),
    (preflight.PEER_NIC,
     lambda pair: setattr(pair.b, "addresses", [{"interface": "eth1", "address": B.ip, "label": "eth1"}]),
     "198.18.0.2 is on eth1; this node uses eth0", "put 198.18.0.2 on the peer's eth0 (not an alias)"),
    (preflight.PEER_NIC,
     lambda pair: setattr(pair.b, "addresses", [{"interface": "eth0", "address": B.ip, "label": "eth0:1"}]),
     "198.18.0.2 is on eth0:1; this node uses eth0", "put 198.18.0.2 on the peer's eth0 (not an alias)"),
    (preflight.PEER_NIC, lambda pair: setattr(pair.b, "addresses", []),
     "198.18.0.2 is not configured on the peer; this node uses eth0",
     "put 198.18.0.2 on the peer's eth0 (not an alias)"),
    (preflight.KEEPALIVED_INSTALLED, lambda pair: setattr(pair.b, "keepalived", None),
     "2.2.7 here, missing on the peer", "apt-get install keepalived on the node that lacks it"),
    (preflight.CONNTRACKD_INSTALLED, lambda pair: setattr(pair.a, "conntrackd", None),
     "missing here, 1.4.7 on the peer", "apt-get install conntrackd on the node that lacks it"),
    (preflight.CLOCKS_AGREE, lambda pair: setattr(pair.b, "clock", pair.a.clock - 6.25),
     "6.2 s apart", "synchronise both clocks (NTP)"),
    ("Virtual router id 51 free", heard_other,
     "already used by 198.18.0.9", "stop that router or choose another virtual router id"),
    ("Virtual router id 51 free",
     lambda pair: setattr(pair, "probe_error", PermissionError(1, "Operation not permitted")),
     "cannot listen for VRRP: [Errno 1] Operation not permitted", "run skutui as root"),
]


@pytest.mark.parametrize("name,make,detail,hint", FAILURES,
                         ids=[f"{i}-{name}" for i, (name, *_) in enumerate(FAILURES)])
async def test_a_failing_check_says_what_was_found_and_how_to_fix_it(pair, ops, name, make, detail, hint):
    make(pair)
    checks = await ops.preflight(request(), lambda line: None)
    failed = [c for c in checks if not c.passed]
    assert failed == [CheckResult(name, False, detail, hint)]
    assert [c.name for c in checks] == preflight.check_names()


@pytest.mark.parametrize("where", ["authenticate", "inventory"])
async def test_a_peer_that_cannot_be_logged_in_to_ends_the_checks(pair, ops, where):
    problem = "root login with a password was refused by 198.18.0.2: check the password"
    if where == "authenticate":
        pair.authentication_error = Failed(problem)
    else:
        pair.b.fail["inventory"] = RemoteNodeError(problem)
    checks = await ops.preflight(request(), lambda line: None)
    assert checks == [
        CheckResult(preflight.NO_LOCAL_CLUSTER, True, "this node has no cluster yet"),
        CheckResult(preflight.PEER_AUTHENTICATED, False, problem,
                    "fix the connection, then run the checks again"),
    ]


async def test_a_peer_that_does_not_answer_in_time_reads_as_such(pair, ops):
    pair.authentication_error = TimeoutError()
    checks = await ops.preflight(request(), lambda line: None)
    assert checks[-1].detail == "no answer in time"


BAD_REQUESTS = [
    ("password", dict(password=""), "The remote root password is empty; enter it."),
    ("interface", dict(settings={"interface": "eth1"}),
     "interface cannot be set at creation; change it with cluster edit afterwards."),
    ("services_on_both", dict(settings={"services": "haproxy", "services_on_both": "haproxy"}),
     "Service haproxy is listed in both Services and Services on both"),
    ("services", dict(settings={"services": "-haproxy"}), "would be read as an option"),
    ("synced_paths", dict(settings={"synced_paths": "/etc"}), "whole system folder"),
    ("local_ip", dict(local_ip="192.0.2.77"), "192.0.2.77"),
    ("local_ip", dict(local_ip="198.18.0.50"), "198.18.0.50"),
    ("remote_ip", dict(remote_ip=A.ip), "own address"),
    ("check_interval", dict(settings={"check_interval": 99.0}), "out of range"),
    ("host_key_fingerprint", dict(host_key_fingerprint="SHA256:short"), "SHA256"),
]


@pytest.mark.parametrize("field,changes,words", BAD_REQUESTS, ids=[b[0] + str(i) for i, b in enumerate(BAD_REQUESTS)])
async def test_a_wrong_value_is_refused_before_the_peer_is_asked_anything(pair, ops, field, changes, words):
    wrong = dataclasses.replace(request(), **changes)
    for attempt in (ops.validate(wrong), ops.preflight(wrong, lambda line: None),
                    ops.create(wrong, lambda line: None)):
        with pytest.raises(ValidationError) as raised:
            await attempt
        assert raised.value.field == field and words in str(raised.value)
        assert isinstance(raised.value, BadInput)
    assert pair.authenticated == [] and pair.connected == [] and pair.log == []


async def test_validate_accepts_a_good_request_without_asking_the_peer(pair, ops):
    assert await ops.validate(request()) is None
    assert pair.authenticated == [] and pair.log == []


async def test_a_peer_without_skutui_is_told_plainly_with_the_one_install_command(pair, ops):
    pair.b.fail["inventory"] = SkutuiNotInstalled(B.ip)
    checks = await ops.preflight(request(), lambda line: None)
    assert [c.name for c in checks] == [preflight.NO_LOCAL_CLUSTER, preflight.PEER_AUTHENTICATED,
                                        preflight.SAME_VERSION]
    assert checks[1].passed and not checks[2].passed
    assert checks[2].detail == f"skutui is not installed on {B.ip} (no skutui command on root's PATH)"
    name = package_file(__version__)
    assert checks[2].hint == (f"install skutui {__version__} on {B.ip}: copy {name} there "
                              f"(`./run package` builds it from skutui's source) and run "
                              f"`apt install ./{name}`, then run the checks again")


def test_the_package_file_is_named_by_debians_architecture():
    assert package_file("1.2.3", "x86_64") == "skutui_1.2.3_amd64.deb"
    assert package_file("1.2.3", "aarch64") == "skutui_1.2.3_arm64.deb"
