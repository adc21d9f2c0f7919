"""What every benchmark shares: rounds and medians, the results table, a pseudo-terminal
with a small screen model, and process bookkeeping through /proc.

Times are wall-clock (time.monotonic). Nothing here asserts a time: a benchmark measures
skutui and its baseline side by side in the same run and prints both, with their ratio.
"""

from __future__ import annotations

import argparse
import codecs
import fcntl
import json
import os
import pty
import select
import signal
import statistics
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
PYTHON = sys.executable
"""The interpreter running the benchmarks: the checkout's virtualenv when started by bench/run."""


class BenchError(Exception):
    """A benchmark could not measure what it set out to; the message says why."""


# --- numbers ------------------------------------------------------------------------------

def median(values: Sequence[float]) -> float:
    if not values:
        raise BenchError("no sample was collected")
    return statistics.median(values)


def fmt_time(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds >= 10:
        return f"{seconds:.1f} s"
    if seconds >= 1:
        return f"{seconds:.2f} s"
    return f"{seconds * 1000:.0f} ms" if seconds >= 0.01 else f"{seconds * 1000:.1f} ms"


def fmt_bytes(count: float | None) -> str:
    if count is None:
        return "-"
    if count >= 1024:
        return f"{count / 1024:.1f} KB"
    return f"{count:.0f} B"


def fmt_exact_bytes(count: float) -> str:
    """`11571 B (11.3 KB)`: sizes on a slow line are worth every byte."""
    return f"{count:.0f} B" if count < 1024 else f"{count:.0f} B ({count / 1024:.1f} KB)"


def spread(values: Sequence[float], fmt: Callable[[float], str] = fmt_time) -> str:
    """`n=5, 280 ms–310 ms`: how many rounds and how far apart they were."""
    if not values:
        return "n=0"
    return f"n={len(values)}, {fmt(min(values))}–{fmt(max(values))}"


# --- the table ----------------------------------------------------------------------------

@dataclass
class Row:
    """One line of the results table."""

    name: str
    skutui: str
    baseline: str = "—"
    ratio: str = "—"
    target: str = "—"
    met: bool | None = None
    """None: no target, or not measured."""
    notes: list[str] = field(default_factory=list)

    @property
    def verdict(self) -> str:
        return {True: "yes", False: "NO", None: "—"}[self.met]


def failed_row(name: str, target: str, error: BaseException) -> Row:
    return Row(name, "not measured", target=target, met=False,
               notes=[f"{type(error).__name__}: {error}"])


HEADINGS = ("bench", "skutui", "baseline (same run)", "ratio", "target", "met")


def render_table(rows: Iterable[Row], markdown: bool = False) -> str:
    rows = list(rows)
    cells = [HEADINGS] + [(r.name, r.skutui, r.baseline, r.ratio, r.target, r.verdict)
                          for r in rows]
    if markdown:
        lines = ["| " + " | ".join(cells[0]) + " |", "|" + "---|" * len(HEADINGS)]
        lines += ["| " + " | ".join(c) + " |" for c in cells[1:]]
    else:
        widths = [max(len(c[i]) for c in cells) for i in range(len(HEADINGS))]
        lines = ["  ".join(c[i].ljust(widths[i]) for i in range(len(HEADINGS))).rstrip()
                 for c in cells]
        lines.insert(1, "  ".join("-" * w for w in widths))
    notes = [f"- {r.name}: {note}" for r in rows for note in r.notes]
    if notes:
        lines += ["", "Notes:"] + notes
    return "\n".join(lines)


def environment_line() -> str:
    """Where and when the figures were taken: they only compare within one run."""
    try:
        commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                                capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        commit = "?"
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    return (f"{time.strftime('%Y-%m-%d %H:%M:%S')}  commit {commit or '?'}  "
            f"{os.cpu_count()} CPUs  load {load}  python {sys.version.split()[0]}")


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rounds", type=int, metavar="N",
                        help="rounds per figure (each bench has its own default)")
    parser.add_argument("--markdown", action="store_true", help="print the table as Markdown")


def rounds(args: argparse.Namespace, default: int) -> int:
    value = getattr(args, "rounds", None) or default
    if value < 1:
        raise BenchError("--rounds must be at least 1")
    return value


def intervals(args: argparse.Namespace, option: str, default: str) -> list[float]:
    """The check intervals ``--OPTION`` names (comma-separated seconds)."""
    return [float(x) for x in str(getattr(args, option, None) or default).split(",") if x]


def each_interval(values: Sequence[float], measure: Callable[[float], Row],
                  name: Callable[[float], str], target: str, *,
                  errors: tuple[type[BaseException], ...] = (BenchError,),
                  after_failure: Callable[[], object] | None = None) -> list[Row]:
    """One row per interval: what ``measure`` found, or a failed row naming the interval
    (``after_failure`` then puts the lab back for the next one)."""
    rows: list[Row] = []
    for interval in values:
        try:
            rows.append(measure(interval))
        except errors as exc:
            rows.append(failed_row(name(interval), target, exc))
            if after_failure is not None:
                after_failure()
    return rows


