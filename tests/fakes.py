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
from skutui.domain import drill as drill_plan
from skutui.domain import history, settings, validation
from skutui.domain.drift import Difference, Drift
from skutui.domain.errors import Failed
from skutui.domain.model import FAILBACK_DISABLED, ClusterConfig, InterfaceAddress, Node, Role
from skutui.domain.paths import Paths
from skutui.domain.readiness import Readiness
from skutui.domain.values import format_seconds
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
HANDOVER_SECONDS = 3.4
"""How long the fake's planned handovers take."""
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
            "links": list(LINKS), "keepalived": KEEPALIVED, "conntrackd": CONNTRACKD,
            "link_addresses": {"eth0": link_address(node)}, "time": CLOCK}


def link_address(node: Node) -> str:
    """A locally administered link-layer address made from the node's IPv4 address."""
    return "02:00:" + ":".join(f"{int(part):02x}" for part in node.ip.split("."))


def unreachable(host: str = REMOTE.ip) -> Failed:
    """What the peer's sshd refusing the connection raises."""
    return translate_connect_error(ConnectionRefusedError(), host, SSH_PORT, 10.0)


CONNECTIONS = 42
"""Connections the master's conntrackd holds, mirrored in the backup's external cache."""
LAST_SYNC = CLOCK - 30


def standby(role: Role, *, conntrackd: bool = True) -> dict[str, Any]:
    """What ``skutui.system.standby`` reads on a healthy node: both caches filled, links up,
    the master's sync in step and nothing queued."""
    master = role is Role.MASTER
    counters = {"internal": CONNECTIONS if master else 0, "external": 0 if master else CONNECTIONS,
                "failed": 0, "send_errors": 0, "recv_errors": 0, "malformed": 0, "lost": 0}
    sync = {"running": True, "pending_changes": 0, "pending_since": None, "needs_reconcile": False,
            "last_push": LAST_SYNC, "last_reconcile": LAST_SYNC - 240, "error": None}
    return {"conntrack": counters if conntrackd else None, "links": {"eth0": "up", "eth1": "up"},
            "services": {}, "sync": sync if master else None, "replication_queue": 0, "drift": None}


def facts(node: Node, role: Role, services_down: tuple[str, ...] = (), *, conntrackd: bool = True,
          drift: int = 0) -> NodeFacts:
    """A node in ``role``: every daemon it needs runs, the master holds the IPs; the
    operator's ``services_down`` do not run."""
    master = role is Role.MASTER
    found = standby(role, conntrackd=conntrackd)
    if master and drift:
        found["drift"] = {"checked": CLOCK, "peer": "",
                          "differences": [d.to_dict() for d in DRIFT[:drift]]}
    return NodeFacts(hostname=node.hostname, version=VERSION, configured=True, role=role,
                     maintenance=role is Role.MAINTENANCE,
                     services={"keepalived": True, "conntrackd": conntrackd, "agent": True,
                               "sync": master},
                     holds_floating_ips=master, interface_up=True, services_down=list(services_down),
                     standby=found)


def _record(at: float, node: Node, kind: str, message: str, level: str = "info", **data: Any) -> dict:
    """A record ``at`` seconds after CLOCK."""
    record = {"id": f"{node.hostname}-{kind}-{int(at)}", "time": history.iso(CLOCK + at),
              "node": node.hostname, "kind": kind, "level": level, "message": message}
    if data:
        record["data"] = data
    return record


def _failover(seconds: float, old: Node, new: Node, cause: str, detail: str, gap: float,
              commit: float, **more: Any) -> dict:
    held = CLOCK + seconds
    data = history.failover_data(old=old.hostname, new=new.hostname, cause=cause, detail=detail,
                                 released=held - gap, held=held,
                                 conntrack={"ok": True, "seconds": commit, "failed": []},
                                 sync_pending=0, sync_lag=0.0, replication_queue=0, complete=True,
                                 **more)
    record = _record(seconds, new, history.FAILOVER, history.failover_message(data), **data)
    record["id"] = history.failover_id(new.hostname, held)
    return record


