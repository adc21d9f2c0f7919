"""Whether a node could take over now, and if not, why: a standby's readiness, live.

What a node must have to take the floating IPs and serve: keepalived, conntrackd and the
agent running, no maintenance, every tracked link present and up, every service startable
(running already, for a service on both nodes), the master's connections in its conntrack
external cache, and nothing the master has not handed over yet (changes not pushed,
commands not replayed). The facts come from both nodes (``standby`` in their node facts);
the rules are here only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from skutui.domain.digest import NOT_READY
from skutui.domain.model import Role

CACHE_SLACK = 0.1
"""Share of the master's internal cache the standby's external cache may lack: entries come
and go between the two reads, and FTFW carries a new one in some milliseconds."""
CACHE_SLACK_MIN = 5
"""Entries the standby may lack whatever the cache's size."""

CATCH_UP = 10.0
"""Seconds what needs the backup ready (maintenance on the master, a drill) waits while it
lacks only what the master is handing over now (a push, a replay), before it refuses: a
change made a moment before leaves one under way."""
CATCH_UP_POLL = 0.2
LINK_UP, LINK_DOWN, LINK_MISSING = "up", "down", "missing"
SERVICE_RUNNING, SERVICE_INSTALLED, SERVICE_MISSING = "running", "installed", "missing"


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    short: str = ""
    """What is wrong in a few words, for the node table's message (its column is narrow)."""


@dataclass(frozen=True)
class Readiness:
    hostname: str
    role: Role
    checks: tuple[Check, ...]
    counters: Mapping[str, int] = field(default_factory=dict)
    """conntrackd's counters on this node (``skutui.domain.conntrack``); empty when unknown."""
    last_sync: float | None = None
    """When the master last pushed or compared the synced files (seconds since the epoch)."""

    @property
    def ready(self) -> bool:
        return all(check.ok for check in self.checks)

    @property
    def reasons(self) -> list[str]:
        return [check.detail for check in self.checks if not check.ok]

    def to_dict(self) -> dict[str, Any]:
        return {"hostname": self.hostname, "role": self.role.value, "ready": self.ready,
                "reasons": self.reasons,
                "checks": [{"name": c.name, "ok": c.ok, "detail": c.detail} for c in self.checks],
                "conntrack": dict(self.counters) or None, "last_sync": self.last_sync}


def _running(services: Mapping[str, bool], name: str, what: str) -> Check:
    running = bool(services.get(name))
    return Check(name, running, f"{what} is running" if running else f"{what} is not running",
                 f"{name} is down")


def _links(links: Mapping[str, str]) -> Check:
    bad = {name: state for name, state in links.items() if state != LINK_UP}
    if bad:
        return Check("links", False, "tracked link " + ", ".join(
            f"{name} is {state}" for name, state in bad.items()),
            ", ".join(f"{name} is {state}" for name, state in bad.items()))
    return Check("links", True, f"tracked links up: {', '.join(links) or 'none'}")


def _services(states: Mapping[str, str], on_both: Sequence[str]) -> Check:
    bad, short = [], []
    for name, state in states.items():
        if state == SERVICE_MISSING:
            bad.append(f"{name} is not installed")
            short.append(f"{name} is missing")
        elif name in on_both and state != SERVICE_RUNNING:
            bad.append(f"{name} is not running (it runs on both nodes)")
            short.append(f"{name} is down")
    if bad:
        return Check("services", False, "; ".join(bad), ", ".join(short))
    return Check("services", True, f"services startable: {', '.join(states) or 'none'}")


def _cache(mine: Mapping[str, int] | None, master: Mapping[str, int] | None) -> Check:
    if mine is None:
        return Check("conntrack cache", False, "conntrackd does not answer (conntrackd -s)",
                     "conntrackd is mute")
    if master is None:
        return Check("conntrack cache", True,
                     f"external cache {mine['external']} (the master's count is unknown)")
    wanted = master["internal"]
    lacking = wanted - mine["external"]
    allowed = max(CACHE_SLACK_MIN, int(wanted * CACHE_SLACK))
    detail = f"external cache {mine['external']} of the master's {wanted} connections"
    return Check("conntrack cache", lacking <= allowed, detail, f"cache {mine['external']}/{wanted}")


def _queues(master: Mapping[str, Any] | None) -> list[Check]:
    if master is None:
        return []
    sync = master.get("sync") or {}
    checks = []
    pending = sync.get("pending_changes")
    if sync.get("running"):
        if pending or sync.get("needs_reconcile"):
            what = f"{pending} change(s) not pushed yet" if pending else "a whole-tree compare is due"
            checks.append(Check("sync queue", False, f"the master's sync: {what}", "sync behind"))
        else:
            checks.append(Check("sync queue", True, "the master's sync is in step"))
    queued = master.get("replication_queue")
    if queued is not None:
        checks.append(Check("replication queue", not queued,
                            f"{queued} command(s) not replayed yet" if queued
                            else "no command waits for replay", f"{queued} queued"))
    return checks


def handed_over(master: Mapping[str, Any]) -> dict[str, Any]:
    """The master's ``standby`` facts as they will read once it has handed over what it is
    handing over now: no change waiting to be pushed, no command waiting to be replayed."""
    sync = master.get("sync")
    return {**master, "replication_queue": None if master.get("replication_queue") is None else 0,
            "sync": {**sync, "pending_changes": 0, "needs_reconcile": False} if sync else sync}


def last_sync(master: Mapping[str, Any] | None) -> float | None:
    sync = (master or {}).get("sync") or {}
    times = [t for t in (sync.get("last_push"), sync.get("last_reconcile")) if t]
    return max(times) if times else None


def readiness(hostname: str, role: Role, services: Mapping[str, bool], standby: Mapping[str, Any],
              master: Mapping[str, Any] | None, *, on_both: Sequence[str] = ()) -> Readiness:
    """This node's readiness to take over. ``standby``: its own facts (conntrack counters,
    links, services); ``master``: the master's (its cache, its queues), None when this node
    is the master or the master's are not known."""
    counters = standby.get("conntrack")
    checks = [
        _running(services, "keepalived", "keepalived"),
        _running(services, "conntrackd", "conntrackd"),
        _running(services, "agent", "the skutui agent"),
        Check("maintenance", role is not Role.MAINTENANCE,
              "in maintenance: it does not take over" if role is Role.MAINTENANCE
              else "not in maintenance", "maintenance"),
        _links(standby.get("links") or {}),
        _services(standby.get("services") or {}, on_both),
    ]
    if role is not Role.MASTER:
        if services.get("conntrackd"):  # else its own check says why it holds nothing
            checks.append(_cache(counters, (master or {}).get("conntrack")))
        checks += _queues(master)
    return Readiness(hostname, role, tuple(checks), dict(counters or {}),
                     last_sync(master if role is not Role.MASTER else standby))


def not_ready_message(readiness: Readiness, also: str = "") -> str:
    """Short: the node table's message column is narrow on 80 columns (the reasons in full
    are ``reasons``, on the readiness screen and in ``skutui readiness``). ``also``: what
    the node's digest found it not ready for (its services), after the same words."""
    shorts = [check.short or check.name for check in readiness.checks if not check.ok]
    return NOT_READY + ", ".join([*shorts, *([also] if also else [])])


def drift_message(count: int) -> str:
    return f"Config drift: {count} file{'s' if count != 1 else ''}"
