"""Interface discovery for real, inside a lab node: aliases and loopback are never offered."""

from __future__ import annotations

import json

import pytest

from skutui_lab import NODES, Lab

pytestmark = pytest.mark.lab

NODE_A = NODES[0]
ALIAS = "198.18.0.51/24"


def skutui_json(lab: Lab, node: str, *argv: str):
    result = lab.exec(node, ["skutui", *argv], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_interfaces_offer_the_node_ip_on_eth0_and_never_an_alias_or_loopback(lab: Lab) -> None:
    added = lab.exec(NODE_A.name, ["ip", "addr", "add", ALIAS, "dev", "eth0", "label", "eth0:1"],
                     capture_output=True, text=True, timeout=10)
    assert added.returncode == 0, added.stderr
    try:
        found = skutui_json(lab, NODE_A.name, "interfaces", "--json")
    finally:
        lab.exec(NODE_A.name, ["ip", "addr", "del", ALIAS, "dev", "eth0"], timeout=10)
    assert found == [{"interface": "eth0", "address": NODE_A.ip, "prefixlen": 24}]


def test_status_before_any_cluster_says_not_configured(lab: Lab) -> None:
    status = skutui_json(lab, NODE_A.name, "status", "--json")
    assert status["configured"] is False
    assert status["hostname"] == NODE_A.hostname
