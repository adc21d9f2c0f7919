"""``skutui status`` and ``skutui interfaces``: what this node is, and what it could offer."""

from __future__ import annotations

import argparse
import asyncio
import socket
from typing import Any

from skutui import __version__
from skutui.cli.common import EXIT_OK, print_json
from skutui.domain import codec
from skutui.domain.paths import Paths
from skutui.domain.validation import cluster_candidates
from skutui.system import store
from skutui.system.net import discover_addresses


def _interfaces(args: argparse.Namespace) -> int:
    candidates = cluster_candidates(asyncio.run(discover_addresses()))
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


def _status(args: argparse.Namespace) -> int:
    paths = Paths.from_env()
    status: dict[str, Any] = {"version": __version__, "hostname": socket.gethostname()}
    if not paths.cluster_file.exists():
        status["configured"] = False
    else:
        config = store.load(paths.cluster_file)
        status["configured"] = True
        status["cluster"] = codec.to_dict(config)
    if args.json:
        print_json(status)
    elif status["configured"]:
        print(f"Cluster configured on {status['hostname']} (interface {status['cluster']['interface']}).")
    else:
        print(f"No cluster configured on {status['hostname']}.")
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
