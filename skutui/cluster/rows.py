"""The node table's rows, from what each node said about itself (or that it said nothing).

Status and message come from :mod:`skutui.domain.digest`; this module only joins the facts
of both nodes to the configured nodes, and says why a peer that did not answer did not.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from skutui.domain.digest import FAILED_SERVICES, MESSAGE_PASSIVE, NOT_READY, digest
from skutui.domain.digest import NodeFacts as DigestFacts
from skutui.domain.model import Node, Role, Status
from skutui.domain.readiness import (
    CATCH_UP,
    CATCH_UP_POLL,
    Readiness,
    drift_message,
    handed_over,
    not_ready_message,
    readiness,
)
from skutui.domain.wire import NodeRow, NodeSide
from skutui.system.node import NodeFacts

T = TypeVar("T")

HOST_KEY_CHANGED = "its SSH host key changed; nothing is sent until it is re-pinned"


def row(side: NodeSide, node: Node, facts: NodeFacts | None, other_role: Role | None,
        other: NodeFacts | None = None) -> NodeRow:
    """One node's row; ``facts`` None: the node did not answer. A backup not ready to take
    over is red with the reasons (``other``: the master's facts, for its cache and queues),
    and one whose synced files differ from the master's says how many."""
    if facts is None:
        result = digest(DigestFacts(role=Role.UNKNOWN, services={}, reachable=False), other_role)
        return NodeRow(side, Role.UNKNOWN, node.ip, node.hostname, result.status, result.message)
    result = digest(
        DigestFacts(role=facts.role, services=facts.services, reachable=True,
                    holds_floating_ips=facts.holds_floating_ips,
                    services_down=tuple(facts.services_down), failed_here=tuple(facts.failed_here),
                    links_down=tuple(facts.links_down), warnings=tuple(facts.warnings)),
        other_role)
    status, message = result.status, result.message
    if facts.role is Role.BACKUP:
        ready = readiness_of(facts, other)
        if not ready.ready:
            # One "not ready to take over" list: the daemons it lacks are named there, not
            # again as failed services.
            others = [part for part in message.split("; ") if part != MESSAGE_PASSIVE
                      and not part.startswith(FAILED_SERVICES)]
            also = next((part for part in others if part.startswith(NOT_READY)), "")
            others = [part for part in others if part != also]
            status = Status.FAILURE
            message = "; ".join([*others, not_ready_message(ready, also.removeprefix(NOT_READY))])
        drift = drifted(other)
        if drift:  # instead of "Node online and passive": the column is narrow on 80 columns
            kept = [part for part in message.split("; ") if part != MESSAGE_PASSIVE]
            message = "; ".join([*kept, drift_message(drift)])
    return NodeRow(side, facts.role, node.ip, facts.hostname, status, message)


def readiness_of(facts: NodeFacts, other: NodeFacts | None) -> Readiness:
    """Whether the node of ``facts`` could take over now; ``other``: the other node's facts,
    None when it did not answer."""
    master = other.standby if other is not None and other.role is Role.MASTER else None
    return readiness(facts.hostname, facts.role, facts.services, facts.standby, master)


def drifted(master: NodeFacts | None) -> int:
    """Files that differ between the nodes, as the master's agent last found them."""
    if master is None or master.role is not Role.MASTER:
        return 0
    drift = master.standby.get("drift") or {}
    return len(drift.get("differences") or [])


def node_rows(me: Node, peer: Node, local: NodeFacts, remote: NodeFacts | BaseException
              ) -> list[NodeRow]:
    """This node's row first, then the peer's; ``remote`` is what asking the peer raised
    when it did not answer."""
    if isinstance(remote, BaseException):
        rows = [row("local", me, local, None), row("remote", peer, None, local.role)]
        if _host_key_changed(remote):
            rows[-1] = dataclasses.replace(rows[-1], message=f"{rows[-1].message}: {HOST_KEY_CHANGED}")
        return rows
    return [row("local", me, local, remote.role, remote), row("remote", peer, remote, local.role, local)]


def _host_key_changed(exc: BaseException) -> bool:
    from skutui.peer import HostKeyChanged  # asyncssh: slow to import, needed only here

    return isinstance(exc, HostKeyChanged)


def as_dicts(rows: list[NodeRow]) -> list[dict[str, str]]:
    """The rows as ``skutui nodes --json`` and ``skutui status --json`` print them."""
    return [
        {"node": r.node, "role": r.role.value, "ip": r.ip, "hostname": r.hostname,
         "status": r.status.value, "colour": r.colour, "message": r.message}
        for r in rows
    ]


def after_hand_over(master: NodeFacts) -> NodeFacts:
    """The master's facts as they will read once it has handed over what it is handing over
    now (a push, a replay)."""
    return dataclasses.replace(master, standby=handed_over(master.standby))


async def read_while_catching_up(read: Callable[[], Awaitable[T]],
                                 catching_up: Callable[[T], bool]) -> T:
    """What ``read`` returns, read again while ``catching_up`` finds the backup short of
    only what the master is handing over now (CATCH_UP at most)."""
    deadline = time.monotonic() + CATCH_UP
    while True:
        seen = await read()
        if time.monotonic() >= deadline or not catching_up(seen):
            return seen
        await asyncio.sleep(CATCH_UP_POLL)
