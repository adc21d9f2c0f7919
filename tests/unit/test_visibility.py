"""The pure parts of seeing what the cluster does: drift, readiness, conntrackd's counters,
the metrics text, the timing budget, a drill's gaps, and the node table built from them."""

from __future__ import annotations

import dataclasses
import stat
from pathlib import Path

import pytest

from skutui.agent.metrics import Metrics
from skutui.agent.notifications import StepsGate
from skutui.cluster import drill as cluster_drill
from skutui.cluster import rows
from skutui.domain import drill, timing
from skutui.domain.conntrack import parse_stats
from skutui.domain.drift import compare
from skutui.domain.firewall import FOREIGN_VRRP
from skutui.domain.metrics import NodeMetrics, families, render
from skutui.domain.model import Role, Status
from skutui.domain.readiness import readiness
from skutui.system.history import HistoryStore
from tests.fakes import LOCAL, REMOTE, default_cluster, facts, standby

# --- drift ------------------------------------------------------------------------------------


def entry(kind: str = "file", **changes) -> dict:
    base = {"kind": kind, "mode": 0o644, "uid": 0, "gid": 0, "user": "root", "group": "root",
            "mtime_ns": 1000}
    if kind == "file":
        base |= {"sha256": "a" * 64, "size": 3}
    if kind == "link":
        base |= {"target": "x"}
    return base | changes


def test_drift_names_what_differs_and_which_copy_is_newer():
    here = {"/etc/a": entry(), "/etc/b": entry(mode=0o600), "/etc/c": entry(user="haproxy", uid=110),
            "/etc/d": entry(sha256="b" * 64, mtime_ns=2000), "/etc/only-here": entry(),
            "/etc/dir": entry("dir", mtime_ns=5), "/etc/link": entry("link", target="y"),
            "/etc/kind": entry("dir")}
    there = {"/etc/a": entry(), "/etc/b": entry(), "/etc/c": entry(user="haproxy", uid=120),
             "/etc/d": entry(mtime_ns=3000), "/etc/only-there": entry(),
             "/etc/dir": entry("dir", mtime_ns=9), "/etc/link": entry("link"),
             "/etc/kind": entry()}
    found = {d.path: d for d in compare(here, there, "node-a", "node-b")}
    assert set(found) == {"/etc/b", "/etc/d", "/etc/only-here", "/etc/only-there", "/etc/link",
                          "/etc/kind"}, "same content, mode and owner (by name) is no drift"
    assert found["/etc/b"].what == ("mode",)
    assert (found["/etc/d"].what, found["/etc/d"].newer) == (("content",), "node-b")
    assert found["/etc/only-here"].what == ("only on node-a",) and found["/etc/only-here"].newer is None
    assert found["/etc/only-there"].what == ("only on node-b",)
    assert found["/etc/link"].what == ("link target",)
    assert found["/etc/kind"].what == ("kind",)
    assert found["/etc/d"].describe() == "/etc/d: content; newer on node-b"


# --- conntrackd -------------------------------------------------------------------------------

STATS = """cache internal:
current active connections:\t           4
connections created:\t\t           4\tfailed:\t           1
connections updated:\t\t           0\tfailed:\t           0
connections destroyed:\t\t           0\tfailed:\t           0

cache external:
current active connections:\t          39
connections created:\t\t          39\tfailed:\t           0

traffic processed:
                   0 Bytes                         0 Pckts

UDP traffic (active device=eth0):
                  64 Bytes sent                   56 Bytes recv
                   4 Pckts sent                    4 Pckts recv
                   3 Error send                    2 Error recv

message tracking:
                   5 Malformed msgs                    7 Lost msgs
"""


def test_conntrackd_s_counters_are_read():
    assert parse_stats(STATS) == {"internal": 4, "external": 39, "failed": 1, "send_errors": 3,
                                  "recv_errors": 2, "malformed": 5, "lost": 7}
    with pytest.raises(ValueError):
        parse_stats("connection refused")


# --- readiness ----------------------------------------------------------------------------------

RUNNING = {"keepalived": True, "conntrackd": True, "agent": True}


def test_a_healthy_backup_is_ready():
    ready = readiness("node-b", Role.BACKUP, RUNNING, standby(Role.BACKUP), standby(Role.MASTER))
    assert ready.ready and ready.reasons == []
    assert ready.counters["external"] == 42 and ready.last_sync is not None


