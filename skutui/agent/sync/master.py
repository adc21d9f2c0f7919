"""The master's side of the sync: what differs from the peer, pushed as it changes.

``Pusher`` makes the peer's copy equal to this node's; ``SyncService`` feeds it from inotify,
in bursts, and compares whole trees when a push cannot be trusted to have been enough.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path, PurePosixPath
from typing import Protocol

from skutui.agent.sync.pull import pull
from skutui.agent.sync.tree import HashCache, TooLarge, read_file, scan, stat_entry, too_large
from skutui.domain.generation import Generation
from skutui.domain.syncplan import (
    PeerIsMaster,
    PeerNewer,
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
SPLIT_BRAIN_RETRY = 2.0


class NotMaster(SyncError):
    pass


class Terms(Protocol):
    """This node's generation, as the sync needs it (the agent's ``Generations``)."""

    def current(self) -> Generation: ...
    def for_push(self, peer: Generation) -> Generation: ...
    def adopt(self, peer: Generation) -> Generation: ...
    def set_aside_folder(self, held: Generation, incoming: Generation) -> Path: ...


class NoTerms:
    """Generation 0 throughout: for a pusher outside a master term (tests, tools)."""

    def current(self) -> Generation:
        return Generation()

    def for_push(self, peer: Generation) -> Generation:
        return Generation()

    def adopt(self, peer: Generation) -> Generation:
        return Generation()

    def set_aside_folder(self, held: Generation, incoming: Generation) -> Path:
        raise SyncError("this node keeps no generation, so it takes no peer's files")


FileCheck = Callable[[str, bytes], "str | None"]
"""(path, contents) -> why these contents must not be pushed, or None."""


class Pusher:
    """Makes the peer's copy of the roots equal to this node's, sending only differences.

    ``known`` is the peer's state as last confirmed; None means unknown (never compared,
    or a push broke off), and the next push then compares whole trees. A whole-tree
    comparison first reads the peer's generation: a newer one than this node's is taken
    first (:class:`PeerNewer`), never pushed over. Files too large to sync, and those
    ``check_file`` refuses, are skipped (``skipped``): neither written on the peer nor
    deleted there.
    """

    def __init__(self, roots: Sequence[PurePosixPath], sync_filter: SyncFilter, remote, *,
                 may_push: Callable[[], bool], terms: Terms | None = None,
                 check_file: FileCheck | None = None) -> None:
        self.roots = list(roots)
        self.filter = sync_filter
        self.remote = remote
        self.may_push = may_push
        self.terms = terms or NoTerms()
        self.check_file = check_file or (lambda path, data: None)
        self.known: dict[str, dict] | None = None
        self.cache = HashCache()
        self.generation = Generation()
        """The generation pushes carry: this node's term, fixed by the last reconcile."""
        self.skipped: dict[str, str] = {}

    def _check_master(self) -> None:
        if not self.may_push():
            raise NotMaster("this node is not the master: it never pushes configuration")

    async def reconcile(self) -> PushReport:
        self._check_master()
        remote = await self.remote.manifest(self.roots, self.filter.excluded)
        peer = self.remote.generation
        if self.remote.role == "master":
            # Split brain: nothing is pushed, but this master's term begins, so that its
            # edits count as newer than the files it started from once one of the two is
            # backup again (they are taken, or kept aside, never lost in silence).
            self.terms.for_push(peer)
            raise PeerIsMaster("the peer says it is the master too (split brain): nothing is "
                               "pushed until one of the two is backup")
        if self.terms.current().older_than(peer):
            raise PeerNewer(peer)
        self.generation = self.terms.for_push(peer)
        local = await asyncio.to_thread(scan, self.roots, self.filter, cache=self.cache)
        self.skipped = {}
        for path in [p for p, e in local.items() if e.get("oversized")]:
            self.skipped[path] = too_large(local.pop(path)["size"])
        present = [str(r) for r in self.roots if str(r) in local]
        scope = set(local) | {p for p in remote if any(within(p, r) for r in present)}
        scope -= set(self.skipped)
        report = await self._apply(plan_changes(local, remote, scope), remote, "reconcile",
                                   sweep=self.remote.staged,
                                   commit=not peer.same_files(self.generation))
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
            entry = stat_entry(Path(path), self.cache)
            if entry is not None and entry.get("oversized"):
                self.skipped[str(path)] = too_large(entry["size"])
                continue
            self.skipped.pop(str(path), None)
            scope.add(str(path))
            if entry is None:
                if path in self.roots:
                    scope.discard(str(path))  # a vanished root is never mirrored as a delete
                continue
            local[str(path)] = entry
            if entry["kind"] == "dir" and str(path) not in self.known:
                inside = scan([path], self.filter, cache=self.cache)  # moved in whole
                for big in [p for p, e in inside.items() if e.get("oversized")]:
                    self.skipped[big] = too_large(inside.pop(big)["size"])
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

    async def _apply(self, plan: Plan, base: dict[str, dict], kind: str, *,
                     sweep: Sequence[str] = (), commit: bool = False) -> PushReport:
        """Deletes and new directories first, then the contents, staged on the peer, then one
        request that puts them in place with their metadata; ``commit`` (a reconcile that
        brought a new generation) ends with the request that makes the peer hold it."""
        self._check_master()
        self.known = None  # until this push completes, the peer's state is not known
        known = dict(base)
        kept: list[str] = []
        kept_in = ""
        token = secrets.token_hex(8)
        refused: list[str] = []
        if plan.deletes or plan.new_dirs or sweep:
            answer = await self.remote.apply(self._request(
                delete=plan.deletes, entries=plan.new_dirs, sweep=sweep))
            refused += answer.get("refused", [])
            kept += answer.get("set_aside", [])
            kept_in = answer.get("set_aside_in", kept_in)
            for gone in plan.deletes:
                for path in [p for p in known if within(p, gone)]:
                    del known[path]
        settle = dict(plan.settle)
        written: list[str] = []
        await self._write(plan.files, settle, written, token)
        if settle:
            # Files whose metadata alone changed: the peer checks it still holds the same
            # contents; one changed there by hand comes back stale and is written again.
            verify = [p for p, e in settle.items() if e["kind"] == "file" and p not in written]
            result = await self.remote.apply(self._request(entries=settle, verify=verify,
                                                           stage=token, place=written))
            refused += result.get("refused", [])
            if result.get("stale"):
                again = {p: settle.pop(p) for p in result["stale"]}
                rewritten: list[str] = []
                await self._write(list(again), again, rewritten, token)
                written += rewritten
                if again:
                    result = await self.remote.apply(self._request(entries=again, stage=token,
                                                                   place=rewritten))
                    refused += result.get("refused", [])
                settle.update(again)
            kept += result.get("set_aside", [])
            kept_in = result.get("set_aside_in", kept_in)
            if result.get("missing"):
                raise SyncError(f"the peer lost files while they were pushed: "
                                f"{', '.join(result['missing'])}")
        if refused:
            # The rest is in place; the next whole-tree comparison sees what is in the way
            # (a link the master does not have is deleted there) and tries these again.
            raise SyncError(f"the peer refused {len(refused)} path(s), nothing was written "
                            f"outside its synced paths: {'; '.join(refused)}")
        if commit:
            await self.remote.apply(self._request(commit=True))
        known.update(settle)
        self.known = known
        metadata = [p for p in settle if p not in written and p not in plan.new_dirs]
        return PushReport(kind, written=written, deleted=plan.deletes, metadata=metadata,
                          in_step=plan.in_step, skipped=dict(self.skipped), set_aside=kept,
                          set_aside_in=kept_in)

    async def _write(self, paths: Iterable[str], settle: dict, written: list[str],
                     token: str) -> None:
        """Stage the contents of ``paths`` on the peer; their entries go into ``settle``."""
        for path in paths:
            try:
                content = await asyncio.to_thread(read_file, Path(path))
            except TooLarge as exc:  # grew past the limit since it was scanned
                self.skipped[path] = str(exc)
                settle.pop(path, None)
                continue
            if content is None:
                settle.pop(path, None)  # gone meanwhile: its delete event follows
                continue
            data, entry = content
            refused = self.check_file(path, data)
            if refused:
                self.skipped[path] = refused
                settle.pop(path, None)
                continue
            self.skipped.pop(path, None)
            self._check_master()
            await self.remote.put(path, token, data)
            settle[path] = entry
            written.append(path)

    def _request(self, *, delete: Sequence[str] = (), entries: dict | None = None,
                 verify: Sequence[str] = (), stage: str = "", place: Sequence[str] = (),
                 sweep: Sequence[str] = (), commit: bool = False) -> dict:
        return sync_request(self.filter, delete=delete, entries=entries,
                            verify=verify, generation=self.generation.to_dict(), stage=stage,
                            place=place, sweep=sweep, commit=commit)


