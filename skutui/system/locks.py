"""Locks held by a process for as long as it runs: one agent per node, one cluster change
at a time.

A lock is ``flock`` on a file that also names its holder. The kernel releases it when the
holder ends, however it ends (SIGKILL, power loss: the file is still there, unlocked), so
a lock is never stale: a file whose lock can be taken names a holder that is gone.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
from pathlib import Path


class Held(Exception):
    """The lock is held by another process; ``holder`` is what it wrote in the file."""

    def __init__(self, holder: dict) -> None:
        super().__init__(holder)
        self.holder = holder


class FileLock:
    """An exclusive, non-blocking lock on ``path``; ``holder`` is written into the file
    once the lock is taken, for the refusal another process then gives."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self, holder: dict) -> None:
        """Take the lock or raise :class:`Held` naming the holder; never waits."""
        if self._fd is not None:
            raise RuntimeError(f"{self.path} is held already by this process")
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EACCES):
                raise Held(read_holder(self.path)) from None
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(holder, sort_keys=True) + "\n").encode(), 0)
        self._fd = fd

    def release(self) -> None:
        """Give the lock up; the file stays (another holder truncates it)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def free(self) -> bool:
        """Whether nobody holds the lock now (this process included)."""
        if self._fd is not None:
            return False
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return True
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            return False
        finally:
            os.close(fd)
        return True


def read_holder(path: Path) -> dict:
    """What the holder of ``path`` wrote; {} if nothing readable (it was just taken)."""
    try:
        holder = json.loads(Path(path).read_text() or "{}")
    except (OSError, ValueError):
        return {}
    return holder if isinstance(holder, dict) else {}
