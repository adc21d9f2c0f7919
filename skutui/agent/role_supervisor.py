"""This node's role: keepalived's transitions run as they happen, each change announced once.

keepalived's notify FIFO tells of a transition the moment keepalived makes it. The agent
*takes* it: marks it for keepalived's notify hook (``queued``, then ``running`` before its
steps and ``done`` after them, see :mod:`skutui.system.hook`), writes the role file (the
agent is its only writer), announces the change with its cause, and runs the state's steps
in the order the states came. The hook only reports: when the FIFO line did not reach the
agent, the hook's ``skutui agent notify`` hands the transition over (:meth:`reported`), and
an agent that starts takes the last transition the hook reported, if it took it not yet.
The agent's rounds read the role file too, so a change nobody announces (keepalived died)
is still announced. A keepalived that dies is the keepalived watch's
(:mod:`.takeover`): the hand-over, and no floating IP kept without keepalived.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path

from skutui.agent.link import PeerLink
from skutui.agent.transitions import STATE_ROLES, outcome_event, run_transition
from skutui.domain import codec
from skutui.domain.model import Role
from skutui.domain.paths import Paths
from skutui.system.hook import Mark, Moment, read_mark, read_report, write_mark
from skutui.system.node import LocalNode

log = logging.getLogger("skutui.agent")

FIFO_CHECK_INTERVAL = 1.0
"""Seconds between checks that keepalived's notify FIFO is still the one being read (and
between tries to open it, when it cannot be opened)."""
ROLE_ANNOUNCE_GRACE = 2.0
"""Seconds a role change seen in the role file waits to be announced with its cause, by
keepalived's FIFO line or by its notify hook when that ran the transition (it writes the
file before it reports): waiting makes one change one event. A change neither announces
(keepalived died) is announced by a round after this."""


def _open_fifo(path: Path) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        os.mkfifo(path, 0o600)
    return os.open(path, os.O_RDWR | os.O_NONBLOCK)


def _names(path: Path, fd: int) -> bool:
    """Whether ``path`` still names the file open as ``fd``."""
    try:
        named, opened = os.stat(path), os.fstat(fd)
    except OSError:
        return False
    return (named.st_dev, named.st_ino) == (opened.st_dev, opened.st_ino)


class RoleSupervisor:
    """``on_moved`` is called when keepalived moves this node, so that what depends on the
    role (the sync) follows now rather than at the next round."""

    def __init__(self, node: LocalNode, paths: Paths, report: Callable[..., object], *,
                 transition: Callable[[LocalNode, str], list[str]] = run_transition,
                 link: Callable[[], PeerLink | None] = lambda: None,
                 on_moved: Callable[[], object] = lambda: None,
                 on_priority: Callable[[str, int], object] = lambda state, priority: None) -> None:
        self.node = node
        self.paths = paths
        self.report = report
        self.transition = transition
        self.link = link
        self.on_moved = on_moved
        self.role: Role | None = None
        """The role last announced."""
        self._seen: tuple[Role, float] | None = None
        """A change the rounds see but nobody announced yet, and when it was first seen."""
        self.taken: Mark | None = None
        """The transition taken last (its mark)."""
        self.transitions: asyncio.Queue[Mark] = asyncio.Queue()
        """keepalived's transitions taken, run in the order they came."""
        self.fifo_error: str | None = None
        self.on_priority = on_priority
        self.priority: int | None = None
        """keepalived's effective priority, as its last FIFO line said."""

    # --- announcements ------------------------------------------------------------------------

    def note(self, role: Role, cause: str | None = None) -> None:
        """The role a round reads: announced at once the first time, after the grace
        period when it changed (unless keepalived or its hook announced it meanwhile)."""
        previous = self.role
        if role == previous:
            self._seen = None
            return
        if previous is None:
            self.role = role
            self.report("role", f"agent started; this node is {role.value}",
                        role=role.value, cause="agent start")
            return
        now = time.monotonic()
        if self._seen is None or self._seen[0] is not role:
            self._seen = (role, now)
        if now - self._seen[1] < ROLE_ANNOUNCE_GRACE:
            return  # keepalived's notify hook announces it, with the outcome of its steps
        self.role, self._seen = role, None
        cause = cause or self._cause(role, previous)
        self.report("role", f"{previous.value} -> {role.value}: {cause}", level=_level(role),
                    role=role.value, previous=previous.value, cause=cause)

    def _cause(self, role: Role, previous: Role) -> str:
        link = self.link()
        if role is Role.MAINTENANCE:
            return "maintenance was switched on"
        if role is Role.FAULT:
            return "keepalived reported FAULT (a tracked link is down, or this node stepped down)"
        if role is Role.MASTER:
            if link is not None and link.up is False:
                return f"keepalived made this node master ({link.node.hostname} is unreachable)"
            return "keepalived made this node master"
        if role is Role.BACKUP and previous is Role.MASTER and not self.node.keepalived.running():
            return "keepalived is not running, so this node no longer acts as master"
        if role is Role.BACKUP and previous is Role.MAINTENANCE:
            return "left maintenance; keepalived made this node backup"
        return f"keepalived made this node {role.value}"


    def keepalived_moved(self, role: Role, cause: str) -> None:
        """keepalived made this transition: announce it once, and start or stop the sync."""
        role = self.node.as_held(role)
        if role is self.role:
            return
        self.role, self._seen = role, None
        state = cause.removeprefix("keepalived ")
        self.report("role", f"keepalived moved this node to {state}", level=_level(role),
                    role=role.value, cause=cause)
        self.on_moved()  # start or stop the sync now, not at the next interval

    # --- keepalived's transitions -------------------------------------------------------------

    def start(self) -> None:
        """The role when the agent starts: keepalived's last transition of this boot, as its
        hook reported it, taken now if the agent's mark does not show it taken to the end
        (the agent was not running, or died in its steps). Without one (keepalived not
        running, or a report from before a reboot), backup, or maintenance if the flag says
        so, until keepalived moves the node: a role file left saying master must not make
        this node push and replay as a second master. A node without a cluster has no role."""
        report = read_report(self.paths.keepalived_report)
        mark = read_mark(self.paths.transition_mark)
        if report is not None and report.at.this_boot() and self.node.keepalived.running():
            if mark is not None and mark.phase == "done" and mark.covers(report.state, report.at):
                self.taken = mark
                self._write_role(STATE_ROLES[mark.state])
            else:
                self.take(report.state, report.at,
                          f"keepalived {report.state.upper()}, reported by its notify hook")
            return
        if self._configured():
            self._write_role(Role.MAINTENANCE if self.node.in_maintenance() else Role.BACKUP)

    def _configured(self) -> bool:
        try:
            return self.node.config() is not None
        except codec.ConfigError:
            return True  # a cluster whose file cannot be read is a cluster still

    def take(self, state: str, at: Moment, cause: str) -> bool:
        """Take keepalived's transition to ``state`` that happened at ``at``: mark it (the
        hook then leaves it alone), write the role file, announce it, queue its steps.
        False if it was taken already (the FIFO line and the hook both told of it)."""
        if self.taken is not None and self.taken.covers(state, at):
            return False
        mark = Mark(state, "queued", at)
        self.taken = mark
        self._mark(mark)
        role = STATE_ROLES[state]
        self._write_role(role)
        self.keepalived_moved(role, cause)
        self.transitions.put_nowait(mark)
        return True

    def term(self) -> str | None:
        """The master term this node is in: its MASTER transition's moment; None when the
        last transition taken was not to master."""
        return self.taken.term if self.taken is not None else None

    def _write_role(self, role: Role) -> None:
        """The role file's one writer. It is written before the event: a reader of the
        node table that the event sends looking must find the new role already."""
        try:
            self.node.write_role(role)
        except OSError as exc:
            log.error("cannot write the role file: %s", exc)

    def _mark(self, mark: Mark) -> None:
        """Only the latest transition's mark is written: a slow older one finishing must
        not hide a newer one from keepalived's hook."""
        taken = self.taken
        if taken is None or (taken.state, taken.at) != (mark.state, mark.at):
            return
        try:
            write_mark(self.paths.transition_mark, mark)
        except OSError as exc:  # the hook then hands the transition over again: it is deduplicated
            log.error("cannot mark the transition: %s", exc)

    def fifo_line(self, line: str) -> None:
        """One line of keepalived's notify FIFO, e.g. ``INSTANCE "SKUTUI" MASTER 120``."""
        words = line.replace('"', " ").split()
        self._note_priority(words)
        if len(words) < 3 or words[0] != "INSTANCE" or words[2].lower() not in STATE_ROLES:
            return
        self.take(words[2].lower(), Moment.now(), f"keepalived {words[2]}")

    def _note_priority(self, words: list[str]) -> None:
        """Every line keepalived writes ends with the effective priority; ``MASTER_PRIORITY``
        and ``BACKUP_PRIORITY`` lines say it changed (a service check failed or recovered)."""
        if len(words) >= 4 and words[0] == "INSTANCE" and words[3].isdigit():
            self.priority = int(words[3])
            self.on_priority(words[2].lower().removesuffix("_priority"), self.priority)

    def reported(self, state: str, at: Moment) -> bool:
        """keepalived's hook hands over a transition it found no mark for. One no newer
        than the transition taken last is stale (the hook waited while keepalived moved on):
        taking it would undo the newer one. The hook's moment is when keepalived started it,
        before it announced the next state, so a tie (one hundredth holds both) is stale too."""
        if state not in STATE_ROLES:
            raise ValueError(f"unknown state {state!r}")
        taken = self.taken
        if taken is not None and not taken.covers(state, at) and taken.at.boot == at.boot \
                and taken.at.since_boot >= at.since_boot:
            return False
        return self.take(state, at, f"keepalived {state.upper()}")

    async def run_transition(self, mark: Mark) -> None:
        """Run the steps of a transition taken, marked running before and done after them,
        and report how they went."""
        state = mark.state
        self._mark(Mark(state, "running", mark.at))
        started = time.monotonic()
        failed = await asyncio.to_thread(self.transition, self.node, state)
        took = time.monotonic() - started
        self._mark(Mark(state, "done", mark.at))
        log.info("notify: transition to %s%s", state,
                 f"; failed: {'; '.join(failed)}" if failed else "")
        message, level, data = outcome_event(state, failed, took)
        self.report("service", message, level=level, **data)

    async def run_transitions(self) -> None:
        while True:
            mark = await self.transitions.get()
            try:
                await self.run_transition(mark)
            except Exception:  # noqa: BLE001 - the next transition must still run
                log.exception("transition to %s failed", mark.state)

    async def read_notify_fifo(self) -> None:
        """Read keepalived's notify FIFO, made here if keepalived has not made it yet. It is
        opened for writing too, so that keepalived restarting never reads as end of file,
        and opened again when the path names another FIFO: keepalived removes the one it
        made when it stops, and makes a new one when it starts."""
        loop = asyncio.get_running_loop()
        fd: int | None = None
        pending = bytearray()

        def readable(fd: int) -> None:
            try:
                pending.extend(os.read(fd, 4096))
            except BlockingIOError:
                return
            while b"\n" in pending:
                line, _, rest = bytes(pending).partition(b"\n")
                pending[:] = rest
                try:
                    self.fifo_line(line.decode("utf-8", "replace"))
                except Exception:  # noqa: BLE001 - one bad line must not stop the reader
                    log.exception("notify FIFO line failed: %r", line)

        try:
            while True:
                if fd is None or not _names(self.paths.notify_fifo, fd):
                    if fd is not None:
                        loop.remove_reader(fd)
                        os.close(fd)
                        fd = None
                    fd = self._reopen_fifo()
                    pending.clear()
                    if fd is not None:
                        loop.add_reader(fd, readable, fd)
                await asyncio.sleep(FIFO_CHECK_INTERVAL)
        finally:
            if fd is not None:
                loop.remove_reader(fd)
                os.close(fd)

    def _reopen_fifo(self) -> int | None:
        """The FIFO opened, or None after reporting why not (once per reason): the agent
        keeps running, the hook's reports still reach it, and the next check tries again."""
        try:
            fd = _open_fifo(self.paths.notify_fifo)
        except OSError as exc:
            if str(exc) != self.fifo_error:
                self.fifo_error = str(exc)
                self.report("agent", f"cannot open keepalived's notify FIFO "
                            f"{self.paths.notify_fifo}: {exc}; trying again every "
                            f"{FIFO_CHECK_INTERVAL:g} s (keepalived's hook hands its "
                            "transitions over meanwhile)", level="error")
            return None
        if self.fifo_error is not None:
            self.fifo_error = None
            self.report("agent", f"keepalived's notify FIFO {self.paths.notify_fifo} is read again")
        return fd

def _level(role: Role) -> str:
    return {Role.MAINTENANCE: "warning", Role.FAULT: "error"}.get(role, "info")
