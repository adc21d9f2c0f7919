"""A master whose service went down hands the floating IPs to a healthy peer at once.

keepalived's service checks already rank such a master below a healthy peer, but VRRP lets
a backup take over only when the master has been silent for three adverts: a master still
advertising a lower priority is ignored that long. keepalived tells the agent the moment
the priority drops (a ``MASTER_PRIORITY`` line of its notify FIFO); the agent reads the
peer's own account (its agent's state file, over the kept connection) and, when the peer is
a backup ranked higher, puts this node in FAULT through the handover file: keepalived then
says goodbye with a priority-0 advert and the peer takes over after its skew alone. The
file is cleared as soon as keepalived reports FAULT; this node comes back as a backup,
still ranked lower, so it does not take the floating IPs back.

A peer that cannot be asked, or ranks no higher, is left alone: the floating IPs stay here
(keepalived's own ranking still moves them later if the peer turns healthy).

Either way, the master-only services found down at that moment are marked as failed here
(``services.mark_failed``): once this node is no longer master its checks cannot see them,
and the mark keeps it ranked below the peer, so two nodes that both fail to run a service
never hand the floating IPs back and forth.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from skutui.agent.link import PeerLink
from skutui.domain.model import ClusterConfig, Role
from skutui.domain.paths import Paths
from skutui.domain.render import HANDOVER_NOW, HANDOVER_OFF, vrrp_priority
from skutui.system import services
from skutui.system.node import LocalNode

log = logging.getLogger("skutui.agent")

STALE_AFTER = 60.0
"""Seconds after which a handover file left set (by a command that was killed half-way)
is cleared: no handover takes that long."""
PEER_TIMEOUT = 2.0


class Handover:
    def __init__(self, node: LocalNode, paths: Paths, hostname: str, report: Callable[..., object],
                 config: Callable[[], ClusterConfig | None],
                 link: Callable[[], PeerLink | None]) -> None:
        self.node = node
        self.hostname = hostname
        self.paths = paths
        self.report = report
        self.config = config
        self.link = link
        self._asking: asyncio.Task | None = None
        self._stepping_down = False

    def priority(self, state: str, priority: int) -> None:
        """keepalived's notify FIFO said this node's state and priority."""
        if state == "fault" and self._stepping_down:
            self._stepping_down = False
            self.node.set_handover(HANDOVER_OFF)
            return
        config = self.config()
        if (state != "master" or config is None
                or priority >= vrrp_priority(config, self.hostname)
                or self.node.in_maintenance() or self._handover_set()
                or (self._asking is not None and not self._asking.done())):
            return
        self._asking = asyncio.ensure_future(self.service_down(config, priority))

    async def service_down(self, config: ClusterConfig, priority: int) -> None:
        """keepalived ranked this master lower: a service is down here."""
        down = await asyncio.to_thread(
            lambda: [name for name in config.services if not services.running(name)])
        if down:
            services.mark_failed(self.paths.service_state_dir, down)
        await self.step_down_if_peer_ranks_higher(priority)

    def _handover_set(self) -> bool:
        try:
            return int(self.paths.handover_file.read_text().strip() or HANDOVER_OFF) != HANDOVER_OFF
        except (OSError, ValueError):
            return False

    async def peer_state(self) -> dict | None:
        """The peer agent's own account of itself, or None when it cannot be had."""
        link = self.link()
        if link is None or link.up is not True:
            return None
        try:
            return await asyncio.wait_for(link.agent_state.read(PEER_TIMEOUT), PEER_TIMEOUT)
        except Exception as exc:  # noqa: BLE001 - an answer we cannot have is no answer
            log.info("handover: cannot read the peer's state: %s", exc)
            return None

    async def step_down_if_peer_ranks_higher(self, priority: int) -> None:
        peer = await self.peer_state()
        link = self.link()
        if peer is None or link is None:
            return
        theirs = peer.get("priority")
        if peer.get("role") != Role.BACKUP.value or not isinstance(theirs, int) or theirs <= priority:
            log.info("handover: %s is not ready to take over (role %s, priority %s; ours %s)",
                     link.node.hostname, peer.get("role"), theirs, priority)
            return
        if self.node.effective_role() is not Role.MASTER or self._handover_set():
            return
        self._stepping_down = True
        self.node.set_handover(HANDOVER_NOW)
        self.report("role", f"a service is down here (priority {priority}): handing the floating "
                    f"IPs to {link.node.hostname} (priority {theirs}) now", level="warning",
                    peer=link.node.hostname, priority=priority, peer_priority=theirs)

    def clear_if_stale(self) -> None:
        """A handover file nobody will clear (its command was killed) is cleared here."""
        try:
            age = time.time() - self.paths.handover_file.stat().st_mtime
        except OSError:
            return
        if age > STALE_AFTER and self._handover_set():
            self._stepping_down = False
            self.node.set_handover(HANDOVER_OFF)
            self.report("role", "a handover left unfinished was cleared", level="warning")

    async def close(self) -> None:
        if self._asking is not None and not self._asking.done():
            self._asking.cancel()
            await asyncio.gather(self._asking, return_exceptions=True)
