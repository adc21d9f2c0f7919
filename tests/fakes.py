"""A ClusterService that answers from memory, the same way every time.

Two nodes, node-a (198.18.0.1, this node) and node-b (198.18.0.2), skutui 0.1.0 on both.
Each knob below turns on one situation the console must show: no cluster, the backup's
read-only console, an unreachable peer, split brain, a failing pre-flight check, a wrong
password. Every call is recorded in ``calls`` so a test can say what the console asked for.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace

from skutui.domain.wire import (
    CheckResult,
    CreateRequest,
    EditRequest,
    Event,
    NodeRow,
    NodeSide,
    Progress,
)
from skutui.domain import settings
from skutui.domain.errors import Failed
from skutui.domain.model import (
    FAILBACK_DISABLED,
    ClusterConfig,
    InterfaceAddress,
    Node,
    Role,
    Status,
)

LOCAL = Node("node-a", "198.18.0.1")
REMOTE = Node("node-b", "198.18.0.2")
VERSION = "0.1.0"
PASSWORD = "s3cret"
HOST_KEY = "SHA256:q1w2e3r4t5y6u7i8o9p0AaSsDdFfGgHhJjKkLlZzXx"
FLOATING_IP = "198.18.0.100/24"

CANDIDATES = [
    InterfaceAddress("eth0", LOCAL.ip, 24, label="eth0", kind="veth"),
    InterfaceAddress("eth0", "198.18.0.50", 24, label="eth0:1", kind="veth"),
    InterfaceAddress("eth1", "203.0.113.5", 24, label="eth1"),
]
"""eth0:1 is an alias: the console must never offer it."""

LINKS = ["lo", "eth0", "eth1", "eth2"]

PREFLIGHT: list[tuple[str, str, str, str]] = [
    # name, detail when it passes, detail when it fails, hint when it fails
    ("Local IP", "198.18.0.1 on eth0", "198.18.0.1 is not on a usable link",
     "Choose the address of the NIC that reaches the peer."),
    ("Peer login", "root login with the new key works",
     "root login refused after the key was installed",
     "Allow root logins with a key on the peer (PermitRootLogin prohibit-password)."),
    ("Same interface", "198.18.0.2 is on eth0 on node-b too", "198.18.0.2 is on eth1 on node-b",
     "Both nodes need their cluster address on the same interface name."),
    ("Hostnames", "node-a and node-b", "both nodes are called node-a",
     "Give each node its own hostname (hostnamectl set-hostname NAME)."),
    ("Version", f"skutui {VERSION} on both", f"node-b runs skutui 0.0.9, this node {VERSION}",
     f"Install skutui {VERSION} on both nodes."),
    ("SSH on the cluster IP", "sshd listens on 198.18.0.1:22", "sshd does not listen on 198.18.0.1",
     "Let sshd listen on the cluster address (ListenAddress in sshd_config)."),
    ("No cluster on the peer", "node-b has no cluster", "node-b is already in a cluster",
     "Destroy the cluster on node-b first."),
]
CHECK_NAMES = [name for name, *_ in PREFLIGHT]


def default_cluster(failback: str = FAILBACK_DISABLED) -> ClusterConfig:
    return ClusterConfig(
        interface="eth0",
        nodes=(LOCAL, REMOTE),
        check_interval=1.0,
        failback=failback,
        tracked_interfaces=("eth1",),
        floating_ips=(FLOATING_IP,),
    )


@dataclass
class FakeClusterService:
    configured: bool = True
    master: bool = True
    peer_reachable: bool = True
    split_brain: bool = False
    preflight_failures: tuple[str, ...] = ()
    """Names from CHECK_NAMES that fail."""
    errors: dict[str, str] = field(default_factory=dict)
    """Method name -> the Failed message that method raises."""
    edit_changes: list[str] | None = None
    """What edit reports; None means: compare with the configuration, as the real one does."""
    nodes_delay: float = 0.0
    """Seconds nodes() takes, as a slow peer makes it."""
    maintenance: set[str] = field(default_factory=set)
    calls: list[tuple] = field(default_factory=list)
    config: ClusterConfig | None = None
    _queue: asyncio.Queue[Event] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.configured and self.config is None:
            self.config = default_cluster()

    # Test helpers --------------------------------------------------------------------------

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

    # The protocol --------------------------------------------------------------------------

    async def local_hostname(self) -> str:
        self._fail_if_asked("local_hostname")
        return LOCAL.hostname

    async def cluster_candidates(self) -> list[InterfaceAddress]:
        self.calls.append(("cluster_candidates",))
        return list(CANDIDATES)

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

    async def preflight(self, request: CreateRequest, progress: Progress) -> list[CheckResult]:
        self.calls.append(("preflight", request))
        progress(f"Logging in to {request.remote_ip} as root with the password...")
        if request.password != PASSWORD:
            raise Failed(
                f"The root password was refused by {request.remote_ip}. Check the password; "
                "if it is right, the peer may refuse root password logins "
                "(PermitRootLogin prohibit-password in /etc/ssh/sshd_config)."
            )
        progress("Key installed; running the checks on both nodes...")
        return [
            CheckResult(name, False, failed, hint)
            if name in self.preflight_failures
            else CheckResult(name, True, passed)
            for name, passed, failed, hint in PREFLIGHT
        ]

    async def create(self, request: CreateRequest, progress: Progress) -> None:
        self.calls.append(("create", request))
        for step in (
            "Erasing the configuration of node-b",
            "Copying this node's configuration to node-b",
            "Writing keepalived and conntrackd configuration on both nodes",
            "Starting the services on node-b (backup)",
            "Starting the services on node-a (master)",
        ):
            progress(step)
            if step.startswith("Starting") and "create" in self.errors:
                progress("Rolling back: both nodes are as they were")
                self._fail_if_asked("create")
        context = settings.Context(local=LOCAL.hostname, remote=REMOTE.hostname)
        self.config = ClusterConfig(interface="eth0", nodes=(LOCAL, REMOTE),
                                    **settings.check_all(request.settings, context))
        self.configured = True

    async def edit(self, request: EditRequest, progress: Progress) -> list[str]:
        self.calls.append(("edit", request))
        assert self.config is not None
        progress("Writing the configuration on both nodes")
        self._fail_if_asked("edit")
        if self.edit_changes is not None:
            return list(self.edit_changes)
        old = self.config
        context = settings.Context.of(old, LOCAL.hostname, LINKS)
        self.config = replace(old, **settings.check_all(request.changes, context))
        return settings.changes(old, self.config, context)

    async def destroy(self, progress: Progress) -> None:
        self.calls.append(("destroy",))
        self._fail_if_asked("destroy")
        progress("Stopping the services on node-b")
        progress("Removing the cluster configuration on both nodes")
        self.config = None
        self.configured = False

    async def nodes(self) -> list[NodeRow]:
        self.calls.append(("nodes",))
        self._fail_if_asked("nodes")
        if self.nodes_delay:
            await asyncio.sleep(self.nodes_delay)
        local_role = Role.MASTER if self.master else Role.BACKUP
        remote_role = Role.BACKUP if self.master else Role.MASTER
        if "local" in self.maintenance:
            remote_role = Role.MASTER
        if "remote" in self.maintenance:
            local_role = Role.MASTER
        if self.split_brain:
            local_role = remote_role = Role.MASTER
        rows = [self._row("local", LOCAL, local_role)]
        if self.peer_reachable:
            rows.append(self._row("remote", REMOTE, remote_role))
        else:
            rows.append(NodeRow("remote", Role.UNKNOWN, REMOTE.ip, REMOTE.hostname, Status.UNREACHABLE, "Node unreachable"))
        return rows

    def _row(self, side: NodeSide, node: Node, role: Role) -> NodeRow:
        if side in self.maintenance:
            return NodeRow(side, Role.MAINTENANCE, node.ip, node.hostname, Status.MAINTENANCE, "Node in maintenance mode")
        if self.split_brain:
            return NodeRow(side, role, node.ip, node.hostname, Status.FAILURE, "Split brain: both nodes are master")
        message = "Node online and active" if role == Role.MASTER else "Node online and passive"
        return NodeRow(side, role, node.ip, node.hostname, Status.OK, message)

    async def set_maintenance(self, node: NodeSide, on: bool) -> str:
        self.calls.append(("set_maintenance", node, on))
        self._fail_if_asked("set_maintenance")
        hostname = LOCAL.hostname if node == "local" else REMOTE.hostname
        if on:
            if node in self.maintenance:
                raise Failed("The node is already under maintenance")
            self.maintenance.add(node)
            return f"{hostname} is now in maintenance"
        if node not in self.maintenance:
            raise Failed("The node is not under maintenance")
        self.maintenance.discard(node)
        return f"{hostname} left maintenance and rejoins as backup"

    async def events(self) -> AsyncIterator[Event]:
        while True:
            yield await self.queue.get()
