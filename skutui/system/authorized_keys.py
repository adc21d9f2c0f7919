"""root's authorized_keys on this node, as far as skutui's keys go: allowed with
restrictions (:mod:`skutui.domain.trust` says how), removed again by destroy and erase.
Every other line of the file is kept byte for byte."""

from __future__ import annotations

import logging
from collections.abc import Collection
from pathlib import Path

from skutui.domain import trust
from skutui.system.files import write_bytes_atomic

log = logging.getLogger(__name__)

ENCODING = {"encoding": "utf-8", "errors": "surrogateescape"}
"""The file may hold any bytes; lines that are not skutui's go back exactly as they came."""
PEER_COMMENT = f"{trust.KEY_COMMENT}peer"
"""The comment of the line that allows the peer's key, whatever the key's own."""


def _read(path: Path) -> str:
    try:
        return path.read_text(**ENCODING)
    except FileNotFoundError:
        return ""


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    write_bytes_atomic(path, text.encode(**ENCODING), 0o600)


def authorize(path: Path, public_key: str, from_address: str, *, only: bool = False,
              replacing: Collection[str] = ()) -> bool:
    """Let the holder of ``public_key`` run skutui's steps here, from ``from_address`` only;
    False if exactly that was allowed already. ``only``: no other skutui key stays allowed,
    nor the keys whose bodies ``replacing`` names."""
    text, changed = trust.authorize(_read(path), public_key, from_address, PEER_COMMENT,
                                    only=only, replacing=replacing)
    if changed:
        _write(path, text)
        log.info("authorized the peer's key from %s in %s", from_address, path)
    return changed


def revoke(path: Path, bodies: Collection[str] | None = None) -> int:
    """Remove skutui's keys (``bodies``: only these) from ``path``; how many lines went."""
    text, removed = trust.revoke(_read(path), bodies)
    if removed:
        _write(path, text)
        log.info("removed %d skutui key(s) from %s", removed, path)
    return removed


def skutui_keys(path: Path) -> list[trust.KeyLine]:
    return trust.skutui_keys(_read(path))