HISTORY = [
    _record(0, LOCAL, "agent", "agent started (pid 812)"),
    _record(0.4, LOCAL, "role", "keepalived moved this node to MASTER", role="master",
            cause="keepalived MASTER"),
    _record(1.6, REMOTE, "agent", "agent started (pid 790)"),
    _record(1.7, REMOTE, "role", "keepalived moved this node to BACKUP", role="backup",
            cause="keepalived BACKUP"),
    _record(3.1, LOCAL, "sync", "reconciled with node-b: 1 metadata (/etc/skutui/cluster.toml)"),
    _record(3600, LOCAL, "release", "node-a stopped being master: keepalived death (keepalived "
            "stopped on node-a (killed, crashed or stopped))", "warning",
            released=history.iso(CLOCK + 3600), cause=history.CAUSE_KEEPALIVED),
    _failover(3603.05, LOCAL, REMOTE, history.CAUSE_KEEPALIVED,
              "keepalived stopped on node-a (killed, crashed or stopped)", 3.05, 0.041),
    _record(3603.05, REMOTE, "role", "keepalived moved this node to MASTER", role="master",
            cause="keepalived MASTER"),
    _record(3603.1, REMOTE, "service", "MASTER steps done", role="master", cause="keepalived MASTER",
            failed=[], seconds=0.041),
    _record(7200, REMOTE, "drill", drill_plan.message([{"to": LOCAL.hostname, "probe_gap": 0.421},
                                                      {"to": REMOTE.hostname, "probe_gap": 0.405}]),
            started=history.iso(CLOCK + 7200)),
    _failover(7200.41, REMOTE, LOCAL, history.CAUSE_DRILL, "a drill handed the floating IPs over",
              0.412, 0.038, drill="drill-1"),
    _failover(7201.8, LOCAL, REMOTE, history.CAUSE_DRILL, "a drill handed the floating IPs over",
              0.398, 0.052, drill="drill-1"),
]
"""Both nodes' history as ``history()`` answers it: an election, a killed keepalived, a drill."""

DRIFT = (
    Difference("/etc/haproxy/haproxy.cfg", ("content",), REMOTE.hostname),
    Difference("/etc/skutui/hooks.d/10-mail", ("mode",), LOCAL.hostname),
    Difference("/etc/haproxy/errors/503.http", (f"only on {LOCAL.hostname}",), None),
)
"""Files that differ when the fake is told of drift: edited by hand on the backup, a mode
changed on the master, one the backup lacks."""


