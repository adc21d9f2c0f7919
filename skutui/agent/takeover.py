"""A takeover that loses nothing: the guard armed and disarmed with the role, and a master
whose keepalived dies handing over at once instead of after VRRP's timer.

**The guard** (see :mod:`skutui.domain.firewall`) is armed on every node but a master whose
conntrackd commit has run: the MASTER steps disarm it right after the commit, the BACKUP and
FAULT steps arm it first.

**keepalived dying on the master.** Killed, it sends nothing, and the peer waits for VRRP's
Master_Down_Interval, 3 x the check interval + skew, before it takes over; and it leaves
the floating IPs behind, so both nodes would answer for them. The agent sees the death the
moment it happens (a pidfd on each keepalived process), arms the guard and sends for the
dead keepalived the advert VRRP defines for a master that stops (priority 0): the peer takes
over after its skew time alone. This node keeps serving the floating IPs until it hears
the peer's first advert as master, then releases them. A keepalived that is stopped
(SIGSTOP) rather than dead is noticed at the next look, a second later at most; and no
floating IP stays on a node whose keepalived does not run.

keepalived itself is started again by its systemd unit (``Restart=always``, see
:mod:`skutui.system.units`) a second after it died: by then the peer is master, and this
node rejoins as backup (or takes the floating IPs back when it is the failback node).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from skutui.agent.pidwatch import ProcessWatch
from skutui.domain.errors import Failed
from skutui.domain.model import ClusterConfig, Role
from skutui.domain.render import vrrp_priority
from skutui.domain.vrrp import stop_advert
from skutui.system import vrrp_advert
from skutui.system.node import LocalNode

log = logging.getLogger("skutui.agent")

WATCH_INTERVAL = 1.0
"""Seconds between two looks for keepalived's processes (new ones to watch, a stopped one)."""
HANDOVER_MARGIN = 1.0
"""Seconds beyond the peer's Master_Down_Interval that a dead master's floating IPs wait."""


def set_guard(node: LocalNode, armed: bool) -> list[str]:
    """Arm or disarm the takeover guard: a transition step (returns what failed)."""
    config = node.config()
    if config is None:
        return []
    try:
        node.firewall.guard(config, socket.gethostname(), armed)
    except Failed as exc:
        return [f"takeover guard {'arm' if armed else 'disarm'}: {exc}"]
    return []


@dataclass
class Leave:
    """What the agent did for a keepalived that stopped running."""

    was_master: bool
    released: list[str] = field(default_factory=list)
    told: str | None = None
    """Where the priority-0 advert went (the peer's address or VRRP's group)."""
    taken_over: float | None = None
    """Seconds from the advert until the peer was heard as master (None: not heard)."""
    failed: list[str] = field(default_factory=list)


def handover_timeout(config: ClusterConfig, hostname: str) -> float:
    """How long the floating IPs stay here waiting for the peer to take over: its whole
    Master_Down_Interval (should the priority-0 advert be lost), and a margin."""
    peer = config.peer_of(hostname).hostname
    return (3 + (256 - vrrp_priority(config, peer)) / 256) * config.check_interval + HANDOVER_MARGIN


def take_leave(node: LocalNode, config: ClusterConfig, hostname: str, *,
               send: Callable[..., None] = vrrp_advert.send,
               listener: Callable[..., vrrp_advert.MasterListener] = vrrp_advert.MasterListener,
               ) -> Leave:
    """keepalived no longer runs here. The guard is armed; a master tells the peer to take
    over now (priority 0) and keeps the floating IPs, which the kernel goes on serving, until
    the peer is heard as master: its first advert comes with its gratuitous ARPs, so the
    floating IPs are never unserved and only for a moment held twice. Then (or after the
    peer's whole Master_Down_Interval) no floating IP stays here."""
    leave = Leave(was_master=node.role() is Role.MASTER)
    held = node.floating_ips_held(config)
    leave.failed += set_guard(node, armed=True)
    if leave.was_master or held:
        advert = stop_advert(config, hostname)
        peer = config.peer_of(hostname)
        group = advert.destination if advert.destination != peer.ip else None
        try:
            with listener(config.interface, advert.source, group) as master:
                send(advert, config.interface)
                sent = time.monotonic()
                leave.told = advert.destination
                if held and master.wait(peer.ip, advert.router_id,
                                        handover_timeout(config, hostname)) is not None:
                    leave.taken_over = time.monotonic() - sent
        except OSError as exc:
            leave.failed.append(f"priority-0 advert to {advert.destination}: {exc.strerror or exc}")
    leave.released = node.release_floating_ips(config)
    return leave


def leave_message(leave: Leave, config: ClusterConfig, hostname: str) -> str:
    peer = config.peer_of(hostname).hostname
    parts = ["keepalived is not running on this node"]
    if leave.told:
        parts.append(f"told {peer} to take over now (VRRP priority 0 to {leave.told})")
    if leave.taken_over is not None:
        parts.append(f"{peer} was master {leave.taken_over * 1000:.0f} ms later")
    elif leave.told and leave.released:
        parts.append(f"{peer} was not heard as master")
    if leave.released:
        parts.append(f"released {', '.join(leave.released)}")
    if leave.failed:
        parts.append("failed: " + "; ".join(leave.failed))
    return "; ".join(parts)


class KeepalivedWatch:
    """Watches keepalived's processes and takes leave for a keepalived that stops running,
    once per stop."""

    def __init__(self, node: LocalNode, report: Callable[..., object],
                 config: Callable[[], ClusterConfig | None], hostname: str, *,
                 send: Callable[..., None] = vrrp_advert.send,
                 listener: Callable[..., vrrp_advert.MasterListener] = vrrp_advert.MasterListener,
                 ) -> None:
        self.node = node
        self.report = report
        self.config = config
        self.hostname = hostname
        self.send = send
        self.listener = listener
        self._wake = asyncio.Event()
        self._processes = ProcessWatch(node.keepalived.pids, lambda moment: self._wake.set())
        self._gone = False
        """keepalived was found not running, and leave was taken for it."""

    async def check(self) -> Leave | None:
        """Take leave if keepalived stopped running since the last check; while it stays
        away, no floating IP stays here."""
        config = self.config()
        if config is None:
            self._gone = False
            return None
        if await asyncio.to_thread(self.node.keepalived.running):
            self._gone = False
            return None
        if self._gone:
            released = await asyncio.to_thread(self.node.release_floating_ips, config)
            if released:
                self.report("service", "keepalived is not running: released floating IPs "
                            + ", ".join(released), level="warning", released=released)
            return None
        self._gone = True
        leave = await asyncio.to_thread(take_leave, self.node, config, self.hostname,
                                        send=self.send, listener=self.listener)
        if leave.was_master or leave.released or leave.failed:
            self.report("service", leave_message(leave, config, self.hostname),
                        level="error" if leave.failed else "warning", service="keepalived",
                        running=False, released=leave.released, told=leave.told,
                        failed=leave.failed)
        return leave

    async def run(self) -> None:
        try:
            while True:
                try:
                    await self.check()
                    pids = await asyncio.to_thread(self.node.keepalived.pids)
                    self._processes.follow(pids)
                    if not pids and not self._gone:
                        self._wake.set()  # it died between the check and the look
                except Exception:  # noqa: BLE001 - the watch must outlive one bad look
                    log.exception("keepalived watch failed")
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), WATCH_INTERVAL)
                self._wake.clear()
        finally:
            self._processes.disarm()
