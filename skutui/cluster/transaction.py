"""All or nothing on two nodes: both locked and snapshotted on disk before a change, both put
back when any step fails or the operator interrupts it, even when the process that started
it is killed; and the file guard that undoes a refused key exchange.

A change holds both nodes' change locks (:mod:`skutui.system.change`) from before its
snapshots until its records are removed, so a second console, or a create started on the
other node, is refused with the first one's node, start and pid. SIGHUP (the operator's SSH
session dropped) and SIGTERM stop the steps as Ctrl+C does; while the nodes are being put
back, SIGINT, SIGHUP and SIGTERM are ignored, so a second Ctrl+C cannot leave a node half
restored. A SIGKILL or a power cut leaves the records: :func:`finish_interrupted`, run by the
next skutui command on the node that started the change (or its agent as it starts), rolls
both nodes back from them and says so.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import stat
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

from skutui.cluster.nodeops import LocalNodeOps, NodeOps
from skutui.domain.errors import Failed, Interrupted
from skutui.domain.wire import Progress
from skutui.system.change import Change, ChangeBusy, Record, unrecorded
from skutui.system.files import write_bytes_atomic

ROLLED_BACK = "both nodes were rolled back as they were"
ROLLBACK_INCOMPLETE = "rollback incomplete"
RESTORE_ATTEMPTS = 3
RESTORE_RETRY_DELAY = 1.0
"""Seconds between two tries at restoring one node: a peer that just dropped the connection
is often back by then."""
STOPPING_SIGNALS = (signal.SIGHUP, signal.SIGTERM)
"""Signals that stop a change's steps as Ctrl+C does (the steps are then rolled back)."""
STEADFAST_SIGNALS = (signal.SIGINT, signal.SIGHUP, signal.SIGTERM)
"""Signals ignored while the nodes are put back."""


def reason(exc: BaseException) -> str:
    """An exception as the operator reads it, in the middle of a sentence."""
    if isinstance(exc, asyncio.TimeoutError):
        return "no answer in time"
    return str(exc) or type(exc).__name__


def quiet(progress: Progress) -> Progress:
    """``progress`` that never fails: after SIGHUP the terminal is gone, and a rollback must
    not stop because it cannot say what it does."""

    def say(line: str) -> None:
        with contextlib.suppress(OSError, ValueError):
            progress(line)

    return say


async def begin_change(nodes: list[NodeOps], change: Change, *, stop_first: bool,
                       snapshot: bool = True) -> list[dict]:
    """Lock every node (this one first) and write each one's snapshot on its own disk; then
    both snapshots on this node's, for a rollback by the next command. On any refusal the
    locks taken are given back and nothing is left behind."""
    taken: list[NodeOps] = []
    snapshots: list[dict] = []
    try:
        for node in nodes:
            shot = await node.begin_change(change, snapshot=snapshot)
            taken.append(node)
            snapshots.append(shot or {})
        if snapshot:
            try:
                await _keep(nodes[0], Record(change, snapshots, stop_first))
            except OSError as exc:
                raise Failed(unrecorded(nodes[0].name, exc)) from None
    except BaseException:
        for node in reversed(taken):
            with contextlib.suppress(Exception):
                await asyncio.shield(node.end_change(clear=True))
        raise
    return snapshots


async def _keep(local: NodeOps, record: Record) -> None:
    """This node's record with both snapshots (only this node's operations keep one)."""
    keep = getattr(local, "keep_change", None)
    if keep is not None:
        await keep(record)


async def end_change(nodes: list[NodeOps], *, keep_record: bool = False) -> list[str]:
    """Remove the records, the peer's first (a record on this node alone then still means
    "not finished"), and give the locks back. Returns what could not be done."""
    problems = []
    for node in reversed(nodes):
        try:
            await asyncio.shield(node.end_change(clear=not keep_record))
        except Exception as exc:  # noqa: BLE001 - the other node's lock is still given back
            problems.append(f"{node.name}: {reason(exc)}")
    return problems


@contextlib.asynccontextmanager
async def locked(nodes: list[NodeOps], change: Change, *,
                 unreachable_ok: bool = False) -> AsyncIterator[list[NodeOps]]:
    """Both nodes held for a change that needs no rollback (destroy, maintenance); yields
    the nodes held. ``unreachable_ok``: a peer that cannot be reached is left out (a
    destroy still cleans this node); a peer held by another change never is."""
    held: list[NodeOps] = []
    try:
        for node in nodes:
            try:
                await node.begin_change(change, snapshot=False)
            except ChangeBusy:
                raise
            except Exception:
                if not (unreachable_ok and held):
                    raise
                continue
            held.append(node)
        yield held
    finally:
        await end_change(held)


