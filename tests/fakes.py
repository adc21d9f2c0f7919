"""A ClusterService that answers from memory, the same way every time, in the product's words.

Two nodes, node-a (198.18.0.1, this node) and node-b (198.18.0.2), the lab's names and
addresses. Each knob below turns on one situation the console must show: no cluster, the
backup's read-only console, an unreachable peer, split brain, a failing pre-flight check, a
wrong password. Every call is recorded in ``calls`` so a test can say what the console
asked for.

What it answers is the product's own, wherever the product has a function or a constant
for it: the pre-flight checks are ``skutui.cluster.preflight``'s (each failing knob only
changes what the check finds), the new and edited configurations and their lines are
``skutui.cluster.lifecycle``'s, the rows are ``skutui.cluster.rows``' from node facts, and
the errors are the peer's own exceptions. The rest (the steps' lines, the maintenance
messages) is copied, and tests/contract checks it against the real API in the lab.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from skutui import __version__
from skutui.cluster import lifecycle, preflight, rows
from skutui.cluster.api import ClusterStatus
from skutui.cluster.preflight import Contacted
from skutui.cluster.transaction import ROLLED_BACK
from skutui.domain import settings, validation
from skutui.domain.errors import Failed
from skutui.domain.model import FAILBACK_DISABLED, ClusterConfig, InterfaceAddress, Node, Role
from skutui.domain.paths import Paths
from skutui.domain.values import format_seconds
from skutui.domain.wire import CheckResult, CreateRequest, EditRequest, Event, NodeRow, NodeSide, Progress
from skutui.peer.connection import SSH_PORT, translate_connect_error
from skutui.peer.errors import PasswordRejected
from skutui.system.node import NodeFacts

LOCAL = Node("node-a", "198.18.0.1")
REMOTE = Node("node-b", "198.18.0.2")
VERSION = __version__
PASSWORD = "s3cret"
HOST_KEY = "SHA256:q1w2e3r4t5y6u7i8o9p0AaSsDdFfGgHhJjKkLlZzXxC"
FLOATING_IP = "198.18.0.100/24"
KEEPALIVED = "2.2.7"
CONNTRACKD = "1.4.7"
CLOCK = 1_750_000_000.0
OTHER_ROUTER = "198.18.0.9"
"""Another VRRP router on the segment, heard when the router-id check is made to fail."""

CANDIDATES = [
    InterfaceAddress("eth0", LOCAL.ip, 24, label="eth0", kind="veth"),
    InterfaceAddress("eth0", "198.18.0.50", 24, label="eth0:1", kind="veth"),
    InterfaceAddress("eth1", "203.0.113.5", 24, label="eth1"),
]
"""eth0:1 is an alias: the console must never offer it."""

LINKS = ["lo", "eth0", "eth1", "eth2"]
PATHS = Paths()
"""Where a node keeps its files, as the peer's messages name them."""


def default_cluster(failback: str = FAILBACK_DISABLED) -> ClusterConfig:
    return ClusterConfig(
        interface="eth0",
        nodes=(LOCAL, REMOTE),
        check_interval=1.0,
        failback=failback,
        tracked_interfaces=("eth1",),
        floating_ips=(FLOATING_IP,),
    )


def inventory(node: Node) -> dict[str, Any]:
    """What ``skutui node inventory`` prints on a node ready to join a cluster."""
    return {"hostname": node.hostname, "version": VERSION, "configured": False,
            "addresses": [{"interface": "eth0", "address": node.ip, "label": "eth0"}],
            "keepalived": KEEPALIVED, "conntrackd": CONNTRACKD, "time": CLOCK}


def unreachable(host: str = REMOTE.ip) -> Failed:
    """What the peer's sshd refusing the connection raises."""
    return translate_connect_error(ConnectionRefusedError(), host, SSH_PORT, 10.0)


def facts(node: Node, role: Role) -> NodeFacts:
    """A healthy node in ``role``: every daemon it needs runs, the master holds the IPs."""
    master = role is Role.MASTER
    return NodeFacts(hostname=node.hostname, version=VERSION, configured=True, role=role,
                     maintenance=role is Role.MAINTENANCE,
                     services={"keepalived": True, "conntrackd": True, "agent": True,
                               "sync": master},
                     holds_floating_ips=master, interface_up=True)


