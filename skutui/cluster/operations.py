"""The operations API, implemented once: the console and the command line both call
:class:`ClusterOperations`.

It reaches for nothing itself: the hostname, this node's and the peer's NodeOps, address
discovery, the link names, the VRRP probe, the host-key fetcher and the key exchange are
constructor arguments. :func:`production` is the one place the real machine and the real
peer are wired in; tests hand fakes instead and run without root.
"""

from __future__ import annotations

import asyncio
import functools
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

from skutui import __version__
from skutui.cluster import lifecycle, peering, preflight
from skutui.cluster.api import ClusterStatus
from skutui.cluster.events import EventFollower
from skutui.cluster.lifecycle import no_progress
from skutui.cluster.nodeops import LocalNodeOps, LocalOps, RemoteNodeOps
from skutui.cluster.preflight import Authenticate, Checked, Contacted, RoutersHeard
from skutui.cluster.rows import node_rows
from skutui.domain import validation
from skutui.domain.errors import Failed
from skutui.domain.model import ClusterConfig, InterfaceAddress, Role
from skutui.domain.paths import Paths
from skutui.domain.wire import CheckResult, CreateRequest, EditRequest, Event, NodeRow, NodeSide, Progress
from skutui.system import net, vrrp_probe
from skutui.system.node import LocalNode

NODES_TIMEOUT_MIN = 2.0
"""Seconds the node table waits at least for the peer's facts (else twice the check interval)."""
STATUS_TIMEOUT = 2.0
"""Seconds ``status`` waits for the peer's facts before it shows the peer unreachable."""
NO_CLUSTER = "No cluster is configured on this node."

RemoteFactory = Callable[[str, str], RemoteNodeOps]
"""(peer's address, its name) -> the peer's NodeOps; the connection is opened on first use."""
Addresses = Callable[[], Awaitable[list[InterfaceAddress]]]
Links = Callable[[], Awaitable[list[str]]]
FetchHostKey = Callable[[str], Awaitable[str]]
"""Peer's address -> the SHA256 fingerprint of the host key it offers; nothing is trusted."""


@dataclass(frozen=True)
class Wiring:
    """Everything :class:`ClusterOperations` reaches for."""

    hostname: Callable[[], str]
    local: LocalNodeOps
    remote: RemoteFactory
    addresses: Addresses
    links: Links
    routers_heard: RoutersHeard
    fetch_host_key: FetchHostKey
    authenticate: Authenticate


def production(paths: Paths) -> Wiring:
    """The real machine and the real peer."""
    timeout = peering.CONNECT_TIMEOUT
    return Wiring(
        hostname=socket.gethostname,
        local=LocalOps(LocalNode(paths), socket.gethostname()),
        remote=functools.partial(peering.remote_ops, paths, timeout),
        addresses=net.discover_addresses,
        links=net.link_names,
        routers_heard=vrrp_probe.routers_heard,
        fetch_host_key=functools.partial(peering.host_key_fingerprint, connect_timeout=timeout),
        authenticate=functools.partial(peering.exchange_keys, paths, timeout),
    )


