"""On the master: whether the backup holds the same synced files, checked every
:data:`DRIFT_INTERVAL` and on request (``skutui sync verify``, ``skutui sync push``).

The sync repairs what it knows it changed; a file edited by hand on the backup is what it
cannot see until its next whole-tree compare. This check compares both manifests without
writing anything, publishes what differs (the node table's "Config drift: N files"), and
says so in an event each time the set of differing files changes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from pathlib import PurePosixPath
from typing import Any

from skutui.agent.link import PeerLink
from skutui.agent.sync.transport import SshRemoteTree
from skutui.agent.sync.tree import HashCache, scan
from skutui.domain.drift import Difference, compare
from skutui.domain.syncplan import SyncError, SyncFilter
from skutui.peer import PeerError

log = logging.getLogger("skutui.agent")

DRIFT_INTERVAL = 60.0
"""Seconds between two checks on the master (a check reads every synced file's metadata on
both nodes, and hashes those that changed)."""


class DriftCheck:
    def __init__(self, hostname: str, report: Callable[..., Any], *,
                 link: Callable[[], PeerLink | None], roots: Callable[[], list[PurePosixPath]],
                 excluded: tuple[PurePosixPath, ...], is_master: Callable[[], bool],
                 flush: Callable[[], Awaitable[object]],
                 remote: Callable[[PeerLink], Any] = lambda link: SshRemoteTree(link.connection),
                 interval: float = DRIFT_INTERVAL) -> None:
        self.hostname = hostname
        self.report = report
        self.link = link
        self.roots = roots
        self.excluded = excluded
        self.is_master = is_master
        self.flush = flush
        self.remote = remote
        self.interval = interval
        self.state: dict[str, Any] | None = None
        """The last check: {"checked", "peer", "differences": [...]}; None on a backup."""
        self.cache = HashCache()
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()

    def wake(self) -> None:
        self._wake.set()

    async def check(self) -> dict[str, Any]:
        """Compare now (after pushing what is waiting, so a change on its way is not drift);
        raises PeerError or SyncError when the peer cannot be read."""
        link, roots = self.link(), self.roots()
        if link is None or not roots:
            raise SyncError("no peer to compare with: the cluster has none configured")
        async with self._lock:
            await self.flush()
            there = await self.remote(link).manifest(roots, list(self.excluded))
            here = await asyncio.to_thread(scan, roots, SyncFilter(self.excluded), cache=self.cache)
            differences = compare(here, there, self.hostname, link.node.hostname)
            self._publish(link.node.hostname, differences)
        assert self.state is not None
        return self.state

    def _publish(self, peer: str, differences: list[Difference]) -> None:
        before = {d["path"] for d in (self.state or {}).get("differences", [])}
        self.state = {"checked": time.time(), "peer": peer,
                      "differences": [d.to_dict() for d in differences]}
        now = {d.path for d in differences}
        if now == before:
            return
        if differences:
            shown = ", ".join(d.path for d in differences[:5])
            more = f" +{len(differences) - 5} more" if len(differences) > 5 else ""
            self.report("sync", f"config drift: {len(differences)} synced file(s) differ between "
                        f"{self.hostname} and {peer} ({shown}{more}); `skutui sync verify` "
                        "lists them, `skutui sync push` sends this node's copy", level="warning",
                        drift=[d.to_dict() for d in differences])
        else:
            self.report("sync", f"{peer}'s synced files match {self.hostname}'s again", drift=[])

    async def run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.interval)
            self._wake.clear()
            link = self.link()
            if not self.is_master() or link is None or link.up is not True:
                if not self.is_master():
                    self.state = None
                continue
            try:
                await self.check()
            except (PeerError, SyncError, OSError) as exc:
                log.info("drift check: %s", exc)