def standalone(collect: Callable[[argparse.Namespace], list[Row]],
               add_arguments: Callable[[argparse.ArgumentParser], None] | None = None,
               description: str = "") -> None:
    """Run one benchmark module from the command line and print its rows."""
    parser = argparse.ArgumentParser(description=description)
    add_common_arguments(parser)
    if add_arguments:
        add_arguments(parser)
    args = parser.parse_args()
    print(environment_line(), flush=True)
    try:
        result = collect(args)
    except BenchError as exc:
        print(f"{parser.prog}: {exc}", file=sys.stderr)
        sys.exit(1)
    print(render_table(result, markdown=args.markdown))
    sys.exit(0)


def note(text: str) -> None:
    """Progress for the person waiting; the table comes at the end."""
    print(f"  .. {text}", file=sys.stderr, flush=True)


# --- a terminal screen, just enough of it ---------------------------------------------------

class Screen:
    """The characters a VT-style terminal would show after the bytes fed so far.

    Understands what Textual writes (cursor addressing, erasures, text, CR/LF) and skips
    the rest (colours, modes, OSC and DCS strings). Wide characters count as one cell:
    this is for finding text on the screen, not for pixel-exact rendering.
    """

    def __init__(self, columns: int = 80, lines: int = 24):
        self.columns, self.lines = columns, lines
        self.cells = [[" "] * columns for _ in range(lines)]
        self.x = self.y = 0
        self.saved = (0, 0)
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self._state = "text"
        self._sequence = ""

    def feed(self, data: bytes) -> None:
        for ch in self._decoder.decode(data):
            self._char(ch)

    def text(self) -> str:
        return "\n".join("".join(row).rstrip() for row in self.cells)

    def contains(self, *needles: str) -> bool:
        screen = self.text()
        return all(n in screen for n in needles)

    def _char(self, ch: str) -> None:
        state = self._state
        if state == "text":
            if ch == "\x1b":
                self._state = "escape"
            elif ch == "\r":
                self.x = 0
            elif ch == "\n":
                self._line_feed()
            elif ch == "\b":
                self.x = max(0, self.x - 1)
            elif ch == "\t":
                self.x = min(self.columns - 1, (self.x // 8 + 1) * 8)
            elif ch >= " " and ch != "\x7f":
                if 0 <= self.y < self.lines and 0 <= self.x < self.columns:
                    self.cells[self.y][self.x] = ch
                self.x += 1
        elif state == "escape":
            if ch == "[":
                self._state, self._sequence = "csi", ""
            elif ch == "]":
                self._state = "osc"
            elif ch in "PX^_":
                self._state = "string"
            elif ch in "()*+":
                self._state = "charset"
            elif ch == "7":
                self.saved, self._state = (self.x, self.y), "text"
            elif ch == "8":
                (self.x, self.y), self._state = self.saved, "text"
            elif ch == "M":
                self.y, self._state = max(0, self.y - 1), "text"
            else:
                self._state = "text"
        elif state == "charset":
            self._state = "text"
        elif state == "csi":
            if "\x40" <= ch <= "\x7e":
                self._csi(self._sequence, ch)
                self._state = "text"
            else:
                self._sequence += ch
        elif state in ("osc", "string"):
            if ch == "\x07":
                self._state = "text"
            elif ch == "\x1b":
                self._state = state + "-escape"
        elif state in ("osc-escape", "string-escape"):
            self._state = "text" if ch == "\\" else state.split("-")[0]

    def _line_feed(self) -> None:
        if self.y >= self.lines - 1:
            self.cells.pop(0)
            self.cells.append([" "] * self.columns)
        else:
            self.y += 1

    def _csi(self, params: str, final: str) -> None:
        if params[:1] in "?>=<" and params:
            return  # private modes and queries
        numbers = [int(p) if p.isdigit() else 0 for p in params.split(";")] if params else []

        def arg(i: int, default: int = 1) -> int:
            return numbers[i] if len(numbers) > i and numbers[i] else default

        if final in "Hf":
            self.y, self.x = arg(0) - 1, arg(1) - 1
        elif final == "A":
            self.y = max(0, self.y - arg(0))
        elif final == "B":
            self.y = min(self.lines - 1, self.y + arg(0))
        elif final == "C":
            self.x = min(self.columns - 1, self.x + arg(0))
        elif final == "D":
            self.x = max(0, self.x - arg(0))
        elif final == "G":
            self.x = arg(0) - 1
        elif final == "d":
            self.y = arg(0) - 1
        elif final == "J":
            mode = arg(0, 0)
            if mode in (2, 3):
                self.cells = [[" "] * self.columns for _ in range(self.lines)]
            elif mode == 0 and 0 <= self.y < self.lines:
                self._erase(self.y, self.x, self.columns)
                for y in range(self.y + 1, self.lines):
                    self._erase(y, 0, self.columns)
        elif final == "K":
            mode = arg(0, 0)
            start, end = {0: (self.x, self.columns), 1: (0, self.x + 1)}.get(mode, (0, self.columns))
            self._erase(self.y, start, end)
        elif final == "X":
            self._erase(self.y, self.x, self.x + arg(0))

    def _erase(self, y: int, start: int, end: int) -> None:
        if 0 <= y < self.lines:
            for x in range(max(0, start), min(self.columns, end)):
                self.cells[y][x] = " "


# --- a program on a pseudo-terminal ---------------------------------------------------------

class PtySession:
    """Runs a program on a fresh pseudo-terminal of a given size and records, with arrival
    times, every byte it writes there: what a serial line or a terminal would receive."""

    def __init__(self, argv: Sequence[str], env: dict[str, str], columns: int = 80,
                 lines: int = 24, cwd: str | Path | None = None):
        self.master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", lines, columns, 0, 0))
        self.screen = Screen(columns, lines)
        self.received = 0
        self.chunks: list[tuple[float, int]] = []
        self.started = time.monotonic()
        try:
            self.process = subprocess.Popen(list(argv), stdin=slave, stdout=slave, stderr=slave,
                                            env=env, cwd=cwd, start_new_session=True,
                                            close_fds=True)
        finally:
            os.close(slave)
        self.last_output = self.started

    def _read(self, timeout: float) -> bool:
        """Take whatever arrives within ``timeout``; False if nothing did."""
        ready, _, _ = select.select([self.master], [], [], max(0.0, timeout))
        if not ready:
            return False
        try:
            data = os.read(self.master, 65536)
        except OSError:  # EIO: the program closed the terminal
            data = b""
        if not data:
            if self.process.poll() is not None:
                raise BenchError(f"{self.process.args[0]} exited with status "
                                 f"{self.process.returncode}; last screen:\n{self.screen.text()}")
            time.sleep(min(timeout, 0.01))
            return False
        now = time.monotonic()
        self.received += len(data)
        self.chunks.append((now, len(data)))
        self.last_output = now
        self.screen.feed(data)
        return True

    def wait_screen(self, predicate: Callable[[Screen], bool], timeout: float, what: str) -> float:
        """Read until ``predicate(screen)`` holds; the arrival time of the bytes that made it so."""
        deadline = time.monotonic() + timeout
        while not predicate(self.screen):
            if time.monotonic() > deadline:
                raise BenchError(f"{what}: not on the screen within {timeout:g} s; it shows:\n"
                                 + self.screen.text())
            self._read(deadline - time.monotonic())
        return self.last_output

    def wait_text(self, *needles: str, timeout: float = 30.0) -> float:
        return self.wait_screen(lambda s: s.contains(*needles), timeout, " and ".join(map(repr, needles)))

    def settle(self, quiet: float, timeout: float = 30.0) -> float:
        """Read until nothing has arrived for ``quiet`` seconds; the time of the last byte."""
        deadline = time.monotonic() + timeout
        while True:
            left = quiet - (time.monotonic() - self.last_output)
            if left <= 0:
                return self.last_output
            if time.monotonic() > deadline:
                raise BenchError(f"the program kept writing for {timeout:g} s")
            self._read(min(left, deadline - time.monotonic()))

    def read_for(self, seconds: float) -> int:
        """Read for ``seconds``; how many bytes arrived meanwhile."""
        before = self.received
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0:
            self._read(left)
        return self.received - before

    def send(self, data: bytes) -> None:
        os.write(self.master, data)

    def close(self) -> None:
        kill_tree(self.process)
        os.close(self.master)


# --- processes ---------------------------------------------------------------------------

def _stat_fields(pid: int) -> list[str] | None:
    """Fields of /proc/PID/stat after the command name (field 3, the state, comes first)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text.rsplit(")", 1)[1].split()


def parent_of(pid: int) -> int | None:
    fields = _stat_fields(pid)
    return int(fields[1]) if fields else None


def all_pids() -> list[int]:
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


def descendants(pid: int) -> list[int]:
    """Every live process below ``pid``, children before grandchildren."""
    parents = {p: parent_of(p) for p in all_pids()}
    found, frontier = [], [pid]
    while frontier:
        children = [p for p, parent in parents.items() if parent in frontier and p not in found]
        found += children
        frontier = children
    return found


def kill_tree(process: subprocess.Popen) -> None:
    """Stop a process we started and everything it started (deepest first), by pid."""
    for pid in reversed(descendants(process.pid)):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    if process.poll() is None:
        process.kill()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        pass


def cmdline(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")[:-1]
    except OSError:
        return []


def cpu_seconds(pid: int, children: bool = True) -> float | None:
    """utime + stime (and the waited-for children's, unless told not to) of a process."""
    fields = _stat_fields(pid)
    if fields is None:
        return None
    ticks = int(fields[11]) + int(fields[12])
    if children:
        ticks += int(fields[13]) + int(fields[14])
    return ticks / os.sysconf("SC_CLK_TCK")


def start_time(pid: int) -> int | None:
    fields = _stat_fields(pid)
    return int(fields[19]) if fields else None


def json_lines(stream) -> Iterable[dict]:
    for line in stream:
        try:
            value = json.loads(line)
        except ValueError:
            continue
        if isinstance(value, dict):
            yield value
