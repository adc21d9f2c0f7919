#!/usr/bin/env python3
"""Service failover: kill -9 of haproxy on the master until the backup holds the floating
IP. Needs root and the lab (brought up here).

For each check interval (1 s and 0.2 s by default) a cluster is created on node-a with the
README's command and ``--services-on-both haproxy``, haproxy configured alike on both nodes
(a frontend on port 80 that answers by itself). A round, with the master M and the backup S:

1. ``ip monitor address`` on S's eth0 is read, each line stamped on arrival;
2. every haproxy process on M gets SIGKILL (its pid file stays, as after a crash); Debian's
   unit would start it again at once (``Restart=``), as if it had never failed, so the lab
   holds that off while the bench runs (``Lab.hold_restarts``);
3. measured from the kill until S's monitor shows 198.18.0.100 added. keepalived's check
   (one a second at most: keepalived 2.2.7 takes whole seconds) sees haproxy down twice
   (``fall 2``), ranks M below S, and M's agent, told by keepalived's notify FIFO, hands the
   floating IP over at once (a priority-0 advert through FAULT);
4. haproxy is started again on M, which turns a ready backup again (``rise 2``), and the
   next round kills haproxy on the new master, so the rounds alternate between the nodes.

The baseline is what keepalived's ranking alone would take, from the rendered
configuration: ``fall`` checks, then the backup's master-down interval (3 adverts + skew),
since a backup ignores a master that still advertises, even ranked lower. The target is the
checks themselves plus one advert and the skew.
"""

from __future__ import annotations

import argparse
import json
import math
import time

from common import Row, each_interval, fmt_time, intervals, median, note, rounds, spread, standalone
from labkit import HAPROXY_CFG, IPS, PASSWORD, VIP, VIP_CIDR, A, LabBench, other, vrrp_limit, wait_for

from skutui.domain.model import ClusterConfig, Node
from skutui.domain.render import SERVICE_FALL, service_check_interval

NAME = "service"
LAB = True
DEFAULT_ROUNDS = 5


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--service-intervals", default="1,0.2", metavar="S,S",
                        help="check intervals of the service failover bench (default 1,0.2)")


def is_vip_added(line: str) -> bool:
    return not line.startswith("Deleted") and f" {VIP}/" in line


def haproxy_pids(lab: LabBench, node: str) -> list[str]:
    return lab.run(node, "pgrep", "-x", "haproxy", check=False).stdout.split()


def ready(lab: LabBench, seen_from: str, node: str) -> bool:
    """``node``'s row is green in ``seen_from``'s node table."""
    result = lab.skutui(seen_from, "nodes", "--json", check=False)
    try:
        rows = json.loads(result.stdout)
    except ValueError:
        return False
    return any(row["hostname"] == node and row["status"] == "ok" for row in rows)


def create(lab: LabBench, interval: float) -> None:
    for node in (A, other(A)):
        lab.path(node, "/etc/haproxy/haproxy.cfg").write_text(HAPROXY_CFG.format(answer="ok"))
    note(f"creating the cluster with haproxy on both nodes (check interval {interval:g} s)")
    lab.skutui(A, "cluster", "create", "--local-ip", IPS[A], "--remote-ip", IPS[other(A)],
               "--password-stdin", "--floating-ip", VIP_CIDR, "--trust-new-host-key", "--yes",
               "--check-interval", f"{interval:g}", "--services-on-both", "haproxy",
               input=PASSWORD + "\n", timeout=120)
    lab.wait_stable(A)
    wait_for(lambda: haproxy_pids(lab, A) and haproxy_pids(lab, other(A)), 30, "haproxy on both nodes")
    for node in (A, other(A)):
        lab.lab.hold_restarts(node, ("haproxy.service",))
    wait_for(lambda: ready(lab, A, other(A)) and ready(lab, A, A), 30, "both nodes green")


def one_round(lab: LabBench, master: str, timeout: float) -> float:
    standby = other(master)
    monitor = lab.address_monitor(standby)
    try:
        killed = time.monotonic()
        lab.run(master, "pkill", "-KILL", "-x", "haproxy")
        vip_at, _ = monitor.wait(is_vip_added, timeout)
    finally:
        lab.stop(monitor)
    return vip_at - killed


def restore(lab: LabBench, old_master: str) -> str:
    new_master = other(old_master)
    wait_for(lambda: not lab.holds_vip(old_master), 30, f"{old_master} lets the floating IP go")
    lab.run(old_master, "service", "haproxy", "start")
    wait_for(lambda: ready(lab, new_master, old_master), 60, f"{old_master} ready again")
    lab.wait_stable(new_master, hold=1.0)
    return new_master


def measure_interval(lab: LabBench, interval: float, count: int) -> Row:
    create(lab, interval)
    _, priority, master_down = vrrp_limit(lab.read(other(A), "/etc/keepalived/keepalived.conf") or "")
    config = ClusterConfig(interface="eth0", nodes=(Node(A, IPS[A]), Node(other(A), IPS[other(A)])),
                           check_interval=interval)
    checks = SERVICE_FALL * service_check_interval(config)
    skew = (256 - priority) * interval / 256
    baseline = checks + master_down
    target = checks + interval + skew
    master = A
    samples: list[float] = []
    for round_no in range(count):
        samples.append(one_round(lab, master, baseline + 15.0))
        note(f"service failover {interval:g} s, round {round_no + 1}/{count} (haproxy killed on "
             f"{master}): {fmt_time(samples[-1])}")
        master = restore(lab, master)
    lab.destroy()
    value = median(samples)
    notes = [
        f"{count} rounds alternating between the nodes, {spread(samples)}; keepalived checks "
        f"haproxy every {service_check_interval(config)} s (whole seconds in keepalived 2.2.7), "
        f"down after {SERVICE_FALL} failed checks",
        f"baseline = {SERVICE_FALL} checks + master-down interval ({fmt_time(master_down)}); "
        f"target = {SERVICE_FALL} checks + 1 advert + skew ({fmt_time(skew)})",
    ]
    return Row(f"service death -> floating IP @ {interval:g} s", fmt_time(value),
               f"{fmt_time(baseline)} (keepalived's ranking alone)", f"{value / baseline:.2f}x",
               f"<= {fmt_time(target)}", value <= target and not math.isnan(value), notes)


def collect(args: argparse.Namespace) -> list[Row]:
    count = rounds(args, DEFAULT_ROUNDS)
    with LabBench() as lab:
        return each_interval(intervals(args, "service_intervals", "1,0.2"),
                             lambda interval: measure_interval(lab, interval, count),
                             lambda interval: f"service death -> floating IP @ {interval:g} s",
                             "see notes", after_failure=lab.destroy)

if __name__ == "__main__":
    standalone(collect, add_arguments, description=__doc__)
