"""A drill, led from the master: the floating IPs handed to the backup and back on purpose,
while both nodes probe them, then recorded in both nodes' history.

1. Refused unless the backup could take over now (its readiness) and this node could take
   them back (its daemons and agent), saying why.
2. Both nodes start the drill's probe and must hear the master answer through the floating
   IP first (a firewall that drops the probes would make the gaps meaningless).
3. There: this node is marked (its release's cause is "drill") and put in maintenance; the
   backup takes over. Back: the backup is marked; this node leaves maintenance (it takes
   them back at once when failback names it), else the backup is put in maintenance until
   this node holds them, then leaves it.
4. The probes' gaps (each seen by the node taking over), the failover records of both legs
   (their gap and commit) and the drill's own record, kept on both nodes.

Whatever happens, each node put in maintenance leaves it and each mark is removed.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import time
from collections.abc import Awaitable, Callable
from typing import Any

from skutui.cluster.nodeops import LocalNodeOps, ProbeHandle, RemoteNodeOps
from skutui.cluster.rows import after_hand_over, read_while_catching_up, readiness_of
from skutui.domain import drill as plan
from skutui.domain import history
from skutui.domain.errors import Failed
from skutui.domain.model import ClusterConfig, Role
from skutui.domain.timing import master_down
from skutui.domain.wire import Progress
from skutui.system.node import NodeFacts

PROBE_WAIT = 10.0
"""Longest wait for each node's first answer through the floating IP before the hand-over:
the peer's probe is a process started over SSH, slow to come up on a busy machine."""
"""Seconds the probes run before the hand-over: both must hear the master by then."""
POLL = 0.05
READY_TIMEOUT = 30.0
"""Seconds a node leaving maintenance may take to stand by again (resync, first sync)."""
RECORDS_TIMEOUT = 15.0
"""Seconds to wait for the new masters' failover records."""
SETTLE = 0.3
"""Seconds the probes run on after the last hand-over, so the new master's answers show."""

Recorder = Callable[[dict[str, Any]], Awaitable[None]]


class DrillRefused(Failed):
    """The drill did not start: the message says why; nothing was changed."""


async def _facts(ops: LocalNodeOps | RemoteNodeOps) -> NodeFacts:
    return await ops.facts()


async def _both(local: LocalNodeOps, remote: RemoteNodeOps) -> tuple[NodeFacts, NodeFacts]:
    return await asyncio.gather(_facts(local), _facts(remote))


def _catching_up(seen: tuple[NodeFacts, NodeFacts]) -> bool:
    """The peer could take over but for what this node, the master, is handing over now."""
    mine, theirs = seen
    return not readiness_of(theirs, mine).ready and readiness_of(theirs, after_hand_over(mine)).ready


