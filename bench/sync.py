#!/usr/bin/env python3
"""Config sync: one changed file on the master until it is byte-identical on the backup, in
trees of 100, 1 000 and 10 000 files, against `rsync -az --delete` of the tree over a fresh
ssh, which is what the original tool does. Needs root and the lab (brought up here).

For each tree size, the tree (100 files a folder, 0.1-1.2 KB each) is written under
/etc/skutui/bench on both nodes, identical to the nanosecond mtime, before the cluster is
created; the synced path is /etc/skutui, so skutui's first comparison finds the trees in step
and nothing of the set-up is pushed. A round then:

1. skutui: rewrites one file on node-a (seen from the host through the node's bound
   /etc/skutui) and polls node-b's copy every 2 ms until it holds the new bytes;
2. baseline: rewrites the file again, waits until skutui has carried that too (so the two
   never run at once), then runs on node-a `rsync -az --delete -e "ssh <root's own key and
   skutui's pinned host key>" /etc/skutui/bench/ root@198.18.0.2:/root/skutui-bench-rsync/` into a copy
   that rsync itself keeps (seeded once, untimed), and checks the file arrived there. The
   time to enter the node (nsenter) is measured and taken off the rsync times.
"""

from __future__ import annotations

import argparse
import random
import shlex
import shutil
import time
from pathlib import Path

from common import BenchError, Row, failed_row, fmt_time, median, note, rounds, spread, standalone
from labkit import IPS, A, B, LabBench

NAME = "sync"
LAB = True
DEFAULT_ROUNDS = 5
TARGET = 5.0
FLAT_TARGET = 1.5
INTERVAL = 1.0
TREE = "/etc/skutui/bench"
RSYNC_COPY = "/root/skutui-bench-rsync"
FILES_PER_DIR = 100
SETTLE = 0.5
"""After a file arrived, skutui's metadata step follows: let it finish before the next move."""
POLL = 0.002
ARRIVAL_TIMEOUT = 60.0
IN_STEP_TIMEOUT = 180.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--sizes", default="100,1000,10000", metavar="N,N",
                        help="tree sizes of the sync bench, in files (default 100,1000,10000)")


def content(rng: random.Random, number: int, tag: str = "") -> bytes:
    lines = "".join(f"option_{k} = {rng.getrandbits(64):016x}\n" for k in range(rng.randint(4, 40)))
    return f"# bench file {number}{tag}\n{lines}".encode()


def write_tree(root: Path, size: int) -> list[str]:
    rng = random.Random(size)
    names = []
    for number in range(size):
        name = f"d{number // FILES_PER_DIR:03d}/f{number:05d}.conf"
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content(rng, number))
        names.append(name)
    return names


def arrived(path: Path, data: bytes, since: float) -> float:
    """When ``path`` first holds ``data`` (polled), in seconds after ``since``."""
    deadline = time.monotonic() + ARRIVAL_TIMEOUT
    while True:
        try:
            if path.read_bytes() == data:
                return time.monotonic() - since
        except FileNotFoundError:
            pass
        if time.monotonic() > deadline:
            raise BenchError(f"{path} did not get the new contents within {ARRIVAL_TIMEOUT:g} s")
        time.sleep(POLL)


def wait_in_step(lab: LabBench) -> int:
    """Wait for the master's first whole-tree comparison; how many files it had to write."""
    events = lab.events(A, recent=200, keep=True)
    try:
        _, event = events.wait_event(
            lambda e: e.get("kind") == "sync" and ((e.get("data") or {}).get("sync") == "reconcile"
                                                   or e.get("level") == "error"),
            IN_STEP_TIMEOUT)
    finally:
        lab.stop(events)
    if event.get("level") == "error":
        raise BenchError(f"the sync failed: {event.get('message')}")
    return len((event.get("data") or {}).get("written") or [])


def clear_trees(lab: LabBench) -> None:
    for node in (A, B):
        shutil.rmtree(lab.path(node, TREE), ignore_errors=True)
    lab.run(B, "rm", "-rf", RSYNC_COPY, check=False)


