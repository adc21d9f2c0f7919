"""The cluster lifecycle, run on the node the operator is on: pre-flight, create, edit,
destroy, maintenance and the node table.

Both nodes are driven through the same :class:`~skutui.cluster.nodeops.NodeOps`; the peer over one
kept SSH connection. Every change to both nodes is snapshotted first and rolled back as a
whole when any step fails or the operator interrupts it.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from dataclasses import dataclass
import socket
import stat
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from skutui.domain import settings, validation
from skutui.domain.errors import ValidationError
from skutui.domain.errors import Failed, Interrupted
from skutui.domain.wire import (CheckResult, CreateRequest, EditRequest, NodeRow, NodeSide,
                                Progress)
from skutui.domain.digest import NodeFacts as DigestFacts
from skutui.domain.digest import digest
from skutui.domain.model import ClusterConfig, InterfaceAddress, Node, Role
from skutui.domain.paths import Paths
from skutui.domain.render import vrrp_priority
from skutui.domain.values import format_seconds
from skutui.system.node import LocalNode, NodeFacts
from skutui.cluster.nodeops import LocalOps, NodeOps, RemoteOps

CLOCK_SKEW_MAX = 5.0
"""Seconds two nodes' clocks may differ before pre-flight fails (logs and certificates)."""
ELECTION_MARGIN = 5.0
"""Seconds allowed beyond keepalived's own 3 x advert interval for a node to settle."""
STATUS_TIMEOUT_MIN = 2.0
NOTIFY_MARGIN = 1.0
"""Seconds from a keepalived transition until the role file says it (the agent writes it
when keepalived's notify FIFO line comes, keepalived's hook when no agent runs)."""


def no_progress(line: str) -> None:
    pass


def _hostname() -> str:
    return socket.gethostname()


@dataclass(frozen=True)
class Checked:
    """A create request whose values are checked, before the peer is contacted."""

    local: InterfaceAddress
    remote_ip: str
    settings: dict[str, Any]
    """As ``settings.check_all`` gives them; failback may still be the word ``remote``."""


@dataclass(frozen=True)
class Contacted:
    """What pre-flight learnt, for create to go on from."""

    checked: Checked
    local_inventory: dict[str, Any]
    remote_inventory: dict[str, Any]
    remote: RemoteOps


