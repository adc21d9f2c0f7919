"""The console's fake and the real operations API answer alike: one journey through a
cluster's life (see ``journey``), checked with the same tests against the fake and against
the real API in the lab. Expected values come from the product's own constants and
functions where it has them, so neither side can drift alone."""

from __future__ import annotations

import re

from skutui import __version__
from skutui.cluster import lifecycle, preflight
from skutui.cluster.rows import as_dicts
from skutui.domain import codec, digest
from skutui.domain.model import ClusterConfig, Node, Role, Status
from skutui.domain.paths import Paths
from skutui.domain.values import format_seconds
from skutui.domain.wire import NodeRow
from skutui.peer.errors import PasswordRejected
from tests.contract.journey import EDITED_INTERVAL, FLOATING_IP, INTERVAL, LOCAL_IP, REMOTE_IP

A, B = Node("node-a", LOCAL_IP), Node("node-b", REMOTE_IP)
CONFIG = ClusterConfig(interface="eth0", nodes=(A, B), check_interval=INTERVAL,
                       floating_ips=(FLOATING_IP,), synced_paths=(str(Paths().config_root),))
FIRST_CONTACT = [
    f"Connecting to {REMOTE_IP}",
    f"Host key of {REMOTE_IP}: SHA256:<host key>",
    f"Installing this node's key on {REMOTE_IP} (the password is used once)",
]


def row(node: str, role: Role, status: Status, message: str) -> dict[str, str]:
    where = A if node == "local" else B
    return as_dicts([NodeRow(node, role, where.ip, where.hostname, status, message)])[0]


MASTER_OK = (Role.MASTER, Status.OK, digest.MESSAGE_ACTIVE)
BACKUP_OK = (Role.BACKUP, Status.OK, digest.MESSAGE_PASSIVE)
IN_MAINTENANCE = (Role.MAINTENANCE, Status.MAINTENANCE, digest.MESSAGE_MAINTENANCE)
MAC = re.compile(r"\b[0-9a-f]{2}(?::[0-9a-f]{2}){5}\b")


def test_the_journey_went_through_every_step(told):
    assert "error" not in told, told["error"]
    assert told["fingerprint_shape"] is True


def test_preflight_runs_the_product_s_checks_in_order(told):
    checks = told["preflight"]["checks"]
    assert [c["name"] for c in checks] == preflight.check_names(51)
    assert all(c["passed"] for c in checks), checks
    details = {c["name"]: c["detail"] for c in checks}
    assert details[preflight.NO_LOCAL_CLUSTER] == "this node has no cluster yet"
    assert details[preflight.PEER_AUTHENTICATED] == f"logged in to {REMOTE_IP} (node-b) with skutui's key"
    assert details[preflight.SAME_VERSION] == f"{__version__} here, {__version__} on the peer"
    assert details[preflight.DIFFERENT_HOSTNAMES] == "node-a and node-b"
    assert details[preflight.PEER_NIC] == f"{REMOTE_IP} is on eth0; this node uses eth0"
    assert details[preflight.LINKS_ON_BOTH] == "no link named besides the cluster NIC"
    assert details["Virtual router id 51 free"] == "no other router uses it (0 adverts heard)"
    listening = format_seconds(preflight.ADVERTS_HEARD * INTERVAL)
    assert told["preflight"]["progress"] == [
        *FIRST_CONTACT, f"Listening for other VRRP routers for {listening} s"]


def test_a_wrong_password_is_the_failed_login_check_and_changes_nothing(told):
    assert told["wrong_password"]["checks"] == [
        {"name": preflight.NO_LOCAL_CLUSTER, "passed": True,
         "detail": "this node has no cluster yet", "hint": ""},
        {"name": preflight.PEER_AUTHENTICATED, "passed": False,
         "detail": str(PasswordRejected(REMOTE_IP, Paths().private_key)),
         "hint": "fix the connection, then run the checks again"},
    ]
    assert told["wrong_password"]["progress"] == FIRST_CONTACT
    assert told["cluster_after_wrong_password"] is None


def test_create_takes_the_product_s_steps_and_configures_the_cluster(told):
    expected = codec.to_dict(CONFIG)
    assert told["create"]["config"] == expected
    assert told["cluster_after_create"] == expected
    assert told["is_master_after_create"] is True
    hold = format_seconds(lifecycle.master_down(CONFIG, "node-b") + lifecycle.NOTIFY_MARGIN)
    listening = format_seconds(preflight.ADVERTS_HEARD * INTERVAL)
    # Each node's MAC address is its own (random in the lab): the line is checked by its shape.
    progress = [MAC.sub("MAC", line) for line in told["create"]["progress"]]
    assert progress == [
        *FIRST_CONTACT,
        f"Listening for other VRRP routers for {listening} s",
        "Erasing the cluster configuration of node-b",
        "Writing the configuration on node-a",
        "Writing the configuration on node-b",
        "Pinning MAC addresses: node-a MAC, node-b MAC",
        "Starting node-a",
        "node-a is master",
        "Starting node-b",
        "node-b is backup",
        f"Checking for {hold} s that node-b hears node-a",
        "Cluster created: node-a and node-b",
    ]


def test_after_create_this_node_is_the_healthy_master_and_the_peer_the_backup(told):
    assert told["rows_after_create"] == [row("local", *MASTER_OK), row("remote", *BACKUP_OK)]


def test_status_carries_the_same_rows(told):
    assert told["status"] == {"hostname": "node-a", "configured": True,
                              "nodes": [row("local", *MASTER_OK), row("remote", *BACKUP_OK)]}


def test_edit_says_what_changed_and_then_that_nothing_is_to_be_changed(told):
    assert told["edit"] == {
        "lines": [f"Check interval: {format_seconds(INTERVAL)} s -> {format_seconds(EDITED_INTERVAL)} s"],
        "progress": ["Applying on node-b", "Applying on node-a", lifecycle.RELOADING]}
    assert told["edit_again"] == []
    assert told["interval_after_edit"] == EDITED_INTERVAL


def test_maintenance_on_the_master_hands_over_first_and_says_so(told):
    for node, taker in (("local", "node-b"), ("remote", "node-a")):
        name = "node-a" if node == "local" else "node-b"
        said = told[f"{node}_maintenance_on"]
        seconds = re.fullmatch(r".* in (\d+\.\d) s, before this node let them go", said)
        assert seconds, said
        assert said == lifecycle.maintenance_handed_over(CONFIG, f"{name} is in maintenance", taker,
                                                         float(seconds.group(1)))
        assert told[f"{node}_maintenance_off"] == f"{name} left maintenance and rejoins the cluster"


def test_the_rows_while_a_node_is_in_maintenance_and_after(told):
    assert told["rows_local_in_maintenance"] == [row("local", *IN_MAINTENANCE), row("remote", *MASTER_OK)]
    assert told["rows_local_back"] == [row("local", *BACKUP_OK), row("remote", *MASTER_OK)]
    assert told["rows_remote_in_maintenance"] == [row("local", *MASTER_OK), row("remote", *IN_MAINTENANCE)]
    assert told["rows_remote_back"] == [row("local", *MASTER_OK), row("remote", *BACKUP_OK)]


def test_destroy_leaves_no_cluster(told):
    assert told["destroy"] == {"warnings": [], "progress": ["Stopping and erasing node-b",
                                                            "Stopping and erasing node-a"]}
    assert told["cluster_after_destroy"] is None
    assert told["rows_after_destroy"] == []
