#!/usr/bin/env python3
"""Interface discovery: skutui's (one ``ip -j -d addr show``) against pyroute2's netlink
dumps (AsyncIPRoute: links, then addresses), which skutui used before.

Each round starts a fresh interpreter for each side, alternately, and times inside it from
just before the first import of the discovery code to the list of addresses: what a
``skutui interfaces`` or the console's first discovery pays, without the interpreter's own
start-up, which both share. pyroute2 is the baseline only (requirements' bench extra).
"""

from __future__ import annotations

import argparse
import subprocess

from common import PYTHON, ROOT, Row, fmt_time, median, note, rounds, spread, standalone

NAME = "interfaces"
LAB = False
DEFAULT_ROUNDS = 15

SKUTUI = """
import asyncio, time
started = time.perf_counter()
from skutui.system.net import discover_addresses
found = asyncio.run(discover_addresses())
print(time.perf_counter() - started, len(found))
"""
PYROUTE2 = """
import asyncio, time
started = time.perf_counter()
from pyroute2 import AsyncIPRoute
async def dump():
    async with AsyncIPRoute() as ipr:
        links = [msg async for msg in await ipr.link("dump")]
        addrs = [msg async for msg in await ipr.addr("dump")]
    return links, addrs
links, addrs = asyncio.run(dump())
print(time.perf_counter() - started, len(addrs))
"""


def once(program: str) -> tuple[float, int]:
    out = subprocess.run([PYTHON, "-c", program], capture_output=True, text=True, cwd=ROOT,
                         check=True, timeout=60).stdout.split()
    return float(out[0]), int(out[1])


def collect(args: argparse.Namespace) -> list[Row]:
    count = rounds(args, DEFAULT_ROUNDS)
    try:
        once(PYROUTE2)  # warm-up, and the check that the baseline is there at all
    except subprocess.CalledProcessError:
        return [Row("interface discovery", "not measured", notes=[
            "pyroute2 is not installed: pip install -r requirements/dev.lock"])]
    once(SKUTUI)
    mine: list[float] = []
    base: list[float] = []
    for round_no in range(count):
        pair = [(SKUTUI, mine), (PYROUTE2, base)]
        for program, into in (pair if round_no % 2 == 0 else pair[::-1]):
            seconds, found = once(program)
            into.append(seconds)
        note(f"interfaces round {round_no + 1}/{count}: ip -j {fmt_time(mine[-1])}, "
             f"pyroute2 {fmt_time(base[-1])}")
    ratio = median(base) / median(mine)
    return [Row("interface discovery (import + dump)", fmt_time(median(mine)),
                f"{fmt_time(median(base))} (pyroute2 AsyncIPRoute)", f"{ratio:.1f}x faster",
                "faster than pyroute2", ratio > 1,
                [f"medians of {count} rounds, each in a fresh interpreter, import included; "
                 f"ip -j {spread(mine)}, pyroute2 {spread(base)}"])]


if __name__ == "__main__":
    standalone(collect, description=__doc__)
