"""The real console on a real node: create a cluster from the Configure form, watch both
nodes turn OK on the Nodes screen, then put node-a in maintenance from the table.

The console's service acts on the machine it runs on, so the console runs inside node-a
(``console_driver.py``, headless under Textual's pilot); the test reads its verdict and then
checks both nodes for what the console claims.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import asyncssh
import pytest

from skutui_lab import PASSWORD
from skutui_lab.topology import FLOATING_IP
from tests.lab.labcluster import INTERVAL, NODE_A, NODE_B, A, B, LabCluster

pytestmark = pytest.mark.lab

DRIVER = Path(__file__).with_name("console_driver.py")


def test_console_creates_the_cluster_shows_both_nodes_ok_and_follows_maintenance(
        cluster: LabCluster) -> None:
    host_key = asyncssh.import_public_key(
        cluster.file(B, "/etc/ssh/ssh_host_ed25519_key.pub").read_text()
    ).get_fingerprint("sha256")
    request = {"local_ip": NODE_A.ip, "remote_ip": NODE_B.ip, "password": PASSWORD,
               "floating_ip": FLOATING_IP, "check_interval": f"{INTERVAL:g}",
               "host_key": host_key}
    result = cluster.lab.exec(A, [sys.executable, str(DRIVER)], input=json.dumps(request),
                              capture_output=True, text=True, timeout=150)
    lines = [line for line in result.stdout.splitlines() if line.startswith("VERDICT ")]
    assert lines, f"no verdict:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    verdict = json.loads(lines[-1].removeprefix("VERDICT "))
    for name, seconds in verdict["milestones"]:
        print(f"MEASURED console: {name} at {seconds * 1000:.0f} ms")
    assert verdict["ok"], verdict.get("traceback") or verdict
    assert result.returncode == 0
    assert PASSWORD not in result.stdout + result.stderr

    # What the operator saw.
    assert verdict["local_ip"] == NODE_A.ip
    assert verdict["host_key_shown"] is True
    preflight = verdict["preflight_log"]
    assert "FAIL" not in preflight and preflight.count("PASS") >= 7, preflight
    log = verdict["log"]
    assert "Cluster created: node-a and node-b" in log, log
    assert "Failed" not in log and "Rolling back" not in log, log
    details = " ".join(verdict["details"].split())
    assert f"node-a {NODE_A.ip} (this node, master)" in details, verdict["details"]
    rows = verdict["rows"]
    assert rows == {
        "local": {"role": "master", "hostname": A, "ip": NODE_A.ip, "status": "ok",
                  "message": "Node online and active"},
        "remote": {"role": "backup", "hostname": B, "ip": NODE_B.ip, "status": "ok",
                   "message": "Node online and passive"},
    }, rows
    screen = verdict["nodes_screen"]
    assert "Node online and active" in screen and "Node online and passive" in screen, screen
    question = " ".join(verdict["maintenance_question"].split())
    assert "Put node-a in maintenance?" in question, question
    after = verdict["rows_after_maintenance"]
    assert (after["local"]["role"], after["local"]["status"], after["local"]["message"]) == (
        "maintenance", "maintenance", "Node in maintenance mode"), after
    assert (after["remote"]["role"], after["remote"]["message"]) == (
        "master", "Node online and active"), after
    print(f"MEASURED console: maintenance confirmed until the table shows it: "
          f"{verdict['maintenance_shown_after'] * 1000:.0f} ms")

    # What is really there.
    assert cluster.vip_holders() == {B}
    assert cluster.read(A, "/etc/skutui/local/maintenance").strip() == "1"
    for node in (A, B):
        assert cluster.daemons(node) == {"keepalived", "conntrackd", "agent"}, node
    toml = [cluster.read(node, "/etc/skutui/cluster.toml") for node in (A, B)]
    assert toml[0] == toml[1]
    assert f"check_interval = {INTERVAL:g}" in toml[0]
    assert host_key.removeprefix("SHA256:") in cluster.run(
        A, "ssh-keygen", "-l", "-f", "/etc/skutui/local/known_hosts").stdout
    table = cluster.nodes(A)
    assert {n: (r["role"], r["status"]) for n, r in table.items()} == {
        A: ("maintenance", "maintenance"), B: ("master", "ok")}
