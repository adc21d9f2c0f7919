"""Linux inotify through ctypes: watch whole directory trees without a new dependency.

inotify watches one directory at a time, so a tree needs a watch per directory, added as
directories appear and dropped as they go. What the caller gets is a list of
:class:`Change` per read: which path, what happened, and whether it is a directory. An
event queue overflow is reported as one ``overflow`` change: the caller must then assume
that anything may have changed and compare whole trees.
"""

from __future__ import annotations

import ctypes
import errno
import os
import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

IN_MODIFY = 0x00000002
IN_ATTRIB = 0x00000004
IN_CLOSE_WRITE = 0x00000008
IN_MOVED_FROM = 0x00000040
IN_MOVED_TO = 0x00000080
IN_CREATE = 0x00000100
IN_DELETE = 0x00000200
IN_DELETE_SELF = 0x00000400
IN_MOVE_SELF = 0x00000800
IN_Q_OVERFLOW = 0x00004000
IN_IGNORED = 0x00008000
IN_ONLYDIR = 0x01000000
IN_DONT_FOLLOW = 0x02000000
IN_EXCL_UNLINK = 0x04000000
IN_ISDIR = 0x40000000

WATCH_MASK = (IN_CLOSE_WRITE | IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO
              | IN_ATTRIB | IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR | IN_DONT_FOLLOW
              | IN_EXCL_UNLINK)
"""Moves out of the tree count as deletes and attribute changes (chmod, chown, touch) as
changes, or a mode change alone would never reach the peer."""

_HEADER = struct.Struct("iIII")
_READ_SIZE = 64 * 1024

WRITTEN = "written"
CREATED = "created"
FOUND = "found"
"""Already inside a directory that appeared: complete, unlike a file just created."""
DELETED = "deleted"
MOVED_IN = "moved-in"
MOVED_OUT = "moved-out"
ATTRIBUTES = "attributes"
OVERFLOW = "overflow"


class InotifyError(OSError):
    """inotify could not be set up (no kernel support, or the watch limit is reached)."""


@dataclass(frozen=True)
class Change:
    path: Path | None
    """None only for ``overflow``."""
    what: str
    is_dir: bool = False


_libc: ctypes.CDLL | None = None


def _lib() -> ctypes.CDLL:
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
        _libc.inotify_init1.argtypes = [ctypes.c_int]
        _libc.inotify_add_watch.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32]
        _libc.inotify_rm_watch.argtypes = [ctypes.c_int, ctypes.c_int]
    return _libc


def _raise_errno(doing: str) -> None:
    code = ctypes.get_errno()
    hint = ""
    if code == errno.ENOSPC:
        hint = ("; the inotify watch limit is reached: raise "
                "/proc/sys/fs/inotify/max_user_watches")
    elif code == errno.EMFILE:
        hint = ("; too many inotify instances: raise /proc/sys/fs/inotify/max_user_instances")
    raise InotifyError(code, f"{doing}: {os.strerror(code)}{hint}")


