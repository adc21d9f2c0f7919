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
import asyncio
import importlib
import os
import sys
from collections.abc import Callable, Sequence
from typing import NamedTuple

from skutui import __version__
from skutui.cli.common import EXIT_FAILED, EXIT_INTERRUPTED, report_failure
from skutui.domain.errors import SkutuiError
from skutui.domain.paths import Paths

DEBUG_ENV = "SKUTUI_DEBUG"
PLUMBING = ("node", "agent", "lab")
"""Commands the nodes run on each other (and the lab's): they never finish an interrupted
change themselves, the operator's next command does."""

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
    "history": CommandGroup("skutui.cli.history",
                            "both nodes' events and failovers as one timeline"),
    "readiness": CommandGroup("skutui.cli.readiness",
                              "whether each node could take over now, and why not"),
    "sync": CommandGroup("skutui.cli.sync",
                         "verify that both nodes hold the same synced files, push the master's"),
    "metrics": CommandGroup("skutui.cli.metrics", "this node's metrics (Prometheus text)"),
    "drill": CommandGroup("skutui.cli.drill",
                          "hand the floating IPs to the backup and back, measuring the gap"),
    "logs": CommandGroup("skutui.cli.logs",
                         "this node's log: the agent, keepalived and conntrackd (-f follows)"),
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


def command_words(argv: Sequence[str]) -> str:
    """The command as the operator typed it: the words before the first option."""
    words = []
    for word in argv:
        if word.startswith("-"):
            break
        words.append(word)
    return " ".join(words)


def finish_interrupted_change() -> None:
    """A cluster change killed before it could roll back (SIGKILL, a power cut) left its
    rollback record: the next command finishes the rollback first, and says so."""
    paths = Paths.from_env()
    try:
        if not paths.change_record.exists():
            return
    except OSError:
        return  # not root: a rollback is root's to finish
    # The operations API (and SSH) load only when a change left a record behind.
    from skutui.cluster.operations import build_service

    def say(line: str) -> None:
        print(f"skutui: {line}", file=sys.stderr, flush=True)

    async def finish() -> str | None:
        service = build_service(paths)
        try:
            return await service.finish_interrupted(say)
        finally:
            await service.close()

    try:
        message = asyncio.run(finish())
    except SkutuiError as exc:
        message = f"an interrupted change could not be rolled back yet: {exc}"
    if message:
        say(message)


def run(argv: list[str], open_console: OpenConsole | None = None) -> int:
    parser = build_parser(argv, open_console)
    args = parser.parse_args(argv)
    if not getattr(args, "command_name", None):
        args.command_name = command_words(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        if _chosen(argv) not in PLUMBING:
            finish_interrupted_change()
        return func(args)
    except SkutuiError as exc:
        print(f"skutui: {exc}", file=sys.stderr)
        report_failure(args, exc, exc.exit_code)
        return exc.exit_code
    except KeyboardInterrupt:
        print("skutui: interrupted", file=sys.stderr)
        report_failure(args, "interrupted", EXIT_INTERRUPTED)
        return EXIT_INTERRUPTED
    except Exception as exc:
        if os.environ.get(DEBUG_ENV):
            raise
        message = (f"unexpected error ({type(exc).__name__}: {exc}); run again with "
                   f"{DEBUG_ENV}=1 for the details")
        print(f"skutui: {message}", file=sys.stderr)
        report_failure(args, message, EXIT_FAILED)
        return EXIT_FAILED
