"""The node table's rows, from what each node said about itself (or that it said nothing).

Status and message come from :mod:`skutui.domain.digest`; this module only joins the facts
of both nodes to the configured nodes, and says why a peer that did not answer did not.
"""

from __future__ import annotations

import dataclasses

from skutui.domain.digest import NodeFacts as DigestFacts
from skutui.domain.digest import digest
from skutui.domain.model import Node, Role
from skutui.domain.wire import NodeRow, NodeSide
from skutui.system.node import NodeFacts

HOST_KEY_CHANGED = "its SSH host key changed; nothing is sent until it is re-pinned"


def row(side: NodeSide, node: Node, facts: NodeFacts | None, other_role: Role | None) -> NodeRow:
    """One node's row; ``facts`` None: the node did not answer."""
    if facts is None:
        result = digest(DigestFacts(role=Role.UNKNOWN, services={}, reachable=False), other_role)
        return NodeRow(side, Role.UNKNOWN, node.ip, node.hostname, result.status, result.message)
    result = digest(
        DigestFacts(role=facts.role, services=facts.services, reachable=True,
                    holds_floating_ips=facts.holds_floating_ips),
        other_role)
    return NodeRow(side, facts.role, node.ip, facts.hostname, result.status, result.message)


def node_rows(me: Node, peer: Node, local: NodeFacts, remote: NodeFacts | BaseException
              ) -> list[NodeRow]:
    """This node's row first, then the peer's; ``remote`` is what asking the peer raised
    when it did not answer."""
    if isinstance(remote, BaseException):
        rows = [row("local", me, local, None), row("remote", peer, None, local.role)]
        if _host_key_changed(remote):
            rows[-1] = dataclasses.replace(rows[-1], message=f"{rows[-1].message}: {HOST_KEY_CHANGED}")
        return rows
    return [row("local", me, local, remote.role), row("remote", peer, remote, local.role)]


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