class Lifecycle:
    def __init__(self, paths: Paths | None = None, local: LocalNode | None = None,
                 connect_timeout: float = 10.0):
        self.paths = paths or Paths.from_env()
        self.local_node = local or LocalNode(self.paths)
        self.local = LocalOps(self.local_node, _hostname())
        self.connect_timeout = connect_timeout
        self._peer = None
        self._peer_host: str | None = None
        self._remote_ops: RemoteOps | None = None

    # --- the peer connection ---------------------------------------------------------------

    def peer(self, host: str, connect_timeout: float | None = None):
        """The kept connection to ``host``; one per peer, reused by every request."""
        from skutui.peer import PeerConnection

        if self._peer is None or self._peer_host != host:
            self._peer = PeerConnection(host, paths=self.paths,
                                        connect_timeout=connect_timeout or self.connect_timeout)
            self._peer_host = host
        return self._peer

    async def close(self) -> None:
        if self._peer is not None:
            await self._peer.close()
            self._peer = None

    def configured(self) -> ClusterConfig | None:
        return self.local_node.config()

    def _remote(self, config: ClusterConfig, timeout: float | None = None) -> RemoteOps:
        peer_node = config.peer_of(_hostname())
        peer = self.peer(peer_node.ip, timeout)
        ops = self._remote_ops
        if ops is None or ops.peer is not peer or ops.name != peer_node.hostname:
            ops = self._remote_ops = RemoteOps(peer, peer_node.hostname)
        return ops

    # --- first contact -------------------------------------------------------------------

    async def fetch_host_key(self, remote_ip: str):
        from skutui.peer import fetch_host_key

        remote_ip = validation.ip_address(remote_ip, "remote_ip")
        return await fetch_host_key(remote_ip, connect_timeout=self.connect_timeout)

    async def validate(self, request: CreateRequest) -> Checked:
        """Every value of ``request`` checked, against this node's addresses too: raises
        ValidationError before anything is asked of the peer or changed on either node."""
        from skutui.system.net import discover_addresses

        if not request.password:
            raise ValidationError("password", "The remote root password is empty; enter it.")
        unknown = set(request.settings) - {s.key for s in settings.creatable()}
        if unknown:
            raise ValidationError(sorted(unknown)[0], f"{', '.join(sorted(unknown))} cannot be "
                                  "set at creation; change it with cluster edit afterwards.")
        addresses = await discover_addresses()
        floating = request.settings.get("floating_ips", ())
        local = validation.local_ip(request.local_ip, addresses, floating)
        remote_ip = validation.remote_ip(request.remote_ip, local)
        given = settings.check_all(request.settings, settings.Context(
            local=_hostname(), node_ips=(local.address, remote_ip)))
        if request.host_key_fingerprint is not None:
            validation.host_key_fingerprint(request.host_key_fingerprint)
        return Checked(local, remote_ip, given)

    async def _authenticate(self, remote_ip: str, local_ip: str, request: CreateRequest,
                            progress: Progress) -> None:
        """Pin the peer's host key and exchange keys with the password, or change nothing."""
        from skutui.peer import KnownHosts, authorize_key_locally, install_keys, local_host_key

        offered = await self.fetch_host_key(remote_ip)
        progress(f"Host key of {remote_ip}: {offered.fingerprint}")
        kept = _FileGuard([self.paths.known_hosts, self.paths.private_key,
                           Path(str(self.paths.private_key) + ".pub")])
        try:
            KnownHosts(self.paths.known_hosts).pin(
                offered, expected_fingerprint=request.host_key_fingerprint,
                trust_new=request.trust_new_host_key)
            progress(f"Installing this node's key on {remote_ip} (the password is used once)")
            keys = await install_keys(remote_ip, request.password, our_address=local_ip,
                                      our_host_key=local_host_key(), paths=self.paths,
                                      connect_timeout=self.connect_timeout)
            await asyncio.to_thread(authorize_key_locally, keys.peer_public_key)
        except BaseException:
            kept.restore()
            raise

    # --- pre-flight ----------------------------------------------------------------------

    async def preflight(self, request: CreateRequest, progress: Progress = no_progress) -> list[CheckResult]:
        """Every check, each with its own result; nothing on either node is changed
        (the key exchange aside, which authentication needs)."""
        return (await self._preflight(request, progress))[0]

    async def _preflight(self, request: CreateRequest, progress: Progress
                         ) -> tuple[list[CheckResult], Contacted | None]:
        checked = await self.validate(request)
        local, remote_ip = checked.local, checked.remote_ip
        interval = checked.settings.get("check_interval", settings.CHECK_INTERVAL.default)
        router_id = checked.settings.get("virtual_router_id", settings.VIRTUAL_ROUTER_ID.default)
        checks: list[CheckResult] = []
        local_inv = await self.local.inventory()
        checks.append(CheckResult(
            "No cluster on this node", not local_inv["configured"],
            "this node has no cluster yet" if not local_inv["configured"]
            else f"{local_inv['hostname']} already belongs to a cluster",
            "" if not local_inv["configured"] else "destroy the existing cluster first"))
        progress(f"Connecting to {remote_ip}")
        try:
            await self._authenticate(remote_ip, local.address, request, progress)
            remote = RemoteOps(self.peer(remote_ip), remote_ip)
            remote_inv = await remote.inventory()
        except Exception as exc:  # noqa: BLE001 - reported as the failing check
            checks.append(CheckResult("Peer reachable and authenticated", False, _message(exc),
                                      "fix the connection, then run the checks again"))
            return checks, None
        remote.name = remote_inv["hostname"]
        checks.append(CheckResult("Peer reachable and authenticated", True,
                                  f"logged in to {remote_ip} ({remote_inv['hostname']}) with skutui's key"))
        checks += _compare(local, remote_ip, local_inv, remote_inv)
        progress(f"Listening for other VRRP routers for {format_seconds(3 * interval)} s")
        checks.append(await _router_id_check(local.address, remote_ip, interval, router_id))
        return checks, Contacted(checked, local_inv, remote_inv, remote)

    # --- create --------------------------------------------------------------------------

    async def create(self, request: CreateRequest, progress: Progress = no_progress) -> ClusterConfig:
        """Pre-flight, erase the backup, configure and start both nodes; this node becomes
        master. Any failure, or an interruption, rolls both nodes back as they were."""
        checks, contacted = await self._preflight(request, progress)
        failed = [c for c in checks if not c.passed]
        if failed:
            raise Failed("pre-flight failed: " + "; ".join(f"{c.name}: {c.detail}" for c in failed))
        assert contacted is not None
        checked, remote = contacted.checked, contacted.remote
        local, remote_ip = checked.local, checked.remote_ip
        context = settings.Context(local=contacted.local_inventory["hostname"],
                                   remote=contacted.remote_inventory["hostname"])
        chosen = settings.check_all(checked.settings, context)
        config = ClusterConfig(
            interface=local.interface,
            nodes=(Node(context.local, local.address), Node(context.remote, remote_ip)),
            synced_paths=(str(self.paths.config_root),),
            **chosen,
        )
        interval = config.check_interval
        failback = config.failback
        validation.validate_config(config)

        async def steps() -> None:
            progress(f"Erasing the cluster configuration of {remote.name}")
            await remote.erase()
            progress(f"Writing the configuration on {self.local.name}")
            await self.local.apply(config)
            progress(f"Writing the configuration on {remote.name}")
            await remote.apply(config)
            progress(f"Starting {self.local.name}")
            await self.local.start()
            await _wait_role(self.local, Role.MASTER, interval, progress)
            progress(f"Starting {remote.name}")
            await remote.start()
            expected = Role.MASTER if failback == remote.name else Role.BACKUP
            await _wait_role(remote, expected, interval, progress)
            local_expected = Role.BACKUP if expected is Role.MASTER else Role.MASTER
            await _wait_role(self.local, local_expected, interval,
                             progress if local_expected is Role.BACKUP else no_progress)
            # The peer starts as backup whatever it hears: only a whole master-down interval
            # without turning master shows that it hears this node's adverts.
            hold = _master_down(config, remote.name) + NOTIFY_MARGIN
            progress(f"Checking for {format_seconds(hold)} s that {remote.name} hears "
                     f"{self.local.name}")
            await _hold_roles([(self.local, local_expected), (remote, expected)], hold,
                              interval, (local.address, remote_ip))

        await _transaction([self.local, remote], steps, progress)
        progress(f"Cluster created: {self.local.name} and {remote.name}")
        return config

    # --- changes on an existing cluster ----------------------------------------------------

    async def _require_master(self) -> tuple[ClusterConfig, RemoteOps]:
        config = self.configured()
        if config is None:
            raise Failed("No cluster is configured on this node.")
        remote = self._remote(config)
        if self.local_node.role() is not Role.MASTER:
            peer = config.peer_of(_hostname())
            raise Failed(
                f"This node ({_hostname()}) is not the master; change the configuration on "
                f"the master {peer.hostname} ({peer.ip}).")
        return config, remote

    async def edit(self, request: EditRequest, progress: Progress = no_progress) -> list[str]:
        config, remote = await self._require_master()
        unknown = set(request.changes) - {s.key for s in settings.editable()}
        if unknown:
            raise ValidationError(sorted(unknown)[0], f"{', '.join(sorted(unknown))} cannot be "
                                  "changed on a running cluster.")
        links = None
        if "tracked_interfaces" in request.changes:
            from skutui.system.net import link_names

            links = await link_names()
        context = settings.Context.of(config, _hostname(), links)
        changes = settings.check_all(request.changes, context)
        updated = validation.validate_config(dataclasses.replace(config, **changes))
        lines = settings.changes(config, updated, context)
        if not lines:
            return []

        async def steps() -> None:
            for ops in (self.local, remote):
                progress(f"Applying on {ops.name}")
                await ops.apply(updated)
                await ops.reload()

        await _transaction([self.local, remote], steps, progress, stop_first=False)
        return lines

    async def destroy(self, progress: Progress = no_progress) -> list[str]:
        """Stop and erase both nodes, the backup first so it never takes over. Returns
        warnings (e.g. the peer could not be reached and must be cleaned by hand)."""
        config, remote = await self._require_master()
        warnings = []
        progress(f"Stopping and erasing {remote.name}")
        try:
            await remote.erase()
        except Exception as exc:  # noqa: BLE001 - this node is still cleaned
            warnings.append(f"{remote.name} was not cleaned ({_message(exc)}); run "
                            f"`skutui node erase` on it")
        progress(f"Stopping and erasing {self.local.name}")
        await self.local.erase()
        await self.close()
        return warnings

    async def set_maintenance(self, side: NodeSide, on: bool) -> str:
        config = self.configured()
        if config is None:
            raise Failed("No cluster is configured on this node.")
        ops: NodeOps = self.local if side == "local" else self._remote(config)
        return await ops.set_maintenance(on)

    # --- the node table ------------------------------------------------------------------

    async def nodes(self) -> list[NodeRow]:
        config = self.configured()
        if config is None:
            return []
        me = config.node(_hostname())
        peer = config.peer_of(me.hostname)
        timeout = max(STATUS_TIMEOUT_MIN, 2 * config.check_interval)
        remote = self._remote(config, timeout)
        local_facts, remote_facts = await asyncio.gather(
            self.local.facts(), _within(remote.facts(), timeout), return_exceptions=True)
        if isinstance(local_facts, BaseException):
            raise local_facts
        remote_reachable = not isinstance(remote_facts, BaseException)
        remote_role = remote_facts.role if remote_reachable else None
        rows = [_row("local", me, local_facts, True, remote_role)]
        rows.append(_row("remote", peer, remote_facts if remote_reachable else None,
                         remote_reachable, local_facts.role))
        from skutui.peer import HostKeyChanged

        if isinstance(remote_facts, HostKeyChanged):
            rows[-1] = dataclasses.replace(
                rows[-1], message=f"{rows[-1].message}: its SSH host key changed; nothing is sent until it is re-pinned")
        return rows


