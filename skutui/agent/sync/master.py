"""The master's side of the sync: what differs from the peer, pushed as it changes.

``Pusher`` makes the peer's copy equal to this node's; ``SyncService`` feeds it from inotify,
in bursts, and compares whole trees when a push cannot be trusted to have been enough.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path, PurePosixPath

from skutui.agent.sync.tree import HashCache, read_file, scan, stat_entry
from skutui.domain.syncplan import (
    Plan,
    PushReport,
    SyncError,
    SyncFilter,
    plan_changes,
    sync_request,
    within,
)
from skutui.peer import PeerError, PeerUnreachable
from skutui.system.inotify import CREATED, OVERFLOW, TreeWatcher

DEBOUNCE = 0.02
"""A burst of changes (an editor's save, a package upgrade) ends when no change came for
this many seconds: one push per burst, without delaying a lone change much."""
GATHER_LIMIT = 0.5
"""A burst that never goes quiet is pushed after this many seconds all the same."""
RECONCILE_EVERY = 300.0
RETRY_AFTER_ERROR = 30.0


class NotMaster(SyncError):
    pass


class Pusher:
    """Makes the peer's copy of the roots equal to this node's, sending only differences.

    ``known`` is the peer's state as last confirmed; None means unknown (never compared,
    or a push broke off), and the next push then compares whole trees.
    """

    def __init__(self, roots: Sequence[PurePosixPath], sync_filter: SyncFilter, remote, *,
                 may_push: Callable[[], bool]) -> None:
        self.roots = list(roots)
        self.filter = sync_filter
        self.remote = remote
        self.may_push = may_push
        self.known: dict[str, dict] | None = None
        self.cache = HashCache()

    def _check_master(self) -> None:
        if not self.may_push():
            raise NotMaster("this node is not the master: it never pushes configuration")

    async def reconcile(self) -> PushReport:
        self._check_master()
        remote = await self.remote.manifest(self.roots, self.filter.excluded)
        local = await asyncio.to_thread(scan, self.roots, self.filter, cache=self.cache)
        present = [str(r) for r in self.roots if str(r) in local]
        scope = set(local) | {p for p in remote if any(within(p, r) for r in present)}
        report = await self._apply(plan_changes(local, remote, scope), remote, "reconcile")
        report.absent_roots = [str(r) for r in self.roots if str(r) not in local]
        return report

    async def push(self, paths: Iterable[Path | str]) -> PushReport:
        if self.known is None:
            return await self.reconcile()
        scope: set[str] = set()
        local: dict[str, dict] = {}
        for raw in paths:
            path = PurePosixPath(raw)
            if self.filter.skips(path) or not any(within(str(path), str(r)) for r in self.roots):
                continue
            scope.add(str(path))
            entry = stat_entry(Path(path), self.cache)
            if entry is None:
                if path in self.roots:
                    scope.discard(str(path))  # a vanished root is never mirrored as a delete
                continue
            local[str(path)] = entry
            if entry["kind"] == "dir" and str(path) not in self.known:
                inside = scan([path], self.filter, cache=self.cache)  # moved in whole
                local.update(inside)
                scope.update(inside)
            for parent in path.parents:  # a directory the peer lacks comes first
                if str(parent) in self.known or not any(within(str(parent), str(r)) for r in self.roots):
                    break
                parent_entry = stat_entry(Path(parent))
                if parent_entry is not None:
                    local[str(parent)] = parent_entry
                    scope.add(str(parent))
        return await self._apply(plan_changes(local, self.known, scope), self.known, "push")

    async def _apply(self, plan: Plan, base: dict[str, dict], kind: str) -> PushReport:
        self._check_master()
        self.known = None  # until this push completes, the peer's state is not known
        known = dict(base)
        if plan.deletes or plan.new_dirs:
            await self.remote.apply(self._request(delete=plan.deletes, entries=plan.new_dirs))
            for gone in plan.deletes:
                for path in [p for p in known if within(p, gone)]:
                    del known[path]
        settle = dict(plan.settle)
        written: list[str] = []
        await self._write(plan.files, settle, written)
        if settle:
            # Files whose metadata alone changed: the peer checks it still holds the same
            # contents; one changed there by hand comes back stale and is written again.
            verify = [p for p, e in settle.items() if e["kind"] == "file" and p not in written]
            result = await self.remote.apply(self._request(entries=settle, verify=verify))
            if result.get("stale"):
                again = {p: settle.pop(p) for p in result["stale"]}
                await self._write(list(again), again, written)
                if again:
                    result = await self.remote.apply(self._request(entries=again))
                settle.update(again)
            if result.get("missing"):
                raise SyncError(f"the peer lost files while they were pushed: "
                                f"{', '.join(result['missing'])}")
        known.update(settle)
        self.known = known
        metadata = [p for p in settle if p not in written and p not in plan.new_dirs]
        return PushReport(kind, written=written, deleted=plan.deletes, metadata=metadata,
                          in_step=plan.in_step)

    async def _write(self, paths: Iterable[str], settle: dict, written: list[str]) -> None:
        """Push the contents of ``paths``; their entries go into ``settle``."""
        for path in paths:
            content = await asyncio.to_thread(read_file, Path(path))
            if content is None:
                settle.pop(path, None)  # gone meanwhile: its delete event follows
                continue
            data, entry = content
            self._check_master()
            await self.remote.put(path, data, entry["mode"])
            settle[path] = entry
            written.append(path)

    def _request(self, *, delete: Sequence[str] = (), entries: dict | None = None,
                 verify: Sequence[str] = ()) -> dict:
        return sync_request(self.roots, self.filter, delete=delete, entries=entries,
                            verify=verify)


Report = Callable[..., object]


class SyncService:
    """The master's sync: the inotify watcher feeding the pusher, as one task.

    ``running`` is what the agent publishes as ``"sync"``: true exactly while the watcher
    is open (the role table's "sync watcher running").
    """

    def __init__(self, pusher: Pusher, *, report: Report, peer_name: str,
                 peer_ready: Callable[[], bool], peer_lost: Callable[[BaseException], None],
                 debounce: float = DEBOUNCE, reconcile_every: float = RECONCILE_EVERY,
                 retry_after: float = RETRY_AFTER_ERROR) -> None:
        self.pusher = pusher
        self.report = report
        self.peer_name = peer_name
        self.peer_ready = peer_ready
        self.peer_lost = peer_lost
        self.debounce = debounce
        self.reconcile_every = reconcile_every
        self.retry_after = retry_after
        self.watcher: TreeWatcher | None = None
        self.last_push: float | None = None
        self.last_reconcile: float | None = None
        self.last_error: str | None = None
        self._dirty: set[Path] = set()
        self._need_reconcile = True
        self._announce = True
        self._retry_at = 0.0
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()

    @property
    def running(self) -> bool:
        return self.watcher is not None and not self.watcher.closed

    def status(self) -> dict:
        return {"running": self.running, "roots": [str(r) for r in self.pusher.roots],
                "last_push": self.last_push, "last_reconcile": self.last_reconcile,
                "pending_changes": len(self._dirty), "needs_reconcile": self._need_reconcile,
                "error": self.last_error}

    def request_reconcile(self, announce: bool = True) -> None:
        """Compare whole trees at the next step (the peer came back, or was just set up)."""
        self._need_reconcile = True
        self._announce = self._announce or announce
        self._retry_at = 0.0
        self._wake.set()

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        self.watcher = TreeWatcher([Path(r) for r in self.pusher.roots], skip=self.filter_skips)
        loop.add_reader(self.watcher.fileno(), self._drain)
        self.report("sync", f"sync watcher started on {', '.join(map(str, self.pusher.roots))}",
                    roots=[str(r) for r in self.pusher.roots])
        next_compare = loop.time() + self.reconcile_every
        self._wake.set()  # compare whole trees first
        try:
            while True:
                wait = min(next_compare, self._retry_at or next_compare) - loop.time()
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), max(wait, 0))
                    await self._gather()
                self._wake.clear()
                if loop.time() >= next_compare:
                    next_compare = loop.time() + self.reconcile_every
                    self._need_reconcile = True
                    for root in self.watcher.watch_missing_roots():
                        self._dirty.add(root)
                await self.flush()
        finally:
            with contextlib.suppress(Exception):
                loop.remove_reader(self.watcher.fileno())
            self.watcher.close()
            self.report("sync", "sync watcher stopped")

    async def _gather(self) -> None:
        """Return once changes have stopped coming for ``debounce`` seconds, or after
        GATHER_LIMIT seconds of changes that never stop."""
        loop = asyncio.get_running_loop()
        end = loop.time() + GATHER_LIMIT
        while (remaining := end - loop.time()) > 0:
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), min(self.debounce, remaining))
            except TimeoutError:
                return

    def filter_skips(self, path: Path) -> bool:
        return self.pusher.filter.skips(path)

    async def flush(self) -> None:
        """Push every change seen so far, now; the replayer calls this before each command,
        so a command never reaches the backup ahead of the files it was written against."""
        async with self._lock:
            self._drain()
            await self._step()

    def _drain(self) -> None:
        watcher = self.watcher
        if watcher is None or not self.running:
            return
        try:
            changes = watcher.read()
        except OSError as exc:
            self.report("sync", f"reading inotify failed: {exc}; comparing whole trees",
                        level="error")
            self._need_reconcile = True
            changes = []
        for change in changes:
            if change.what == OVERFLOW or change.path is None:  # only an overflow has no path
                self._need_reconcile = True
            elif change.what == CREATED and not change.is_dir and not change.path.is_symlink():
                continue  # a new file is pushed when its writer closes it, not half-written
            else:
                self._dirty.add(change.path)
        if changes:
            self._wake.set()

    async def _step(self) -> None:
        if not (self._need_reconcile or self._dirty):
            return
        if not self.peer_ready():
            if self._dirty:  # the whole trees are compared when the peer is back
                self._need_reconcile = True
                self._dirty.clear()
            return
        if self._retry_at and time.monotonic() < self._retry_at:
            return
        dirty, self._dirty = self._dirty, set()
        whole = self._need_reconcile or self.pusher.known is None
        self._need_reconcile = False
        try:
            report = await (self.pusher.reconcile() if whole else self.pusher.push(dirty))
        except PeerUnreachable as exc:
            self._need_reconcile = True
            self.peer_lost(exc)
            return
        except NotMaster as exc:
            self._need_reconcile = True
            self.report("sync", f"push refused: {exc}", level="warning")
            return
        except (PeerError, SyncError, OSError) as exc:
            self._need_reconcile = True
            self._retry_at = time.monotonic() + self.retry_after
            self.last_error = str(exc)
            self.report("sync", f"sync to {self.peer_name} failed: {exc}; comparing whole "
                        f"trees again in {self.retry_after:g} s", level="error")
            return
        self._retry_at = 0.0
        self.last_error = None
        now = time.time()
        self.last_push = now if report.changed else self.last_push
        if report.kind == "reconcile":
            self.last_reconcile = now
        if report.absent_roots:
            self.report("sync", f"synced path missing on this node, left alone on "
                        f"{self.peer_name}: {', '.join(report.absent_roots)}", level="warning")
        if report.changed or (report.kind == "reconcile" and self._announce):
            self.report("sync", report.summary(self.peer_name), **report.to_data())
        if report.kind == "reconcile":
            self._announce = False