class TreeWatcher:
    """Watches every directory under ``roots``; ``skip(path)`` prunes names and subtrees.

    Not thread-safe; meant to be read from one event loop (``fileno`` for add_reader).
    """

    def __init__(self, roots: Iterable[Path], *,
                 skip: Callable[[Path], bool] = lambda path: False) -> None:
        self.roots = tuple(Path(root) for root in roots)
        self.skip = skip
        self._wd_paths: dict[int, Path] = {}
        self._path_wds: dict[Path, int] = {}
        self._fd = _lib().inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        if self._fd < 0:
            _raise_errno("cannot start inotify")
        try:
            self.watch_missing_roots()
        except BaseException:
            self.close()
            raise

    def fileno(self) -> int:
        return self._fd

    @property
    def closed(self) -> bool:
        return self._fd < 0

    @property
    def watched(self) -> set[Path]:
        return set(self._path_wds)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        self._wd_paths.clear()
        self._path_wds.clear()

    def watch_missing_roots(self) -> list[Path]:
        """Watch roots that did not exist before (created since); returns those added."""
        added = []
        for root in self.roots:
            if root not in self._path_wds and root.is_dir():
                self._watch_tree(root)
                added.append(root)
        return added

    def read(self) -> list[Change]:
        """Every change queued so far; an empty list when there is none (never blocks)."""
        changes: list[Change] = []
        while True:
            try:
                data = os.read(self._fd, _READ_SIZE)
            except BlockingIOError:
                return changes
            if not data:
                return changes
            self._parse(data, changes)

    # --- internals ------------------------------------------------------------------

    def _parse(self, data: bytes, changes: list[Change]) -> None:
        offset = 0
        while offset + _HEADER.size <= len(data):
            wd, mask, _cookie, length = _HEADER.unpack_from(data, offset)
            offset += _HEADER.size
            raw = data[offset:offset + length].split(b"\0", 1)[0]
            offset += length
            if mask & IN_Q_OVERFLOW:
                changes.append(Change(None, OVERFLOW))
                continue
            directory = self._wd_paths.get(wd)
            if directory is None:
                continue  # a watch already dropped: its last events mean nothing now
            if mask & IN_IGNORED:
                self._forget(wd)
                continue
            if mask & (IN_DELETE_SELF | IN_MOVE_SELF):
                if directory in self.roots:
                    changes.append(Change(directory, DELETED, True))
                    self._drop_tree(directory)
                continue
            path = directory / os.fsdecode(raw) if raw else directory
            if raw and self.skip(path):
                continue
            self._translate(mask, path, changes)

    def _translate(self, mask: int, path: Path, changes: list[Change]) -> None:
        is_dir = bool(mask & IN_ISDIR)
        if mask & IN_CLOSE_WRITE:
            changes.append(Change(path, WRITTEN))
        elif mask & IN_CREATE:
            changes.append(Change(path, CREATED, is_dir))
            if is_dir:
                self._adopt(path, changes)
        elif mask & IN_MOVED_TO:
            changes.append(Change(path, MOVED_IN, is_dir))
            if is_dir:
                self._adopt(path, changes)
        elif mask & IN_MOVED_FROM:
            if is_dir:
                self._drop_tree(path)
            changes.append(Change(path, MOVED_OUT, is_dir))
        elif mask & IN_DELETE:
            if is_dir:
                self._drop_tree(path)
            changes.append(Change(path, DELETED, is_dir))
        elif mask & IN_ATTRIB:
            changes.append(Change(path, ATTRIBUTES, is_dir))

    def _adopt(self, directory: Path, changes: list[Change]) -> None:
        """A directory appeared: watch it, and report what was put in it before the watch
        existed (``mkdir -p a/b && echo > a/b/c`` can finish before we look)."""
        for path, is_dir in self._watch_tree(directory):
            if path != directory:
                changes.append(Change(path, FOUND, is_dir))

    def _watch_tree(self, top: Path) -> list[tuple[Path, bool]]:
        seen: list[tuple[Path, bool]] = []
        if not self._add_watch(top):
            return seen
        seen.append((top, True))
        try:
            entries = list(os.scandir(top))
        except OSError:
            return seen
        for entry in entries:
            path = Path(entry.path)
            if self.skip(path):
                continue
            if entry.is_dir(follow_symlinks=False):
                seen.extend(self._watch_tree(path))
            else:
                seen.append((path, False))
        return seen

    def _add_watch(self, directory: Path) -> bool:
        wd = _lib().inotify_add_watch(self._fd, os.fsencode(directory), WATCH_MASK)
        if wd < 0:
            code = ctypes.get_errno()
            if code in (errno.ENOENT, errno.ENOTDIR):
                return False  # gone again before we looked: its delete event follows
            _raise_errno(f"cannot watch {directory}")
        old = self._wd_paths.get(wd)
        if old is not None and old != directory:
            self._path_wds.pop(old, None)  # the same directory, moved: keep the new name
        self._wd_paths[wd] = directory
        self._path_wds[directory] = wd
        return True

    def _drop_tree(self, top: Path) -> None:
        for path in [p for p in self._path_wds if p == top or top in p.parents]:
            wd = self._path_wds.pop(path)
            self._wd_paths.pop(wd, None)
            _lib().inotify_rm_watch(self._fd, wd)

    def _forget(self, wd: int) -> None:
        path = self._wd_paths.pop(wd, None)
        if path is not None and self._path_wds.get(path) == wd:
            del self._path_wds[path]
