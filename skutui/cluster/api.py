"""The operations API both front ends call: the console is handed an object that satisfies
``ClusterService`` (production the real one, UI tests a fake from tests/), and the command
line calls the same object."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol

from skutui.domain.model import ClusterConfig, InterfaceAddress
from skutui.domain.wire import CheckResult, CreateRequest, EditRequest, Event, NodeRow, NodeSide, Progress


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
