"""One node's status and message in the node table, from facts gathered about it.

Pure: the facts (role, which services run, whether the node answered, whether it holds the
floating IPs) are collected elsewhere; the rules that turn them into what the operator sees
live here only. Colours come from ``Status.colour``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from skutui.domain.model import Role, Status

KEEPALIVED = "keepalived"
CONNTRACKD = "conntrackd"
SYNC = "sync"
"""The config sync watcher: runs on the master only, pushing its files to the backup."""
AGENT = "agent"

MASTER_SERVICES = (KEEPALIVED, CONNTRACKD, SYNC, AGENT)
BACKUP_SERVICES = (KEEPALIVED, CONNTRACKD, AGENT)

MESSAGE_UNREACHABLE = "Node unreachable"
MESSAGE_MAINTENANCE = "Node in maintenance mode"
MESSAGE_ACTIVE = "Node online and active"
MESSAGE_PASSIVE = "Node online and passive"
MESSAGE_SPLIT_BRAIN = "Split brain: both nodes are master"
MESSAGE_ORPHAN_FLOATING_IPS = (
    "Floating IPs held while keepalived is down: the other node may hold them too"
)
MESSAGE_BACKUP_HOLDS_FLOATING_IPS = "Backup holds floating IPs: the master holds them too"
MESSAGE_SYNC_ON_BACKUP = "Config sync running on a backup: it would overwrite the master's files"
MESSAGE_ROLE_UNKNOWN = "Node role unknown"
FAILED_SERVICES = "Failed services: "


@dataclass(frozen=True)
class NodeFacts:
    role: Role
    services: Mapping[str, bool] = field(default_factory=dict)
    """Service name -> running; a service not listed counts as not running."""
    reachable: bool = True
    holds_floating_ips: bool = False


@dataclass(frozen=True)
class Digest:
    status: Status
    colour: str
    message: str


def _digest(status: Status, message: str) -> Digest:
    return Digest(status, status.colour, message)


def _failed(facts: NodeFacts, required: tuple[str, ...]) -> list[str]:
    return [name for name in required if not facts.services.get(name, False)]


def _failure(*parts: str) -> Digest:
    return _digest(Status.FAILURE, "; ".join(part for part in parts if part))


def _failed_text(failed: list[str]) -> str:
    return FAILED_SERVICES + ", ".join(failed) if failed else ""


def digest(facts: NodeFacts, other_role: Role | None) -> Digest:
    """Status, colour and message for one node; ``other_role`` is the other node's, if known.

    Checked in order of danger: a node that did not answer tells nothing else; floating IPs
    held without keepalived, or by a backup, mean two nodes answer for the same address;
    two masters are a split brain whatever each one's health.
    """
    if not facts.reachable:
        return _digest(Status.UNREACHABLE, MESSAGE_UNREACHABLE)
    running = facts.services.get
    if facts.holds_floating_ips and not running(KEEPALIVED, False):
        return _failure(MESSAGE_ORPHAN_FLOATING_IPS)
    if facts.role is Role.MAINTENANCE:
        return _digest(Status.MAINTENANCE, MESSAGE_MAINTENANCE)
    if facts.role is Role.MASTER:
        if other_role is Role.MASTER:
            return _failure(MESSAGE_SPLIT_BRAIN)
        failed = _failed(facts, MASTER_SERVICES)
        if failed:
            return _failure(_failed_text(failed))
        return _digest(Status.OK, MESSAGE_ACTIVE)
    if facts.role is Role.BACKUP:
        failed = _failed(facts, BACKUP_SERVICES)
        problems = [
            MESSAGE_BACKUP_HOLDS_FLOATING_IPS if facts.holds_floating_ips else "",
            _failed_text(failed),
            MESSAGE_SYNC_ON_BACKUP if running(SYNC, False) else "",
        ]
        if any(problems):
            return _failure(*problems)
        return _digest(Status.OK, MESSAGE_PASSIVE)
    return _failure(MESSAGE_ROLE_UNKNOWN, _failed_text(_failed(facts, BACKUP_SERVICES)))
