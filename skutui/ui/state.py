"""What the console knows about this node when it draws a screen, read in one go."""

from __future__ import annotations

from dataclasses import dataclass

from skutui.cluster.api import ClusterService
from skutui.domain.model import FAILBACK_DISABLED, ClusterConfig, Node
from skutui.domain.settings import FAILBACK_LOCAL, FAILBACK_REMOTE


@dataclass(frozen=True)
class ClusterView:
    hostname: str
    cluster: ClusterConfig | None
    is_master: bool

    @property
    def peer(self) -> Node | None:
        if self.cluster is None:
            return None
        try:
            return self.cluster.peer_of(self.hostname)
        except KeyError:
            return None

    @property
    def peer_hostname(self) -> str:
        peer = self.peer
        return peer.hostname if peer else "the peer"

    @property
    def taker(self) -> str:
        """The node that would take over: the backup (the peer, when this node is master)."""
        return self.peer_hostname if self.is_master else self.hostname

    @property
    def read_only_reason(self) -> str | None:
        """Why configuration cannot be changed here, or None on the master."""
        if self.cluster is None or self.is_master:
            return None
        return f"Read-only backup: Drill, Edit and Destroy work on the master {self.peer_hostname}."

    def failback_side(self) -> str:
        """The configured failback as the request speaks it: disabled, local or remote."""
        if self.cluster is None or self.cluster.failback == FAILBACK_DISABLED:
            return FAILBACK_DISABLED
        return FAILBACK_LOCAL if self.cluster.failback == self.hostname else FAILBACK_REMOTE


async def read_view(service: ClusterService) -> ClusterView:
    hostname = await service.local_hostname()
    cluster = await service.cluster()
    is_master = True if cluster is None else await service.is_master()
    return ClusterView(hostname=hostname, cluster=cluster, is_master=is_master)


def failback_options(hostname: str, peer: str | None) -> list[tuple[str, str]]:
    """The failback choices in the operator's words, with the value the request carries."""
    return [
        ("disabled", FAILBACK_DISABLED),
        (f"this node ({hostname})", FAILBACK_LOCAL),
        ("the peer" if peer is None else f"the peer ({peer})", FAILBACK_REMOTE),
    ]