class FakeClusterService:
    def __init__(self, *, configured: bool = True, master: bool = True, peer_reachable: bool = True,
                 split_brain: bool = False, preflight_failures: tuple[str, ...] = (),
                 errors: dict[str, str] | None = None, nodes_delay: float = 0.0,
                 config: ClusterConfig | None = None, drift: int = 0,
                 backup_conntrackd: bool = True, history: list[dict] | None = None,
                 peer_services_down: tuple[str, ...] = ()):
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
        self.drift = drift
        """How many of DRIFT the nodes' synced files differ by."""
        self.backup_conntrackd = backup_conntrackd
        """False: conntrackd is stopped on the backup, which is then not ready."""
        self.records = list(HISTORY if history is None else history)
        self.peer_services_down = peer_services_down
        """The peer's services that are down: a backup not ready to take over."""
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
        links = checked.named_links
        if self._fails(preflight.LINKS_ON_BOTH):
            links = links or ["eth1"]
            theirs["links"] = ["lo", "eth0"]
        if self._fails(preflight.KEEPALIVED_INSTALLED):
            theirs["keepalived"] = None
        if self._fails(preflight.CONNTRACKD_INSTALLED):
            theirs["conntrackd"] = None
        if self._fails(preflight.CLOCKS_AGREE):
            theirs["time"] = CLOCK + 42
        checks.append(preflight.peer_authenticated(remote_ip, theirs))
        checks += preflight.compare(checked.local, remote_ip, mine, theirs, links)
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
        links = (lifecycle.link_address(contacted.local_inventory, config.interface),
                 lifecycle.link_address(contacted.remote_inventory, config.interface))
        for line in (f"Erasing the cluster configuration of {remote}",
                     f"Writing the configuration on {local}",
                     f"Writing the configuration on {remote}",
                     lifecycle.pinning_line(local, remote, links),
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
        for node in (REMOTE, LOCAL):
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
        local_facts, remote = self._facts(roles)
        return rows.node_rows(LOCAL, REMOTE, local_facts, remote)

    def _facts(self, roles: dict[NodeSide, Role]) -> tuple[NodeFacts, NodeFacts | BaseException]:
        def of(node: Node, role: Role, services_down: tuple[str, ...] = ()) -> NodeFacts:
            return facts(node, role, services_down,
                         conntrackd=role is not Role.BACKUP or self.backup_conntrackd, drift=self.drift)

        remote: NodeFacts | BaseException = (
            of(REMOTE, roles["remote"], self.peer_services_down) if self.peer_reachable
            else unreachable())
        return of(LOCAL, roles["local"]), remote

    async def status(self) -> ClusterStatus:
        self.calls.append(("status",))
        return ClusterStatus(LOCAL.hostname, VERSION, self.config,
                             self._rows() if self.config is not None else [])

    async def set_maintenance(self, node: NodeSide, on: bool, force: bool = False) -> str:
        """What the operations API says and refuses (``lifecycle``'s words); the node's own
        refusals come prefixed with its name when the peer says them, as ``RemoteOps``
        passes them on."""
        self.calls.append(("set_maintenance", node, on, force))
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
        done = f"{hostname} is in maintenance"
        if on:
            found = {row.node: row for row in self._rows()}
            if self.roles[node] is not Role.MASTER:
                self.roles[node] = Role.MAINTENANCE
                return lifecycle.maintenance_standby(done, found[other].hostname, hostname)
            refusal = lifecycle.takeover_refusal(found[other])
            if refusal and not force:
                raise lifecycle.maintenance_refused(self.config, hostname, refusal)
            self.roles[node] = Role.MAINTENANCE
            if refusal:
                return lifecycle.maintenance_forced(self.config, done, refusal)
            self.roles[other] = Role.MASTER
            return lifecycle.maintenance_handed_over(self.config, done, found[other].hostname,
                                                     HANDOVER_SECONDS)
        takes_back = self.config.failback == hostname and self.roles[other] is not Role.MAINTENANCE
        self.roles[node] = Role.MASTER if takes_back else Role.BACKUP
        if takes_back:
            self.roles[other] = Role.BACKUP
        return f"{hostname} left maintenance and rejoins the cluster"

    async def history(self, since: float | None = None, kinds: list[str] | None = None) -> Timeline:
        self.calls.append(("history", since, kinds))
        self._fail_if_asked("history")
        chosen = [r for r in self.records if (since is None or history.record_time(r) >= since)
                  and (not kinds or r["kind"] in kinds)]
        missing = {} if self.peer_reachable else {REMOTE.hostname: str(unreachable())}
        if not self.peer_reachable:
            chosen = [r for r in chosen if r["node"] == LOCAL.hostname]
        return Timeline(history.merge(chosen), missing)

    def _drift(self) -> Drift:
        master = LOCAL.hostname if self.master else REMOTE.hostname
        return Drift(LOCAL.hostname, REMOTE.hostname, master, (str(PATHS.config_root), "/etc/haproxy"),
                     CLOCK, DRIFT[:self.drift])

    async def verify_sync(self) -> Drift:
        self.calls.append(("verify_sync",))
        self._fail_if_asked("verify_sync")
        if self.config is None:
            raise Failed("No cluster is configured on this node.")
        if not self.peer_reachable:
            raise unreachable()
        return self._drift()

    async def push_sync(self, progress: Progress) -> Drift:
        self.calls.append(("push_sync",))
        self._require_master()
        progress(f"Sending {LOCAL.hostname}'s copy of every synced file that differs to {REMOTE.hostname}")
        self._fail_if_asked("push_sync")
        self.drift = 0
        progress(f"Comparing again with {REMOTE.hostname}")
        return self._drift()

    async def drill(self, progress: Progress) -> dict[str, Any]:
        """The product's lines (``skutui.cluster.drill``), the lab's gaps at 0.2 s."""
        self.calls.append(("drill",))
        self._require_master()
        me, peer = LOCAL.hostname, REMOTE.hostname
        progress(f"Checking that {peer} could take over and {me} take back")
        if not self.backup_conntrackd:
            raise Failed(f"{peer} could not take over now: conntrackd is not running")
        progress(f"Probing {FLOATING_IP.split('/')[0]} on UDP port {drill_plan.DRILL_PORT} from both nodes")
        progress(f"Handing the floating IPs to {peer}: {me} goes into maintenance")
        self._fail_if_asked("drill")
        for line in (f"{peer} holds the floating IPs", f"{me} leaves maintenance",
                     f"Handing the floating IPs back to {me}: {peer} goes into maintenance",
                     f"{me} holds the floating IPs again", "Reading both failovers from the history"):
            progress(line)
        legs = [{"from": me, "to": peer, "probe_gap": 0.132, "gap": 0.114,
                 "conntrack": {"ok": True, "seconds": 0.134, "failed": []}, "failover": None},
                {"from": peer, "to": me, "probe_gap": 0.134, "gap": 0.104,
                 "conntrack": {"ok": True, "seconds": 0.157, "failed": []}, "failover": None}]
        return {"id": f"drill-{me}-{int(CLOCK * 1000)}", "started": history.iso(CLOCK),
                "ended": history.iso(CLOCK + 3), "from": me, "to": peer, "legs": legs,
                "probes": 1200, "ok": True}

    async def readiness(self) -> list[Readiness]:
        self.calls.append(("readiness",))
        if self.config is None:
            return []
        local, remote = self._facts(self.roles)
        if isinstance(remote, BaseException):
            return [rows.readiness_of(local, None)]
        return [rows.readiness_of(local, remote), rows.readiness_of(remote, local)]

    async def events(self) -> AsyncIterator[Event]:
        while True:
            yield await self.queue.get()

    async def close(self) -> None:
        self.calls.append(("close",))