# --- helpers -------------------------------------------------------------------------------


class _FileGuard:
    """Remembers files as they were, and which of their folders were missing, to put them
    back if authentication fails: a refused password leaves no trace, not even a folder."""

    def __init__(self, paths: list[Path]):
        self.saved = {p: ((p.read_bytes(), stat.S_IMODE(p.stat().st_mode)) if p.exists() else None)
                      for p in paths}
        self.missing_dirs = sorted({d for p in paths for d in p.parents if not d.exists()},
                                   key=lambda d: len(d.parts), reverse=True)

    def restore(self) -> None:
        from skutui.system.files import write_bytes_atomic

        for path, saved in self.saved.items():
            if saved is None:
                path.unlink(missing_ok=True)
            elif not path.exists() or path.read_bytes() != saved[0]:
                write_bytes_atomic(path, *saved)
        for directory in self.missing_dirs:
            with contextlib.suppress(OSError):
                directory.rmdir()  # only if still empty


async def _within(awaitable: Awaitable, timeout: float):
    return await asyncio.wait_for(awaitable, timeout)


def _message(exc: BaseException) -> str:
    if isinstance(exc, asyncio.TimeoutError):
        return "no answer in time"
    return str(exc) or type(exc).__name__


async def _transaction(nodes: list[NodeOps], steps: Callable[[], Awaitable[None]],
                       progress: Progress, *, stop_first: bool = True) -> None:
    """Run ``steps``; on any failure put every node back as it was. ``stop_first``: stop
    both nodes before restoring either (a create); without it, nodes that still run as
    before only get their files back (an edit: no takeover)."""
    snapshots = [await node.snapshot() for node in nodes]
    try:
        await steps()
    except BaseException as exc:
        progress(f"Failed: {_message(exc)}")
        problems = await _roll_back(nodes, snapshots, progress, stop_first)
        if problems:
            raise Failed(f"{_message(exc)}; rollback incomplete: {'; '.join(problems)}") from None
        if isinstance(exc, (KeyboardInterrupt, asyncio.CancelledError)):
            raise Interrupted("interrupted; both nodes were rolled back as they were") from None
        raise Failed(f"{_message(exc)}; both nodes were rolled back as they were") from None


