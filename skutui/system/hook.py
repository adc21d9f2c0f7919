"""keepalived's notify hook, what it reports, and the mark the agent leaves for it.

Two files in the run folder, each with one writer:

- the **report** (``Paths.keepalived_report``), written only by the hook: the state
  keepalived last announced, and when;
- the **mark** (``Paths.transition_mark``), written only by the agent: the transition it
  took (``queued`` when keepalived's FIFO line came, ``running`` before its steps, ``done``
  after them).

keepalived runs ``notify_hook.sh`` on every transition. The hook writes its report, then
leaves the transition to the agent as soon as the agent's mark names it, whatever its
phase: a slow step never makes the hook run the transition a second time. Without such a
mark within a second, the hook asks ``skutui agent notify STATE``, which hands the
transition to the agent (started if it is not running); the agent alone runs the steps
and writes the role file.

Both files say *when* as this boot's id and the time since boot in hundredths of a second
(``/proc/uptime``, which the shell reads as easily as Python): unlike the wall clock, it
never steps back, and a moment from before a reboot never passes for a fresh one.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from skutui.system.files import write_text_atomic

HOOK = Path(__file__).with_name("notify_hook.sh")
"""keepalived's notify hook: it reports the transition and leaves it to the agent."""
BOOT_ID = Path("/proc/sys/kernel/random/boot_id")
SAME_TRANSITION = 100
"""Hundredths of a second between keepalived's FIFO line and its hook for one transition,
at most: a mark this much older than the hook's report is still that transition's."""
STATES = ("master", "backup", "fault")
PHASES = ("queued", "running", "done")


def hook_command(skutui: str, mark: Path, report: Path) -> str:
    """keepalived's notify command line, without the state keepalived's config appends."""
    return f"/bin/sh {HOOK} {skutui} {mark} {report}"


@dataclass(frozen=True, order=True)
class Moment:
    """A moment of this boot: immune to clock steps, and never equal to one of another boot."""

    boot: str
    since_boot: int
    """Hundredths of a second since boot (CLOCK_BOOTTIME, as /proc/uptime shows it)."""

    @classmethod
    def now(cls) -> Moment:
        return cls(boot_id(), int(time.clock_gettime(time.CLOCK_BOOTTIME) * 100))

    def text(self) -> str:
        return f"{self.boot} {self.since_boot}"

    def this_boot(self) -> bool:
        return self.boot == boot_id()


def boot_id() -> str:
    try:
        return BOOT_ID.read_text().strip()
    except OSError:
        return "unknown"


@dataclass(frozen=True)
class Mark:
    """The agent's account of a transition: ``state`` taken at ``at`` (when keepalived's
    FIFO line, or the hook's report, came), now in ``phase``."""

    state: str
    phase: str
    at: Moment

    @property
    def term(self) -> str | None:
        """The master term this transition began, as ``BOOT/SINCE_BOOT``; None for a
        backup or fault transition."""
        return f"{self.at.boot}/{self.at.since_boot}" if self.state == "master" else None

    def covers(self, state: str, at: Moment) -> bool:
        """Whether this mark is the agent taking keepalived's ``state`` reported at ``at``."""
        return (self.state == state and self.at.boot == at.boot
                and self.at.since_boot >= at.since_boot - SAME_TRANSITION)


@dataclass(frozen=True)
class Report:
    """keepalived's hook's account: keepalived announced ``state`` at ``at``."""

    state: str
    at: Moment


def write_mark(path: Path, mark: Mark) -> None:
    """Only the agent calls this."""
    write_text_atomic(path, f"{mark.state} {mark.phase} {mark.at.text()}\n")


def read_mark(path: Path) -> Mark | None:
    words = _words(path)
    if len(words) != 4 or words[0] not in STATES or words[1] not in PHASES:
        return None
    try:
        return Mark(words[0], words[1], Moment(words[2], int(words[3])))
    except ValueError:
        return None


def read_report(path: Path) -> Report | None:
    """The hook writes ``STATE BOOT_ID UPTIME`` (uptime as /proc/uptime prints it)."""
    words = _words(path)
    if len(words) != 3 or words[0] not in STATES:
        return None
    whole, _, fraction = words[2].partition(".")
    try:
        return Report(words[0], Moment(words[1], int(whole) * 100 + int((fraction + "00")[:2])))
    except ValueError:
        return None


def current_term(mark_path: Path) -> str | None:
    """The master term this node is in by the agent's last mark; None if it is not master."""
    mark = read_mark(mark_path)
    return mark.term if mark is not None and mark.at.this_boot() else None


def _words(path: Path) -> list[str]:
    try:
        return path.read_text().split()
    except (OSError, UnicodeDecodeError):
        return []