async def transaction(nodes: list[NodeOps], steps: Callable[[], Awaitable[None]],
                      progress: Progress, *, stop_first: bool = True,
                      change: Change | None = None) -> None:
    """Run ``steps`` with both nodes locked and their snapshots on disk; on any failure put
    every node back as it was. ``stop_first``: stop both nodes before restoring either (a
    create); without it, nodes that still run as before only get their files back (an edit:
    no takeover)."""
    change = change or Change("cluster change", nodes[0].name)
    progress = quiet(progress)
    snapshots = await begin_change(nodes, change, stop_first=stop_first)
    try:
        with stopped_by(STOPPING_SIGNALS):
            await steps()
    except BaseException as exc:
        progress(f"Failed: {reason(exc)}")
        with steadfast():
            problems = await roll_back(nodes, snapshots, progress, stop_first)
            await end_change(nodes, keep_record=bool(problems))
        if problems:
            raise Failed(f"{reason(exc)}; {ROLLBACK_INCOMPLETE}: {'; '.join(problems)}; the "
                         "next skutui command on this node tries again") from None
        if isinstance(exc, (KeyboardInterrupt, asyncio.CancelledError)):
            raise Interrupted(f"interrupted; {ROLLED_BACK}") from None
        raise Failed(f"{reason(exc)}; {ROLLED_BACK}") from None
    left = await end_change(nodes)
    if left:
        await _keep(nodes[0], Record(change, [], stop_first, committed=True))
        progress(f"Done, but a rollback record was left ({'; '.join(left)}); the next skutui "
                 "command on this node removes it")


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


# --- what a killed change leaves ------------------------------------------------------------

async def finish_interrupted(local: LocalNodeOps, remote: Callable[[str, str], NodeOps],
                             progress: Progress) -> str | None:
    """Roll back a change this node started and that was interrupted without its rollback
    (SIGKILL, a power cut): both nodes, from the snapshots it recorded. Returns what was
    done, for the operator; None when there was nothing to do. ``remote``: (address, name)
    -> the peer's NodeOps."""
    record = await local.interrupted_change()
    if record is None:
        return None
    old = record.change
    told = (f"the interrupted {old.what} (started {old.started} on {old.node} by pid "
            f"{old.pid})")
    if old.node != local.name:
        return (f"{told} left this node changed; {old.node} rolls it back at its next skutui "
                f"command (if {old.node} is gone for good, `skutui node recover --here` puts "
                "this node back as it was)")
    progress = quiet(progress)
    recovery = Change(f"rollback of the interrupted {old.what}", local.name,
                      peer=old.peer, peer_ip=old.peer_ip)
    nodes: list[NodeOps] = [local]
    if old.peer_ip:
        nodes.append(remote(old.peer_ip, old.peer))
    snapshots = record.snapshots[:len(nodes)]
    await local.begin_change(recovery, snapshot=False, recovering=True)
    unreached = []
    if len(nodes) > 1:
        try:
            await nodes[1].begin_change(recovery, snapshot=False, recovering=True)
        except Exception as exc:  # noqa: BLE001 - this node is still put back
            unreached.append(f"{nodes[1].name}: {reason(exc)}")
            nodes, snapshots = nodes[:1], snapshots[:1]
    with steadfast():
        problems: list[str] = []
        if not record.committed:
            progress(f"Rolling back {told}")
            if len(snapshots) < len(nodes):
                problems.append("the record holds no snapshot to restore")
            else:
                problems = await roll_back(nodes, snapshots, progress, record.stop_first)
        left = problems + unreached
        await end_change(nodes, keep_record=bool(left))  # the record stays for another try
    if left:
        return (f"{told} could not be rolled back everywhere yet: {'; '.join(left)}; the next "
                "skutui command on this node tries again")
    if record.committed:
        return f"{told} had finished; the rollback record it left was removed"
    names = " and ".join(n.name for n in nodes)
    return f"finished rolling back {told}: {names} are as they were before it"


# --- signals ---------------------------------------------------------------------------------

@contextlib.contextmanager
def stopped_by(signals: tuple[signal.Signals, ...]) -> Iterator[None]:
    """These signals cancel the current task (the steps), as Ctrl+C does, instead of ending
    the process with the nodes half changed. Only the main thread can take signals; off it
    (a test's thread), nothing changes."""
    task = asyncio.current_task()
    loop = asyncio.get_running_loop()
    if task is None or threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum: int, frame: Any) -> None:
        loop.call_soon_threadsafe(task.cancel)

    with _handlers(signals, stop):
        yield


@contextlib.contextmanager
def steadfast() -> Iterator[None]:
    """SIGINT, SIGHUP and SIGTERM are ignored inside: a rollback runs to its end."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    with _handlers(STEADFAST_SIGNALS, signal.SIG_IGN):
        yield


@contextlib.contextmanager
def _handlers(signals: tuple[signal.Signals, ...], handler: Any) -> Iterator[None]:
    previous = {signum: signal.signal(signum, handler) for signum in signals}
    try:
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)


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
