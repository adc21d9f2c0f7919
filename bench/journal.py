#!/usr/bin/env python3
"""Journal drain: 10 000 commands queued for an absent backup, then replayed in order when it
returns; the journal's own cost per command (no lab, no root).

Both journals are driven by the same replay loop against a backup that answers at once
(``Outcome(seq, applied)``), so what is timed is the journal: for skutui, the replay's
``Replayer.replay_pending`` on :class:`skutui.system.journal.Journal` (SQLite, WAL,
synchronous=FULL: one row found and one row written per command, each answer fsynced);
for the baseline, the line journal as it was before (``bench/journal_lines.py``: the whole
file re-read and re-parsed for every answer, acknowledgements in a JSON file written
atomically). Both live in a folder under /var/tmp, on disk like /etc/skutui (a tmpfs
would make every fsync free).

skutui's drain is timed whole, and checked to have replayed 1..10 000 once each, in
order. The baseline's whole drain would take tens of minutes on a 2-CPU machine: it is
timed over a sample of answers at several queue depths (``--journal-sample`` each, at 10 000,
7 500, 5 000, 2 500 and 1 000 pending) and the whole drain is the sum over the queue depths
it goes through (compaction every 1 000 answers), each at the cost measured nearest to it;
the note says so. ``--journal-full-baseline`` drains the baseline whole instead.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
import time
from pathlib import Path

from common import BENCH_DIR, ROOT, Row, fmt_time, median, note, rounds, spread, standalone

sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(BENCH_DIR))

from journal_lines import LineJournal  # noqa: E402 - the checkout's skutui, on the path above

from skutui.agent.replication import Replayer  # noqa: E402
from skutui.system.journal import APPLIED, Entry, Journal, Outcome, encode_record  # noqa: E402

NAME = "journal"
LAB = False
DEFAULT_ROUNDS = 1
COUNT = 10_000
TARGET = 10.0
"""Seconds of journal overhead for the whole drain of 10 000 commands."""
DEPTHS = (10_000, 7_500, 5_000, 2_500, 1_000)
SAMPLE = 40
SCRATCH = Path("/var/tmp")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--journal-count", type=int, default=COUNT, metavar="N",
                        help=f"commands queued (default {COUNT})")
    parser.add_argument("--journal-sample", type=int, default=SAMPLE, metavar="N",
                        help=f"baseline answers timed at each queue depth (default {SAMPLE})")
    parser.add_argument("--journal-full-baseline", action="store_true",
                        help="drain the baseline whole (tens of minutes) instead of sampling")


class Backup:
    """Answers every command at once, and remembers the order it was asked in."""

    def __init__(self) -> None:
        self.asked: list[int] = []

    async def replay(self, entry: Entry) -> Outcome:
        self.asked.append(entry.seq)
        return Outcome(entry.seq, APPLIED, 0)


def skutui_drain(folder: Path, count: int) -> tuple[float, float]:
    """(seconds per append, seconds for the whole drain)."""
    journal = Journal(folder / "journal")
    started = time.perf_counter()
    for _ in range(count):
        journal.append(["true"], origin="node-a", term="bench/1")
    appended = time.perf_counter() - started
    backup = Backup()
    started = time.perf_counter()
    done = asyncio.run(Replayer(journal, backup, lambda *a, **k: None).replay_pending())
    drained = time.perf_counter() - started
    if done != count or backup.asked != list(range(1, count + 1)) or journal.pending():
        raise RuntimeError(f"the drain replayed {done} of {count}, or out of order")
    journal.close()
    return appended / count, drained


def line_journal(folder: Path, count: int) -> LineJournal:
    """A line journal holding ``count`` queued commands, written in one go (filling it one
    append at a time would itself take most of an hour)."""
    journal = LineJournal(folder / "journal", max_pending=count + 1)
    first = journal.append(["true"], origin="node-a")
    records = b"".join(encode_record(Entry(seq=n, journal=first.journal, kind="exec",
                                           argv=("true",), origin="node-a", time=time.time()))
                       for n in range(2, count + 1))
    with open(journal.path, "ab") as handle:
        handle.write(records)
    return journal


def line_costs(folder: Path, count: int, sample: int) -> tuple[float, dict[int, float]]:
    """(seconds per append at ``count`` pending, {queue depth: seconds per answer})."""
    journal = line_journal(folder / "append", count - 1)
    started = time.perf_counter()
    journal.append(["true"], origin="node-a")
    append = time.perf_counter() - started
    costs = {}
    for depth in [d for d in DEPTHS if d <= count]:
        journal = line_journal(folder / f"depth-{depth}", depth)
        backup = Backup()
        entries = journal.pending()[:sample]
        started = time.perf_counter()
        for entry in entries:  # the replay loop of before: one read, then an answer each
            backup.asked.append(entry.seq)
            journal.ack(Outcome(entry.seq, APPLIED, 0))
        costs[depth] = (time.perf_counter() - started) / len(entries)
        note(f"journal baseline: {fmt_time(costs[depth])} per answer at {depth} pending")
    return append, costs


def extrapolated(costs: dict[int, float], count: int) -> float:
    """The whole drain: the file holds what is not compacted away yet (every 1 000 answers),
    each answer at the cost measured at the nearest depth, scaled by the file's length."""
    total = 0.0
    for answered in range(count):
        length = count - (answered // 1000) * 1000
        nearest = min(costs, key=lambda depth: abs(depth - length))
        total += costs[nearest] * length / nearest
    return total


def line_full_drain(folder: Path, count: int) -> float:
    journal = line_journal(folder / "full", count)
    backup = Backup()
    started = time.perf_counter()
    for entry in journal.pending():
        backup.asked.append(entry.seq)
        journal.ack(Outcome(entry.seq, APPLIED, 0))
    return time.perf_counter() - started


def collect(args: argparse.Namespace) -> list[Row]:
    count = args.journal_count
    runs = rounds(args, DEFAULT_ROUNDS)
    folder = Path(tempfile.mkdtemp(prefix="skutui-bench-journal-", dir=SCRATCH))
    try:
        drains, appends = [], []
        for round_no in range(runs):
            per_append, drain = skutui_drain(folder / f"skutui-{round_no}", count)
            drains.append(drain)
            appends.append(per_append)
            note(f"journal round {round_no + 1}/{runs}: drain of {count} in {fmt_time(drain)}")
        base_append, costs = line_costs(folder / "lines", count, args.journal_sample)
        if args.journal_full_baseline:
            base = line_full_drain(folder / "lines", count)
            how = "measured whole"
        else:
            base = extrapolated(costs, count)
            how = (f"extrapolated from {args.journal_sample} answers timed at each of "
                   f"{', '.join(str(d) for d in costs)} pending")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    drain = median(drains)
    per_command = drain / count
    depths = ", ".join(f"{fmt_time(c)} at {d}" for d, c in costs.items())
    baseline = "(line journal of before)"
    return [
        Row(f"journal: overhead per command, {count} queued", fmt_time(per_command),
            f"{fmt_time(base / count)} {baseline}", f"{base / drain:.0f}x faster",
            notes=[f"replayed 1..{count} once each, in order, to a backup that answers at "
                   f"once; {runs} round(s); baseline per answer: {depths}",
                   f"append at {count} pending: {fmt_time(median(appends))} (line journal "
                   f"{fmt_time(base_append)})"]),
        Row(f"journal: whole drain of {count}", fmt_time(drain), f"{fmt_time(base)} {baseline}",
            f"{base / drain:.0f}x faster", f"<= {TARGET:g} s", drain <= TARGET,
            [f"skutui {spread(drains)}; baseline {how}"]),
    ]


if __name__ == "__main__":
    standalone(collect, add_arguments, description=__doc__)
