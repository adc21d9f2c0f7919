#!/usr/bin/env python3
"""Failover: kill -9 of the master's keepalived until the backup holds the floating IP AND
has committed the connection tracking state. Needs root and the lab (brought up here).

For each check interval (1 s and 0.1 s by default) a cluster is created on node-a with the
README's command. A round, with the master M and the backup S:

1. on S, before anything happens: `ip monitor address` on eth0 and `skutui events --json`
   (the agent's event stream) are read, each line stamped on arrival;
2. keepalived's processes on M (the VRRP child first, then the parent) get SIGKILL from the
   host: no priority-0 advert goes out, as when the daemon or its machine dies;
3. measured from the kill: S's `ip monitor` shows 198.18.0.100 added, and S's agent reports
   the outcome of the MASTER transition (event kind "service", cause "keepalived MASTER"),
   which the agent reports once `conntrackd -c; -f; -R; -B` have run. The figure is the
   later of the two. The agent's role event, sent when keepalived's notify FIFO line
   arrives, is shown for comparison;
4. M's agent drops the address its dead keepalived left behind, `skutui node start` brings
   keepalived back on M, which rejoins as backup (failback disabled), and the next round
   kills the new master, so the rounds alternate between the nodes.

The baseline is the VRRP limit itself, 3 x advert_int + skew with skew = (256 - priority) x
advert_int / 256, read from the backup's rendered keepalived.conf.
"""

from __future__ import annotations

import argparse
import os
import signal
import time

from common import BenchError, Row, failed_row, fmt_time, median, note, rounds, spread, standalone
from labkit import KEEPALIVED_CONF, VIP, A, LabBench, other, vrrp_limit, wait_for

NAME = "failover"
LAB = True
DEFAULT_ROUNDS = 5
TARGET = 1.15
MASTER_CAUSE = "keepalived MASTER"
"""The cause of the agent's role event and of the transition's outcome
(skutui.agent.role_supervisor.RoleSupervisor.fifo_line,
skutui.agent.transitions.outcome_event)."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--intervals", default="1,0.1", metavar="S,S",
                        help="check intervals of the failover bench (default 1,0.1)")


def is_vip_added(line: str) -> bool:
    return not line.startswith("Deleted") and f" {VIP}/" in line


def is_master(event: dict) -> bool:
    data = event.get("data") or {}
    return event.get("kind") == "role" and data.get("cause") == MASTER_CAUSE


def is_master_commit(event: dict) -> bool:
    data = event.get("data") or {}
    return event.get("kind") == "service" and data.get("cause") == MASTER_CAUSE


def one_failover(lab: LabBench, master: str, limit: float) -> dict:
    standby = other(master)
    victims = lab.keepalived_pids(master)
    if not victims:
        raise BenchError(f"keepalived is not running on {master}")
    monitor = lab.address_monitor(standby)
    events = lab.events(standby, recent=1)
    timeout = 3 * limit + 10.0
    try:
        killed = time.monotonic()
        for pid in victims:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        vip_at, _ = monitor.wait(is_vip_added, timeout)
        keepalived_at, _ = events.wait_event(is_master, timeout)
        commit_at, event = events.wait_event(is_master_commit, timeout)
    finally:
        lab.stop(monitor)
        lab.stop(events)
    failed = (event.get("data") or {}).get("failed") or []
    return {
        "vip": vip_at - killed,
        "commit": commit_at - killed,
        "both": max(vip_at, commit_at) - killed,
        "keepalived": keepalived_at - killed,
        "failed": failed,
        "from": master,
    }


def restore(lab: LabBench, killed_master: str, interval: float) -> str:
    """keepalived back on the node whose keepalived was killed; returns the master now."""
    survivor = other(killed_master)
    wait_for(lambda: not lab.holds_vip(killed_master), 3 * interval + 10.0,
             f"{killed_master}'s agent releases the floating IP its killed keepalived left",
             poll=0.05)
    lab.skutui(killed_master, "node", "start", timeout=60)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        for master in (survivor, killed_master):
            if lab.stable(master):
                lab.wait_stable(master, hold=max(1.0, 3 * interval))
                return master
        time.sleep(0.1)
    raise BenchError(f"the cluster did not settle after keepalived came back on {killed_master}")


def measure_interval(lab: LabBench, interval: float, count: int) -> Row:
    lab.create(interval)
    _, priority, limit = vrrp_limit(lab.read(other(A), KEEPALIVED_CONF) or "")
    master = A
    samples: list[dict] = []
    for round_no in range(count):
        sample = one_failover(lab, master, limit)
        samples.append(sample)
        note(f"failover {interval:g} s, round {round_no + 1}/{count} ({master} killed): "
             f"VIP {fmt_time(sample['vip'])}, commit {fmt_time(sample['commit'])}")
        master = restore(lab, master, interval)
    lab.destroy()

    both = [s["both"] for s in samples]
    value = median(both)
    ratio = value / limit
    notes = [
        f"{count} rounds alternating between the nodes, {spread(both)}; limit = 3 x {interval:g}"
        f" + (256 - {priority}) x {interval:g} / 256",
        f"medians: floating IP on the backup {fmt_time(median([s['vip'] for s in samples]))}, "
        f"conntrackd commit reported {fmt_time(median([s['commit'] for s in samples]))}",
        f"the agent's role event (keepalived's FIFO line): median "
        f"{fmt_time(median([s['keepalived'] for s in samples]))}",
    ]
    failures = [f for s in samples for f in s["failed"]]
    if failures:
        notes.append(f"the MASTER hook reported failed steps: {'; '.join(sorted(set(failures)))}")
    return Row(f"failover @ {interval:g} s", fmt_time(value),
               f"{fmt_time(limit)} (VRRP limit)", f"{ratio:.2f}x", f"<= {TARGET:g}x",
               ratio <= TARGET and not failures, notes)


def collect(args: argparse.Namespace) -> list[Row]:
    count = rounds(args, DEFAULT_ROUNDS)
    intervals = [float(x) for x in str(getattr(args, "intervals", "1,0.1")).split(",") if x]
    rows: list[Row] = []
    with LabBench() as lab:
        for interval in intervals:
            try:
                rows.append(measure_interval(lab, interval, count))
            except BenchError as exc:
                rows.append(failed_row(f"failover @ {interval:g} s", f"<= {TARGET:g}x", exc))
                lab.destroy()
    return rows


if __name__ == "__main__":
    standalone(collect, add_arguments, description=__doc__)