class FakeClusterService:
    def __init__(self, *, configured: bool = True, master: bool = True, peer_reachable: bool = True,
                 split_brain: bool = False, preflight_failures: tuple[str, ...] = (),
                 errors: dict[str, str] | None = None, nodes_delay: float = 0.0,
                 config: ClusterConfig | None = None):
        self.config = config or (default_cluster() if configured else None)
        self.roles: dict[NodeSide, Role] = {}
        self.master = master
        self.peer_reachable = peer_reachable
        self.split_brain = split_brain
        """Both nodes master: the rows say so, whatever ``roles`` holds."""
        self.preflight_failures = preflight_failures
        """Names from ``preflight.check_names()`` that fail, each with the product's detail."""
        self.errors = dict(errors or {})
        """Method name -> the Failed message that method raises (create and edit: rolled back)."""
        self.nodes_delay = nodes_delay
        """Seconds nodes() takes, as a slow peer makes it."""
        self.calls: list[tuple] = []
        self._queue: asyncio.Queue[Event] | None = None

    # Test helpers --------------------------------------------------------------------------

    @property
    def master(self) -> bool:
        return self.roles["local"] is Role.MASTER

    @master.setter
    def master(self, value: bool) -> None:
        """This node master and the peer backup, or the other way round."""
        self.roles = {"local": Role.MASTER if value else Role.BACKUP,
                      "remote": Role.BACKUP if value else Role.MASTER}

    @property
    def configured(self) -> bool:
        return self.config is not None

    @property
    def queue(self) -> asyncio.Queue[Event]:
        if self._queue is None:
            self._queue = asyncio.Queue()
        return self._queue

    def emit(self, kind: str, node: NodeSide, message: str) -> None:
        self.queue.put_nowait(Event(kind, node, message))

    def called(self, name: str) -> list[tuple]:
        return [call for call in self.calls if call[0] == name]

    def _fail_if_asked(self, method: str) -> None:
        if method in self.errors:
            raise Failed(self.errors[method])

    def _fails(self, check: str, vrid: int = settings.VIRTUAL_ROUTER_ID.default) -> bool:
        if check == preflight.ROUTER_ID_FREE:
            check = check.format(vrid=vrid)
        return check in self.preflight_failures

    def _rolled_back(self, method: str, progress: Progress) -> None:
        """The product's words when a step fails: the failure, each node rolled back."""
        if method in self.errors:
            progress(f"Failed: {self.errors[method]}")
            for node in (REMOTE, LOCAL):
                progress(f"Rolling back {node.hostname}")
            raise Failed(f"{self.errors[method]}; {ROLLED_BACK}")

    def _require_master(self) -> ClusterConfig:
        if self.config is None:
            raise Failed("No cluster is configured on this node.")
        if not self.master:
            raise Failed(f"This node ({LOCAL.hostname}) is not the master; change the "
                         f"configuration on the master {REMOTE.hostname} ({REMOTE.ip}).")
        return self.config

    # The protocol --------------------------------------------------------------------------

    async def local_hostname(self) -> str:
        self._fail_if_asked("local_hostname")
        return LOCAL.hostname

    async def cluster_candidates(self) -> list[InterfaceAddress]:
        self.calls.append(("cluster_candidates",))
        return validation.cluster_candidates(CANDIDATES)

    async def link_names(self) -> list[str]:
        self._fail_if_asked("link_names")
        return list(LINKS)

    async def cluster(self) -> ClusterConfig | None:
        self._fail_if_asked("cluster")
        return self.config

    async def is_master(self) -> bool:
        return self.master

    async def fetch_host_key(self, remote_ip: str) -> str:
        self.calls.append(("fetch_host_key", remote_ip))
        self._fail_if_asked("fetch_host_key")
        return HOST_KEY

    async def validate(self, request: CreateRequest) -> None:
        self.calls.append(("validate", request))
        preflight.check_request(request, CANDIDATES, LOCAL.hostname)

    async def preflight(self, request: CreateRequest, progress: Progress) -> list[CheckResult]:
        self.calls.append(("preflight", request))
        return (await self._preflight(request, progress))[0]

    async def _preflight(self, request: CreateRequest, progress: Progress
                         ) -> tuple[list[CheckResult], Contacted | None]:
        checked = preflight.check_request(request, CANDIDATES, LOCAL.hostname)
        remote_ip, vrid = checked.remote_ip, checked.virtual_router_id
        mine, theirs = inventory(LOCAL), inventory(REMOTE)
        mine["configured"] = self.config is not None or self._fails(preflight.NO_LOCAL_CLUSTER)
        checks = [preflight.no_local_cluster(mine)]
        progress(f"Connecting to {remote_ip}")
        progress(f"Host key of {remote_ip}: {HOST_KEY}")
        progress(f"Installing this node's key on {remote_ip} (the password is used once)")
        if request.password != PASSWORD or self._fails(preflight.PEER_AUTHENTICATED):
            checks.append(preflight.peer_unreachable(PasswordRejected(remote_ip, PATHS.private_key)))
            return checks, None
        if self._fails(preflight.SAME_VERSION):
            theirs["version"] = "0.0.9"
        if self._fails(preflight.DIFFERENT_HOSTNAMES):
            theirs["hostname"] = LOCAL.hostname
        if self._fails(preflight.PEER_NIC):
            theirs["addresses"] = [{"interface": "eth1", "address": remote_ip, "label": "eth1"}]
        if self._fails(preflight.KEEPALIVED_INSTALLED):
            theirs["keepalived"] = None
        if self._fails(preflight.CONNTRACKD_INSTALLED):
            theirs["conntrackd"] = None
        if self._fails(preflight.CLOCKS_AGREE):
            theirs["time"] = CLOCK + 42
        checks.append(preflight.peer_authenticated(remote_ip, theirs))
        checks += preflight.compare(checked.local, remote_ip, mine, theirs)
        listening = preflight.ADVERTS_HEARD * checked.check_interval
        progress(f"Listening for other VRRP routers for {format_seconds(listening)} s")
        heard = {(OTHER_ROUTER, vrid)} if self._fails(preflight.ROUTER_ID_FREE, vrid) else set()
        checks.append(preflight.router_id_free(vrid, heard, (checked.local.address, remote_ip)))
        return checks, Contacted(checked, mine, theirs, remote=None)

    async def create(self, request: CreateRequest, progress: Progress) -> ClusterConfig:
        self.calls.append(("create", request))
        checks, contacted = await self._preflight(request, progress)
        failed = [c for c in checks if not c.passed]
        if failed:
            raise Failed("pre-flight failed: " + "; ".join(f"{c.name}: {c.detail}" for c in failed))
        assert contacted is not None
        config = lifecycle.new_config(contacted, str(PATHS.config_root))
        local, remote = (node.hostname for node in config.nodes)
        local_role, remote_role = lifecycle.expected_roles(config, remote)
        for line in (f"Erasing the cluster configuration of {remote}",
                     f"Writing the configuration on {local}",
                     f"Writing the configuration on {remote}",
                     f"Starting {local}",
                     f"{local} is master",
                     f"Starting {remote}"):
            progress(line)
        self._rolled_back("create", progress)
        progress(f"{remote} is {remote_role.value}")
        if local_role is Role.BACKUP:
            progress(f"{local} is backup")
        hold = lifecycle.master_down(config, remote) + lifecycle.NOTIFY_MARGIN
        progress(f"Checking for {format_seconds(hold)} s that {remote} hears {local}")
        progress(f"Cluster created: {local} and {remote}")
        self.config = config
        self.roles = {"local": local_role, "remote": remote_role}
        return config

    async def edit(self, request: EditRequest, progress: Progress) -> list[str]:
        self.calls.append(("edit", request))
        config = self._require_master()
        links = LINKS if "tracked_interfaces" in request.changes else None
        updated, lines = lifecycle.edited(config, request.changes, LOCAL.hostname, links)
        if not lines:
            return []
        for node in (LOCAL, REMOTE):
            progress(f"Applying on {node.hostname}")
        progress(lifecycle.RELOADING)
        self._rolled_back("edit", progress)
        self.config = updated
        return lines

    async def destroy(self, progress: Progress) -> list[str]:
        self.calls.append(("destroy",))
        self._require_master()
        self._fail_if_asked("destroy")
        warnings = []
        progress(f"Stopping and erasing {REMOTE.hostname}")
        if not self.peer_reachable:
            warnings.append(lifecycle.not_cleaned(REMOTE.hostname, str(unreachable())))
        progress(f"Stopping and erasing {LOCAL.hostname}")
        self.config = None
        return warnings

    async def nodes(self) -> list[NodeRow]:
        self.calls.append(("nodes",))
        self._fail_if_asked("nodes")
        if self.nodes_delay:
            await asyncio.sleep(self.nodes_delay)
        if self.config is None:
            return []
        return self._rows()

    def _rows(self) -> list[NodeRow]:
        roles = dict(self.roles)
        if self.split_brain:
            roles = {"local": Role.MASTER, "remote": Role.MASTER}
        remote: NodeFacts | BaseException = (
            facts(REMOTE, roles["remote"]) if self.peer_reachable else unreachable())
        return rows.node_rows(LOCAL, REMOTE, facts(LOCAL, roles["local"]), remote)

    async def status(self) -> ClusterStatus:
        self.calls.append(("status",))
        return ClusterStatus(LOCAL.hostname, VERSION, self.config,
                             self._rows() if self.config is not None else [])

    async def set_maintenance(self, node: NodeSide, on: bool) -> str:
        """The node's own words (``LocalNode.set_maintenance``); the peer's come prefixed
        with its name, as ``RemoteOps`` passes them on."""
        self.calls.append(("set_maintenance", node, on))
        self._fail_if_asked("set_maintenance")
        if self.config is None:
            raise Failed("No cluster is configured on this node.")
        if node == "remote" and not self.peer_reachable:
            raise unreachable()
        hostname = LOCAL.hostname if node == "local" else REMOTE.hostname
        other: NodeSide = "remote" if node == "local" else "local"
        prefix = "" if node == "local" else f"{hostname}: "
        if on == (self.roles[node] is Role.MAINTENANCE):
            state = "already" if on else "not"
            raise Failed(f"{prefix}The node {hostname} is {state} under maintenance")
        if on:
            self.roles[node], self.roles[other] = Role.MAINTENANCE, Role.MASTER
            return f"{hostname} is in maintenance; the peer takes over the floating IPs"
        takes_back = self.config.failback == hostname and self.roles[other] is not Role.MAINTENANCE
        self.roles[node] = Role.MASTER if takes_back else Role.BACKUP
        if takes_back:
            self.roles[other] = Role.BACKUP
        return f"{hostname} left maintenance and rejoins the cluster"

    async def events(self) -> AsyncIterator[Event]:
        while True:
            yield await self.queue.get()

    async def close(self) -> None:
        self.calls.append(("close",))
