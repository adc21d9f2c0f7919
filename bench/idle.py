#!/usr/bin/env python3
"""Idle cost: CPU of the agents and the console over 60 s of a healthy cluster. Needs root
and the lab (brought up here).

A cluster is created on node-a with the README's command (check interval 1 s, the default)
and left to settle. The console (`skutui`, full profile, 80x24 pseudo-terminal) is started on
node-a and opened on its Nodes screen, which follows both agents' events live. Then, over the
window, from /proc/PID/stat (utime + stime, plus the children each has waited for):

- the agents on node-a and node-b, the console, and the `skutui events` the console keeps
  running on node-b for the peer's events: the figure, as a share of one core;
- every process in both nodes (keepalived, conntrackd, sshd included), for scale;
- the bytes the console wrote to its terminal meanwhile.
"""

from __future__ import annotations

import argparse
import time

from common import (
    BenchError,
    PtySession,
    Row,
    cmdline,
    cpu_seconds,
    descendants,
    failed_row,
    fmt_bytes,
    fmt_time,
    standalone,
)
from labkit import A, B, LabBench, wait_for

NAME = "idle"
LAB = True
TARGET = 1.0
"""Percent of one core."""
INTERVAL = 1.0
SETTLE = 5.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--idle-seconds", type=float, default=60.0, metavar="SECONDS",
                        help="measuring window of the idle bench (default 60)")


def console_pid(session: PtySession) -> int:
    for pid in descendants(session.process.pid):
        args = cmdline(pid)
        if args and "python" in args[0].rsplit("/", 1)[-1] and "skutui" in args:
            return pid
    raise BenchError("cannot find the console's process")


def sample(pids: list[int]) -> dict[int, float]:
    found = {}
    for pid in pids:
        value = cpu_seconds(pid)
        if value is not None:
            found[pid] = value
    return found


def collect(args: argparse.Namespace) -> list[Row]:
    window = getattr(args, "idle_seconds", 60.0)
    name = f"idle cost ({window:g} s)"
    with LabBench() as lab:
        try:
            lab.create(INTERVAL)
            time.sleep(SETTLE)
            env = lab.lab.environment({"TERM": "xterm-256color"})
            session = PtySession(lab.lab.command(A, ["skutui"]), env, 80, 24)
            lab.children.append(session.process)
            try:
                session.wait_text("Cluster details", timeout=60)
                session.send(b"n")
                session.wait_text("Node online and active", "Node online and passive", timeout=60)
                session.settle(2.0, timeout=30)
                wait_for(lambda: lab.event_followers(B), 30.0, "the console following node-b's events")
                time.sleep(SETTLE)
                parts = {
                    "agent on node-a": [lab.agent_pid(A)],
                    "agent on node-b": [lab.agent_pid(B)],
                    "console": [console_pid(session)],
                    "console's event stream on node-b": lab.event_followers(B),
                }
                if None in parts["agent on node-a"] + parts["agent on node-b"]:
                    raise BenchError("an agent is not running")
                everything = lab.processes(A) + lab.processes(B)
                before = sample([p for pids in parts.values() for p in pids] + everything)
                started = time.monotonic()
                written = session.read_for(window)
                elapsed = time.monotonic() - started
                everything_after = lab.processes(A) + lab.processes(B)
                after = sample([p for pids in parts.values() for p in pids] + everything_after)
            finally:
                session.close()
                lab.children.remove(session.process)
        except BenchError as exc:
            return [failed_row(name, f"<= {TARGET:g} % of a core", exc)]

    def used(pids: list[int]) -> float:
        return sum(after.get(p, before.get(p, 0.0)) - before.get(p, 0.0) for p in pids)

    shares = {part: used(pids) / elapsed * 100 for part, pids in parts.items()}
    total = sum(shares.values())
    whole = used(sorted(set(everything) | set(everything_after))) / elapsed * 100
    breakdown = ", ".join(f"{part} {share:.2f} %" for part, share in shares.items())
    return [Row(name, f"{total:.2f} % of a core", target=f"<= {TARGET:g} % of a core",
                met=total <= TARGET,
                notes=[f"{breakdown} (over {fmt_time(elapsed)}, check interval {INTERVAL:g} s)",
                       f"every process in both nodes (keepalived, conntrackd, sshd too): "
                       f"{whole:.2f} % of a core",
                       f"the console wrote {fmt_bytes(written)} to its terminal meanwhile "
                       f"(Nodes screen)"])]


if __name__ == "__main__":
    standalone(collect, add_arguments, description=__doc__)