async def _roll_back(nodes: list[NodeOps], snapshots: list[dict], progress: Progress,
                     stop_first: bool) -> list[str]:
    problems = []
    # Stop both first: a half-started agent must not sync files onto a node already restored.
    for node in nodes if stop_first else ():
        try:
            await asyncio.shield(node.stop())
        except Exception:  # noqa: BLE001 - restore() below stops again and reports
            pass
    for node, snapshot in zip(reversed(nodes), reversed(snapshots)):
        progress(f"Rolling back {node.name}")
        for attempt in range(3):
            try:
                await asyncio.shield(node.restore(snapshot))
                break
            except Exception as exc:  # noqa: BLE001 - retried, then reported
                if attempt == 2:
                    problems.append(f"{node.name}: {_message(exc)}")
                else:
                    await asyncio.sleep(1)
    return problems


async def _wait_role(node: NodeOps, role: Role, interval: float, progress: Progress) -> None:
    deadline = asyncio.get_running_loop().time() + 3 * interval + ELECTION_MARGIN
    while True:
        facts = await node.facts()
        if facts.role is role:
            progress(f"{node.name} is {role.value}")
            return
        if asyncio.get_running_loop().time() > deadline:
            raise Failed(f"{node.name} did not become {role.value} (it is {facts.role.value})")
        await asyncio.sleep(min(interval, 0.2))


def _master_down(config: ClusterConfig, hostname: str) -> float:
    """keepalived's Master_Down_Interval for ``hostname``: after this long without an advert,
    a backup makes itself master (RFC 5798: 3 adverts plus a skew from its priority)."""
    skew = (256 - vrrp_priority(config, hostname)) / 256
    return (3 + skew) * config.check_interval


