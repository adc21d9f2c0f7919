"""The operations API both front ends call: the console is handed an object that satisfies
``ClusterService`` (production :class:`~skutui.cluster.operations.ClusterOperations`, UI
tests a fake from tests/), and the command line calls the same object. The contract suite
(tests/contract) runs the same scenarios against both."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from skutui.domain.drift import Drift
from skutui.domain.model import ClusterConfig, InterfaceAddress
from skutui.domain.readiness import Readiness
from skutui.domain.wire import (
    CheckResult,
    CreateRequest,
    EditRequest,
    Event,
    NodeRow,
    NodeSide,
    Progress,
    Timeline,
)


@dataclass(frozen=True)
class ClusterStatus:
    """What ``skutui status`` reports: this node, its cluster, and both nodes' rows."""

    hostname: str
    version: str
    config: ClusterConfig | None
    nodes: list[NodeRow] = field(default_factory=list)
    """Empty without a cluster; a peer that does not answer soon is shown unreachable."""


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

    async def validate(self, request: CreateRequest) -> None:
        """Raises ValidationError for the first wrong value; nothing is asked of the peer."""

    async def preflight(self, request: CreateRequest, progress: Progress) -> list[CheckResult]:
        """Every check in the order of ``preflight.check_names``; a peer that cannot be
        reached or logged in to ends the list."""

    async def create(self, request: CreateRequest, progress: Progress) -> ClusterConfig:
        """Pre-flight, erase the backup, configure and start both nodes; roll back on failure."""

    async def edit(self, request: EditRequest, progress: Progress) -> list[str]:
        """Apply to both nodes; returns one line per change made (empty: nothing changed)."""

    async def destroy(self, progress: Progress) -> list[str]:
        """Returns warnings: what could not be cleaned (the peer unreachable) and how to."""

    async def nodes(self) -> list[NodeRow]:
        """Local row first; the remote row never blocks the local one for long."""

    async def status(self) -> ClusterStatus: ...

    async def set_maintenance(self, node: NodeSide, on: bool, force: bool = False) -> str:
        """Returns what happened, e.g. "node-a is in maintenance; node-b … took over". On
        the master, raises Refused when the other node cannot take over, unless ``force``
        (then the message says the floating IPs are unserved)."""

    async def history(self, since: float | None = None, kinds: list[str] | None = None) -> Timeline:
        """Both nodes' records merged, oldest first; a peer that does not answer is named
        in ``missing`` and its records are left out."""

    async def verify_sync(self) -> Drift:
        """Every synced file compared on both nodes (hash, mode, owner); nothing is changed."""

    async def push_sync(self, progress: Progress) -> Drift:
        """The master's copy of every file that differs sent to the backup (master only);
        then compared again."""

    async def drill(self, progress: Progress) -> dict[str, Any]:
        """Hand the floating IPs to the backup and back, measuring the gaps (master only;
        refused, saying why, unless both nodes could play their part); the drill's record
        (``skutui.domain.drill``), kept in both nodes' history."""

    async def readiness(self) -> list[Readiness]:
        """Whether each node could take over now, this node first; a peer that does not
        answer is left out."""

    def events(self) -> AsyncIterator[Event]:
        """Live events from both nodes; the node table refreshes on each."""

    async def close(self) -> None:
        """Closes the kept connection to the peer; the next request opens it again."""
