"""Pre-flight through the operations API: the request's values refused before the peer is
asked anything, then every check in order, each failing one with what was found and how to
fix it. Two nodes in memory; no root, no peer, no lab."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import pytest

from skutui.cluster import preflight
from skutui.cluster.nodeops import RemoteNodeError
from skutui.domain.errors import BadInput, Failed, ValidationError
from skutui.domain.model import ClusterConfig
from skutui.domain.wire import CheckResult
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
        "Different hostnames", "Cluster NIC on the peer", "keepalived installed",
        "conntrackd installed", "Clocks agree", "Virtual router id 51 free"]
    assert all(c.passed for c in checks)
    assert [c.detail for c in checks] == [
        "this node has no cluster yet",
        "logged in to 198.18.0.2 (node-b) with skutui's key",
        "0.1.0 here, 0.1.0 on the peer",
        "node-a and node-b",
        "198.18.0.2 is on eth0; this node uses eth0",
        "2.2.7 here, 2.2.7 on the peer",
        "1.4.7 here, 1.4.7 on the peer",
        "0.0 s apart",
        "no other router uses it (0 adverts heard)",
    ]
    assert lines == ["Connecting to 198.18.0.2", f"Host key of 198.18.0.2: {FINGERPRINT}",
                     "Listening for other VRRP routers for 0.3 s"]
    assert all(node.cluster is None for node in pair.nodes), "nothing changed"


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
    ("services", dict(settings={"services": ("nginx",)}),
     "services cannot be set at creation; change it with cluster edit afterwards."),
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
