"""The node's metrics, kept in a Prometheus text file for node_exporter's textfile collector.

The text is made again after each event (a moment later, so a burst makes one) and every
:data:`METRICS_INTERVAL` for what moves without an event (conntrackd's caches, the sync's
lag). The file is rewritten, atomically, only when the text changed, and only where
cluster.toml's ``metrics_file`` says, if its folder exists (node_exporter's package makes
it); ``skutui metrics`` asks the agent for the same text.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from skutui.agent.notifications import StepsGate
from skutui.domain import history
from skutui.domain.digest import NodeFacts as DigestFacts
from skutui.domain.digest import digest
from skutui.domain.firewall import FOREIGN_VRRP
from skutui.domain.metrics import NodeMetrics, families, render
from skutui.domain.model import ClusterConfig, Role
from skutui.domain.readiness import readiness
from skutui.system.files import write_text_atomic
from skutui.system.history import HistoryError, HistoryStore
from skutui.system.node import LocalNode
from skutui.system.standby import conntrack_stats, standby_facts

log = logging.getLogger("skutui.agent")

METRICS_INTERVAL = 15.0
"""node_exporter's default scrape is 15 s; nothing finer is read."""
SETTLE = 0.5
"""Seconds after an event before the text is made: a burst of events makes one file."""
FILE_MODE = 0o644
"""node_exporter runs as its own user: the file must be readable by it."""


class Metrics:
    def __init__(self, node: LocalNode, hostname: str, store: HistoryStore, gate: StepsGate, *,
                 config: Callable[[], ClusterConfig | None],
                 services: Callable[[], dict[str, bool]],
                 sync_status: Callable[[], dict | None],
                 replication: Callable[[], dict[str, Any]],
                 drift: Callable[[], dict | None],
                 cluster_link: Callable[[], dict],
                 interval: float = METRICS_INTERVAL) -> None:
        self.node = node
        self.hostname = hostname
        self.store = store
        self.gate = gate
        self.config = config
        self.services = services
        self.sync_status = sync_status
        self.replication = replication
        self.drift = drift
        self.cluster_link = cluster_link
        """The cluster link's filter as the agent last read it: its drop counters."""
        self.interval = interval
        self.text = ""
        self._written: tuple[str, str] | None = None
        """(path, text) last written."""
        self._changed = asyncio.Event()

    def event(self, event: dict[str, Any]) -> None:
        self._changed.set()

    def configured(self) -> None:
        """The configuration changed: the file is made again at once, not at the next
        interval (it may have been turned on, off, or moved)."""
        self._changed.set()

    def gather(self) -> NodeMetrics:
        """Blocking (conntrackd, the history file): run in a thread."""
        config = self.config()
        role = self.node.effective_role()
        sync = self.sync_status() or {}
        services = {"keepalived": self.node.keepalived.running(),
                    "conntrackd": self.node.conntrackd.running(), "agent": True,
                    "sync": bool(sync.get("running")), **self.services()}
        status = digest(DigestFacts(role=role, services=services), None).status
        try:
            failovers = self.store.count(history.FAILOVER)
            last = self.store.records(kinds=[history.FAILOVER], limit=1)
        except HistoryError as exc:
            log.warning("metrics: %s", exc)
            failovers, last = 0, []
        last_data = last[-1].get("data") or {} if last else {}
        pending, since = sync.get("pending_changes"), sync.get("pending_since")
        lag = None
        if sync.get("running"):
            lag = round(time.time() - since, 3) if pending and since else 0.0
        synced = [t for t in (sync.get("last_push"), sync.get("last_reconcile")) if t]
        drift = self.drift()
        ready = None
        if role is Role.BACKUP and config is not None:
            standby = standby_facts(config, self.node.conntrackd, {})
            ready = readiness(self.hostname, role, services, standby, None).ready
            counters = standby.get("conntrack")
        else:
            counters = conntrack_stats(self.node.conntrackd)
        return NodeMetrics(
            node=self.hostname, role=role, status=status, failovers=failovers,
            last_failover_gap=last_data.get("gap"),
            last_failover_time=history.epoch(last_data["held"]) if last_data.get("held") else None,
            sync_lag=lag, last_sync=max(synced) if synced else None,
            replication_queue=self.replication().get("pending"), conntrack=counters,
            drift_files=None if drift is None else len(drift.get("differences") or []),
            foreign_vrrp_dropped=(self.cluster_link().get("dropped") or {}).get(FOREIGN_VRRP),
            standby_ready=ready)

    async def refresh(self) -> str:
        self.text = render(families(await asyncio.to_thread(self.gather)))
        await asyncio.to_thread(self._write)
        return self.text

    def _write(self) -> None:
        config = self.config()
        target = config.metrics_file if config else ""
        if self._written and self._written[0] != target:
            Path(self._written[0]).unlink(missing_ok=True)  # off, or moved: no stale figures left
            self._written = None
        if not target or self._written == (target, self.text):
            return
        path = Path(target)
        if not path.parent.is_dir():
            return
        try:
            write_text_atomic(path, self.text, FILE_MODE)
        except OSError as exc:
            log.warning("metrics file %s not written: %s", path, exc)
            return
        self._written = (target, self.text)

    async def run(self) -> None:
        try:
            while True:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._changed.wait(), self.interval)
                    await asyncio.sleep(SETTLE)
                self._changed.clear()
                await self.gate.wait()
                try:
                    await self.refresh()
                except Exception:  # noqa: BLE001 - the next refresh tries again
                    log.exception("metrics refresh failed")
        finally:
            if self._written:
                Path(self._written[0]).unlink(missing_ok=True)
