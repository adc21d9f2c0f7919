"""``skutui readiness``: whether each node could take over now, and if not, why."""

from __future__ import annotations

import argparse
import asyncio
from datetime import datetime

from skutui.cli.common import EXIT_OK, print_json, say
from skutui.cluster.operations import build_service
from skutui.domain.paths import Paths
from skutui.domain.readiness import Readiness


def format_readiness(ready: Readiness) -> list[str]:
    verdict = "ready to take over" if ready.ready else "NOT READY"
    if ready.role.value == "master":
        verdict = "master" + ("" if ready.ready else " (NOT READY: " + "; ".join(ready.reasons) + ")")
    lines = [f"{ready.hostname} ({ready.role.value}): {verdict}"]
    for check in ready.checks:
        lines.append(f"  [{'ok' if check.ok else '!!'}] {check.name}: {check.detail}")
    if ready.counters:
        c = ready.counters
        lines.append(f"  conntrackd: internal {c['internal']}, external {c['external']}; lost "
                     f"{c['lost']}, malformed {c['malformed']}, send errors {c['send_errors']}, "
                     f"receive errors {c['recv_errors']}, failed {c['failed']}")
    if ready.last_sync:
        lines.append(f"  last sync: {datetime.fromtimestamp(ready.last_sync):%Y-%m-%d %H:%M:%S}")
    return lines


def _readiness(args: argparse.Namespace) -> int:
    async def main() -> list[Readiness]:
        service = build_service(Paths.from_env())
        try:
            if await service.cluster() is None:
                return []
            return await service.readiness()
        finally:
            await service.close()

    found = asyncio.run(main())
    if args.json:
        print_json({"nodes": [ready.to_dict() for ready in found]})
    elif not found:
        say("No cluster is configured on this node.")
    for ready in found if not args.json else []:
        say("\n".join(format_readiness(ready)))
    return EXIT_OK


def register(commands: argparse._SubParsersAction, name: str, help: str) -> None:
    parser = commands.add_parser(name, help=help, description=(
        "For each node, what it would need to take over now: its daemons, links, services, "
        "conntrackd's caches against the master's, the sync and replication queues, the "
        "last sync; a node that is not ready says why."))
    parser.add_argument("--json", action="store_true",
                        help='{"nodes": [{"hostname", "role", "ready", "reasons", "checks", '
                             '"conntrack", "last_sync"}]}')
    parser.set_defaults(func=_readiness)
