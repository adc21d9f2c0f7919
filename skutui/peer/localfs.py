"""Files on this node that the key exchange touches, written so a crash never leaves half."""

from __future__ import annotations

import os
import secrets
from pathlib import Path


def write_atomic(path: Path, data: bytes, mode: int) -> None:
    """Replace ``path`` with ``data``: temp file in the same directory, fsync, rename.

    Readers (sshd, asyncssh) see the old file or the new one, never a partial one.
    """
    temp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        try:
            os.fchmod(fd, mode)  # os.open applied the umask; set the exact mode
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def make_private_dir(path: Path) -> None:
    """Create a directory only root can enter (parents 0755); leave an existing one alone."""
    path.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
    try:
        path.mkdir(mode=0o700)
    except FileExistsError:
        pass


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def add_authorized_key(text: str, public_key: str) -> tuple[str, bool]:
    """Return authorized_keys ``text`` with ``public_key`` appended unless already present.

    Keys compare by their base64 body, so a line with options or another comment counts.
    """
    body = key_body(public_key)
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#") and body in line.split():
            return text, False
    if text and not text.endswith("\n"):
        text += "\n"
    return text + public_key.strip() + "\n", True


def key_body(public_key: str) -> str:
    """The base64 part of an OpenSSH public key line ("type base64 [comment]")."""
    fields = public_key.split()
    if len(fields) < 2:
        raise ValueError(f"not an OpenSSH public key line: {public_key[:60]!r}")
    return fields[1]
