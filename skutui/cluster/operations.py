"""The operations API, implemented once: the console and the command line both call
:class:`ClusterOperations`.

It reaches for nothing itself: the hostname, this node's and the peer's NodeOps, address
discovery, the link names, the VRRP probe, the host-key fetcher and the key exchange are
constructor arguments. :func:`production` is the one place the real machine and the real
peer are wired in; tests hand fakes instead and run without root.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from skutui import __version__
from skutui.cluster import drill, lifecycle, peering, preflight
from skutui.cluster.api import ClusterStatus
from skutui.cluster.events import EventFollower
from skutui.cluster.lifecycle import no_progress
from skutui.cluster.nodeops import LocalNodeOps, LocalOps, NodeOps, RemoteNodeOps
from skutui.cluster.preflight import Authenticate, Checked, Contacted, RoutersHeard
from skutui.cluster.rows import after_hand_over, node_rows, read_while_catching_up, readiness_of
from skutui.cluster.transaction import finish_interrupted, locked, reason, transaction
from skutui.domain import drill as drill_plan
from skutui.domain import history, validation
from skutui.domain.drift import Drift, compare
from skutui.domain.errors import Failed
from skutui.domain.model import ClusterConfig, InterfaceAddress, Role
from skutui.domain.paths import Paths
from skutui.domain.readiness import Readiness
from skutui.domain.syncplan import synced_roots
from skutui.domain.wire import (
    CheckResult,
    CreateRequest,
    EditRequest,
    Event,
    NodeRow,
    NodeSide,
    Progress,
    RekeyRequest,
    Timeline,
)
from skutui.system import control, net, vrrp_probe
from skutui.system.change import Change
from skutui.system.node import LocalNode, NodeFacts

NODES_TIMEOUT_MIN = 2.0
"""Seconds the node table waits at least for the peer's facts (else twice the check interval)."""
STATUS_TIMEOUT = 2.0
"""Seconds ``status`` waits for the peer's facts before it shows the peer unreachable."""
NO_CLUSTER = "No cluster is configured on this node."
PUSH_TIMEOUT = 300.0
"""Seconds a push of the master's copy may take (a whole compare, then what differs)."""
HISTORY_TIMEOUT = 15.0
"""Seconds the timeline waits for the peer's history before it shows this node's alone."""

