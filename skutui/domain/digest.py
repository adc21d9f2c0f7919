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
FAULT = "FAULT: "
MESSAGE_FAULT_UNEXPLAINED = "keepalived reports a fault"
NOT_READY = "not ready to take over: "


@dataclass(frozen=True)
class NodeFacts:
    role: Role
    services: Mapping[str, bool] = field(default_factory=dict)
    """Service name -> running; a service not listed counts as not running."""
    reachable: bool = True
    holds_floating_ips: bool = False
    services_down: tuple[str, ...] = ()
    """Configured services this node should run in its role (``services_to_run``) that do
    not run."""
    failed_here: tuple[str, ...] = ()
    """Master-only services that failed on this node while it was master: a backup that
    cannot run them is not ready to take over."""
    links_down: tuple[str, ...] = ()
    """Tracked links (the cluster NIC among them) that are down or missing."""
    warnings: tuple[str, ...] = ()
    """Said after the node's message whatever its status (e.g. foreign VRRP dropped)."""


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


def _listed(names: tuple[str, ...] | list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def down_text(names: tuple[str, ...] | list[str]) -> str:
    """``haproxy is down``, ``haproxy and nginx are down``; empty for no name."""
    if not names:
        return ""
    return f"{_listed(names)} {'is' if len(names) == 1 else 'are'} down"


def _service_problems(facts: NodeFacts) -> list[str]:
    failed = f"{_listed(facts.failed_here)} failed here as master" if facts.failed_here else ""
    return [down_text(facts.services_down), failed]


def _fault(facts: NodeFacts) -> Digest:
    """keepalived's FAULT that the operator did not ask for: red, naming what failed."""
    parts = [*(f"{name} is down" for name in facts.links_down), *_service_problems(facts)]
    return _failure(FAULT + ("; ".join(p for p in parts if p) or MESSAGE_FAULT_UNEXPLAINED))


def digest(facts: NodeFacts, other_role: Role | None) -> Digest:
    """Status, colour and message for one node; ``other_role`` is the other node's, if known;
    the node's warnings follow its message (see :func:`_status`)."""
    result = _status(facts, other_role)
    if facts.reachable and facts.warnings:
        return _digest(result.status, "; ".join((result.message, *facts.warnings)))
    return result


def _status(facts: NodeFacts, other_role: Role | None) -> Digest:
    """Status, colour and message for one node, without its warnings.

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
    if facts.role is Role.FAULT:
        return _fault(facts)
    if facts.role is Role.MASTER:
        if other_role is Role.MASTER:
            return _failure(MESSAGE_SPLIT_BRAIN)
        problems = [_failed_text(_failed(facts, MASTER_SERVICES)), *_service_problems(facts)]
        if any(problems):
            return _failure(*problems)
        return _digest(Status.OK, MESSAGE_ACTIVE)
    if facts.role is Role.BACKUP:
        failed = _failed(facts, BACKUP_SERVICES)
        not_ready = "; ".join(p for p in _service_problems(facts) if p)
        problems = [
            MESSAGE_BACKUP_HOLDS_FLOATING_IPS if facts.holds_floating_ips else "",
            _failed_text(failed),
            MESSAGE_SYNC_ON_BACKUP if running(SYNC, False) else "",
            NOT_READY + not_ready if not_ready else "",
        ]
        if any(problems):
            return _failure(*problems)
        return _digest(Status.OK, MESSAGE_PASSIVE)
    return _failure(MESSAGE_ROLE_UNKNOWN, _failed_text(_failed(facts, BACKUP_SERVICES)))
