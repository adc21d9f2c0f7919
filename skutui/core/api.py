"""The service boundary between the console (or CLI) and the work.

The console is handed an object that satisfies ``ClusterService``; production passes the
real one (SSH, netlink, daemons), UI tests pass a fake from tests/. Everything crossing the
boundary is a small frozen dataclass from here or from ``model``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Literal, Protocol

from skutui.core.model import ClusterConfig, InterfaceAddress, Role, Status

NodeSide = Literal["local", "remote"]
Progress = Callable[[str], None]
"""Receives one plain line per step as long work goes on."""


@dataclass(frozen=True)
class CreateRequest:
    local_ip: str
    remote_ip: str
    password: str = field(repr=False)
    """Used once to install keys; never stored, logged or shown."""
    floating_ips: tuple[str, ...] = ()
    check_interval: float | None = None
    failback: str = "disabled"
    """``disabled``, ``local`` or ``remote``."""
    host_key_fingerprint: str | None = None
    """The peer key the operator accepted (``SHA256:…``); None only with trust_new_host_key."""
    trust_new_host_key: bool = False


@dataclass(frozen=True)
class CheckResult:
    name: str
    passed: bool
    detail: str
    """What was found, e.g. "skutui 0.1.0 on both"."""
    hint: str = ""
    """One line on how to fix it, when it failed."""


@dataclass(frozen=True)
class EditRequest:
    check_interval: float | None = None
    failback: str | None = None
    tracked_interfaces: tuple[str, ...] | None = None
    floating_ips: tuple[str, ...] | None = None


@dataclass(frozen=True)
class NodeRow:
    node: NodeSide
    role: Role
    ip: str
    hostname: str
    status: Status
    message: str

    @property
    def colour(self) -> str:
        return self.status.colour


@dataclass(frozen=True)
class Event:
    """Something that happened on a node: a role change, a sync push, a peer going away…"""

    kind: str
    node: NodeSide
    message: str


class ServiceError(Exception):
    """A failure the operator must read: the message names what, the value and the fix."""


class Interrupted(ServiceError):
    """The operator stopped an operation (Ctrl+C); the message says what was undone."""


class ClusterService(Protocol):
    async def local_hostname(self) -> str: ...

    async def cluster_candidates(self) -> list[InterfaceAddress]:
        """Addresses that may serve as this node's cluster IP (no loopback, no aliases)."""

    async def link_names(self) -> list[str]: ...

    async def cluster(self) -> ClusterConfig | None:
        """The configured cluster, or None when this node has none."""

    async def is_master(self) -> bool:
        """Configuration is only changed on the master; the backup console is read-only."""

    async def fetch_host_key(self, remote_ip: str) -> str:
        """The peer's SHA256 host-key fingerprint, for the operator to accept."""

    async def preflight(self, request: CreateRequest, progress: Progress) -> list[CheckResult]: ...

    async def create(self, request: CreateRequest, progress: Progress) -> None:
        """Pre-flight, erase the backup, configure and start both nodes; roll back on failure."""

    async def edit(self, request: EditRequest, progress: Progress) -> list[str]:
        """Apply to both nodes; returns one line per change made (empty: nothing changed)."""

    async def destroy(self, progress: Progress) -> None: ...

    async def nodes(self) -> list[NodeRow]:
        """Local row first; the remote row never blocks the local one for long."""

    async def set_maintenance(self, node: NodeSide, on: bool) -> str:
        """Returns the message to show, e.g. "node-a is now in maintenance"."""

    def events(self) -> AsyncIterator[Event]:
        """Live events from both nodes; the node table refreshes on each."""
