"""What every command group shares: exit codes, the one-value option, JSON output.

With ``--json`` every command prints one JSON document on standard output (``skutui events
--json`` one per event, as they come). A command that reads prints what it read. A command
that acts prints ``{"ok": true, "command": ..., "steps": [...], ...}``: ``steps`` are the
lines it would have printed as it went, the other keys its result. A failure (exit 1 or
130) prints ``{"ok": false, "command": ..., "error": ..., "exit_code": N, "steps": [...]}``;
the one-line message goes to standard error as without ``--json``, and bad input (exit 2)
prints nothing else.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from skutui.domain.errors import SkutuiError

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130
"""Stopped with Ctrl+C, as a shell reports a command ended by SIGINT."""


class CommandError(SkutuiError):
    """A failure found by the command line itself, with the exit code it ends with (a
    replicated command's own 126 or 127, say)."""

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


def say(line: str) -> None:
    print(line, flush=True)


class Report:
    """The lines a command prints as it goes: at once for a person, or kept for the one
    JSON document ``--json`` prints at the end (see the module's docstring)."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.json = bool(getattr(args, "json", False))
        self.command = str(getattr(args, "command_name", "") or "")
        self.steps: list[str] = []
        args.report = self

    def say(self, line: str) -> None:
        if self.json:
            self.steps.append(line)
        else:
            say(line)

    def done(self, ok: bool = True, **result: Any) -> None:
        """The end: with ``--json`` the document; without, nothing more."""
        if self.json:
            print_json({"ok": ok, "command": self.command, "steps": self.steps, **result})

    def failed(self, error: SkutuiError | str, exit_code: int) -> None:
        if self.json:
            print_json({"ok": False, "command": self.command, "steps": self.steps,
                        "error": str(error), "exit_code": exit_code})


def report_failure(args: argparse.Namespace, error: SkutuiError | str, exit_code: int) -> None:
    """``--json``'s failure document, for a command that fails (also before it made a
    Report). Bad input (exit 2) prints nothing on standard output, with or without it."""
    if exit_code == EXIT_BAD_INPUT:
        return
    report = getattr(args, "report", None)
    if report is None and getattr(args, "json", False):
        report = Report(args)
    if report is not None:
        report.failed(error, exit_code)
