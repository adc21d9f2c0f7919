"""Whether the sync runs: only on the master, with a peer to push to and paths to sync.

Each round says what the node is now (role, roots, link); the sync is started, or stopped
and started afresh, to match. A watcher that failed is started again only after
:data:`SYNC_RESTART_DELAY`, so a failure that repeats is not retried every round.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import PurePosixPath

from skutui.agent.link import PeerLink
from skutui.agent.sync.master import Pusher, SyncService
from skutui.agent.sync.transport import SshRemoteTree
from skutui.domain.model import Role
from skutui.domain.paths import Paths
from skutui.domain.syncplan import SyncFilter
from skutui.system.node import LocalNode

SYNC_RESTART_DELAY = 30.0


class SyncSupervisor:
    """``options`` go to each :class:`SyncService` started (tests shorten its waits)."""

    def __init__(self, node: LocalNode, paths: Paths, report: Callable[..., object],
                 options: dict | None = None) -> None:
        self.node = node
        self.paths = paths
        self.report = report
        self.options = options or {}
        self.service: SyncService | None = None
        self._task: asyncio.Task | None = None
        self._roots: list[PurePosixPath] = []
        self._link: PeerLink | None = None
        self._retry_at = 0.0

    @property
    def running(self) -> bool:
        return self.service is not None and self.service.running

    def status(self) -> dict | None:
        return self.service.status() if self.service else None

    async def want(self, role: Role, roots: list[PurePosixPath], link: PeerLink | None) -> None:
        want = role is Role.MASTER and link is not None and bool(roots)
        task = self._task
        if task is not None and (task.done() or not want or roots != self._roots
                                 or link is not self._link):
            await self.stop()
        if want and link is not None and self._task is None and time.monotonic() >= self._retry_at:
            self._start(roots, link)

    def _start(self, roots: list[PurePosixPath], link: PeerLink) -> None:
        pusher = Pusher(roots, SyncFilter((PurePosixPath(self.paths.local_dir),)),
                        SshRemoteTree(link.connection),
                        may_push=lambda: self.node.effective_role() is Role.MASTER)
        self.service = SyncService(pusher, report=self.report, peer_name=link.node.hostname,
                                   peer_ready=lambda: link.up is True, peer_lost=link.lost,
                                   **self.options)
        self._roots = roots
        self._link = link
        self._task = asyncio.create_task(self.service.run(), name="sync")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is None:
            return
        task.cancel()
        results = await asyncio.gather(task, return_exceptions=True)
        if isinstance(results[0], Exception):
            self._retry_at = time.monotonic() + SYNC_RESTART_DELAY
            self.report("sync", f"the sync watcher failed: {results[0]}; starting it "
                        f"again in {SYNC_RESTART_DELAY:g} s", level="error")
        self.service = None

    async def flush(self) -> None:
        """Push what changed so far; the replication calls this before each command."""
        if self.service is not None and self.service.running:
            await self.service.flush()

    def peer_back(self) -> None:
        """The peer returned: what it missed is found by comparing whole trees."""
        if self.service is not None:
            self.service.request_reconcile()