def measure_size(lab: LabBench, size: int, count: int) -> dict:
    clear_trees(lab)
    a_root, b_root = lab.path(A, TREE), lab.path(B, TREE)
    note(f"sync: writing {size} files on both nodes")
    names = write_tree(a_root, size)
    shutil.copytree(a_root, b_root, copy_function=shutil.copy2)
    lab.create(INTERVAL)
    pushed_at_start = wait_in_step(lab)
    rsync = ["rsync", "-az", "--delete", "-e", shlex.join(["ssh", *lab.ssh_options(A)]),
             f"{TREE}/", f"root@{IPS[B]}:{RSYNC_COPY}/"]
    lab.run(A, *rsync, timeout=180)  # the rsync copy, seeded
    overhead = lab.spawn_overhead(A)
    rng = random.Random(size + 1)
    mine, theirs = [], []
    for round_no in range(count):
        name = names[rng.randrange(len(names))]
        on_a, on_b = a_root / name, b_root / name

        data = content(rng, round_no, f" (skutui round {round_no})")
        started = time.monotonic()
        on_a.write_bytes(data)
        mine.append(arrived(on_b, data, started))
        time.sleep(SETTLE)

        data = content(rng, round_no, f" (rsync round {round_no})")
        on_a.write_bytes(data)
        arrived(on_b, data, time.monotonic())
        time.sleep(SETTLE)
        took, result = lab.timed(A, *rsync, timeout=120)
        if result.returncode != 0:
            raise BenchError(f"rsync exited {result.returncode}: {result.stderr.strip()}")
        if lab.path(B, f"{RSYNC_COPY}/{name}").read_bytes() != data:
            raise BenchError(f"rsync did not carry {name}")
        theirs.append(took - overhead)
        note(f"sync {size} files, round {round_no + 1}/{count}: skutui {fmt_time(mine[-1])}, "
             f"rsync {fmt_time(theirs[-1])}")
    lab.destroy()
    clear_trees(lab)
    return {"skutui": mine, "rsync": theirs, "pushed": pushed_at_start, "overhead": overhead}


def collect(args: argparse.Namespace) -> list[Row]:
    count = rounds(args, DEFAULT_ROUNDS)
    sizes = [int(x) for x in str(getattr(args, "sizes", "100,1000,10000")).split(",") if x]
    results: dict[int, dict] = {}
    rows: list[Row] = []
    with LabBench() as lab:
        for size in sizes:
            name = f"config sync, {size} files"
            try:
                results[size] = found = measure_size(lab, size, count)
            except BenchError as exc:
                rows.append(failed_row(name, f">= {TARGET:g}x faster", exc))
                lab.destroy()
                continue
            mine, theirs = median(found["skutui"]), median(found["rsync"])
            speedup = theirs / mine
            rows.append(Row(
                name, fmt_time(mine), f"{fmt_time(theirs)} (rsync -az --delete, fresh ssh)",
                f"{speedup:.1f}x faster", f">= {TARGET:g}x faster", speedup >= TARGET,
                [f"{count} rounds; skutui {spread(found['skutui'])}; rsync {spread(found['rsync'])} "
                 f"(less {fmt_time(found['overhead'])} for entering the node); the first "
                 f"comparison after create wrote {found['pushed']} file(s)"]))
    if len(results) >= 2:
        small, large = min(results), max(results)
        growth = median(results[large]["skutui"]) / median(results[small]["skutui"])
        rsync_growth = median(results[large]["rsync"]) / median(results[small]["rsync"])
        rows.append(Row(
            f"config sync flatness, {large} vs {small} files", f"{growth:.2f}x",
            f"{rsync_growth:.2f}x (rsync)", "—", f"<= {FLAT_TARGET:g}x", growth <= FLAT_TARGET,
            ["skutui's median time at the largest tree over the smallest"]))
    return rows


if __name__ == "__main__":
    standalone(collect, add_arguments, description=__doc__)
