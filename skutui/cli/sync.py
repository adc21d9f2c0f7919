"""``skutui sync verify`` and ``skutui sync push``: do both nodes hold the same synced files,
and the master's copy sent where they do not."""

from __future__ import annotations

import argparse
import asyncio
from datetime import datetime

from skutui.cli.common import EXIT_FAILED, EXIT_OK, Report
from skutui.cluster.operations import build_service
from skutui.domain.drift import Drift
from skutui.domain.paths import Paths


def _print(report: Report, drift: Drift) -> None:
    checked = datetime.fromtimestamp(drift.checked).strftime("%H:%M:%S")
    if not drift.differences:
        report.say(f"{drift.here} and {drift.there} hold the same files under "
                   f"{', '.join(drift.roots)} (compared at {checked})")
        return
    report.say(f"{len(drift.differences)} synced file(s) differ between {drift.here} and "
               f"{drift.there} (compared at {checked}):")
    for difference in drift.differences:
        report.say(f"  {difference.describe()}")
    if drift.master:
        report.say(f"`skutui sync push` on the master ({drift.master}) sends its copy of each.")


def _verify(args: argparse.Namespace) -> int:
    async def main() -> Drift:
        service = build_service(Paths.from_env())
        try:
            return await service.verify_sync()
        finally:
            await service.close()

    report = Report(args)
    drift = asyncio.run(main())
    _print(report, drift)
    report.done(not drift.differences, **drift.to_dict())
    return EXIT_OK if not drift.differences else EXIT_FAILED


def _push(args: argparse.Namespace) -> int:
    report = Report(args)

    async def main() -> Drift:
        service = build_service(Paths.from_env())
        try:
            return await service.push_sync(report.say)
        finally:
            await service.close()

    drift = asyncio.run(main())
    _print(report, drift)
    report.done(not drift.differences, **drift.to_dict())
    return EXIT_OK if not drift.differences else EXIT_FAILED


def register(commands: argparse._SubParsersAction, name: str, help: str) -> None:
    sync = commands.add_parser(name, help=help)
    actions = sync.add_subparsers(title="actions", metavar="ACTION", required=True)
    verify = actions.add_parser(
        "verify", help="compare every synced file on both nodes (hash, mode, owner)",
        description="Compare every file under the synced paths on both nodes: content "
                    "(SHA-256), mode and owner; list what differs and which copy is newer. "
                    "Exit 0 when they match, 1 when they do not.")
    push = actions.add_parser(
        "push", help="send the master's copy of every file that differs (master only)",
        description="On the master: compare whole trees and send this node's copy of every "
                    "synced file the backup holds differently, then compare again.")
    for parser, func in ((verify, _verify), (push, _push)):
        parser.add_argument("--json", action="store_true",
                            help='one JSON document: {"ok", "nodes", "master", "roots", '
                                 '"checked", "in_step", "differences": [...], "steps"}')
        parser.set_defaults(func=func)
