#!/usr/bin/env python3
"""L7 outage across failover: HTTP through the floating IP, a new connection per request,
while the master's keepalived is killed. Needs root and the lab (brought up here).

A cluster is created on node-a with the README's command and ``--services haproxy`` (started
on the master only), each node's haproxy answering by itself on port 80 with its own name.
A round, with the master M and the backup S:

1. a client on the host asks ``GET /`` of 198.18.0.100:80 in a loop, each request on a new
   TCP connection (connect and answer within 0.25 s, else it counts as failed), and stamps
   every answer on arrival;
2. keepalived's processes on M (the VRRP child first, then the parent) get SIGKILL from the
   host: no priority-0 advert goes out, as when the daemon or its machine dies;
3. measured: the longest time between two answers across the kill, as the client sees the
   outage. S has to notice the silence, hold the floating IP and start haproxy; M's agent
   has to stop answering (it drops the address its dead keepalived left and stops haproxy,
   a master-only service). The answers after the outage must come from S;
4. ``skutui node start`` brings keepalived back on M, which rejoins as backup (failback
   disabled), and the next round kills the new master, so the rounds alternate.

The baseline is the VRRP limit, 3 x advert_int + skew with skew = (256 - priority) x
advert_int / 256, read from the backup's rendered keepalived.conf; the target is the
failover bench's, 1.15 x that limit, with the start of haproxy inside it.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import threading
import time

from common import BenchError, Row, failed_row, fmt_time, median, note, rounds, spread, standalone
from labkit import HAPROXY_CFG, IPS, KEEPALIVED_CONF, PASSWORD, VIP, VIP_CIDR, A, LabBench, other, vrrp_limit, wait_for

NAME = "l7"
LAB = True
DEFAULT_ROUNDS = 5
TARGET = 1.15
INTERVAL = 1.0
REQUEST_TIMEOUT = 0.25
PAUSE = 0.005
"""Between two requests: the client asks about 100 times a second when all is well."""
BEFORE = 1.0
"""How long the client runs before the kill, so the outage's start is an answer too."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--l7-interval", type=float, default=INTERVAL, metavar="S",
                        help=f"check interval of the L7 outage bench (default {INTERVAL:g})")


def ask() -> str | None:
    """One request on a new connection: the node that answered, or None."""
    try:
        with socket.create_connection((VIP, 80), timeout=REQUEST_TIMEOUT) as conn:
            conn.settimeout(REQUEST_TIMEOUT)
            conn.sendall(b"GET / HTTP/1.0\r\nHost: bench\r\n\r\n")
            reply = b""
            while chunk := conn.recv(4096):
                reply += chunk
    except OSError:
        return None
    head, _, body = reply.partition(b"\r\n\r\n")
    status = head.split(b"\r\n", 1)[0].split()
    if status[1:2] != [b"200"]:
        return None
    return body.decode(errors="replace").strip()


class Client:
    """Requests in a loop on a thread of its own; ``answers`` holds (arrival, node)."""

    def __init__(self) -> None:
        self.answers: list[tuple[float, str]] = []
        self.failed = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop.is_set():
            node = ask()
            if node is None:
                self.failed += 1
            else:
                self.answers.append((time.monotonic(), node))
            time.sleep(PAUSE)

    def __enter__(self) -> Client:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def answered_by(self, node: str, after: float) -> bool:
        return any(at > after and who == node for at, who in list(self.answers))


