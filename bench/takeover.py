#!/usr/bin/env python3
"""Traffic through the floating IP across a takeover: what a client sees when the master's
keepalived is killed. Needs root and the lab (brought up here).

The backend and the load balancer are the lab tests' (tests/lab/backend.py): a namespace
on the lab bridge (198.18.0.10) with an HTTP/1.1 server, and on both nodes an nftables
DNAT+SNAT load balancer on 198.18.0.100:80 with a strict conntrack
(nf_conntrack_tcp_loose=0, `ct state invalid drop` on forward). The clients run on the
host (the bridge's 198.18.0.254). A round kills keepalived on the master (VRRP child first,
then the parent, SIGKILL from the host), waits until the other node has taken over and the
traffic flows again, then brings keepalived back on the killed node (`skutui node start`);
rounds alternate between the nodes.

**Busy keep-alive connections, longest stall**: 16 keep-alive connections requesting in a
loop (one request every 20 ms each); the figure is the longest time any one of them waited
between two answers around the kill, and every connection must survive. (The L7 outage with
a new connection per request is ``l7_failover.py``'s.)
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from pathlib import Path

from common import BenchError, Row, each_interval, fmt_time, intervals, median, note, rounds, spread, standalone
from labkit import A, LabBench, other, wait_for

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.lab.backend import (  # noqa: E402
    Backend,
    KeepAliveClients,
    LoadBalancer,
)
from tests.lab.labcluster import LabCluster  # noqa: E402

NAME = "takeover"
LAB = True
DEFAULT_ROUNDS = 3
STALL_TARGET = 0.3
CONNECTIONS = 16
SETTLE = 15.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--stall-intervals", default="1,0.1", metavar="S,S",
                        help="check intervals of the busy-connection rows (default 1,0.1)")


def kill_keepalived(lab: LabBench, node: str) -> float:
    victims = lab.keepalived_pids(node)
    if not victims:
        raise BenchError(f"keepalived is not running on {node}")
    killed = time.monotonic()
    for pid in victims:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return killed


def take_over(lab: LabBench, master: str, interval: float) -> tuple[float, str]:
    """Kill the master's keepalived, wait for the other node to hold the floating IP alone;
    returns when it was killed and the new master."""
    killed = kill_keepalived(lab, master)
    taker = other(master)
    wait_for(lambda: lab.holds_vip(taker) and not lab.holds_vip(master), 3 * (4 * interval) + 10,
             f"{taker} holds the floating IP alone", poll=0.02)
    return killed, taker


def bring_back(lab: LabBench, killed: str, master: str, interval: float) -> None:
    lab.skutui(killed, "node", "start", timeout=60)
    lab.wait_stable(master, hold=max(1.0, 3 * interval))


def with_balancer(lab: LabBench, interval: float):
    """The cluster, the backend and the load balancer, for one interval."""
    lab.create(interval)
    cluster = LabCluster(lab.lab)
    backend, balancer = Backend(), LoadBalancer(cluster, hardened=True)
    backend.start()
    try:
        for node in (A, other(A)):
            balancer.install(node)
    except BaseException:
        backend.stop()
        raise
    return backend, balancer


def tear_down(lab: LabBench, backend: Backend, balancer: LoadBalancer) -> None:
    try:
        balancer.remove()
        backend.stop()
    finally:
        lab.destroy()


def stall_row(lab: LabBench, interval: float, count: int) -> Row:
    backend, balancer = with_balancer(lab, interval)
    try:
        master, stalls, lost = A, [], []
        for round_no in range(count):
            clients = KeepAliveClients(CONNECTIONS)
            clients.start()
            try:
                time.sleep(max(1.0, 3 * interval))  # conntrackd has sent them to the backup
                killed, taker = take_over(lab, master, interval)
                clients.wait_replies(time.monotonic(), 10, SETTLE, "every connection answers")
                stalls.append(clients.longest_stall(killed - 0.5))
                lost.append(len(clients.lost()))
            finally:
                clients.stop()
            note(f"busy stall @ {interval:g} s, round {round_no + 1}/{count} ({master} killed): "
                 f"{fmt_time(stalls[-1])}, {lost[-1]} of {CONNECTIONS} lost")
            bring_back(lab, master, taker, interval)
            master = taker
    finally:
        tear_down(lab, backend, balancer)
    value = median(stalls)
    return Row(f"busy keep-alive connection, longest stall at takeover @ {interval:g} s",
               fmt_time(value), "—", "—", f"<= {fmt_time(STALL_TARGET)}",
               value <= STALL_TARGET and not any(lost), [
                   f"{count} rounds alternating between the nodes, {spread(stalls)}; "
                   f"{CONNECTIONS} connections, one request every 20 ms each; the longest wait "
                   "of any one connection between two answers",
                   f"connections lost per round: {', '.join(map(str, lost))}"])


def collect(args: argparse.Namespace) -> list[Row]:
    count = rounds(args, DEFAULT_ROUNDS)
    with LabBench() as lab:
        return each_interval(
            intervals(args, "stall_intervals", "1,0.1"),
            lambda interval: stall_row(lab, interval, count),
            lambda interval: f"busy keep-alive connection, longest stall at takeover @ {interval:g} s",
            f"<= {fmt_time(STALL_TARGET)}", errors=(BenchError, AssertionError))

if __name__ == "__main__":
    standalone(collect, add_arguments, description=__doc__)
