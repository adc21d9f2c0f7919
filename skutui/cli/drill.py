"""``skutui drill``: hand the floating IPs to the backup and back on purpose, measuring the
gap each way, and keep the result in both nodes' history."""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from skutui.cli.common import EXIT_BAD_INPUT, EXIT_OK, CommandError, Report
from skutui.cluster.operations import build_service
from skutui.domain.history import seconds_text
from skutui.domain.paths import Paths


def leg_lines(result: dict[str, Any]) -> list[str]:
    lines = []
    for leg in result["legs"]:
        conntrack = leg.get("conntrack") or {}
        commit = ("connections committed in " + seconds_text(conntrack.get("seconds"))
                  if conntrack.get("ok") else "commit FAILED" if conntrack else "commit not recorded")
        lines.append(f"{leg['from']} -> {leg['to']}: probes answered again after "
                     f"{seconds_text(leg.get('probe_gap'))}; keepalived's gap "
                     f"{seconds_text(leg.get('gap'))}; {commit}")
    return lines


def _drill(args: argparse.Namespace) -> int:
    report = Report(args)
    if not args.yes:
        raise CommandError("A drill moves the floating IPs to the backup and back: clients see "
                           "the gap it measures. Add --yes to go on.", EXIT_BAD_INPUT)

    async def main() -> dict[str, Any]:
        service = build_service(Paths.from_env())
        try:
            return await service.drill(report.say)
        finally:
            await service.close()

    result = asyncio.run(main())
    for line in leg_lines(result):
        report.say(line)
    report.say(f"Recorded in both nodes' history as {result['id']}")
    report.done(bool(result["ok"]), drill=result)
    return EXIT_OK


def register(commands: argparse._SubParsersAction, name: str, help: str) -> None:
    parser = commands.add_parser(
        name, help=help,
        description="On the master: check that the backup could take over, then hand it the "
                    "floating IPs (maintenance) and take them back, while both nodes probe a "
                    "floating IP on a UDP port of the drill's own; print the gap each way and "
                    "the commit of the connections, and record the drill in both histories.")
    parser.add_argument("--yes", action="store_true", help="confirm: clients see the gap")
    parser.add_argument("--json", action="store_true",
                        help='one JSON document: {"ok", "command", "steps", "drill": {...}}')
    parser.set_defaults(func=_drill)
