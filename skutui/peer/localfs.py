"""Folders for the key exchange; files are written with
``skutui.system.files.write_bytes_atomic``, authorized_keys lines come from
:mod:`skutui.domain.trust`."""

from __future__ import annotations

from pathlib import Path


def make_private_dir(path: Path) -> None:
    """Create a directory only root can enter (parents 0755); leave an existing one alone."""
    path.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
    try:
        path.mkdir(mode=0o700)
    except FileExistsError:
        pass

