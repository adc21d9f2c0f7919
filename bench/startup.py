#!/usr/bin/env python3
"""Start-up: `skutui` to its first paint, against a bare Textual app with a DataTable.

Both run on a fresh 80x24 pseudo-terminal (TERM=xterm-256color), started the same way by the
same interpreter, alternately, one unmeasured warm-up each. skutui runs with SKUTUI_ROOT on an
empty folder, so it opens Configure (no cluster, no peer, no agent). Two moments are taken
from the bytes as they arrive, by replaying them on a small screen model:

- first paint: the first frame with any text on it (skutui: its home screen, which it waits
  for up to half a second before showing a "Starting" screen instead);
- home screen drawn: the app's first screen complete (skutui: Configure with its footer keys;
  the baseline: the table's last cell).
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile

from bare_app import LAST_CELL
from common import BENCH_DIR, PYTHON, PtySession, Row, fmt_time, median, note, rounds, spread, standalone

NAME = "start-up"
LAB = False
DEFAULT_ROUNDS = 10
TARGET = 1.25
TERM = "xterm-256color"
TIMEOUT = 30.0

SKUTUI_HOME = ("Configure the cluster", "Apply", "Quit")


def skutui_argv() -> list[str]:
    beside = os.path.join(os.path.dirname(PYTHON), "skutui")
    return [beside] if os.path.exists(beside) else [PYTHON, "-m", "skutui"]


def measure(argv: list[str], env: dict[str, str], home: tuple[str, ...]) -> tuple[float, float]:
    """Seconds from spawn to the first painted text, and to the home screen drawn."""
    session = PtySession(argv, env)
    try:
        first = session.wait_screen(lambda s: s.text().strip() != "", TIMEOUT, "any text")
        drawn = session.wait_text(*home, timeout=TIMEOUT)
        return first - session.started, drawn - session.started
    finally:
        session.close()


def collect(args: argparse.Namespace) -> list[Row]:
    count = rounds(args, DEFAULT_ROUNDS)
    empty = tempfile.mkdtemp(prefix="skutui-bench-root-")
    env = dict(os.environ, TERM=TERM, SKUTUI_ROOT=empty)
    env.pop("COLORTERM", None)
    apps = {
        "skutui": (skutui_argv(), SKUTUI_HOME),
        "bare": ([PYTHON, str(BENCH_DIR / "bare_app.py")], (LAST_CELL,)),
    }
    firsts: dict[str, list[float]] = {name: [] for name in apps}
    drawns: dict[str, list[float]] = {name: [] for name in apps}
    try:
        for argv, home in apps.values():
            measure(argv, env, home)  # warm-up: caches, bytecode
        for round_no in range(count):
            order = list(apps) if round_no % 2 == 0 else list(reversed(apps))
            for name in order:
                first, drawn = measure(apps[name][0], env, apps[name][1])
                firsts[name].append(first)
                drawns[name].append(drawn)
            note(f"start-up round {round_no + 1}/{count}: skutui {fmt_time(drawns['skutui'][-1])}, "
                 f"bare {fmt_time(drawns['bare'][-1])}")
    finally:
        shutil.rmtree(empty, ignore_errors=True)

    rows = []
    base_first, base_drawn = median(firsts["bare"]), median(drawns["bare"])
    for label, mine, base, values, base_values in (
        ("first paint", median(firsts["skutui"]), base_first, firsts["skutui"], firsts["bare"]),
        ("home screen drawn", median(drawns["skutui"]), base_drawn, drawns["skutui"], drawns["bare"]),
    ):
        ratio = mine / base
        rows.append(Row(
            f"start-up: {label}", fmt_time(mine), f"{fmt_time(base)} (bare DataTable app)",
            f"{ratio:.2f}x", f"<= {TARGET:g}x", ratio <= TARGET,
            [f"medians of {count} rounds at 80x24 TERM={TERM}; skutui {spread(values)}, "
             f"bare {spread(base_values)}"]))
    rows[0].notes.append("skutui's first paint is its home screen (Configure); the bare app's "
                         "is its whole table")
    rows[1].notes.append("skutui: Configure (no cluster) with its footer keys drawn")
    return rows


if __name__ == "__main__":
    standalone(collect, description=__doc__)
