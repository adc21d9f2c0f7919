"""``skutui history``: what both nodes did, as one timeline."""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import datetime
from typing import Any

from skutui.cli.common import EXIT_OK, print_json
from skutui.cli.node_history import add_filters
from skutui.cluster.operations import build_service
from skutui.domain import history
from skutui.domain.paths import Paths
from skutui.domain.wire import Timeline

# --- skutui history ---------------------------------------------------------------------------


def when(text: str) -> str:
    """A record's time as the operator reads it: local date and time, milliseconds."""
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone()
    except ValueError:
        return text
    return moment.strftime("%Y-%m-%d %H:%M:%S.") + f"{moment.microsecond // 1000:03d}"


def format_record(record: dict[str, Any]) -> list[str]:
    """One line a record; a failover adds its details, indented."""
    kind = str(record.get("kind", "?"))
    mark = {"warning": "WARNING ", "error": "ERROR "}.get(str(record.get("level")), "")
    head = kind.upper() if kind in history.RECORD_KINDS else kind
    lines = [f"{when(str(record.get('time', '')))}  {record.get('node', '?'):<12} {head:<11} "
             f"{mark}{record.get('message', '')}"]
    if kind == history.FAILOVER:
        lines += [f"{'':<38}{label + ':':<19}{value}"
                  for label, value in history.failover_lines(record.get("data") or {})]
    return lines


async def _read(args: argparse.Namespace) -> Timeline:
    service = build_service(Paths.from_env())
    try:
        return await service.history(args.since, args.kind)
    finally:
        await service.close()


def _history(args: argparse.Namespace) -> int:
    timeline = asyncio.run(_read(args))
    if args.json:
        print_json(timeline.to_dict())
        return EXIT_OK
    for record in timeline.records:
        print("\n".join(format_record(record)))
    if not timeline.records:
        print("Nothing recorded" + (" since then." if args.since else " yet."))
    for node, error in timeline.missing.items():
        print(f"skutui: {node}'s history is not shown: {error}", file=sys.stderr)
    return EXIT_OK


def register(commands: argparse._SubParsersAction, name: str, help: str) -> None:
    parser = commands.add_parser(
        name, help=help,
        description="Both nodes' events and failovers, oldest first: this node's history and "
                    "the peer's, asked over SSH. A failover is one record (both nodes hold it).")
    parser.add_argument("--json", action="store_true",
                        help='one document: {"records": [...], "missing": {node: why}}')
    add_filters(parser)
    parser.set_defaults(func=_history)
