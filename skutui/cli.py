"""The command line: every action the console offers can be scripted from here.

Exit codes: 0 success, 1 the action failed, 2 bad input (argparse's own convention).
No traceback reaches the operator: expected failures are caught here and printed as one line.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
from collections.abc import Callable
from typing import Any

from skutui import __version__
from skutui.core.paths import Paths

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130
"""Stopped with Ctrl+C, as a shell reports a command ended by SIGINT."""
DEBUG_ENV = "SKUTUI_DEBUG"


class CommandError(Exception):
    """An expected failure with a message for the operator."""

    def __init__(self, message: str, exit_code: int = EXIT_FAILED):
        super().__init__(message)
        self.exit_code = exit_code


class Once(argparse.Action):
    """Stores an option's one value, and refuses the option given again: argparse would
    keep the last one silently, and a script that adds an option twice meant one of them."""

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        given = namespace.__dict__.setdefault("_given_once", set())
        if self.dest in given:
            raise argparse.ArgumentError(self, "given more than once; give it once")
        given.add(self.dest)
        setattr(namespace, self.dest, values)


def print_json(data: Any) -> None:
    json.dump(data, sys.stdout, indent=2, sort_keys=True)
    sys.stdout.write("\n")


def _cmd_console(args: argparse.Namespace) -> int:
    from skutui.ui.launch import launch_console

    return launch_console(ascii_profile=args.ascii, paths=Paths.from_env())


def _cmd_interfaces(args: argparse.Namespace) -> int:
    import asyncio

    from skutui.core.validation import cluster_candidates
    from skutui.net import discover_addresses

    addresses = asyncio.run(discover_addresses())
    candidates = cluster_candidates(addresses)
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


def _cmd_status(args: argparse.Namespace) -> int:
    from skutui.core import store

    paths = Paths.from_env()
    status: dict[str, Any] = {"version": __version__, "hostname": socket.gethostname()}
    if not paths.cluster_file.exists():
        status["configured"] = False
    else:
        config = store.load(paths.cluster_file)
        status["configured"] = True
        status["cluster"] = store.to_dict(config)
    if args.json:
        print_json(status)
    elif status["configured"]:
        print(f"Cluster configured on {status['hostname']} (interface {status['cluster']['interface']}).")
    else:
        print(f"No cluster configured on {status['hostname']}.")
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="skutui",
        description="Console and command line for a two-node active-passive cluster.",
    )
    parser.add_argument("--version", action="version", version=f"skutui {__version__}")
    parser.add_argument(
        "--ascii",
        action="store_true",
        help="console profile: 16 colours, ASCII only, no mouse (automatic on TERM=linux/vt*)",
    )
    parser.set_defaults(func=_cmd_console)
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")

    interfaces = commands.add_parser("interfaces", help="list addresses usable as the cluster IP")
    interfaces.add_argument("--json", action="store_true")
    interfaces.set_defaults(func=_cmd_interfaces)

    status = commands.add_parser("status", help="this node's cluster status")
    status.add_argument("--json", action="store_true")
    status.set_defaults(func=_cmd_status)

    from skutui.agent_cli import register as register_agent
    from skutui.cluster_cli import register as register_cluster
    from skutui.lab.cli import register as register_lab
    from skutui.node_cli import register as register_node

    register_cluster(commands)
    register_agent(commands)
    register_node(commands)
    register_lab(commands)
    return parser


def _expected_errors() -> tuple[tuple[type[BaseException], ...], tuple[type[BaseException], ...]]:
    """(bad input, failed action): failures an operator can meet, shown as one line."""
    from skutui.core.api import ServiceError
    from skutui.core.store import ConfigError, ConfigInvalid
    from skutui.core.validation import ValidationError
    from skutui.daemons import DaemonError
    from skutui.node import NodeError
    from skutui.remote import RemoteNodeError

    failed: tuple[type[BaseException], ...] = (
        ServiceError, ConfigError, DaemonError, NodeError, RemoteNodeError)
    if "skutui.peer" in sys.modules:
        failed += (sys.modules["skutui.peer"].PeerError,)
    return (ValidationError, ConfigInvalid), failed


def run(argv: list[str]) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except CommandError as exc:
        print(f"skutui: {exc}", file=sys.stderr)
        return exc.exit_code
    except Exception as exc:
        from skutui.core.api import Interrupted

        if isinstance(exc, Interrupted):
            print(f"skutui: {exc}", file=sys.stderr)
            return EXIT_INTERRUPTED
        bad_input, failed = _expected_errors()
        if isinstance(exc, bad_input):
            print(f"skutui: {exc}", file=sys.stderr)
            return EXIT_BAD_INPUT
        if isinstance(exc, failed):
            print(f"skutui: {exc}", file=sys.stderr)
            return EXIT_FAILED
        if os.environ.get(DEBUG_ENV):
            raise
        print(f"skutui: unexpected error ({type(exc).__name__}: {exc}); run again with "
              f"{DEBUG_ENV}=1 for the details", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("skutui: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
