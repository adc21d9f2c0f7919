"""Two nodes in memory for the operations API: what each holds (a configuration, running
daemons, a role, the maintenance flag), every call recorded in one shared log, and any step
made to fail.

The roles follow keepalived's rules as far as a create, a maintenance and a rollback need
them: a node started alone becomes master, the second one backup, unless failback names it
(it then takes over); a node in maintenance gives way; a ``deaf`` node (VRRP blocked) makes
itself master whatever it hears.
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from skutui import __version__
from skutui.cluster.operations import ClusterOperations
from skutui.domain.errors import Failed
from skutui.domain.model import ClusterConfig, InterfaceAddress, Node, Role
from skutui.domain.paths import Paths
from skutui.domain.wire import CreateRequest
from skutui.system.change import Change, ChangeBusy, Record
from skutui.system.node import NodeFacts
from tests.fakes import standby

A = Node("node-a", "198.18.0.1")
B = Node("node-b", "198.18.0.2")
PASSWORD = "s3cret"
FINGERPRINT = "SHA256:" + "A" * 43
ADDRESSES = [
    InterfaceAddress("lo", "127.0.0.1", 8, label="lo", loopback=True),
    InterfaceAddress("eth0", A.ip, 24, label="eth0", kind="veth"),
    InterfaceAddress("eth0", "198.18.0.50", 24, label="eth0:1", kind="veth"),
    InterfaceAddress("eth1", "203.0.113.5", 24, label="eth1"),
]
LINKS = ["lo", "eth0", "eth1", "eth2"]
LINK_ADDRESSES = {A.hostname: "02:00:c6:12:00:01", B.hostname: "02:00:c6:12:00:02"}


def request(**settings: Any) -> CreateRequest:
    given = {"floating_ips": ("198.18.0.100/24",), "check_interval": 0.1, **settings}
    return CreateRequest(A.ip, B.ip, PASSWORD, given, host_key_fingerprint=FINGERPRINT)


def cluster(**changes: Any) -> ClusterConfig:
    """The configuration a create with ``request()`` makes."""
    return dataclasses.replace(
        ClusterConfig(interface="eth0", nodes=(A, B), check_interval=0.1,
                      floating_ips=("198.18.0.100/24",), synced_paths=("/etc/skutui",)),
        **changes)


def operations(pair: Pair, root: Path) -> ClusterOperations:
    """The operations API on ``pair``, as node-a, its files under ``root``."""
    return ClusterOperations(
        Paths(config_root=root / "etc", run_dir=root / "run"), hostname=A.hostname,
        local=pair.a, remote=pair.remote, addresses=pair.addresses, links=pair.links,
        routers_heard=pair.routers_heard, fetch_host_key=pair.fetch_host_key,
        authenticate=pair.authenticate)


class FakeNode:
    def __init__(self, pair: Pair, node: Node):
        self.pair = pair
        self.name = node.hostname
        self.hostname = node.hostname
        self.ip = node.ip
        self.cluster: ClusterConfig | None = None
        self.running = False
        self.current_role = Role.UNKNOWN
        self.maintenance = False
        self.deaf = False
        self.version = __version__
        self.keepalived: str | None = "2.2.7"
        self.conntrackd: str | None = "1.4.7"
        self.clock = 1_750_000_000.0
        self.addresses = [{"interface": "eth0", "address": node.ip, "label": "eth0"}]
        self.link_addresses = {"eth0": LINK_ADDRESSES[node.hostname]}
        self.pinned: tuple[str, str | None] | None = None
        self.links = list(LINKS)
        self.services_down: list[str] = []
        self.handover_seconds = 0.5
        self.unpushed = 0
        """Changes its sync has not pushed yet, while it is master: one fewer at each read
        of its facts (the push goes on), unless ``stalled``."""
        self.stalled = False
        self.fail: dict[str, BaseException] = {}
        """Operation -> what it raises, every time it is called."""
        self.before: dict[str, Callable[[], Any]] = {}
        """Operation -> called (awaited if it returns an awaitable) before the operation runs."""
        self.events: list[str] = []
        self.closed = 0
        self.holder: Change | None = None
        """The change that holds this node (its change lock)."""
        self.record: Record | None = None
        """Its rollback record, as on its disk."""

    def __repr__(self) -> str:
        return f"<FakeNode {self.hostname} {self.current_role.value}>"

    async def _step(self, operation: str, *args: Any) -> None:
        self.pair.log.append((self.hostname, operation, *args))
        hook = self.before.get(operation)
        if hook is not None:
            result = hook()
            if asyncio.iscoroutine(result):
                await result
        if operation in self.fail:
            raise self.fail[operation]

    # --- NodeOps ---------------------------------------------------------------------------

    async def facts(self) -> NodeFacts:
        await self._step("facts")
        role = self.current_role if self.cluster else Role.UNKNOWN
        return NodeFacts(
            hostname=self.hostname, version=self.version, configured=self.cluster is not None,
            role=role, maintenance=self.maintenance,
            services={"keepalived": self.running, "conntrackd": self.running,
                      "agent": self.running, "sync": self.running and role is Role.MASTER},
            holds_floating_ips=self.running and role is Role.MASTER,
            interface_up=True, services_down=list(self.services_down),
            standby=self._standby(role))

    def _standby(self, role: Role) -> dict[str, Any]:
        seen = standby(role, conntrackd=self.running)
        if seen["sync"] is not None:
            seen["sync"]["pending_changes"] = self.unpushed
            if not self.stalled:
                self.unpushed = max(0, self.unpushed - 1)
        return seen

    async def inventory(self) -> dict[str, Any]:
        await self._step("inventory")
        return {"hostname": self.hostname, "version": self.version,
                "configured": self.cluster is not None, "addresses": list(self.addresses),
                "links": list(self.links), "keepalived": self.keepalived, "conntrackd": self.conntrackd,
                "link_addresses": dict(self.link_addresses), "time": self.clock}

    async def snapshot(self) -> dict[str, Any]:
        await self._step("snapshot")
        return {"config": self.cluster, "running": self.running, "role": self.current_role,
                "maintenance": self.maintenance, "pinned": self.pinned}

    async def restore(self, snapshot: dict[str, Any]) -> None:
        await self._step("restore")
        self.cluster = snapshot["config"]
        self.running = snapshot["running"]
        self.current_role = snapshot["role"]
        self.maintenance = snapshot["maintenance"]
        self.pinned = snapshot["pinned"]

    async def apply(self, config: ClusterConfig) -> None:
        await self._step("apply", config)
        self.cluster = config

    async def reload(self) -> None:
        await self._step("reload")

    async def start(self) -> None:
        await self._step("start")
        self.running = True
        self.current_role = Role.BACKUP
        self.pair.elect()

    async def stop(self) -> None:
        await self._step("stop")
        self.running = False
        self.current_role = Role.BACKUP if self.cluster else Role.UNKNOWN
        self.pair.elect()

    async def erase(self, keep_keys: bool = False) -> None:
        await self._step("erase")
        self.cluster = None
        self.running = False
        self.maintenance = False
        self.current_role = Role.UNKNOWN
        self.pair.elect()

    async def set_maintenance(self, on: bool) -> str:
        await self._step("set_maintenance", on)
        if on == self.maintenance:
            raise Failed(f"The node {self.hostname} is {'already' if on else 'not'} under maintenance")
        self.maintenance = on
        self.current_role = Role.MAINTENANCE if on else Role.BACKUP
        self.pair.elect()
        if on:
            return f"{self.hostname} is in maintenance"
        return f"{self.hostname} left maintenance and rejoins the cluster"

    async def pin_peer_link(self, address: str, link_address: str | None) -> str:
        await self._step("pin_peer_link", address, link_address)
        self.pinned = (address, link_address)
        return f"{self.hostname} pinned {address} {link_address}"

    async def hand_over(self, timeout: float) -> float:
        """keepalived's ranking: the peer takes over when it runs as a backup."""
        await self._step("hand_over", timeout)
        other = self.pair.b if self is self.pair.a else self.pair.a
        if not (other.running and other.current_role is Role.BACKUP):
            raise Failed(f"the peer did not take over the floating IPs within {timeout:.1f} s; "
                         f"{self.hostname} stays master")
        self.current_role, other.current_role = Role.BACKUP, Role.MASTER
        return self.handover_seconds

    async def commit_connections(self) -> None:
        await self._step("commit_connections")

    async def close(self) -> None:
        self.closed += 1

    async def begin_change(self, change: Change, *, snapshot: bool = True,
                           recovering: bool = False) -> dict | None:
        await self._step("begin_change", change.what)
        if self.holder is not None:
            raise ChangeBusy(self.holder.under_way())
        if self.record is not None and not recovering:
            raise ChangeBusy(f"{self.hostname}: an interrupted {self.record.change.what} has "
                             "not been rolled back yet")
        self.holder = change
        shot = await self.snapshot() if snapshot else None
        if shot is not None:
            self.record = Record(change, [shot])
        return shot

    async def keep_change(self, record: Record) -> None:
        self.record = record

    async def end_change(self, *, clear: bool = True) -> None:
        await self._step("end_change")
        if clear:
            self.record = None
        self.holder = None

    async def interrupted_change(self) -> Record | None:
        return self.record if self.holder is None else None

    def killed(self) -> None:
        """The process running a change here died: its lock goes, its record stays."""
        self.holder = None

    # --- LocalNodeOps and RemoteNodeOps ----------------------------------------------------

    async def config(self) -> ClusterConfig | None:
        await self._step("config")
        return self.cluster

    async def role(self) -> Role:
        return self.current_role

    async def event_lines(self) -> AsyncIterator[str]:
        await self._step("event_lines")
        for line in self.events:
            yield line