class ClusterOperations:
    """Each argument left out is :func:`production`'s."""

    def __init__(self, paths: Paths | None = None, *,
                 hostname: str | Callable[[], str] | None = None,
                 local: LocalNodeOps | None = None,
                 remote: RemoteFactory | None = None,
                 addresses: Addresses | None = None,
                 links: Links | None = None,
                 routers_heard: RoutersHeard | None = None,
                 fetch_host_key: FetchHostKey | None = None,
                 authenticate: Authenticate | None = None):
        self.paths = paths or Paths.from_env()
        real = production(self.paths)
        if isinstance(hostname, str):
            name = hostname
            self.hostname: Callable[[], str] = lambda: name
        else:
            self.hostname = hostname or real.hostname
        self.local = local or real.local
        self._connect = remote or real.remote
        self._addresses = addresses or real.addresses
        self._links = links or real.links
        self._routers_heard = routers_heard or real.routers_heard
        self._fetch_host_key = fetch_host_key or real.fetch_host_key
        self._authenticate = authenticate or real.authenticate
        self._remote: RemoteNodeOps | None = None
        self._remote_address: str | None = None
        self._dropped: list[RemoteNodeOps] = []

    # --- the peer ------------------------------------------------------------------------

    def _peer_ops(self, address: str, name: str) -> RemoteNodeOps:
        """The peer's NodeOps: one kept connection per address, reused by every request."""
        if self._remote is None or self._remote_address != address:
            if self._remote is not None:
                self._dropped.append(self._remote)
            self._remote = self._connect(address, name)
            self._remote_address = address
        self._remote.name = name
        return self._remote

    def _peer_of(self, config: ClusterConfig) -> RemoteNodeOps:
        peer = config.peer_of(self.hostname())
        return self._peer_ops(peer.ip, peer.hostname)

    async def close(self) -> None:
        dropped, self._dropped = self._dropped, []
        if self._remote is not None:
            dropped.append(self._remote)
            self._remote = self._remote_address = None
        for remote in dropped:
            await remote.close()

    # --- this node -----------------------------------------------------------------------

    async def local_hostname(self) -> str:
        return self.hostname()

    async def cluster_candidates(self) -> list[InterfaceAddress]:
        return validation.cluster_candidates(await self._addresses())

    async def link_names(self) -> list[str]:
        return await self._links()

    async def cluster(self) -> ClusterConfig | None:
        return await self.local.config()

    async def is_master(self) -> bool:
        return await self.local.role() is Role.MASTER

    # --- create --------------------------------------------------------------------------

    async def fetch_host_key(self, remote_ip: str) -> str:
        return await self._fetch_host_key(validation.ip_address(remote_ip, "remote_ip"))

    async def validate(self, request: CreateRequest) -> None:
        await self._check(request)

    async def _check(self, request: CreateRequest) -> Checked:
        return preflight.check_request(request, await self._addresses(), self.hostname())

    async def preflight(self, request: CreateRequest, progress: Progress = no_progress
                        ) -> list[CheckResult]:
        return (await self._preflight(request, progress))[0]

    async def _preflight(self, request: CreateRequest, progress: Progress
                         ) -> tuple[list[CheckResult], Contacted | None]:
        checked = await self._check(request)
        return await preflight.run(
            checked, self.local, lambda address: self._peer_ops(address, address),
            self._authenticate, self._routers_heard, request, progress)

    async def create(self, request: CreateRequest, progress: Progress = no_progress) -> ClusterConfig:
        """Pre-flight again (the console ran it before asking to erase the peer, but either
        node may have changed since), then create; this node becomes master."""
        checks, contacted = await self._preflight(request, progress)
        failed = [c for c in checks if not c.passed]
        if failed:
            raise Failed("pre-flight failed: " + "; ".join(f"{c.name}: {c.detail}" for c in failed))
        assert contacted is not None
        config = lifecycle.new_config(contacted, str(self.paths.config_root))
        await lifecycle.create(self.local, contacted.remote, config, progress)
        return config

    # --- changes on an existing cluster ----------------------------------------------------

    async def _require_master(self) -> tuple[ClusterConfig, RemoteNodeOps]:
        config = await self.cluster()
        if config is None:
            raise Failed(NO_CLUSTER)
        remote = self._peer_of(config)
        if await self.local.role() is not Role.MASTER:
            peer = config.peer_of(self.hostname())
            raise Failed(
                f"This node ({self.hostname()}) is not the master; change the configuration on "
                f"the master {peer.hostname} ({peer.ip}).")
        return config, remote

    async def edit(self, request: EditRequest, progress: Progress = no_progress) -> list[str]:
        config, remote = await self._require_master()
        links = await self._links() if "tracked_interfaces" in request.changes else None
        updated, lines = lifecycle.edited(config, request.changes, self.hostname(), links)
        if lines:
            await lifecycle.edit(self.local, remote, updated, progress)
        return lines

    async def destroy(self, progress: Progress = no_progress) -> list[str]:
        _, remote = await self._require_master()
        warnings = await lifecycle.destroy(self.local, remote, progress)
        await self.close()
        return warnings

    async def set_maintenance(self, node: NodeSide, on: bool) -> str:
        config = await self.cluster()
        if config is None:
            raise Failed(NO_CLUSTER)
        ops = self.local if node == "local" else self._peer_of(config)
        return await ops.set_maintenance(on)

    # --- what the operator reads -----------------------------------------------------------

    async def nodes(self) -> list[NodeRow]:
        config = await self.cluster()
        if config is None:
            return []
        return await self._rows(config, max(NODES_TIMEOUT_MIN, 2 * config.check_interval))

    async def status(self) -> ClusterStatus:
        config = await self.cluster()
        hostname = self.hostname()
        placed = config is not None and hostname in (n.hostname for n in config.nodes)
        rows = await self._rows(config, STATUS_TIMEOUT) if config is not None and placed else []
        return ClusterStatus(hostname, __version__, config, rows)

    async def _rows(self, config: ClusterConfig, timeout: float) -> list[NodeRow]:
        me = config.node(self.hostname())
        peer = config.peer_of(me.hostname)
        remote = self._peer_ops(peer.ip, peer.hostname)
        local_facts, remote_facts = await asyncio.gather(
            self.local.facts(), asyncio.wait_for(remote.facts(), timeout), return_exceptions=True)
        if isinstance(local_facts, BaseException):
            raise local_facts
        return node_rows(me, peer, local_facts, remote_facts)

    def events(self) -> AsyncIterator[Event]:
        return EventFollower(self.paths.control_socket, self._config_or_none,
                             self._peer_of).events()

    async def _config_or_none(self) -> ClusterConfig | None:
        try:
            return await self.cluster()
        except Exception:  # noqa: BLE001 - a broken cluster.toml is shown by cluster()
            return None


def build_service(paths: Paths) -> ClusterOperations:
    """What the console is handed in production, and what each command runs on."""
    return ClusterOperations(paths)