Report = Callable[..., object]


class SyncService:
    """The master's sync: the inotify watcher feeding the pusher, as one task.

    ``running`` is what the agent publishes as ``"sync"``: true exactly while the watcher
    is open (the role table's "sync watcher running").
    """

    def __init__(self, pusher: Pusher, *, report: Report, peer_name: str,
                 peer_ready: Callable[[], bool], peer_lost: Callable[[BaseException], None],
                 debounce: float = DEBOUNCE, reconcile_every: float = RECONCILE_EVERY,
                 retry_after: float = RETRY_AFTER_ERROR, node_name: str = "this node") -> None:
        self.pusher = pusher
        self.report = report
        self.peer_name = peer_name
        self.node_name = node_name
        self._skipped_said: dict[str, str] = {}
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
        self._dirty_since: float | None = None
        """When the oldest change not pushed yet was seen: the sync's lag."""
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
                "pending_since": self._dirty_since if self._dirty else None,
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
                if not self._dirty:
                    self._dirty_since = time.time()
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
        except PeerNewer as exc:
            self._need_reconcile = True
            await self._take_newer(exc.generation)
            return
        except PeerIsMaster as exc:
            self._need_reconcile = True
            self._retry_at = time.monotonic() + min(self.retry_after, SPLIT_BRAIN_RETRY)
            if self.last_error != str(exc):
                self.last_error = str(exc)
                self.report("sync", f"sync to {self.peer_name} stopped: {exc}", level="error")
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
        self._say_skipped(report.skipped)
        if report.set_aside:
            shown = ", ".join(report.set_aside[:5]) + (
                f" +{len(report.set_aside) - 5} more" if len(report.set_aside) > 5 else "")
            self.report("sync", f"{self.peer_name} held files of another generation: it kept "
                        f"its own versions of {len(report.set_aside)} replaced by generation "
                        f"{self.pusher.generation.label} in {report.set_aside_in or 'its set-aside folder'}: "
                        f"{shown}", level="warning", set_aside=report.set_aside)

    def _say_skipped(self, skipped: dict[str, str]) -> None:
        """Files not pushed, said when that changes (not at every push or reconcile)."""
        new = {path: why for path, why in skipped.items() if self._skipped_said.get(path) != why}
        self._skipped_said = dict(skipped)
        if new:
            self.report("sync", f"not pushed to {self.peer_name}, which keeps what it has: "
                        + "; ".join(f"{path}: {why}" for path, why in sorted(new.items()))
                        + "; everything else is pushed", level="error", skipped=skipped)

    async def _take_newer(self, newer: Generation) -> None:
        """The peer's files are newer: take them, keeping this node's aside, then push as
        the master of a new term (the next step compares whole trees)."""
        terms = self.pusher.terms
        held = terms.current()
        try:
            folder = terms.set_aside_folder(held, newer)
            pulled = await pull(self.pusher.roots, self.pusher.filter, self.pusher.remote, folder)
        except PeerUnreachable as exc:
            self.peer_lost(exc)
            return
        except (PeerError, SyncError, OSError) as exc:
            self._retry_at = time.monotonic() + self.retry_after
            self.last_error = str(exc)
            self.report("sync", f"{self.peer_name} holds newer configuration (generation "
                        f"{newer.label}) but taking it failed: {exc}; nothing was pushed; "
                        f"trying again in {self.retry_after:g} s", level="error")
            return
        terms.adopt(pulled.generation)
        self.pusher.known = None
        self._wake.set()
        message = (f"{self.node_name} returned with older configuration; took "
                   f"{self.peer_name}'s (generation {pulled.generation.label}, this node had "
                   f"{held.label}): {len(pulled.written)} written, {len(pulled.deleted)} deleted")
        if pulled.kept:
            message += f"; this node's replaced files are kept in {pulled.kept_in}"
        self.report("sync", message, level="warning", generation=pulled.generation.to_dict(),
                    written=pulled.written, deleted=pulled.deleted, set_aside=pulled.kept)
