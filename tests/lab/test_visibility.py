"""What the cluster did and whether it could do it again, on two real nodes: the failover
history, drift, the standby's readiness, the drill, hooks and the webhook, the metrics file.

Each node's own history is read with ``skutui node history`` (that node's file alone); the
merged timeline with ``skutui history``.
"""

from __future__ import annotations

import http.server
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from skutui.domain import history
from skutui_lab.topology import BRIDGE_IP
from tests.lab.labcluster import EVENTUALLY, A, B, LabCluster, wait_for
from tests.lab.test_cluster import assert_backup_row, assert_master_row

pytestmark = pytest.mark.lab

RECORDED = 30.0
"""Bound on a failover record reaching both nodes: the new master asks the old one, writes,
hands a copy."""
NOTES = "/etc/skutui/notes.txt"
"""A synced file (the default synced path is /etc/skutui)."""


def own_records(cluster: LabCluster, node: str, *kinds: str) -> list[dict]:
    """``node``'s own history file, as the peer reads it."""
    argv = ["node", "history", "--json"] + [f"--kind={kind}" for kind in kinds]
    result = cluster.skutui(node, *argv)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def one_failover_on_both(cluster: LabCluster, old: str, new: str) -> dict:
    def found() -> dict | None:
        records = {node: [r for r in own_records(cluster, node, history.FAILOVER)
                          if r["data"]["from"] == old and r["data"]["to"] == new] for node in (A, B)}
        if all(len(found) == 1 and found[0]["data"]["complete"] for found in records.values()):
            assert records[A][0]["id"] == records[B][0]["id"]
            return records[new][0]
        return None

    return wait_for(found, RECORDED, f"one complete failover {old} -> {new} on both nodes")


def stop_agent(cluster: LabCluster, node: str) -> None:
    """kill -9 the agent, systemd holding back its own restart (and keepalived's and
    conntrackd's) until the test's end."""
    cluster.hold_restarts(node)
    cluster.sh(node, "pkill -9 -f -- '[s]kutui agent run'; true", check=True)
    wait_for(lambda: "agent" not in cluster.daemons(node), 10, f"{node}'s agent stops")


def restart_agent(cluster: LabCluster, node: str) -> None:
    stop_agent(cluster, node)
    start_agent(cluster, node)


def start_agent(cluster: LabCluster, node: str) -> None:
    start = cluster.skutui(node, "node", "start")
    assert start.returncode == 0, start.stderr
    wait_for(lambda: "agent" in cluster.daemons(node), 10, f"{node}'s agent starts")


HOOKS = "/etc/skutui/hooks.d"
HOOK_EVENTS = "/tmp/skutui-test-hook-events"
SLEEPY = "/tmp/skutui-test-sleepy"
ARMED = "/tmp/skutui-test-sleepy-armed"
RECORD_HOOK = f"#!/bin/sh\ncat >> {HOOK_EVENTS}\n"
SLEEPY_HOOK = (f"#!/bin/sh\ncat > /dev/null\nrm {ARMED} 2>/dev/null || exit 0\n"
               f"echo start >> {SLEEPY}\nsleep 10\necho end >> {SLEEPY}\n")
"""Sleeps 10 s on the first event after it is armed; lets every other one through at once."""
METRICS = "/run/textfile/skutui.prom"


def sleepy(cluster: LabCluster, node: str) -> tuple[int, int]:
    lines = cluster.sh(node, f"cat {SLEEPY} 2>/dev/null; true").stdout.split()
    return lines.count("start"), lines.count("end")


def hook_events(cluster: LabCluster, node: str) -> list[dict]:
    text = cluster.sh(node, f"cat {HOOK_EVENTS} 2>/dev/null; true").stdout
    return [json.loads(line) for line in text.splitlines()]


