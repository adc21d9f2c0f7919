"""``skutui status`` and ``skutui interfaces``: what this node is, and what it could offer.

Both ask the operations API the console uses, so the cluster facts and the node rows are
the same ones ``skutui nodes`` and the console show.
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from skutui import __version__
from skutui.cli.common import EXIT_OK, print_json
from skutui.cluster.api import ClusterStatus
from skutui.cluster.operations import build_service
from skutui.cluster.rows import as_dicts
from skutui.domain import codec
from skutui.domain.model import InterfaceAddress
from skutui.domain.paths import Paths


async def _candidates() -> list[InterfaceAddress]:
    service = build_service(Paths.from_env())
    try:
        return await service.cluster_candidates()
    finally:
        await service.close()


def _interfaces(args: argparse.Namespace) -> int:
    candidates = asyncio.run(_candidates())
    if args.json:
        print_json(
            [
                {"interface": a.interface, "address": a.address, "prefixlen": a.prefixlen}
                for a in candidates
            ]
        )
    elif not candidates:
        print("No usable cluster address: configure an address on a physical interface.")
    else:
        for a in candidates:
            print(f"{a.interface:<16} {a.address}/{a.prefixlen}")
    return EXIT_OK


async def _read_status(rows: bool) -> ClusterStatus:
    """``rows``: ask both nodes for the node table too (the peer for at most a few seconds)."""
    service = build_service(Paths.from_env())
    try:
        if rows:
            return await service.status()
        return ClusterStatus(await service.local_hostname(), __version__, await service.cluster())
    finally:
        await service.close()


def status_document(status: ClusterStatus) -> dict[str, Any]:
    """``status --json``: ``cluster`` and ``nodes`` only when a cluster is configured."""
    document: dict[str, Any] = {"version": status.version, "hostname": status.hostname,
                                "configured": status.config is not None}
    if status.config is not None:
        document["cluster"] = codec.to_dict(status.config)
        document["nodes"] = as_dicts(status.nodes)
    return document


def _status(args: argparse.Namespace) -> int:
    status = asyncio.run(_read_status(rows=args.json))
    if args.json:
        print_json(status_document(status))
    elif status.config is not None:
        print(f"Cluster configured on {status.hostname} (interface {status.config.interface}).")
    else:
        print(f"No cluster configured on {status.hostname}.")
    return EXIT_OK


def register(commands: argparse._SubParsersAction, name: str, help: str) -> None:
    if name == "interfaces":
        interfaces = commands.add_parser("interfaces", help=help)
        interfaces.add_argument("--json", action="store_true")
        interfaces.set_defaults(func=_interfaces)
    else:
        status = commands.add_parser("status", help=help)
        status.add_argument("--json", action="store_true")
        status.set_defaults(func=_status)
