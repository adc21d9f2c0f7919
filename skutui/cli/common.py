"""What every command group shares: exit codes, the one-value option, JSON output."""

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
