"""``skutui logs [-f] [-n N]``: skutui's log on this node, where an operator looks for it.

Under systemd, the journal: the agent's lines and keepalived's notify hook's, keepalived's
and conntrackd's own, and systemd's about the three units (a daemon that died and was
started again shows there). Elsewhere, /var/log/skutui/skutui.log.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections import deque
from pathlib import Path

from skutui.cli.common import EXIT_OK, CommandError, Once
from skutui.domain.paths import Paths
from skutui.system import logs
from skutui.system.units import booted

DEFAULT_LINES = 100
FOLLOW_POLL = 0.5


def _lines(text: str) -> int | None:
    if text == "all":
        return None
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of lines; give a whole "
                                         "number or 'all'") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is negative; give 0 or more, or 'all'")
    return value


def tail(path: Path, lines: int | None) -> list[str]:
    with open(path, errors="replace") as handle:
        return list(handle) if lines is None else list(deque(handle, maxlen=lines))


def follow(path: Path, out=sys.stdout, poll: float = FOLLOW_POLL) -> None:
    """Print what is added to ``path``, until interrupted; when logrotate moves the file
    away, carry on with the new one."""
    handle = open(path, errors="replace")
    handle.seek(0, os.SEEK_END)
    try:
        while True:
            line = handle.readline()
            if line:
                out.write(line)
                out.flush()
                continue
            try:
                rotated = os.stat(path).st_ino != os.fstat(handle.fileno()).st_ino
            except FileNotFoundError:
                rotated = False
            if rotated:
                handle.close()
                handle = open(path, errors="replace")
                continue
            time.sleep(poll)
    finally:
        handle.close()


def _logs(args: argparse.Namespace) -> int:
    if booted():
        command = logs.journal_command(args.lines, args.follow)
        try:
            os.execvp(command[0], command)
        except OSError as exc:
            raise CommandError(f"cannot run journalctl: {exc.strerror}") from None
    path = Paths.from_env().log_file
    if not path.exists():
        print(f"skutui has logged nothing on this node yet ({path} does not exist)",
              file=sys.stderr)
        return EXIT_OK
    sys.stdout.writelines(tail(path, args.lines))
    sys.stdout.flush()
    if args.follow:
        follow(path)
    return EXIT_OK


def register(commands: argparse._SubParsersAction, name: str, help: str) -> None:
    parser = commands.add_parser(name, help=help, description=__doc__.split("\n\n")[1])
    parser.add_argument("-f", "--follow", action="store_true",
                        help="keep printing new lines as they come (Ctrl+C ends)")
    parser.add_argument("--lines", "-n", action=Once, type=_lines, default=DEFAULT_LINES,
                        metavar="N", help=f"the last N lines, or 'all' (default {DEFAULT_LINES})")
    parser.set_defaults(func=_logs)
