"""What watches the agent's events without taking part in the cluster's work: this node's
history, the failover records, the operator's hooks and webhook, the metrics file and the
check that both nodes hold the same synced files.

Each is a listener on the event bus that only queues (an event may come on the takeover
path) and a task of its own that does the work; the control socket answers their requests
(``metrics``, ``drift``, ``push``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import PurePosixPath
from typing import Any

from skutui.agent.control import EventBus
from skutui.agent.drift import DriftCheck
from skutui.agent.failover import FailoverRecorder
from skutui.agent.history import HistoryWriter
from skutui.agent.link import PeerLink
from skutui.agent.metrics import Metrics
from skutui.agent.notifications import Hooks, StepsGate, Webhook
from skutui.agent.sync_supervisor import SyncSupervisor
from skutui.domain.model import ClusterConfig, Role
from skutui.domain.paths import Paths
from skutui.domain.syncplan import SyncError
from skutui.peer import PeerError
from skutui.system.history import HistoryStore
from skutui.system.node import LocalNode

PUBLISHED_SYNC = ("running", "pending_changes", "pending_since", "needs_reconcile", "last_push",
                  "last_reconcile", "error")
"""What of the sync's state the agent publishes for the node table's readiness."""

Operation = Callable[[dict], Awaitable[dict]]


class Observers:
    def __init__(self, node: LocalNode, paths: Paths, hostname: str, bus: EventBus, *,
                 config: Callable[[], ClusterConfig | None],
                 link: Callable[[], PeerLink | None],
                 roots: Callable[[], list[PurePosixPath]],
                 sync: SyncSupervisor,
                 replication: Callable[[], dict[str, Any]],
                 services: Callable[[], dict[str, bool]],
                 cluster_link: Callable[[], dict]) -> None:
        self.node = node
        self.sync = sync
        self.config = config
        self.store = HistoryStore(paths.history_file)
        self.history = HistoryWriter(self.store)
        self.history.start()
        self.failovers = FailoverRecorder(
            node, paths, hostname, bus.emit, self.history, self.store, config=config, link=link,
            sync_status=sync.status, replication_queue=lambda: replication().get("pending"))
        self.gate = StepsGate()
        self.hooks = Hooks(paths.hooks_dir, paths.hooks_queue, self.gate)
        self.webhook = Webhook(paths.webhook_queue,
                               lambda: (config() or _NO_WEBHOOK).webhook_url, self.gate)
        self.drift = DriftCheck(hostname, bus.emit, link=link, roots=roots,
                                excluded=(PurePosixPath(paths.local_dir),),
                                is_master=self._is_master, flush=sync.flush)
        self.metrics = Metrics(node, hostname, self.store, self.gate, config=config,
                               services=services, sync_status=sync.status, replication=replication,
                               drift=lambda: self.drift.state, cluster_link=cluster_link)
        # The gate first: it closes on keepalived's line before the others queue the event.
        bus.listeners += [self.gate.event, self.history.event, self.failovers.event,
                          self.hooks.event, self.webhook.event, self.metrics.event]

    def _is_master(self) -> bool:
        return self.node.effective_role() is Role.MASTER

    def published(self) -> dict[str, Any]:
        """For ``agent.json``: what the node facts read for readiness and drift."""
        sync = self.sync.status()
        return {"sync": None if sync is None else {key: sync.get(key) for key in PUBLISHED_SYNC},
                "drift": self.drift.state}

    # --- requests on the control socket ------------------------------------------------------

    def operations(self) -> dict[str, Operation]:
        return {"metrics": self._metrics, "drift": self._drift, "push": self._push}

    async def _metrics(self, request: dict) -> dict:
        return {"ok": True, "text": await self.metrics.refresh()}

    async def _drift(self, request: dict) -> dict:
        if not self._is_master():
            return {"ok": False, "error": "this node is not the master; the master's agent "
                                          "compares the synced files"}
        try:
            return {"ok": True, "drift": await self.drift.check()}
        except (PeerError, SyncError, OSError) as exc:
            return {"ok": False, "error": str(exc)}

    async def _push(self, request: dict) -> dict:
        """Send this node's copy of every synced file the peer holds differently (a whole
        compare and push, as when the peer returns), then compare again."""
        if not self._is_master() or self.sync.service is None or not self.sync.running:
            return {"ok": False, "error": "the sync is not running on this node: only the "
                                          "master, with its peer reachable, pushes its files"}
        self.sync.service.request_reconcile()
        await self.sync.flush()
        error = self.sync.service.last_error
        if error:
            return {"ok": False, "error": error}
        return await self._drift(request)

    # --- running -------------------------------------------------------------------------------

    async def run(self) -> None:
        await asyncio.gather(self.failovers.run(), self.hooks.run(), self.webhook.run(),
                             self.drift.run(), self.metrics.run())

    async def close(self) -> None:
        """After the agent's last event: everything queued is written."""
        await self.hooks.close()
        await self.history.stop()


class _NoCluster:
    webhook_url = ""


_NO_WEBHOOK = _NoCluster()
