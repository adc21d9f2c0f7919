"""Atomic, durable file writes: every file skutui writes goes through here."""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path

PRIVATE_MODE = 0o600
"""What skutui writes is root's alone unless a caller says otherwise."""


def write_text_atomic(path: str | os.PathLike[str], text: str, mode: int = PRIVATE_MODE) -> None:
    """Replace ``path`` with ``text`` (UTF-8) atomically; see ``write_bytes_atomic``."""
    write_bytes_atomic(path, text.encode("utf-8"), mode)


def write_bytes_atomic(path: str | os.PathLike[str], data: bytes, mode: int = PRIVATE_MODE) -> None:
    """Replace ``path`` with ``data`` so that readers see the old file or the new one, never half.

    The temporary file sits in the same directory (``os.replace`` is atomic only within one
    file system) and its name starts with a dot, so the config sync watcher skips it. Data
    and directory are fsynced, so a power cut after return keeps the new file. On any
    failure the old file is untouched, the temporary file is removed and the error raised.
    """
    target = Path(path)
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        try:
            os.fchmod(fd, mode)
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp_name, target)
    except BaseException:
        try:
            os.unlink(tmp_name)
        except FileNotFoundError:
            pass
        raise
    fsync_directory(target.parent)


def fsync_directory(directory: Path) -> None:
    """Make the rename durable. File systems that cannot fsync a directory (EINVAL) are skipped."""
    dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dir_fd)
    except OSError as error:
        if error.errno != errno.EINVAL:
            raise
    finally:
        os.close(dir_fd)