@dataclass
class Connected:
    address: str
    name: str


class Pair:
    """node-a (this node) and node-b (the peer), and everything that was asked of them."""

    def __init__(self) -> None:
        self.log: list[tuple] = []
        self.a = FakeNode(self, A)
        self.b = FakeNode(self, B)
        self.connected: list[Connected] = []
        self.heard: set[tuple[str, int]] = set()
        self.probe_error: OSError | None = None
        self.authenticated: list[tuple[str, str]] = []
        self.authentication_error: BaseException | None = None
        self.host_key_error: BaseException | None = None
        self.address_reads = 0

    @property
    def nodes(self) -> tuple[FakeNode, FakeNode]:
        return (self.a, self.b)

    def steps(self, *operations: str) -> list[tuple]:
        """The log without reads of the roles (their count depends on timing) and without
        the change locks (their own tests look at them)."""
        skipped = {"facts", "config", "begin_change", "end_change", *operations}
        return [entry for entry in self.log if entry[1] not in skipped]

    def elect(self) -> None:
        live = [n for n in self.nodes if n.running and not n.maintenance and n.cluster]
        failback = live[0].cluster.failback if live else None
        for node in live:
            if node.deaf:
                node.current_role = Role.MASTER
        hearing = [n for n in live if not n.deaf]
        masters = [n for n in hearing if n.current_role is Role.MASTER]
        preferred = [n for n in hearing if n.hostname == failback]
        winner = (preferred or masters or hearing or [None])[0]
        for node in hearing:
            node.current_role = Role.MASTER if node is winner else Role.BACKUP

    def configured(self, config: ClusterConfig, master: FakeNode | None = None) -> None:
        """Both nodes running ``config``, ``master`` (node-a unless said) the master."""
        master = master or self.a
        for node in self.nodes:
            node.cluster = copy.deepcopy(config)
            node.running = True
            node.current_role = Role.MASTER if node is master else Role.BACKUP

    # --- what ClusterOperations is handed ----------------------------------------------------

    def remote(self, address: str, name: str) -> FakeNode:
        self.connected.append(Connected(address, name))
        if self.b.ip != address:
            raise AssertionError(f"connected to {address}, not the peer")
        return self.b

    async def addresses(self) -> list[InterfaceAddress]:
        self.address_reads += 1
        return list(ADDRESSES)

    async def links(self) -> list[str]:
        return list(LINKS)

    def routers_heard(self, local_ip: str, seconds: float) -> set[tuple[str, int]]:
        if self.probe_error is not None:
            raise self.probe_error
        return set(self.heard)

    async def fetch_host_key(self, address: str) -> str:
        if self.host_key_error is not None:
            raise self.host_key_error
        return FINGERPRINT

    async def authenticate(self, remote_ip: str, local_ip: str, request: CreateRequest,
                           progress) -> None:
        self.authenticated.append((remote_ip, local_ip))
        progress(f"Host key of {remote_ip}: {FINGERPRINT}")
        if self.authentication_error is not None:
            raise self.authentication_error
