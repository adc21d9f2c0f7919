#!/usr/bin/env python3
"""The console under Textual's Pilot, reporting every change of its node table.

Runs inside a lab node (started there by bench/events.py) with the real cluster service, so
events come from the real agents: this node's over its control socket, the peer's over SSH.
It opens the Nodes screen, prints one JSON line when the table is ready, then, for each table
change, one line when the cells changed and one when the screen has been refreshed after it:

    {"kind": "ready", "t": ..., "rows": {"local": [cells], "remote": [cells]}}
    {"kind": "cells", "seq": 1, "t": ..., "rows": {...}}
    {"kind": "painted", "seq": 1, "t": ...}

``t`` is time.monotonic(), the clock the host shares with the nodes. It stops when its
standard input closes. ``--fake`` runs it on the fake service of tests/fakes.py instead
(SIGUSR1 then toggles node-b's maintenance), to check the probe itself without a lab.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import signal
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
READY_TIMEOUT = 120.0

_out = os.dup(1)
"""Textual captures sys.stdout while an app runs: write the reports to the real one."""


def emit(**data: object) -> None:
    os.write(_out, (json.dumps(data, sort_keys=True) + "\n").encode())


def table_rows(screen) -> dict[str, list[str]]:
    from textual.widgets import DataTable

    table = screen.query_one(DataTable)
    return {row.key.value: [str(cell) for cell in table.get_row(row.key)]
            for row in table.ordered_rows}


def report_table_changes() -> None:
    """Wrap the Nodes screen's handler of a finished read: after it updated the table, note
    whether any cell changed, and when the next screen refresh is done."""
    from skutui.ui.screens.nodes import NodesScreen

    original = NodesScreen.on_nodes_read
    counter = itertools.count(1)
    seen: dict[int, dict] = {}

    def on_nodes_read(self, message) -> None:
        original(self, message)
        rows = table_rows(self)
        if rows == seen.get(id(self)):
            return
        seen[id(self)] = rows
        seq = next(counter)
        emit(kind="cells", seq=seq, t=time.monotonic(), rows=rows)
        self.app.call_after_refresh(lambda: emit(kind="painted", seq=seq, t=time.monotonic()))

    NodesScreen.on_nodes_read = on_nodes_read


def fake_service():
    sys.path.insert(0, str(ROOT))
    from tests.fakes import FakeClusterService

    service = FakeClusterService()

    def toggle() -> None:
        service.maintenance ^= {"remote"}
        service.emit("role", "remote", "keepalived moved this node to FAULT")

    asyncio.get_running_loop().add_signal_handler(signal.SIGUSR1, toggle)
    return service


async def until(pilot, check, what: str, timeout: float = READY_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise SystemExit(f"events probe: {what} not reached within {timeout:g} s")
        await pilot.pause(0.01)


async def main(args: argparse.Namespace) -> None:
    from skutui.ui.app import SkutuiApp
    from skutui.ui.profile import ConsoleProfile

    if args.fake:
        service = fake_service()
    else:
        from skutui.cluster.operations import build_service
        from skutui.domain.paths import Paths

        service = build_service(Paths.from_env())
    report_table_changes()
    app = SkutuiApp(service, ConsoleProfile(plain=False), cursor_blink=False)
    app.animation_level = "none"
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    def stdin_ready() -> None:
        if not os.read(0, 4096):
            loop.remove_reader(0)
            stop.set()

    async with app.run_test(size=(100, 30)) as pilot:
        name = lambda: type(app.screen).__name__  # noqa: E731
        await until(pilot, lambda: name() == "DetailsScreen", "the Details screen")
        await pilot.press("n")
        await until(pilot, lambda: name() == "NodesScreen", "the Nodes screen")
        await until(pilot, lambda: len(table_rows(app.screen)) == 2, "both rows of the table")
        emit(kind="ready", t=time.monotonic(), rows=table_rows(app.screen), pid=os.getpid())
        loop.add_reader(0, stdin_ready)
        await stop.wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--fake", action="store_true", help="the fake service, no lab")
    asyncio.run(main(parser.parse_args()))