async def _hold_roles(expected: list[tuple[NodeOps, Role]], seconds: float, interval: float,
                      addresses: tuple[str, str]) -> None:
    """Every node keeps its expected role for ``seconds``; a change is the create's failure."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds

    async def wrong_roles() -> list[tuple[NodeOps, Role, Role]]:
        seen = [(node, role, (await node.facts()).role) for node, role in expected]
        return [(node, role, actual) for node, role, actual in seen if actual is not role]

    while True:
        wrong = await wrong_roles()
        if wrong and not any(actual is Role.MASTER for _, _, actual in wrong):
            # The master stepping down is often seen first: the node taking over shows it
            # once its role file says so. Look again before naming the cause.
            await asyncio.sleep(NOTIFY_MARGIN)
            wrong = await wrong_roles() or wrong
        for node, role, actual in wrong:
            if actual is Role.MASTER:
                raise Failed(
                    f"{node.name} made itself master instead of staying {role.value}: it does "
                    "not hear the other node's VRRP adverts, so both would hold the floating "
                    f"IPs (split brain); let IP protocol 112 (VRRP) pass between {addresses[0]} "
                    f"and {addresses[1]} in both directions")
        if wrong:
            node, role, actual = wrong[0]
            raise Failed(f"{node.name} turned {actual.value} instead of staying "
                               f"{role.value} while the cluster settled")
        if loop.time() > deadline:
            return
        await asyncio.sleep(min(interval, 0.2))


def _compare(local, remote_ip: str, mine: dict, theirs: dict) -> list[CheckResult]:
    checks = [
        CheckResult("Same skutui version", mine["version"] == theirs["version"],
                    f"{mine['version']} here, {theirs['version']} on the peer",
                    "install the same skutui version on both nodes"),
        CheckResult("Different hostnames", mine["hostname"] != theirs["hostname"],
                    f"{mine['hostname']} and {theirs['hostname']}",
                    "give each node its own hostname (hostnamectl set-hostname)"),
    ]
    nic = [a for a in theirs["addresses"] if a["address"] == remote_ip]
    same_nic = bool(nic) and nic[0]["interface"] == local.interface and nic[0]["label"] == nic[0]["interface"]
    found = f"{remote_ip} is on {nic[0]['label']}" if nic else f"{remote_ip} is not configured on the peer"
    checks.append(CheckResult(
        "Cluster NIC on the peer", same_nic, f"{found}; this node uses {local.interface}",
        f"put {remote_ip} on the peer's {local.interface} (not an alias)"))
    for daemon in ("keepalived", "conntrackd"):
        ok = bool(mine[daemon]) and bool(theirs[daemon])
        checks.append(CheckResult(
            f"{daemon} installed", ok,
            f"{mine[daemon] or 'missing'} here, {theirs[daemon] or 'missing'} on the peer",
            f"apt-get install {daemon} on the node that lacks it"))
    skew = abs(mine["time"] - theirs["time"])
    checks.append(CheckResult("Clocks agree", skew <= CLOCK_SKEW_MAX, f"{skew:.1f} s apart",
                              "synchronise both clocks (NTP)"))
    return checks


async def _router_id_check(local_ip: str, remote_ip: str, interval: float, vrid: int) -> CheckResult:
    from skutui.system.vrrp_probe import routers_heard

    name = f"Virtual router id {vrid} free"
    try:
        heard = await asyncio.to_thread(routers_heard, local_ip, 3 * interval)
    except OSError as exc:
        return CheckResult(name, False, f"cannot listen for VRRP: {exc}", "run skutui as root")
    others = sorted(src for src, heard_vrid in heard if heard_vrid == vrid and src not in (local_ip, remote_ip))
    if others:
        return CheckResult(name, False, f"already used by {', '.join(others)}",
                           "stop that router or choose another virtual router id")
    return CheckResult(name, True, f"no other router uses it ({len(heard)} adverts heard)")


def _row(side: NodeSide, node: Node, facts: NodeFacts | None, reachable: bool,
         other_role: Role | None) -> NodeRow:
    if facts is None:
        result = digest(DigestFacts(role=Role.UNKNOWN, services={}, reachable=False), other_role)
        return NodeRow(side, Role.UNKNOWN, node.ip, node.hostname, result.status, result.message)
    result = digest(
        DigestFacts(role=facts.role, services=facts.services, reachable=reachable,
                    holds_floating_ips=facts.holds_floating_ips),
        other_role)
    return NodeRow(side, facts.role, node.ip, facts.hostname, result.status, result.message)
