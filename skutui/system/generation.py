"""This node's configuration generation on disk (``Paths.generation_file``).

One place, one way in: every write goes through :func:`begin_term` (the agent, when this
node begins a master term) or :func:`adopt` (the agent taking the peer's newer files;
``skutui node sync-apply`` taking the master's at the end of a reconcile), each under a
lock and never lowering the number, so that two writers can never take it back.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from skutui.domain.generation import Generation
from skutui.system.files import write_text_atomic


def read(path: Path) -> Generation:
    """The generation this node holds; 0 when none was recorded (or it is unreadable: the
    node then takes its peer's files rather than push its own)."""
    try:
        return Generation.from_dict(json.loads(path.read_text()))
    except (OSError, ValueError):
        return Generation()


def begin_term(path: Path, hostname: str, term: str, peer: Generation | None) -> Generation:
    """This node begins a master term: one higher than itself and its peer (when it can be
    asked); a term begun already is returned as it is."""
    with _locked(path):
        held = read(path)
        if held.term == term and held.node == hostname:
            return held
        number = max(held.number, peer.number if peer is not None else 0) + 1
        return _write(path, Generation(number, hostname, term))


def adopt(path: Path, incoming: Generation) -> Generation:
    """This node now holds ``incoming``'s files. A lower number is never taken."""
    with _locked(path):
        held = read(path)
        if incoming.number < held.number or incoming.same_files(held):
            return held
        return _write(path, Generation(incoming.number, incoming.node))


def forget(path: Path) -> None:
    """The node leaves its cluster: the next one starts from 0."""
    path.unlink(missing_ok=True)


def _write(path: Path, generation: Generation) -> Generation:
    write_text_atomic(path, json.dumps(generation.to_dict(), sort_keys=True) + "\n")
    return generation


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path.with_name(path.name + ".lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
