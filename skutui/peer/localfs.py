"""Folders and authorized_keys text for the key exchange; files are written with
``skutui.system.files.write_bytes_atomic``."""

from __future__ import annotations

from pathlib import Path


def make_private_dir(path: Path) -> None:
    """Create a directory only root can enter (parents 0755); leave an existing one alone."""
    path.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
    try:
        path.mkdir(mode=0o700)
    except FileExistsError:
        pass


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