def metric(text: str, name: str, **labels: str) -> float | None:
    for line in text.splitlines():
        if line.startswith(f"skutui_{name}{{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return None


def metrics_file(cluster: LabCluster, node: str) -> str:
    path = cluster.file(node, METRICS)
    return path.read_text() if path.exists() else ""


@pytest.fixture
def scratch(cluster: LabCluster) -> Iterator[None]:
    """The hooks' output files and the metrics folder, on both nodes, gone after the test."""
    clear = f"rm -rf {HOOK_EVENTS} {SLEEPY} {ARMED} /run/textfile"
    for node in (A, B):
        cluster.sh(node, f"{clear}; mkdir -p /run/textfile", check=True)
    yield
    for node in (A, B):
        cluster.sh(node, clear, check=True)


# --- 1. a failover: one record on both nodes, told to the hooks and the metrics file, ------
# --- kept across agent restarts; a hook that sleeps 10 s does not delay the takeover -------


def test_a_killed_keepalived_is_one_failover_record_on_both_nodes_in_hooks_and_metrics(
        cluster: LabCluster, scratch: None) -> None:
    cluster.created()
    folder = cluster.file(A, HOOKS)
    folder.mkdir(mode=0o755)
    for name, script in (("10-record", RECORD_HOOK), ("20-sleepy", SLEEPY_HOOK)):
        (folder / name).write_text(script)
        (folder / name).chmod(0o755)
    edit = cluster.skutui(A, "cluster", "edit", "--metrics-file", METRICS)
    assert edit.returncode == 0, edit.stderr
    # The master syncs its hooks to the backup: both nodes run the same.
    wait_for(lambda: cluster.file(B, f"{HOOKS}/20-sleepy").exists()
             and cluster.file(B, f"{HOOKS}/20-sleepy").stat().st_mode & 0o111, 15,
             "the hooks reach node-b")
    wait_for(lambda: metric(metrics_file(cluster, A), "role", role="master") == 1, 30,
             "node-a's metrics file says master")
    wait_for(lambda: metric(metrics_file(cluster, B), "role", role="backup") == 1, 30,
             "node-b's metrics file says backup")
    assert metric(metrics_file(cluster, A), "failovers_total", node=A) == 0
    assert cluster.file(A, METRICS).stat().st_mode & 0o777 == 0o644
    # node-b's agent, restarted with the sleepy hook armed, starts it with its first event.
    stop_agent(cluster, B)
    cluster.sh(B, f"touch {ARMED}", check=True)
    start_agent(cluster, B)
    wait_for(lambda: sleepy(cluster, B)[0] == 1, 15, "the sleepy hook sleeps on node-b")

    cluster.hold_restarts(A)  # keepalived stays dead until node-a's agent restarts below
    cluster.run(A, "pkill", "-9", "-x", "keepalived", check=True)
    killed = time.monotonic()
    wait_for(lambda: cluster.holds_vip(B), EVENTUALLY, "node-b takes the floating IP")
    took = time.monotonic() - killed
    assert sleepy(cluster, B) == (1, 0), "node-b took over while the 10 s hook slept"
    record = one_failover_on_both(cluster, A, B)
    data = record["data"]
    assert (data["cause"], data["from"], data["to"]) == (history.CAUSE_KEEPALIVED, A, B)
    # The gap runs from keepalived's death on node-a to node-b holding the address: what
    # this test saw from the outside, polling (a few tens of ms apart).
    assert abs(data["gap"] - took) < 0.5, (data["gap"], took)
    assert data["conntrack"]["ok"] is True and data["conntrack"]["seconds"] is not None
    assert data["replication_queue"] == 0 and data["sync_pending"] == 0
    assert data["failed_steps"] == []

    wait_for(lambda: metric(metrics_file(cluster, B), "role", role="master") == 1
             and metric(metrics_file(cluster, B), "failovers_total", node=B) == 1, 30,
             "node-b's metrics file says master and one failover")
    assert metric(metrics_file(cluster, B), "last_failover_gap_seconds", node=B) is not None
    assert metric(metrics_file(cluster, B), "conntrack_entries", cache="internal") is not None
    printed = cluster.skutui(B, "metrics")
    assert printed.returncode == 0 and metric(printed.stdout, "failovers_total", node=B) == 1
    samples = json.loads(cluster.skutui(B, "metrics", "--json").stdout)["metrics"]
    assert {"name": "skutui_role", "labels": {"node": B, "role": "master"}, "value": 1.0} in samples

    # The hooks get node-b's events once the sleepy one wakes: its role and the failover
    # (before the agents restart: what waits for a hook is in the agent's memory only).
    got = wait_for(lambda: (e := hook_events(cluster, B)) and any(x["kind"] == "failover" for x in e)
                   and e, 60, "node-b's hook records the failover")
    roles = [e for e in got if e["kind"] == "role"
             and (e.get("data") or {}).get("cause") == "keepalived MASTER"]
    assert roles and roles[0]["node"] == B and roles[0]["data"]["role"] == "master"
    assert [e["data"]["id"] for e in got if e["kind"] == "failover"] == [record["id"]]

    # Both agents restart (node-a's keepalived with it): the record stays, once, on both.
    for node in (A, B):
        restart_agent(cluster, node)
    wait_for(lambda: cluster.vip_holders() == {B}, EVENTUALLY, "node-b keeps the floating IP")
    again = one_failover_on_both(cluster, A, B)
    assert again["id"] == record["id"] and again["data"]["gap"] == data["gap"]
    merged = json.loads(cluster.skutui(A, "history", "--json", "--kind", "failover").stdout)
    assert [r["id"] for r in merged["records"]] == [record["id"]] and merged["missing"] == {}
    text = cluster.skutui(B, "history").stdout
    assert "FAILOVER" in text and "keepalived death" in text and "Gap:" in text


# --- 2. drift, the drill and a backup not ready, every event sent to the webhook -----------

WEBHOOK_PORT = 18080


@contextmanager
def receiver() -> Iterator[list[dict]]:
    """An HTTP server on the lab's bridge address (the host side of the lab's network)."""
    taken: list[dict] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - the standard library's name
            taken.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer((BRIDGE_IP, WEBHOOK_PORT), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield taken
    finally:
        server.shutdown()
        server.server_close()


def test_drift_a_drill_and_a_backup_not_ready_each_seen_and_queued_for_the_webhook(
        cluster: LabCluster) -> None:
    cluster.created()
    url = f"http://{BRIDGE_IP}:{WEBHOOK_PORT}/skutui"
    edit = cluster.skutui(A, "cluster", "edit", "--webhook-url", url)
    assert edit.returncode == 0, edit.stderr
    queue = cluster.file(A, "/var/lib/skutui/webhook")

    # Drift: a file edited by hand on the backup, until the master pushes its copy.
    cluster.file(A, NOTES).write_text("the master's copy\n")
    # Contents, then metadata: the edit below comes once the sync is done with the file.
    wait_for(lambda: cluster.file(B, NOTES).exists()
             and cluster.read(B, NOTES) == "the master's copy\n"
             and cluster.file(B, NOTES).stat().st_mtime_ns == cluster.file(A, NOTES).stat().st_mtime_ns,
             15, "the note reaches node-b")
    cluster.file(B, NOTES).write_text("edited by hand on node-b\n")
    for node in (B, A):
        result = cluster.skutui(node, "sync", "verify", "--json")
        assert result.returncode == 1, result.stdout + result.stderr
        document = json.loads(result.stdout)
        [difference] = document["differences"]
        assert (difference["path"], difference["what"], difference["newer"]) == (NOTES, ["content"], B)
        assert document["master"] == A and document["in_step"] is False
    rows = wait_for(lambda: (r := cluster.nodes(A)) and r[B]["message"] == "Config drift: 1 file"
                    and r, 15, "the table says drift")
    assert rows[B]["status"] == "ok"
    text = cluster.skutui(A, "sync", "verify").stdout
    assert f"{NOTES}: content; newer on {B}" in text
    refused = cluster.skutui(B, "sync", "push")
    assert refused.returncode == 1 and "not the master" in refused.stderr
    pushed = cluster.skutui(A, "sync", "push", "--json")
    assert pushed.returncode == 0, pushed.stdout + pushed.stderr
    assert json.loads(pushed.stdout)["in_step"] is True
    assert cluster.read(B, NOTES) == "the master's copy\n"
    wait_for(lambda: cluster.nodes(A)[B]["message"] == "Node online and passive", 15,
             "the drift is gone from the table")
    assert cluster.skutui(B, "sync", "verify").returncode == 0

    # Nothing has answered the webhook yet: node-a's events wait on its disk.
    waiting = wait_for(lambda: queue.exists() and len(list(queue.glob("*.json"))) >= 2 and
                       sorted(queue.glob("*.json")), 30, "events wait on node-a's disk")
    first = json.loads(waiting[0].read_text())
    with receiver() as taken:
        # The drill: the floating IPs to node-b and back, the gaps measured and kept.
        ready = json.loads(cluster.skutui(A, "readiness", "--json").stdout)["nodes"]
        backup = next(node for node in ready if node["hostname"] == B)
        assert backup["ready"] is True and backup["conntrack"] is not None
        result = cluster.skutui(A, "drill", "--yes", "--json", timeout=120)
        assert result.returncode == 0, result.stdout + result.stderr
        drill = json.loads(result.stdout)["drill"]
        assert drill["ok"] is True and (drill["from"], drill["to"]) == (A, B)
        there, back = drill["legs"]
        assert (there["from"], there["to"], back["from"], back["to"]) == (A, B, B, A)
        for leg in (there, back):
            assert 0 < leg["probe_gap"] < EVENTUALLY, leg
            assert 0 < leg["gap"] < EVENTUALLY, leg
            assert leg["conntrack"]["ok"] is True, leg
        # As it was: node-a master with the address, nobody in maintenance, no mark left.
        wait_for(lambda: cluster.vip_holders() == {A}, EVENTUALLY, "node-a holds the floating IP")
        for node in (A, B):
            assert cluster.read(node, "/etc/skutui/local/maintenance").strip() == "0", node
            assert not cluster.file(node, "/run/skutui/drill").exists(), node
            [kept] = own_records(cluster, node, history.DRILL)
            assert kept["id"] == drill["id"] and kept["data"]["legs"] == drill["legs"]
        failovers = own_records(cluster, A, history.FAILOVER)
        assert [(f["data"]["from"], f["data"]["cause"], f["data"].get("drill")) for f in failovers] == [
            (A, history.CAUSE_DRILL, drill["id"]), (B, history.CAUSE_DRILL, drill["id"])]
        assert_master_row(cluster.nodes(A)[A], A)
        wait_for(lambda: cluster.nodes(A)[B]["status"] == "ok", 15, "node-b stands by again")
        assert_backup_row(cluster.nodes(A)[B], B)

        # conntrackd stopped on the backup: red, not ready, and no drill.
        cluster.hold_restarts(B)
        cluster.run(B, "pkill", "-x", "conntrackd", check=True)
        for seen_from in (A, B):
            row = wait_for(lambda seen_from=seen_from: (r := cluster.nodes(seen_from)[B])
                           and r["message"] == "not ready to take over: conntrackd is down" and r, 15,
                           f"{seen_from} shows node-b not ready")
            assert (row["status"], row["colour"]) == ("failure", "red"), row
        ready = json.loads(cluster.skutui(B, "readiness", "--json").stdout)["nodes"]
        backup = next(node for node in ready if node["hostname"] == B)
        assert backup["ready"] is False and "conntrackd is not running" in backup["reasons"]
        refused = cluster.skutui(A, "drill", "--yes")
        assert refused.returncode == 1
        assert "node-b could not take over now: conntrackd is not running" in refused.stderr
        assert cluster.vip_holders() == {A}
        assert [r["id"] for r in own_records(cluster, A, history.DRILL)] == [drill["id"]]
        assert cluster.read(A, "/etc/skutui/local/maintenance").strip() == "0", "nothing was changed"

        # The webhook answers now: what waited on disk came first, all in order.
        wait_for(lambda: not list(queue.glob("*.json")) and any(
            e["kind"] == "drill" for e in taken), 60, "the queue is delivered")
    from_a = [event for event in taken if event["node"] == A]
    assert from_a[0] == first, "the oldest first"
    times = [event["time"] for event in from_a]
    assert times == sorted(times), "in the order they happened"
    assert any(event["kind"] == "sync" for event in from_a)
