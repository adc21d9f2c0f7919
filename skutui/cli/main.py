"""The command line: every action the console offers can be scripted from here.

Exit codes: 0 success, 1 the action failed, 2 bad input (argparse's own convention), 130
interrupted. No traceback reaches the operator: every expected failure is a
``SkutuiError`` and is printed as one line.

A command group's module is imported only when its command is given (the table below
holds the names and help lines ``skutui --help`` shows), so no command, and not the
console either, pays for the imports of the others.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Callable, Sequence
from typing import NamedTuple

from skutui import __version__
from skutui.cli.common import EXIT_FAILED, EXIT_INTERRUPTED
from skutui.domain.errors import SkutuiError

DEBUG_ENV = "SKUTUI_DEBUG"

OpenConsole = Callable[[bool], int]
"""Opens the console (``ascii_profile``) and returns its exit code; handed in by the entry."""


class CommandGroup(NamedTuple):
    module: str
    help: str
    hidden: bool = False
    """Plumbing the nodes run on each other (``node``, ``agent``): left out of --help."""


COMMANDS: dict[str, CommandGroup] = {
    "interfaces": CommandGroup("skutui.cli.status", "list addresses usable as the cluster IP"),
    "status": CommandGroup("skutui.cli.status", "this node's cluster status"),
    "cluster": CommandGroup("skutui.cli.cluster", "create, show, edit or destroy the cluster"),
    "maintenance": CommandGroup("skutui.cli.cluster", "put a node in or out of maintenance"),
    "nodes": CommandGroup("skutui.cli.cluster",
                          "the node table: role, status and message of each node"),
    "exec": CommandGroup("skutui.cli.exec",
                         "run a command on the master and replay it on the backup"),
    "events": CommandGroup("skutui.cli.events",
                           "follow this node's agent: role changes, sync, replication, services"),
    "node": CommandGroup("skutui.cli.node", "operations on this node (used over SSH)", hidden=True),
    "agent": CommandGroup("skutui.cli.agent", "the node agent", hidden=True),
}


def _chosen(argv: Sequence[str]) -> str | None:
    """The command word in ``argv``: the first argument that is not an option."""
    for word in argv:
        if not word.startswith("-"):
            return word if word in COMMANDS else None
    return None


def build_parser(argv: Sequence[str] | None = None, open_console: OpenConsole | None = None
                 ) -> argparse.ArgumentParser:
    """The parser, with the command group ``argv`` names in full and the others by name and
    help line only; ``argv`` None: every group in full (for the manual and the tests)."""
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
    parser.set_defaults(func=lambda args: _console(args, open_console))
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")
    chosen = None if argv is None else _chosen(argv)
    for name, group in COMMANDS.items():
        help_text = argparse.SUPPRESS if group.hidden else group.help
        if argv is None or name == chosen:
            importlib.import_module(group.module).register(commands, name, help_text)
        else:
            commands.add_parser(name, help=help_text, add_help=False)
    return parser


def _console(args: argparse.Namespace, open_console: OpenConsole | None) -> int:
    if open_console is None:
        raise SkutuiError("the console is not available from here; run skutui")
    return open_console(args.ascii)


def run(argv: list[str], open_console: OpenConsole | None = None) -> int:
    parser = build_parser(argv, open_console)
    args = parser.parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except SkutuiError as exc:
        print(f"skutui: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("skutui: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:
        if os.environ.get(DEBUG_ENV):
            raise
        print(f"skutui: unexpected error ({type(exc).__name__}: {exc}); run again with "
              f"{DEBUG_ENV}=1 for the details", file=sys.stderr)
        return EXIT_FAILED
