"""Paths opened beneath a directory without following a symbolic link in any component.

The backup applies what the master sends inside its synced folders. A link planted there
(``conf.d -> /etc``) must not carry a write, a mode or an owner outside: every path is
resolved from the folder's own descriptor, refusing any symbolic link on the way and any
way out of it. Linux's ``openat2`` does that in one call (``RESOLVE_NO_SYMLINKS |
RESOLVE_BENEATH``, Linux 5.6); where it is missing (an older kernel, a filter refusing the
call) the same is done one component at a time with ``O_NOFOLLOW``. Operations on a last
component that may itself be a link (remove it, replace it, set its owner) open its parent
this way and act on the name with the ``*at`` calls, which never follow it.
"""

from __future__ import annotations

import ctypes
import errno
import os
import platform
import stat
from collections.abc import Iterator
from contextlib import contextmanager

RESOLVE_NO_SYMLINKS = 0x04
RESOLVE_BENEATH = 0x08
OPENAT2_SYSCALLS = {"x86_64": 437, "aarch64": 437, "armv7l": 437, "armv6l": 437,
                    "i686": 437, "i386": 437, "ppc64le": 437, "s390x": 437, "riscv64": 437}
"""openat2's number where Linux gives it one (the same on every architecture it names)."""
DIRECTORY = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
"""How a directory on the way is opened: readable, so it can be fsynced and listed too."""


class UnsafePath(OSError):
    """A path would pass through a symbolic link or leave its directory; nothing was done.
    ``where``: the offending part, relative to the directory; ``what``: what it is."""

    def __init__(self, where: str, what: str) -> None:
        super().__init__(errno.ELOOP, f"{where} is {what}", where)
        self.where = where
        self.what = what

    def __str__(self) -> str:
        return str(self.strerror)


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64),
                ("resolve", ctypes.c_uint64)]


class _Openat2:
    """The raw system call through ctypes; ``available`` turns False on the first ENOSYS
    (or EPERM from a seccomp filter), and the component walk takes over for good."""

    def __init__(self) -> None:
        number = OPENAT2_SYSCALLS.get(platform.machine())
        self.available = number is not None
        self.number = number or 0
        self._syscall = None
        if self.available:
            libc = ctypes.CDLL(None, use_errno=True)
            self._syscall = libc.syscall
            self._syscall.restype = ctypes.c_long

    def __call__(self, dir_fd: int, path: str, flags: int, mode: int = 0) -> int:
        how = _OpenHow(flags | os.O_CLOEXEC, mode, RESOLVE_NO_SYMLINKS | RESOLVE_BENEATH)
        assert self._syscall is not None
        fd = self._syscall(ctypes.c_long(self.number), ctypes.c_int(dir_fd),
                           ctypes.c_char_p(os.fsencode(path)), ctypes.byref(how),
                           ctypes.c_size_t(ctypes.sizeof(how)))
        if fd < 0:
            code = ctypes.get_errno()
            raise OSError(code, os.strerror(code), path)
        return int(fd)


OPENAT2 = _Openat2()


def _parts(relative: str) -> list[str]:
    parts = [part for part in relative.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise UnsafePath(relative, "a path that goes up with '..'")
    return parts


def open_beneath(dir_fd: int, relative: str, flags: int, mode: int = 0) -> int:
    """Open ``relative`` (a path below ``dir_fd``'s directory) without following any
    symbolic link, the last component's included; :class:`UnsafePath` names the link."""
    parts = _parts(relative)
    if not parts:
        return os.open(".", flags | os.O_CLOEXEC, mode, dir_fd=dir_fd)
    if OPENAT2.available:
        try:
            return OPENAT2(dir_fd, "/".join(parts), flags, mode)
        except OSError as exc:
            if exc.errno in (errno.ENOSYS, errno.EPERM):
                OPENAT2.available = False
            elif exc.errno in (errno.ELOOP, errno.EXDEV):
                raise _refusal(dir_fd, parts) from None
            else:
                raise
    return _walk(dir_fd, parts, flags, mode)


def _walk(dir_fd: int, parts: list[str], flags: int, mode: int) -> int:
    """What openat2 does, one component at a time: each directory opened with O_NOFOLLOW
    from the one before, so a link anywhere stops the walk."""
    current = dir_fd
    try:
        for index, part in enumerate(parts):
            last = index == len(parts) - 1
            try:
                opened = os.open(part, (flags if last else DIRECTORY) | os.O_NOFOLLOW | os.O_CLOEXEC,
                                 mode, dir_fd=current)
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                    found = _refusal(dir_fd, parts)
                    if isinstance(found, UnsafePath):
                        raise found from None
                raise
            if current != dir_fd:
                os.close(current)
            current = opened
        return current
    except BaseException:
        if current != dir_fd:
            os.close(current)
        raise


def _refusal(dir_fd: int, parts: list[str]) -> OSError:
    """Which component made the open fail: the first symbolic link on the way (refused), or
    a file where a directory was expected (an ordinary error)."""
    current = dir_fd
    opened: list[int] = []
    try:
        for index, part in enumerate(parts):
            shown = "/".join(parts[:index + 1])
            try:
                info = os.stat(part, dir_fd=current, follow_symlinks=False)
            except OSError as exc:
                return exc
            if stat.S_ISLNK(info.st_mode):
                target = os.readlink(part, dir_fd=current)
                return UnsafePath(shown, f"a symbolic link (to {target}); skutui never "
                                         "follows one here")
            if index == len(parts) - 1:
                break
            if not stat.S_ISDIR(info.st_mode):
                return OSError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), shown)
            current = os.open(part, DIRECTORY | os.O_NOFOLLOW, dir_fd=current)
            opened.append(current)
    finally:
        for fd in opened:
            os.close(fd)
    return OSError(errno.ELOOP, os.strerror(errno.ELOOP), "/".join(parts))


@contextmanager
def parent_of(dir_fd: int, relative: str) -> Iterator[tuple[int, str]]:
    """The directory holding ``relative``'s last component, opened beneath ``dir_fd``, and
    that component's name: act on the name with ``dir_fd=`` calls, which never follow it."""
    parts = _parts(relative)
    if not parts:
        raise UnsafePath(".", "the directory itself, whose parent is out of reach")
    fd = open_beneath(dir_fd, "/".join(parts[:-1]), DIRECTORY)
    try:
        yield fd, parts[-1]
    finally:
        os.close(fd)


def make_dirs(dir_fd: int, relative: str, mode: int = 0o755) -> None:
    """Create ``relative`` and whatever of it is missing, one component at a time, each
    from the one before: a link on the way is refused, never followed."""
    parts = _parts(relative)
    current = dir_fd
    try:
        for index, part in enumerate(parts):
            try:
                os.mkdir(part, mode, dir_fd=current)
            except FileExistsError:
                pass
            try:
                opened = os.open(part, DIRECTORY | os.O_NOFOLLOW, dir_fd=current)
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                    found = _refusal(dir_fd, parts[:index + 1])
                    if isinstance(found, UnsafePath):
                        raise found from None
                raise
            if current != dir_fd:
                os.close(current)
            current = opened
    finally:
        if current != dir_fd:
            os.close(current)
