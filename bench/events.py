#!/usr/bin/env python3
"""Event -> screen: a keepalived transition until the console's node table shows it.

Needs root and the lab (brought up here). A cluster is created on node-a (check interval 1
s); the console runs under Textual's Pilot with the real cluster service inside a node
(bench/events_probe.py), on its Nodes screen. Each round puts node-b (the backup) in and out
of maintenance by writing its maintenance flag, the keepalived track file, as `skutui
maintenance` does: keepalived moves node-b to FAULT, then back to BACKUP.

Measured from the write of the flag (keepalived sees it at once through inotify; the FIFO
line it then writes is the agent's to read) until the screen has been refreshed after
node-b's role cell changed. Two consoles, one after the other:

- on node-a: the transition happens on the peer (its agent's events arrive over SSH);
- on node-b: the transition happens on this node (events over the local control socket).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
import time
from pathlib import Path

from common import BENCH_DIR, PYTHON, BenchError, Row, failed_row, fmt_time, median, note, rounds, spread, standalone
from labkit import MAINTENANCE_FLAG, A, B, LabBench, LineStream, wait_for

from skutui.system.files import write_text_atomic

NAME = "events"
LAB = True
DEFAULT_ROUNDS = 5
TARGET = 0.100
INTERVAL = 1.0
TRANSITIONS = (("1", "maintenance"), ("0", "backup"))
"""Flag value written (keepalived goes to FAULT, then back to BACKUP), role the table shows."""
ROLE_COLUMN = 1


def report(line: str) -> dict:
    try:
        value = json.loads(line)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def start_console(lab: LabBench, node: str) -> LineStream:
    log = tempfile.NamedTemporaryFile(prefix=f"skutui-bench-console-{node}-", suffix=".log",
                                      delete=False)
    with log:
        process = lab.popen(node, [PYTHON, str(BENCH_DIR / "events_probe.py")],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log,
                            text=True, bufsize=1)
    probe = LineStream(process, f"console on {node}")
    try:
        probe.wait(lambda line: report(line).get("kind") == "ready", 120.0)
    except BenchError as exc:
        tail = Path(log.name).read_text(errors="replace")[-1500:]
        raise BenchError(f"{exc}; its log {log.name} ends with:\n{tail}") from None
    return probe


def stop_console(lab: LabBench, probe: LineStream) -> None:
    try:
        probe.process.stdin.close()
        probe.process.wait(timeout=15)
    except (OSError, subprocess.TimeoutExpired):
        pass
    lab.stop(probe)


def one_transition(lab: LabBench, probe: LineStream, side: str, flag: str, role: str) -> dict:
    probe.drain()
    triggered = time.monotonic()
    write_text_atomic(lab.path(B, MAINTENANCE_FLAG), flag + "\n")
    _, line = probe.wait(lambda text: report(text).get("kind") == "cells"
                         and report(text)["rows"].get(side, [None] * 6)[ROLE_COLUMN] == role,
                         30.0)
    cells = report(line)
    _, line = probe.wait(lambda text: report(text).get("kind") == "painted"
                         and report(text).get("seq") == cells["seq"], 10.0)
    return {"screen": report(line)["t"] - triggered, "cells": cells["t"] - triggered}


def measure_console(lab: LabBench, console: str, count: int) -> Row:
    side = "local" if console == B else "remote"
    label = "this node" if console == B else "peer"
    probe = start_console(lab, console)
    samples: list[dict] = []
    try:
        peer = B if console == A else A
        wait_for(lambda: lab.event_followers(peer), 30.0, f"the console on {console} following "
                 f"{peer}'s events")
        for flag, role in TRANSITIONS:  # warm-up, not counted: every stream is open
            one_transition(lab, probe, side, flag, role)
            wait_for(lambda role=role: lab.role(B) == role, 15.0, f"node-b's role file says {role}")
            time.sleep(1.0)
        for round_no in range(count):
            for flag, role in TRANSITIONS:
                samples.append(one_transition(lab, probe, side, flag, role))
                wait_for(lambda role=role: lab.role(B) == role, 15.0, f"node-b's role file says {role}")
                time.sleep(1.0)
            note(f"event -> screen, console on {console}, round {round_no + 1}/{count}: "
                 f"{fmt_time(samples[-2]['screen'])}, {fmt_time(samples[-1]['screen'])}")
    finally:
        stop_console(lab, probe)
    screen = [s["screen"] for s in samples]
    value = median(screen)
    notes = [f"console on {console}, node-b's transitions to FAULT and back, {len(samples)} "
             f"samples, {spread(screen)}",
             f"median until the cells changed {fmt_time(median([s['cells'] for s in samples]))}"]
    return Row(f"event -> screen ({label})", fmt_time(value), target=f"<= {fmt_time(TARGET)} median",
               met=value <= TARGET, notes=notes)


def collect(args: argparse.Namespace) -> list[Row]:
    count = rounds(args, DEFAULT_ROUNDS)
    rows = []
    with LabBench() as lab:
        lab.create(INTERVAL)
        for console in (A, B):
            label = "this node" if console == B else "peer"
            try:
                rows.append(measure_console(lab, console, count))
            except BenchError as exc:
                rows.append(failed_row(f"event -> screen ({label})", f"<= {fmt_time(TARGET)} median", exc))
                write_text_atomic(lab.path(B, MAINTENANCE_FLAG), "0\n")
    return rows


if __name__ == "__main__":
    standalone(collect, description=__doc__)
