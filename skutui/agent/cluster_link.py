"""What the cluster link filter drops, and whether the peer still has its pinned link-layer
address: reported once per burst or change, and published for the node table.

skutui's table counts the VRRP and conntrackd traffic it drops on the cluster NIC (see
:mod:`skutui.domain.firewall`); VRRP for this cluster's own virtual router id from a
stranger is a forger or a neighbour using the same id, either of which could take the
floating IPs away without the filter. The neighbour table tells which link-layer address
answers for the peer's cluster IP now: one that is not the pinned one means the peer's NIC
was replaced (then ``skutui cluster rekey`` pins the new one) or someone claims its address.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from skutui.domain import firewall
from skutui.domain.model import ClusterConfig
from skutui.domain.paths import Paths
from skutui.system.firewall import neighbour_link_address, pinned_peer_link
from skutui.system.node import LocalNode

log = logging.getLogger("skutui.agent")

LINK_CHECK_INTERVAL = 2.0
"""Seconds between two reads of the drop counters and of the peer's link-layer address."""
DROPS = (firewall.FOREIGN_VRRP, firewall.OTHER_VRRP, firewall.FOREIGN_CONNTRACKD)


class ClusterLinkWatch:
    def __init__(self, node: LocalNode, paths: Paths, report: Callable[..., object],
                 config: Callable[[], ClusterConfig | None], hostname: str) -> None:
        self.node = node
        self.paths = paths
        self.report = report
        self.config = config
        self.hostname = hostname
        self.dropped: dict[str, int] = {}
        """Packets each drop counter held at the last read."""
        self.last_rise: dict[str, float] = {}
        """When each drop counter was last seen rising (seconds since the epoch)."""
        self.reported_rise: dict[str, float] = {}
        self.pinned: str | None = None
        self.seen: str | None = None
        self._reported_seen: str | None = None

    def status(self) -> dict:
        """What ``agent.json`` carries for the node table (see ``firewall.link_warnings``)."""
        return {"dropped": dict(self.dropped), "last_rise": dict(self.last_rise),
                "peer_link_pinned": self.pinned, "peer_link_seen": self.seen}

    def _look(self, config: ClusterConfig) -> tuple[dict[str, int], str | None, str | None]:
        counters = self.node.firewall.counters()
        peer = config.peer_of(self.hostname)
        pin = pinned_peer_link(self.paths)
        pinned = pin.link_address if pin is not None and pin.address == peer.ip else None
        seen = neighbour_link_address(config.interface, peer.ip) if pinned else None
        return {name: counters[name].packets for name in DROPS if name in counters}, pinned, seen

    async def check(self) -> None:
        config = self.config()
        if config is None:
            self.dropped, self.pinned, self.seen = {}, None, None
            return
        counts, self.pinned, self.seen = await asyncio.to_thread(self._look, config)
        now = time.time()
        for name, count in counts.items():
            before = self.dropped.get(name)
            if before is not None and count > before:
                self.last_rise[name] = now
                if now - self.reported_rise.get(name, 0.0) >= firewall.RECENT_DROPS:
                    self.reported_rise[name] = now
                    self.report("link", firewall.drop_message(name, count - before, config,
                                                              self.hostname),
                                level="warning", counter=name, dropped=count)
        self.dropped = counts
        if self.seen and self.pinned and self.seen != self.pinned:
            if self.seen != self._reported_seen:
                self._reported_seen = self.seen
                self.report("link", firewall.changed_link_message(config, self.hostname,
                                                                  self.pinned, self.seen),
                            level="error", pinned=self.pinned, seen=self.seen)
        else:
            self._reported_seen = None

    async def run(self) -> None:
        while True:
            try:
                await self.check()
            except Exception:  # noqa: BLE001 - the watch must outlive one bad read
                log.exception("cluster link check failed")
            await asyncio.sleep(LINK_CHECK_INTERVAL)