async def _until(check: Callable[[], Awaitable[bool]], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise Failed(f"{what}: not within {timeout:g} s")
        await asyncio.sleep(POLL)


def _floating_address(config: ClusterConfig) -> str:
    if not config.floating_ips:
        raise DrillRefused("the cluster has no floating IP: a drill hands floating IPs over, "
                           "and probes one; add one with `skutui cluster edit --floating-ip`")
    return str(ipaddress.ip_interface(config.floating_ips[0]).ip)


async def check(local: LocalNodeOps, remote: RemoteNodeOps, config: ClusterConfig, me: str,
                peer: str) -> tuple[NodeFacts, NodeFacts]:
    """Raises DrillRefused, saying why, unless both nodes could play their part now."""
    _floating_address(config)
    if config.failback == peer:
        raise DrillRefused(f"failback names {peer}: it would keep the floating IPs instead of "
                           f"handing them back; set failback to disabled or {me} first")
    mine, theirs = await read_while_catching_up(lambda: _both(local, remote), _catching_up)
    if mine.role is not Role.MASTER:
        raise DrillRefused(f"this node ({me}) is {mine.role.value}: a drill starts on the master")
    standby = readiness_of(theirs, mine)
    if theirs.role is not Role.BACKUP or not standby.ready:
        reasons = "; ".join(standby.reasons) or f"it is {theirs.role.value}"
        raise DrillRefused(f"{peer} could not take over now: {reasons}")
    own = [name for name in ("keepalived", "conntrackd", "agent") if not mine.services.get(name)]
    if own:
        raise DrillRefused(f"{me} could not take the floating IPs back: "
                           f"{', '.join(own)} not running here")
    return mine, theirs


async def answered(probes: list[ProbeHandle], names: tuple[str, ...], me: str, address: str,
                   wait: float = PROBE_WAIT) -> None:
    """Return once each probe has heard ``me`` answer through the floating IP; raises
    DrillRefused naming the node that heard nothing within ``wait`` seconds."""
    deadline = time.monotonic() + wait
    for probe, name in zip(probes, names, strict=True):
        while not any(run["responder"] == me for run in (await probe.report())["runs"]):
            if time.monotonic() > deadline:
                raise DrillRefused(f"{name} hears no answer from {address} on UDP port "
                                   f"{plan.DRILL_PORT}: does a firewall drop it? The drill needs "
                                   "it to measure the gap")
            await asyncio.sleep(POLL)


async def run(local: LocalNodeOps, remote: RemoteNodeOps, config: ClusterConfig, me: str,
              peer: str, progress: Progress, record: Recorder) -> dict[str, Any]:
    """The drill; returns its record's data (``skutui.domain.drill``)."""
    progress(f"Checking that {peer} could take over and {me} take back")
    await check(local, remote, config, me, peer)
    started = time.time()
    drill_id = f"drill-{me}-{int(started * 1000)}"
    address = _floating_address(config)
    timeout = 2 * max(master_down(config, me), master_down(config, peer)) + 10
    progress(f"Probing {address} on UDP port {plan.DRILL_PORT} from both nodes")
    probes: list[ProbeHandle] = []
    in_maintenance: list[LocalNodeOps | RemoteNodeOps] = []
    marked: list[LocalNodeOps | RemoteNodeOps] = []
    try:
        probes = [await local.drill_probe(address, plan.DRILL_PORT),
                  await remote.drill_probe(address, plan.DRILL_PORT)]
        await answered(probes, (me, peer), me, address)

        progress(f"Handing the floating IPs to {peer}: {me} goes into maintenance")
        await local.drill_mark(drill_id)
        marked.append(local)
        await local.set_maintenance(True)
        in_maintenance.append(local)
        await _until(lambda: _holds(remote), timeout, f"{peer} takes the floating IPs")
        progress(f"{peer} holds the floating IPs")

        await remote.drill_mark(drill_id)
        marked.append(remote)
        progress(f"{me} leaves maintenance")
        await local.set_maintenance(False)
        in_maintenance.remove(local)
        await local.drill_mark(None)
        marked.remove(local)
        if not await _holds(local):
            await _until(lambda: _stands_by(local, remote), READY_TIMEOUT,
                         f"{me} stands by again")
            if not await _holds(local):
                progress(f"Handing the floating IPs back to {me}: {peer} goes into maintenance")
                await remote.set_maintenance(True)
                in_maintenance.append(remote)
        await _until(lambda: _holds(local), timeout, f"{me} takes the floating IPs back")
        progress(f"{me} holds the floating IPs again")
        if remote in in_maintenance:
            await remote.set_maintenance(False)
            in_maintenance.remove(remote)
        await asyncio.sleep(SETTLE)
        reports = [await probe.report() for probe in probes]
    finally:
        await _undo(in_maintenance, marked, probes)
    progress("Reading both failovers from the history")
    failovers = await _failovers(local, drill_id, started)
    legs = []
    for old, new, seen_by in ((me, peer, reports[1]), (peer, me, reports[0])):
        failover = next((f for f in failovers if (f.get("data") or {}).get("from") == old
                         and (f.get("data") or {}).get("to") == new), None)
        data = (failover or {}).get("data") or {}
        legs.append({"from": old, "to": new,
                     "probe_gap": plan.gap([plan.Run.from_dict(r) for r in seen_by["runs"]], old, new),
                     "gap": data.get("gap"), "conntrack": data.get("conntrack"),
                     "failover": (failover or {}).get("id")})
    result = {"id": drill_id, "started": history.iso(started), "ended": history.iso(time.time()),
              "from": me, "to": peer, "legs": legs,
              "probes": sum(r["sent"] for r in reports),
              "ok": all(leg["probe_gap"] is not None for leg in legs)}
    await record(result)
    return result


async def _holds(ops: LocalNodeOps | RemoteNodeOps) -> bool:
    facts = await ops.facts()
    return facts.role is Role.MASTER and facts.holds_floating_ips


async def _stands_by(node: LocalNodeOps | RemoteNodeOps, master: LocalNodeOps | RemoteNodeOps) -> bool:
    facts, master_facts = await asyncio.gather(node.facts(), master.facts())
    return facts.role is Role.MASTER or (facts.role is Role.BACKUP
                                         and readiness_of(facts, master_facts).ready)


async def _undo(in_maintenance: list, marked: list, probes: list[ProbeHandle]) -> None:
    """Put back whatever the drill changed, each step on its own: one failing must not leave
    the others undone."""
    for ops in list(in_maintenance):
        with contextlib.suppress(Exception):
            await ops.set_maintenance(False)
    for ops in list(marked):
        with contextlib.suppress(Exception):
            await ops.drill_mark(None)
    for probe in probes:
        with contextlib.suppress(Exception):
            await probe.close()


async def _failovers(local: LocalNodeOps, drill_id: str, started: float) -> list[dict[str, Any]]:
    """The two failover records the drill made, as this node's history has them (the new
    masters write them, each a moment after taking over)."""
    deadline = time.monotonic() + RECORDS_TIMEOUT
    while True:
        found = [r for r in await local.history(started - 1, [history.FAILOVER])
                 if (r.get("data") or {}).get("drill") == drill_id]
        if len(found) >= 2 or time.monotonic() > deadline:
            return found
        await asyncio.sleep(0.2)
