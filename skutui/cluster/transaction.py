"""All or nothing on two nodes: snapshot both before a change, put both back when any step
fails or the operator interrupts it; and the file guard that undoes a refused key exchange.
"""

from __future__ import annotations

import asyncio
import contextlib
import stat
from collections.abc import Awaitable, Callable
from pathlib import Path

from skutui.cluster.nodeops import NodeOps
from skutui.domain.errors import Failed, Interrupted
from skutui.domain.wire import Progress
from skutui.system.files import write_bytes_atomic

ROLLED_BACK = "both nodes were rolled back as they were"
ROLLBACK_INCOMPLETE = "rollback incomplete"
RESTORE_ATTEMPTS = 3
RESTORE_RETRY_DELAY = 1.0
"""Seconds between two tries at restoring one node: a peer that just dropped the connection
is often back by then."""


def reason(exc: BaseException) -> str:
    """An exception as the operator reads it, in the middle of a sentence."""
    if isinstance(exc, asyncio.TimeoutError):
        return "no answer in time"
    return str(exc) or type(exc).__name__


async def transaction(nodes: list[NodeOps], steps: Callable[[], Awaitable[None]],
                      progress: Progress, *, stop_first: bool = True) -> None:
    """Run ``steps``; on any failure put every node back as it was. ``stop_first``: stop
    both nodes before restoring either (a create); without it, nodes that still run as
    before only get their files back (an edit: no takeover)."""
    snapshots = [await node.snapshot() for node in nodes]
    try:
        await steps()
    except BaseException as exc:
        progress(f"Failed: {reason(exc)}")
        problems = await roll_back(nodes, snapshots, progress, stop_first)
        if problems:
            raise Failed(f"{reason(exc)}; {ROLLBACK_INCOMPLETE}: {'; '.join(problems)}") from None
        if isinstance(exc, (KeyboardInterrupt, asyncio.CancelledError)):
            raise Interrupted(f"interrupted; {ROLLED_BACK}") from None
        raise Failed(f"{reason(exc)}; {ROLLED_BACK}") from None


async def roll_back(nodes: list[NodeOps], snapshots: list[dict], progress: Progress,
                    stop_first: bool) -> list[str]:
    """Restore every node, the last changed first; returns what could not be restored.
    Shielded: a second Ctrl+C must not leave a node half restored."""
    problems = []
    # Stop both first: a half-started agent must not sync files onto a node already restored.
    for node in nodes if stop_first else ():
        try:
            await asyncio.shield(node.stop())
        except Exception:  # noqa: BLE001 - restore() below stops again and reports
            pass
    for node, snapshot in zip(reversed(nodes), reversed(snapshots), strict=True):
        progress(f"Rolling back {node.name}")
        for attempt in range(RESTORE_ATTEMPTS):
            try:
                await asyncio.shield(node.restore(snapshot))
                break
            except Exception as exc:  # noqa: BLE001 - retried, then reported
                if attempt == RESTORE_ATTEMPTS - 1:
                    problems.append(f"{node.name}: {reason(exc)}")
                else:
                    await asyncio.sleep(RESTORE_RETRY_DELAY)
    return problems


class FileGuard:
    """Remembers files as they were, and which of their folders were missing, to put them
    back if authentication fails: a refused password leaves no trace, not even a folder."""

    def __init__(self, paths: list[Path]):
        self.saved = {p: ((p.read_bytes(), stat.S_IMODE(p.stat().st_mode)) if p.exists() else None)
                      for p in paths}
        self.missing_dirs = sorted({d for p in paths for d in p.parents if not d.exists()},
                                   key=lambda d: len(d.parts), reverse=True)

    def restore(self) -> None:
        for path, saved in self.saved.items():
            if saved is None:
                path.unlink(missing_ok=True)
            elif not path.exists() or path.read_bytes() != saved[0]:
                write_bytes_atomic(path, *saved)
        for directory in self.missing_dirs:
            with contextlib.suppress(OSError):
                directory.rmdir()  # only if still empty
