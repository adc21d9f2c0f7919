"""pidfds on a daemon's processes, read by the event loop: the moment one of them ends is
known at once, not at the next look. Without pidfds (an old kernel) nothing is watched, and
the caller's own periodic look finds the daemon gone, later."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Callable


class ProcessWatch:
    """``died`` is called with the moment a watched process ended (once per process)."""

    def __init__(self, pids: Callable[[], list[int]], died: Callable[[float], None]) -> None:
        self.pids = pids
        self.died = died
        self._fds: dict[int, int] = {}

    @property
    def armed(self) -> bool:
        return bool(self._fds)

    async def arm(self) -> None:
        """Watch every process ``pids`` lists now, besides those watched already."""
        for pid in await asyncio.to_thread(self.pids):
            if pid not in self._fds:
                self._open(pid)

    def follow(self, pids: list[int]) -> None:
        """Watch exactly ``pids``: one no longer listed, or gone before it could be
        watched, ended unseen, and ``died`` is told now."""
        for pid in set(self._fds) - set(pids):
            self._exited(pid)
        for pid in set(pids) - set(self._fds):
            if not self._open(pid):
                self.died(time.time())

    def disarm(self) -> None:
        for pid in list(self._fds):
            self._forget(pid)

    def _open(self, pid: int) -> bool:
        try:
            fd = os.pidfd_open(pid)
        except (OSError, AttributeError):
            return False
        self._fds[pid] = fd
        asyncio.get_running_loop().add_reader(fd, self._exited, pid)
        return True

    def _exited(self, pid: int) -> None:
        moment = time.time()
        self._forget(pid)
        self.died(moment)

    def _forget(self, pid: int) -> None:
        fd = self._fds.pop(pid, None)
        if fd is not None:
            with contextlib.suppress(Exception):
                asyncio.get_running_loop().remove_reader(fd)
            os.close(fd)