@pytest.mark.parametrize("change,reason,short", [
    (lambda s, m, r: r.update(conntrackd=False), "conntrackd is not running", "conntrackd is down"),
    (lambda s, m, r: r.update(keepalived=False), "keepalived is not running", "keepalived is down"),
    (lambda s, m, r: s["links"].update(eth1="down"), "tracked link eth1 is down", "eth1 is down"),
    (lambda s, m, r: s["links"].update(eth2="missing"), "tracked link eth2 is missing", "eth2 is missing"),
    (lambda s, m, r: s.update(services={"haproxy": "missing"}), "haproxy is not installed", "haproxy is missing"),
    (lambda s, m, r: s["conntrack"].update(external=10), "external cache 10 of the master's 42 connections",
     "cache 10/42"),
    (lambda s, m, r: m["sync"].update(pending_changes=3), "the master's sync: 3 change(s) not pushed yet",
     "sync behind"),
    (lambda s, m, r: m.update(replication_queue=2), "2 command(s) not replayed yet", "2 queued"),
    (lambda s, m, r: s.update(conntrack=None), "conntrackd does not answer (conntrackd -s)", "conntrackd is mute"),
])
def test_a_backup_that_lacks_anything_is_not_ready_and_says_why(change, reason, short):
    mine, master, running = standby(Role.BACKUP), standby(Role.MASTER), dict(RUNNING)
    change(mine, master, running)
    ready = readiness("node-b", Role.BACKUP, running, mine, master)
    assert not ready.ready
    assert ready.reasons == [reason]
    assert [check.short for check in ready.checks if not check.ok] == [short]


def test_a_cache_a_few_entries_behind_is_still_filled():
    mine, master = standby(Role.BACKUP), standby(Role.MASTER)
    master["conntrack"]["internal"], mine["conntrack"]["external"] = 1000, 905
    assert readiness("node-b", Role.BACKUP, RUNNING, mine, master).ready
    mine["conntrack"]["external"] = 890
    assert not readiness("node-b", Role.BACKUP, RUNNING, mine, master).ready


def test_the_node_table_says_not_ready_in_red_and_drift_in_words():
    config = default_cluster()
    me, peer = config.nodes
    local = facts(LOCAL, Role.MASTER)
    backup = facts(REMOTE, Role.BACKUP, conntrackd=False)
    row = rows.node_rows(me, peer, local, backup)[1]
    assert (row.status, row.message) == (Status.FAILURE, "not ready to take over: conntrackd is down")
    both = facts(REMOTE, Role.BACKUP, ("haproxy",), conntrackd=False)
    row = rows.node_rows(me, peer, local, both)[1]
    assert row.message == "not ready to take over: conntrackd is down, haproxy is down", (
        "one list: the daemons the readiness lacks, then the services the digest found down")
    drifted = facts(LOCAL, Role.MASTER, drift=3)
    row = rows.node_rows(me, peer, drifted, facts(REMOTE, Role.BACKUP))[1]
    assert (row.status, row.message) == (Status.OK, "Config drift: 3 files")
    assert rows.node_rows(me, peer, local, facts(REMOTE, Role.BACKUP))[1].message == "Node online and passive"


# --- metrics -----------------------------------------------------------------------------------


def test_the_metrics_text_has_help_type_and_labelled_samples():
    text = render(families(NodeMetrics(node='node-"a"', role=Role.MASTER, status=Status.OK, failovers=3,
                                       last_failover_gap=3.05, replication_queue=0,
                                       conntrack={"internal": 4, "external": 0, "lost": 1})))
    lines = text.splitlines()
    assert "# TYPE skutui_role gauge" in lines
    assert 'skutui_role{node="node-\\"a\\"",role="master"} 1' in lines
    assert 'skutui_role{node="node-\\"a\\"",role="backup"} 0' in lines
    assert "# TYPE skutui_failovers_total counter" in lines
    assert 'skutui_failovers_total{node="node-\\"a\\""} 3' in lines
    assert 'skutui_last_failover_gap_seconds{node="node-\\"a\\""} 3.05' in lines
    assert 'skutui_conntrack_entries{cache="internal",node="node-\\"a\\""} 4' in lines
    assert 'skutui_conntrack_sync_errors_total{error="lost",node="node-\\"a\\""} 1' in lines
    assert not any(line.startswith("skutui_sync_lag_seconds") for line in lines), "unknown: left out"
    assert text.endswith("\n")


class _Daemon:
    def running(self) -> bool:
        return True


class _Node:
    keepalived = conntrackd = _Daemon()

    def effective_role(self) -> Role:
        return Role.MASTER


