"""Where skutui's log lines go: where an operator looks for them.

On a machine booted with systemd, the journal, with each line's priority: the agent's
standard error is the journal stream its unit connects (a ``<3>`` prefix gives a line its
priority), and keepalived's notify hook, whose output keepalived discards, writes to the
journal's socket. Elsewhere, /var/log/skutui/skutui.log: readable by root alone (it holds
every replicated command line) and rotated by logrotate (/etc/logrotate.d/skutui); the file
is reopened when logrotate moves it. ``skutui logs`` reads either.
"""

from __future__ import annotations

import logging
import logging.handlers
import os
import socket
import struct
import sys
from pathlib import Path

from skutui.domain.paths import Paths
from skutui.system.units import AGENT_UNIT, BOOTED_MARK, CONNTRACKD_UNIT, KEEPALIVED_UNIT, booted

IDENTIFIER = "skutui"
"""SYSLOG_IDENTIFIER of every line skutui writes to the journal (the agent's unit says so too)."""
JOURNAL_SOCKET = Path("/run/systemd/journal/socket")
LOG_DIR_MODE = 0o700
LOG_FILE_MODE = 0o600
FILE_FORMAT = "%(asctime)s %(levelname)s %(message)s"

PRIORITIES = ((logging.CRITICAL, 2), (logging.ERROR, 3), (logging.WARNING, 4), (logging.INFO, 6))
DEBUG_PRIORITY = 7


def priority(level: int) -> int:
    """The syslog priority of a logging level (err 3, warning 4, info 6…)."""
    return next((value for floor, value in PRIORITIES if level >= floor), DEBUG_PRIORITY)


class JournalStreamFormatter(logging.Formatter):
    """One line per record with its priority in front, which journald takes off and keeps."""

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record).replace("\n", " | ")
        return f"<{priority(record.levelno)}>{text}"


def journal_entry(fields: dict[str, str]) -> bytes:
    """The journal's native datagram: ``NAME=value`` lines, and a length-prefixed form for a
    value with a newline in it."""
    out = bytearray()
    for name, value in fields.items():
        data = value.encode("utf-8", "replace")
        if b"\n" in data:
            out += name.encode() + b"\n" + struct.pack("<Q", len(data)) + data + b"\n"
        else:
            out += name.encode() + b"=" + data + b"\n"
    return bytes(out)


class JournalHandler(logging.Handler):
    """Sends each record to the journal's socket, with its priority and skutui's identifier."""

    def __init__(self, address: Path = JOURNAL_SOCKET) -> None:
        super().__init__()
        self.address = str(address)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            entry = journal_entry({"MESSAGE": self.format(record),
                                   "PRIORITY": str(priority(record.levelno)),
                                   "SYSLOG_IDENTIFIER": IDENTIFIER,
                                   "SYSLOG_PID": str(os.getpid())})
            self.sock.sendto(entry, self.address)
        except OSError:
            self.handleError(record)

    def close(self) -> None:
        self.sock.close()
        super().close()


def stderr_is_journal(environ: dict[str, str] | None = None) -> bool:
    """Whether standard error is the journal stream systemd connected ($JOURNAL_STREAM
    names its device and inode), rather than a terminal the command was run from."""
    stream = (os.environ if environ is None else environ).get("JOURNAL_STREAM", "")
    device, _, inode = stream.partition(":")
    try:
        info = os.fstat(sys.stderr.fileno())
    except (OSError, ValueError, AttributeError):
        return False
    return stream != "" and (str(info.st_dev), str(info.st_ino)) == (device, inode)


def open_log_file(paths: Paths) -> Path:
    """The log file, made root's alone before anything is written to it."""
    paths.log_dir.mkdir(mode=LOG_DIR_MODE, parents=True, exist_ok=True)
    fd = os.open(paths.log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, LOG_FILE_MODE)
    try:
        os.fchmod(fd, LOG_FILE_MODE)  # one an older skutui left readable by all
    finally:
        os.close(fd)
    return paths.log_file


def handler(paths: Paths, mark: Path = BOOTED_MARK,
            journal: Path = JOURNAL_SOCKET) -> logging.Handler:
    if stderr_is_journal():
        chosen: logging.Handler = logging.StreamHandler(sys.stderr)
        chosen.setFormatter(JournalStreamFormatter("%(message)s"))
    elif booted(mark) and journal.exists():
        chosen = JournalHandler(journal)
        chosen.setFormatter(logging.Formatter("%(message)s"))
    else:
        chosen = logging.handlers.WatchedFileHandler(open_log_file(paths))
        chosen.setFormatter(logging.Formatter(FILE_FORMAT))
    return chosen


def setup(paths: Paths, level: int = logging.INFO) -> logging.Handler:
    """Send this process's log records where an operator looks for them."""
    chosen = handler(paths)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(chosen)
    root.setLevel(level)
    return chosen


JOURNAL_UNITS = (AGENT_UNIT, KEEPALIVED_UNIT, CONNTRACKD_UNIT)
"""Units whose lines ``skutui logs`` shows beside skutui's own: the daemons of the cluster,
and what systemd says about all three (started, died, restarted)."""


def journal_command(lines: int | None, follow: bool) -> list[str]:
    """The journalctl command line of ``skutui logs``: skutui's lines, keepalived's and
    conntrackd's, and systemd's about their units ("+" joins the alternatives)."""
    matches = [f"SYSLOG_IDENTIFIER={IDENTIFIER}"]
    for unit in JOURNAL_UNITS:
        matches += ["+", f"_SYSTEMD_UNIT={unit}", "+", f"UNIT={unit}"]
    return ["journalctl", "--output=short-iso", "--no-hostname",
            f"--lines={'all' if lines is None else lines}", *(["--follow"] if follow else []),
            *matches]