RemoteFactory = Callable[[str, str], RemoteNodeOps]
"""(peer's address, its name) -> the peer's NodeOps; the connection is opened on first use."""
Addresses = Callable[[], Awaitable[list[InterfaceAddress]]]
Links = Callable[[], Awaitable[list[str]]]
FetchHostKey = Callable[[str], Awaitable[str]]
"""Peer's address -> the SHA256 fingerprint of the host key it offers; nothing is trusted."""
Rekey = Callable[[str, str, RekeyRequest, Progress], Awaitable[list[str]]]
"""(this node's address, the peer's, request, progress) -> what was done, one line each."""


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
    rekey: Rekey


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
        rekey=functools.partial(peering.rekey, paths, timeout),
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
                 authenticate: Authenticate | None = None,
                 rekey: Rekey | None = None):
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
        self._rekey = rekey or real.rekey
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
        links = (lifecycle.link_address(contacted.local_inventory, config.interface),
                 lifecycle.link_address(contacted.remote_inventory, config.interface))
        await lifecycle.create(self.local, contacted.remote, config, progress, links)
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
        linked = bool(set(lifecycle.LINKED_SETTINGS) & set(request.changes))
        links = await self._links() if linked else None
        updated, lines = lifecycle.edited(config, request.changes, self.hostname(), links)
        if linked and lifecycle.named_links(updated):
            # Checked here first: input that is wrong anyway never reaches the peer.
            try:
                peer_links = (await remote.inventory()).get("links")
            except Exception as exc:  # noqa: BLE001 - the edit needs the peer anyway
                raise Failed(f"Cannot ask {remote.name} for its links: {reason(exc)}; an edit "
                             "changes both nodes, so the peer must answer.") from None
            updated, lines = lifecycle.edited(config, request.changes, self.hostname(), links,
                                              peer_links)
        if lines:
            await lifecycle.edit(self.local, remote, updated, progress)
        return lines

    async def destroy(self, progress: Progress = no_progress) -> list[str]:
        _, remote = await self._require_master()
        warnings = await lifecycle.destroy(self.local, remote, progress)
        await self.close()
        return warnings

    async def rekey(self, request: RekeyRequest, progress: Progress = no_progress) -> list[str]:
        """New SSH keys for both nodes (and, when asked, the peer's host key and both nodes'
        link-layer addresses pinned again); either node may run it, the peer must answer."""
        config = await self.cluster()
        if config is None:
            raise Failed(NO_CLUSTER)
        if request.host_key_fingerprint is not None:
            validation.host_key_fingerprint(request.host_key_fingerprint)
        me = config.node(self.hostname())
        peer = config.peer_of(me.hostname)
        done = await self._rekey(me.ip, peer.ip, request, progress)
        if request.link_address:
            remote = self._peer_ops(peer.ip, peer.hostname)
            ours_first = dataclasses.replace(config, nodes=(me, peer))
            await transaction(
                [self.local, remote],
                lambda: lifecycle.repin_link_addresses(self.local, remote, ours_first, progress),
                progress, stop_first=False,
                change=Change("cluster rekey --link-address", self.hostname(),
                              peer=remote.name, peer_ip=peer.ip))
            done.append(f"the link-layer addresses of {me.hostname} and {peer.hostname} "
                        "pinned again")
        return done

    async def set_maintenance(self, node: NodeSide, on: bool, force: bool = False) -> str:
        """Maintenance on or off for ``node``. On a master, only when the other node can take
        the floating IPs over (else Refused, unless ``force``): the other node commits the
        connection state and takes them over first, then this one enters maintenance."""
        config = await self.cluster()
        if config is None:
            raise Failed(NO_CLUSTER)
        remote = self._peer_of(config)
        ops, other = (self.local, remote) if node == "local" else (remote, self.local)
        change = Change(f"maintenance {'on' if on else 'off'} for {ops.name}", self.hostname(),
                        peer=remote.name)
        async with locked([self.local, remote], change, unreachable_ok=node == "local"):
            return await self._maintenance(config, node, ops, other, on, force)

    async def _maintenance(self, config: ClusterConfig, node: NodeSide, ops: NodeOps,
                           other: NodeOps, on: bool, force: bool) -> str:
        if not on:
            return await ops.set_maintenance(False)
        target, taker = await self._maintenance_sides(config, node, force)
        if target.role is not Role.MASTER:
            done = await ops.set_maintenance(True)
            if taker.role is Role.MASTER:
                return lifecycle.maintenance_standby(done, taker.hostname, target.hostname)
            return done
        refusal = lifecycle.takeover_refusal(taker)
        if refusal:
            if not force:
                raise lifecycle.maintenance_refused(config, target.hostname, refusal)
            return lifecycle.maintenance_forced(config, await ops.set_maintenance(True), refusal)
        await other.commit_connections()
        seconds = await ops.hand_over(lifecycle.handover_timeout(config, taker.hostname))
        return lifecycle.maintenance_handed_over(config, await ops.set_maintenance(True),
                                                 taker.hostname, seconds)

    async def _maintenance_sides(self, config: ClusterConfig, node: NodeSide,
                                 force: bool) -> tuple[NodeRow, NodeRow]:
        """The rows of ``node`` and of the other node. While ``node`` is the master and the
        other could take over but for what the master is handing over now, read again until
        it can."""
        other: NodeSide = "remote" if node == "local" else "local"
        Seen = tuple[NodeFacts, NodeFacts | BaseException, dict[str, NodeRow]]

        async def read() -> Seen:
            local, remote = await self._facts(config, STATUS_TIMEOUT)
            return local, remote, {row.node: row for row in self._node_rows(config, local, remote)}

        def catching_up(seen: Seen) -> bool:
            local, remote, rows = seen
            if (force or rows[node].role is not Role.MASTER or isinstance(remote, BaseException)
                    or not lifecycle.takeover_refusal(rows[other])):
                return False
            if node == "local":
                local = after_hand_over(local)
            else:
                remote = after_hand_over(remote)
            after = {row.node: row for row in self._node_rows(config, local, remote)}
            return not lifecycle.takeover_refusal(after[other])

        rows = (await read_while_catching_up(read, catching_up))[2]
        return rows[node], rows[other]

    async def finish_interrupted(self, progress: Progress = no_progress) -> str | None:
        """Roll back a change this node started that was killed before it could (see
        :func:`~skutui.cluster.transaction.finish_interrupted`); what was done, or None."""
        return await finish_interrupted(self.local, self._peer_ops, progress)

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
        return self._node_rows(config, *await self._facts(config, timeout))

    async def _facts(self, config: ClusterConfig, timeout: float
                     ) -> tuple[NodeFacts, NodeFacts | BaseException]:
        """Both nodes' facts, read side by side; the peer's is what kept it from answering
        within ``timeout`` when it did not."""
        peer = self._peer_of(config)
        local, remote = await asyncio.gather(
            self.local.facts(), asyncio.wait_for(peer.facts(), timeout), return_exceptions=True)
        if isinstance(local, BaseException):
            raise local
        return local, remote

    def _node_rows(self, config: ClusterConfig, local: NodeFacts,
                   remote: NodeFacts | BaseException) -> list[NodeRow]:
        me = config.node(self.hostname())
        return node_rows(me, config.peer_of(me.hostname), local, remote)

    async def history(self, since: float | None = None, kinds: list[str] | None = None) -> Timeline:
        local = await self.local.history(since, kinds)
        config = await self._config_or_none()
        if config is None or self.hostname() not in (n.hostname for n in config.nodes):
            return Timeline(history.merge(local))
        peer = self._peer_of(config)
        try:
            remote = await asyncio.wait_for(peer.history(since, kinds), HISTORY_TIMEOUT)
        except (Failed, TimeoutError) as exc:
            reason = str(exc) or f"no answer within {HISTORY_TIMEOUT:g} s"
            return Timeline(history.merge(local), {peer.name: reason})
        return Timeline(history.merge(local, remote))

    # --- what both nodes hold, and whether the backup could take over ------------------------

    async def verify_sync(self) -> Drift:
        config = await self.cluster()
        if config is None:
            raise Failed(NO_CLUSTER)
        me = self.hostname()
        peer = config.peer_of(me)
        roots, _refused = synced_roots(config.synced_paths, self.paths.config_root)
        names = [str(root) for root in roots]
        excluded = [str(self.paths.local_dir)]
        here, there = await asyncio.gather(self.local.manifest(names, excluded),
                                           self._peer_of(config).manifest(names, excluded))
        master = await self.is_master()
        if master:
            await asyncio.to_thread(_ask_agent, self.paths, "drift")  # the table follows
        return Drift(me, peer.hostname, me if master else peer.hostname, tuple(names),
                     time.time(), tuple(compare(here, there, me, peer.hostname)))

    async def push_sync(self, progress: Progress = no_progress) -> Drift:
        config, _remote = await self._require_master()
        peer = config.peer_of(self.hostname()).hostname
        progress(f"Sending {self.hostname()}'s copy of every synced file that differs to {peer}")
        answer = await asyncio.to_thread(_ask_agent, self.paths, "push", PUSH_TIMEOUT)
        if answer is None:
            raise Failed("the skutui agent is not running on this node, and it is the one that "
                         "pushes; start it with `skutui node start`")
        if not answer.get("ok"):
            raise Failed(f"the push to {peer} failed: {answer.get('error')}")
        progress(f"Comparing again with {peer}")
        return await self.verify_sync()

    async def drill(self, progress: Progress = no_progress) -> dict[str, Any]:
        config, remote = await self._require_master()
        me = self.hostname()
        peer = config.peer_of(me).hostname

        async def record(data: dict[str, Any]) -> None:
            """This node's agent writes it (and tells the hooks); the peer gets a copy."""
            message = drill_plan.message(data["legs"])
            level = "info" if data["ok"] else "warning"
            event = {"time": history.iso(time.time()), "node": me, "kind": history.DRILL,
                     "level": level, "message": message, "data": data}
            copy = history.record_of(event, 0)
            posted = await asyncio.to_thread(control.post_event, self.paths.control_socket,
                                             history.DRILL, message, level=level, **data)
            if not posted:
                await self.local.put_history([copy])
            try:
                await remote.put_history([copy])
            except Failed as exc:
                progress(f"The drill's record is not on {peer}: {exc}")

        return await drill.run(self.local, remote, config, me, peer, progress, record)

    async def readiness(self) -> list[Readiness]:
        config = await self.cluster()
        if config is None:
            return []
        local, remote = await self._facts(config, max(NODES_TIMEOUT_MIN, 2 * config.check_interval))
        if isinstance(remote, BaseException):
            return [readiness_of(local, None)]
        return [readiness_of(local, remote), readiness_of(remote, local)]

    def events(self) -> AsyncIterator[Event]:
        return EventFollower(self.paths.control_socket, self._config_or_none,
                             self._peer_of).events()

    async def _config_or_none(self) -> ClusterConfig | None:
        try:
            return await self.cluster()
        except Exception:  # noqa: BLE001 - a broken cluster.toml is shown by cluster()
            return None


def _ask_agent(paths: Paths, op: str, timeout: float = control.CLIENT_TIMEOUT) -> dict | None:
    """This node's agent asked ``op``; None when no agent runs here."""
    try:
        return control.request(paths.control_socket, op, timeout=timeout)
    except control.ControlError as exc:
        if "refused" in str(exc):
            return {"ok": False, "error": str(exc).split(": ", 1)[-1]}
        return None
    except OSError:
        return None


def build_service(paths: Paths) -> ClusterOperations:
    """What the console is handed in production, and what each command runs on."""
    return ClusterOperations(paths)