async def test_the_metrics_file_is_written_whole_readable_by_node_exporter_and_removed_when_off(
        tmp_path: Path, monkeypatch):
    from skutui.agent import metrics as metrics_module

    monkeypatch.setattr(metrics_module, "conntrack_stats", lambda conntrackd: None)
    target = tmp_path / "textfile" / "skutui.prom"
    target.parent.mkdir()
    config = [dataclasses.replace(default_cluster(), metrics_file=str(target))]
    metrics = Metrics(_Node(), "node-a", HistoryStore(tmp_path / "h.sqlite"), StepsGate(),
                      config=lambda: config[0], services=lambda: {}, sync_status=lambda: None,
                      replication=lambda: {"pending": 0}, drift=lambda: None,
                      cluster_link=lambda: {"dropped": {FOREIGN_VRRP: 7}})
    text = await metrics.refresh()
    assert target.read_text() == text and 'role="master"} 1' in text
    assert 'skutui_vrrp_foreign_dropped_total{node="node-a"} 7' in text, "the filter's own count"
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    assert [p.name for p in target.parent.iterdir()] == ["skutui.prom"]
    config[0] = dataclasses.replace(config[0], metrics_file="")
    await metrics.refresh()
    assert not target.exists(), "turned off: no stale figures left for node_exporter"
    config[0] = dataclasses.replace(config[0], metrics_file=str(tmp_path / "none" / "x.prom"))
    await metrics.refresh()
    assert not (tmp_path / "none").exists(), "a folder that does not exist is not made"


# --- the timing budget ---------------------------------------------------------------------------


def test_the_budget_is_keepalived_s_arithmetic():
    config = default_cluster()
    lost, killed, handover = timing.budget(config, "node-b")
    assert lost.seconds == pytest.approx(3 * 1.0 + (256 - 100) / 256)
    assert killed.seconds == lost.seconds
    assert handover.seconds == pytest.approx((256 - 100) / 256)
    fast = dataclasses.replace(config, check_interval=0.2)
    assert timing.master_down(fast, "node-b") == pytest.approx(0.6 + 0.2 * 156 / 256)
    assert timing.summary(fast, "node-b") == "Takeover 0.72 s (lost master), 0.12 s (hand-over)"
    preferred = dataclasses.replace(config, failback="node-b")
    assert timing.skew(preferred, "node-b") < timing.skew(preferred, "node-a"), (
        "the preferred node's higher priority waits less")


# --- a drill's gaps ------------------------------------------------------------------------------


def test_a_drill_gap_is_the_silence_between_the_old_master_and_the_new():
    answers = [(0.00, "node-a"), (0.01, "node-a"), (0.02, "node-a"), (0.45, "node-b"), (0.46, "node-b"),
               (1.00, "node-a")]
    seen = drill.runs(answers)
    assert [(r.responder, r.answers) for r in seen] == [("node-a", 3), ("node-b", 2), ("node-a", 1)]
    assert drill.gap(seen, "node-a", "node-b") == 0.43
    assert drill.gap(seen, "node-b", "node-a") == 0.54
    assert drill.gap(drill.runs([(0.0, "node-a")]), "node-a", "node-b") is None
    assert drill.message([{"to": "node-b", "probe_gap": 0.43}, {"to": "node-a", "probe_gap": 0.54}]) == (
        "drill: floating IPs handed to node-b, probes unanswered 430 ms, back to node-a, probes "
        "unanswered 540 ms")


# --- the drill's probe -------------------------------------------------------------------------


def test_the_probe_answers_and_counts_who_answered():
    """On the loopback address: the probe answers its own probes, naming this node."""
    import socket
    import time

    from skutui.system.drill import Probe

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    probe = Probe("node-a", "127.0.0.1", port, interval=0.005)
    try:
        deadline = time.monotonic() + 5
        while probe.report()["answered"] < 20 and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        probe.close()
    report = probe.report()
    assert report["node"] == "node-a" and report["answered"] >= 20
    assert [run["responder"] for run in report["runs"]] == ["node-a"]
    assert report["sent"] >= report["answered"]


class Probe:
    """A node's probe that hears the master answer from its ``after``-th report on."""

    def __init__(self, after: int) -> None:
        self.after, self.asked = after, 0

    async def report(self) -> dict:
        self.asked += 1
        return {"runs": [{"responder": "node-a"}] if self.asked >= self.after else []}

    async def close(self) -> None:
        pass


async def test_the_drill_waits_for_a_probe_slow_to_start_and_refuses_one_that_hears_nothing():
    ready, slow = Probe(1), Probe(5)
    await cluster_drill.answered([ready, slow], ("node-a", "node-b"), "node-a", "198.18.0.100", wait=5)
    assert slow.asked == 5, "asked again until it heard an answer"
    with pytest.raises(cluster_drill.DrillRefused, match="node-b hears no answer from 198.18.0.100"):
        await cluster_drill.answered([ready, Probe(10**6)], ("node-a", "node-b"), "node-a",
                                     "198.18.0.100", wait=0.2)