def one_round(lab: LabBench, master: str, limit: float) -> dict:
    standby = other(master)
    victims = lab.keepalived_pids(master)
    if not victims:
        raise BenchError(f"keepalived is not running on {master}")
    with Client() as client:
        wait_for(lambda: client.answered_by(master, 0.0), 10, f"{master} answers through {VIP}")
        time.sleep(BEFORE)
        killed = time.monotonic()
        for pid in victims:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        wait_for(lambda: client.answered_by(standby, killed), 3 * limit + 10.0,
                 f"{standby} answers through {VIP}", poll=0.01)
        recovered = next(at for at, who in client.answers if at > killed and who == standby)
        time.sleep(0.5)
    answers = client.answers
    around = [at for at, _ in answers if killed - BEFORE / 2 <= at <= recovered]
    gaps = [later - earlier for earlier, later in zip(around, around[1:], strict=False)]
    last_old = max((at for at, who in answers if who == master and at <= recovered), default=killed)
    late = [who for at, who in answers if at > recovered and who != standby]
    if late:
        raise BenchError(f"{len(late)} answers from {master} after {standby} took over")
    return {"outage": max(gaps, default=recovered - killed), "recovered": recovered - killed,
            "old_served": max(0.0, last_old - killed), "failed": client.failed, "from": master}


def restore(lab: LabBench, killed_master: str, interval: float) -> str:
    survivor = other(killed_master)
    wait_for(lambda: not lab.holds_vip(killed_master), 30,
             f"{killed_master}'s agent releases the floating IP its killed keepalived left", poll=0.05)
    wait_for(lambda: not lab.run(killed_master, "pgrep", "-x", "haproxy", check=False).stdout.strip(),
             30, f"{killed_master} stops haproxy (master-only)", poll=0.05)
    lab.skutui(killed_master, "node", "start", timeout=60)
    lab.wait_stable(survivor, hold=max(1.0, 3 * interval))
    return survivor


def create(lab: LabBench, interval: float) -> None:
    for node in (A, other(A)):
        lab.path(node, "/etc/haproxy/haproxy.cfg").write_text(HAPROXY_CFG.format(answer=node))
    note(f"creating the cluster with haproxy on the master (check interval {interval:g} s)")
    lab.skutui(A, "cluster", "create", "--local-ip", IPS[A], "--remote-ip", IPS[other(A)],
               "--password-stdin", "--floating-ip", VIP_CIDR, "--trust-new-host-key", "--yes",
               "--check-interval", f"{interval:g}", "--services", "haproxy",
               input=PASSWORD + "\n", timeout=180)
    lab.wait_stable(A)


def measure(lab: LabBench, interval: float, count: int) -> Row:
    create(lab, interval)
    _, priority, limit = vrrp_limit(lab.read(other(A), KEEPALIVED_CONF) or "")
    master = A
    samples: list[dict] = []
    for round_no in range(count):
        sample = one_round(lab, master, limit)
        samples.append(sample)
        note(f"L7 outage {interval:g} s, round {round_no + 1}/{count} ({master}'s keepalived "
             f"killed): {fmt_time(sample['outage'])}, {sample['failed']} failed requests")
        master = restore(lab, master, interval)
    lab.destroy()
    outages = [s["outage"] for s in samples]
    value = median(outages)
    ratio = value / limit
    notes = [
        f"{count} rounds alternating between the nodes, {spread(outages)}; new connection per "
        f"request, {REQUEST_TIMEOUT:g} s per request; limit = 3 x {interval:g} + (256 - "
        f"{priority}) x {interval:g} / 256",
        f"medians: first answer from the new master {fmt_time(median([s['recovered'] for s in samples]))}"
        f" after the kill; the old master still answered for "
        f"{fmt_time(median([s['old_served'] for s in samples]))}; failed requests per round "
        f"{median([float(s['failed']) for s in samples]):.0f}",
    ]
    return Row(f"L7 outage across failover @ {interval:g} s", fmt_time(value),
               f"{fmt_time(limit)} (VRRP limit)", f"{ratio:.2f}x", f"<= {TARGET:g}x",
               ratio <= TARGET, notes)


def collect(args: argparse.Namespace) -> list[Row]:
    count = rounds(args, DEFAULT_ROUNDS)
    interval = float(getattr(args, "l7_interval", INTERVAL))
    with LabBench() as lab:
        try:
            return [measure(lab, interval, count)]
        except BenchError as exc:
            lab.destroy()
            return [failed_row(f"L7 outage across failover @ {interval:g} s", f"<= {TARGET:g}x", exc)]


if __name__ == "__main__":
    standalone(collect, add_arguments, description=__doc__)
