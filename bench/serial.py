#!/usr/bin/env python3
"""Serial cost: bytes the console writes to its terminal, as a 9600-baud line would carry them.

The console (skutui's own App and screens) runs on the fake cluster service from
tests/fakes.py (bench/serial_app.py) on an 80x24 pseudo-terminal with TERM=linux, so it picks
the plain profile as it would on a serial console. Counted, per round:

1. first paint: every byte from start until the home screen (Details) is drawn and the
   output has been quiet for a second;
2. the Nodes screen opened with the `n` key (no target: shown for scale);
3. one status change: the fake emits one event and node-b's status turns FAILURE ("Failed
   services: conntrackd"); bytes until that is drawn and quiet for a second;
4. idle: bytes written during the following 10 s with nothing happening.
"""

from __future__ import annotations

import argparse
import os
import signal

from common import (
    BENCH_DIR,
    PYTHON,
    PtySession,
    Row,
    fmt_bytes,
    fmt_exact_bytes,
    median,
    note,
    rounds,
    spread,
    standalone,
)
from serial_app import CHANGED_MESSAGE

NAME = "serial"
LAB = False
DEFAULT_ROUNDS = 3
QUIET = 1.0
TIMEOUT = 30.0
FIRST_PAINT_TARGET = 8 * 1024
CHANGE_TARGET = 300
IDLE_TARGET = 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--serial-idle", type=float, default=10.0, metavar="SECONDS",
                        help="idle window of the serial bench (default 10)")


def one_round(idle: float) -> dict[str, int]:
    env = dict(os.environ, TERM="linux")
    env.pop("COLORTERM", None)
    session = PtySession([PYTHON, str(BENCH_DIR / "serial_app.py")], env, 80, 24)
    try:
        session.wait_text("Cluster details", "Quit", timeout=TIMEOUT)
        session.settle(QUIET)
        counts = {"first": session.received}
        before = session.received
        session.send(b"n")
        session.wait_text("Node online and passive", "Recent events", timeout=TIMEOUT)
        session.settle(QUIET)
        counts["nodes"] = session.received - before
        before = session.received
        os.kill(session.process.pid, signal.SIGUSR1)
        session.wait_text("FAILURE", CHANGED_MESSAGE, timeout=TIMEOUT)
        session.settle(QUIET)
        counts["change"] = session.received - before
        counts["idle"] = session.read_for(idle)
        return counts
    finally:
        session.close()


def collect(args: argparse.Namespace) -> list[Row]:
    count = rounds(args, DEFAULT_ROUNDS)
    idle = getattr(args, "serial_idle", 10.0)
    samples: dict[str, list[int]] = {"first": [], "nodes": [], "change": [], "idle": []}
    for round_no in range(count):
        result = one_round(idle)
        for key, value in result.items():
            samples[key].append(value)
        note(f"serial round {round_no + 1}/{count}: " + ", ".join(
            f"{key} {fmt_bytes(value)}" for key, value in result.items()))
    first, nodes = median(samples["first"]), median(samples["nodes"])
    change, quiet = median(samples["change"]), median(samples["idle"])
    where = f"80x24 TERM=linux (plain profile), fake service, {count} rounds"
    return [
        Row("serial: first paint", fmt_exact_bytes(first), target="<= 8 KB",
            met=first <= FIRST_PAINT_TARGET,
            notes=[f"home screen (Details) until quiet for {QUIET:g} s; {where}; "
                   f"{spread(samples['first'], fmt_bytes)}; "
                   f"{first * 10 / 9600:.1f} s at 9600 baud (8N1)"]),
        Row("serial: open Nodes screen", fmt_exact_bytes(nodes),
            notes=[f"the `n` key; no target; {spread(samples['nodes'], fmt_bytes)}"]),
        Row("serial: one status change", fmt_exact_bytes(change), target=f"<= {CHANGE_TARGET} B",
            met=change <= CHANGE_TARGET,
            notes=[f"node-b OK -> FAILURE on the Nodes screen, with its event line in Recent "
                   f"events; {spread(samples['change'], fmt_bytes)}"]),
        Row(f"serial: {idle:g} s idle", fmt_exact_bytes(quiet), target=f"{IDLE_TARGET} B",
            met=quiet <= IDLE_TARGET,
            notes=[f"Nodes screen, nothing happening; {spread(samples['idle'], fmt_bytes)}"]),
    ]


if __name__ == "__main__":
    standalone(collect, add_arguments, description=__doc__)
