"""This node's role: keepalived's transitions run as they happen, each change announced once.

keepalived's notify FIFO tells of a transition the moment keepalived makes it: the role file
is written, the change announced with its cause, and the state's steps run in the order the
states came, then marked done for keepalived's notify hook (which runs them itself when no
agent did, and reports them here). The agent's rounds read the role file too, so a change
that neither keepalived nor its hook announces (keepalived died) is still announced. A
keepalived that is not running keeps no floating IP on this node.
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
from skutui.domain.model import ClusterConfig, Role
from skutui.domain.paths import Paths
from skutui.system.hook import mark_done
from skutui.system.node import LocalNode

log = logging.getLogger("skutui.agent")

FIFO_CHECK_INTERVAL = 1.0
"""Seconds between checks that keepalived's notify FIFO is still the one being read."""
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
                 on_moved: Callable[[], object] = lambda: None) -> None:
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
        self.transitions: asyncio.Queue[str] = asyncio.Queue()
        """keepalived's states from the FIFO, run in the order they came."""

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
        self.report("role", f"{previous.value} -> {role.value}: {cause}",
                    level="warning" if role is Role.MAINTENANCE else "info",
                    role=role.value, previous=previous.value, cause=cause)

    def _cause(self, role: Role, previous: Role) -> str:
        link = self.link()
        if role is Role.MAINTENANCE:
            return ("maintenance was switched on" if self.node.in_maintenance()
                    else "keepalived reported FAULT (a tracked interface is down)")
        if role is Role.MASTER:
            if link is not None and link.up is False:
                return f"keepalived made this node master ({link.node.hostname} is unreachable)"
            return "keepalived made this node master"
        if role is Role.BACKUP and previous is Role.MASTER and not self.node.keepalived.running():
            return "keepalived is not running, so this node no longer acts as master"
        if role is Role.BACKUP and previous is Role.MAINTENANCE:
            return "left maintenance; keepalived made this node backup"
        return f"keepalived made this node {role.value}"

    def posted(self, kind: str, message: str, level: str, data: dict) -> None:
        """An event from another process. keepalived's notify hook reports the outcome of
        its steps, with the role: if the FIFO line did not announce that role (the agent
        started after it), it is announced first."""
        if data.get("role") in {r.value for r in Role} and "cause" in data:
            self.keepalived_moved(Role(data["role"]), data["cause"])
        self.report(kind, message, level=level, **data)

    def keepalived_moved(self, role: Role, cause: str) -> None:
        """keepalived made this transition: announce it once, and start or stop the sync."""
        if role is self.role:
            return
        self.role, self._seen = role, None
        state = cause.removeprefix("keepalived ")
        self.report("role", f"keepalived moved this node to {state}",
                    level="warning" if role is Role.MAINTENANCE else "info",
                    role=role.value, cause=cause)
        self.on_moved()  # start or stop the sync now, not at the next interval

    # --- keepalived's transitions -------------------------------------------------------------

    def fifo_line(self, line: str) -> None:
        """One line of keepalived's notify FIFO, e.g. ``INSTANCE "SKUTUI" MASTER 120``. The
        role file is written here, before the event: a reader of the node table that the
        event sends looking must find the new role already."""
        words = line.replace('"', " ").split()
        if len(words) < 3 or words[0] != "INSTANCE" or words[2].lower() not in STATE_ROLES:
            return
        state = words[2].lower()
        role = STATE_ROLES[state]
        try:
            self.node.write_role(role)
        except OSError as exc:
            log.error("cannot write the role file: %s", exc)
        self.keepalived_moved(role, f"keepalived {words[2]}")
        self.transitions.put_nowait(state)

    async def run_transition(self, state: str) -> None:
        """Run the steps of keepalived's ``state``, mark them done for keepalived's hook,
        and report how they went."""
        failed = await asyncio.to_thread(self.transition, self.node, state)
        try:
            mark_done(self.paths.transition_mark, state)
        except OSError as exc:  # the hook then runs the steps again: harmless, only slower
            log.error("cannot mark the transition done: %s", exc)
        log.info("notify: transition to %s%s", state,
                 f"; failed: {'; '.join(failed)}" if failed else "")
        message, level, data = outcome_event(state, failed)
        self.report("service", message, level=level, **data)

    async def run_transitions(self) -> None:
        while True:
            state = await self.transitions.get()
            try:
                await self.run_transition(state)
            except Exception:  # noqa: BLE001 - the next transition must still run
                log.exception("transition to %s failed", state)

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
                    fd = _open_fifo(self.paths.notify_fifo)
                    pending.clear()
                    loop.add_reader(fd, readable, fd)
                await asyncio.sleep(FIFO_CHECK_INTERVAL)
        finally:
            if fd is not None:
                loop.remove_reader(fd)
                os.close(fd)

    # --- the floating-IP guard ----------------------------------------------------------------

    def guard_floating_ips(self, config: ClusterConfig | None) -> None:
        """A killed or hung keepalived never releases its floating IPs, and the peer takes
        them too: drop them here so that only one node answers for them."""
        if config is None or self.node.keepalived.running():
            return
        released = self.node.release_floating_ips(config)
        if released:
            self.report("service", "keepalived is not running: released floating IPs "
                        + ", ".join(released), level="warning", released=released)
