"""What one node does to itself: its facts, its configuration files, its daemons, its role.

Every operation here acts on the machine it runs on. The cluster lifecycle calls them on the
local node directly and on the peer through ``skutui node …`` over the kept SSH connection,
so both nodes run exactly the same code.
"""

from __future__ import annotations

import asyncio
import base64
import json
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from skutui import __version__
from skutui.domain import codec
from skutui.domain.errors import BadInput, Failed
from skutui.domain.firewall import link_warnings
from skutui.domain.model import TRANSPORT_MULTICAST, TRANSPORT_UNICAST, ClusterConfig, Role
from skutui.domain.paths import Paths
from skutui.domain.render import HANDOVER_OFF, HANDOVER_YIELD, render_conntrackd, render_keepalived
from skutui.system import authorized_keys, services, store
from skutui.system.daemons import AgentDaemon, Conntrackd, DaemonError, Keepalived
from skutui.system.files import write_bytes_atomic, write_text_atomic
from skutui.system.firewall import NodeFirewall, link_addresses, pin_peer_link
from skutui.system.hook import hook_command, read_mark
from skutui.system.journal import Journal
from skutui.system.net import discover_addresses, link_names
from skutui.system.standby import standby_facts
from skutui.system.units import AGENT_UNIT, Systemctl, install_drop_ins, remove_drop_ins

VRRP_GROUPS = ("224.0.0.18", "ff02::12")
"""VRRP's multicast groups (RFC 5798): what a multicast keepalived joins on its interface."""
TRANSPORT_SWITCH_TIMEOUT = 5.0
TRANSPORT_SWITCH_POLL = 0.01

MAINTENANCE_ON = "1"
MAINTENANCE_OFF = "0"
HANDOVER_POLL = 0.02


class NodeError(Failed):
    """An operation on this node was refused or failed; the message is for the operator."""


class SnapshotError(BadInput, NodeError):
    """A snapshot to restore is not one ``snapshot()`` writes; nothing was touched."""


def skutui_command() -> str:
    """The launcher of this very installation, for keepalived's notify hooks."""
    beside = Path(sys.executable).parent / "skutui"
    if beside.exists():
        return str(beside)
    found = shutil.which("skutui")
    if not found:
        raise NodeError("the skutui command is not on PATH; reinstall skutui")
    return found


@dataclass
class NodeFacts:
    """What the node table and the pre-flight checks need to know about one node."""

    hostname: str
    version: str
    configured: bool
    role: Role
    maintenance: bool
    services: dict[str, bool] = field(default_factory=dict)
    """skutui's own daemons (keepalived, conntrackd, the agent, the sync) -> running."""
    holds_floating_ips: bool = False
    interface_up: bool | None = None
    services_down: list[str] = field(default_factory=list)
    """The operator's services this node should run in its role that do not run."""
    failed_here: list[str] = field(default_factory=list)
    """Master-only services that failed here while this node was master."""
    links_down: list[str] = field(default_factory=list)
    """Tracked links (the cluster NIC first) that are down or missing."""
    priority: int | None = None
    """keepalived's effective priority, as its notify FIFO last said (None: not heard)."""
    standby: dict = field(default_factory=dict)
    """What says whether it could take over (``skutui.system.standby``)."""
    warnings: list[str] = field(default_factory=list)
    """What the node table adds to the node's message (the cluster link filter's findings)."""

    def to_dict(self) -> dict:
        return {
            "hostname": self.hostname,
            "version": self.version,
            "configured": self.configured,
            "role": self.role.value,
            "maintenance": self.maintenance,
            "services": dict(self.services),
            "holds_floating_ips": self.holds_floating_ips,
            "interface_up": self.interface_up,
            "services_down": list(self.services_down),
            "failed_here": list(self.failed_here),
            "links_down": list(self.links_down),
            "priority": self.priority,
            "standby": self.standby,
            "warnings": list(self.warnings),
        }

    @classmethod
    def from_dict(cls, data: dict) -> NodeFacts:
        return cls(
            hostname=str(data["hostname"]),
            version=str(data["version"]),
            configured=bool(data["configured"]),
            role=Role(data["role"]),
            maintenance=bool(data["maintenance"]),
            services={str(k): bool(v) for k, v in data["services"].items()},
            holds_floating_ips=bool(data["holds_floating_ips"]),
            interface_up=data.get("interface_up"),
            services_down=[str(name) for name in data.get("services_down", [])],
            failed_here=[str(name) for name in data.get("failed_here", [])],
            links_down=[str(name) for name in data.get("links_down", [])],
            priority=data["priority"] if isinstance(data.get("priority"), int) else None,
            standby=dict(data.get("standby") or {}),
            warnings=[str(w) for w in data.get("warnings", [])],
        )


def _ip_json(*args: str) -> list[dict]:
    out = subprocess.run(["ip", "-j", *args], capture_output=True, text=True)
    return json.loads(out.stdout or "[]") if out.returncode == 0 else []


class LocalNode:
    def __init__(self, paths: Paths | None = None, systemctl: Systemctl | None = None):
        self.paths = paths or Paths.from_env()
        self.systemctl = systemctl or Systemctl()
        self.keepalived = Keepalived(self.paths, self.systemctl)
        self.conntrackd = Conntrackd(self.paths, self.systemctl)
        self.agent = AgentDaemon(self.paths, self.systemctl)
        self.firewall = NodeFirewall(self.paths)

    # --- reading -------------------------------------------------------------------------

    def config(self) -> ClusterConfig | None:
        if not self.paths.cluster_file.exists():
            return None
        return store.load(self.paths.cluster_file)

    def role(self) -> Role:
        try:
            return Role(self.paths.role_file.read_text().strip())
        except (OSError, ValueError):
            return Role.UNKNOWN

    def effective_role(self) -> Role:
        """The role this node really holds: the role file, except that a master is a
        backup unless the keepalived running now made it master. keepalived died without a
        transition, so the file still says master, but the agent releases the floating IPs
        and the peer takes over: this node must neither push its configuration nor refuse
        the new master's. Nor must a role file left saying master by a reboot, a crash or a
        keepalived restarted under the agent count before this keepalived says so."""
        role = self.role()
        if role is Role.MASTER and not self._master_of_this_keepalived():
            return Role.BACKUP
        return self.as_held(role)

    def _master_of_this_keepalived(self) -> bool:
        """The agent's mark says it took MASTER from the keepalived running now: its moment
        is no older than that keepalived's start (both in hundredths since boot)."""
        started = self.keepalived.running_since()
        mark = read_mark(self.paths.transition_mark)
        return (started is not None and mark is not None and mark.state == "master"
                and mark.at.this_boot() and mark.at.since_boot >= int(started * 100))

    def services_role(self, config: ClusterConfig | None) -> Role:
        """The role the operator's services follow: the effective role, except that a
        master whose keepalived died goes on serving the floating IPs it still holds until
        they are released (when the peer has taken over), so its master-only services stay
        until then rather than leave the floating IPs answered with refusals."""
        role = self.effective_role()
        if (role is Role.BACKUP and config is not None and self.role() is Role.MASTER
                and self.floating_ips_held(config)):
            return Role.MASTER
        return role

    def as_held(self, role: Role) -> Role:
        """keepalived's FAULT is written as maintenance; it is maintenance only when the
        operator switched it on, and a fault (a tracked link down) otherwise."""
        if role is Role.MAINTENANCE and not self.in_maintenance():
            return Role.FAULT
        return role

    def in_maintenance(self) -> bool:
        try:
            return self.paths.maintenance_flag.read_text().strip() not in ("", MAINTENANCE_OFF)
        except OSError:
            return False

    def agent_state(self) -> dict:
        try:
            state = json.loads(self.paths.agent_state.read_text())
        except (OSError, ValueError):
            return {}
        pid = state.get("pid")
        if not isinstance(pid, int) or not Path(f"/proc/{pid}").exists():
            return {}
        return state

    def floating_ips_held(self, config: ClusterConfig) -> list[tuple[str, str]]:
        """(CIDR, link) of each floating IP this node holds, on the link configured for it."""
        wanted = {(cidr.split("/")[0], link) for cidr, link in config.placed_floating_ips}
        held = []
        for link in _ip_json("addr", "show"):
            for info in link.get("addr_info", []):
                if (info.get("local"), link.get("ifname")) in wanted:
                    held.append((f"{info['local']}/{info['prefixlen']}", link["ifname"]))
        return held

    def interface_up(self, name: str) -> bool:
        links = _ip_json("link", "show", "dev", name)
        return bool(links) and "UP" in links[0].get("flags", [])

    def links_down(self, names: tuple[str, ...]) -> list[str]:
        """Those of ``names`` that keepalived counts as down: missing, switched off, or
        without carrier."""
        flags = {link.get("ifname"): link.get("flags", []) for link in _ip_json("link", "show")}
        return [name for name in names
                if name not in flags or not {"UP", "LOWER_UP"} <= set(flags[name])]

    def service_facts(self, config: ClusterConfig, role: Role) -> tuple[list[str], list[str]]:
        """(services this node should run in ``role`` that do not, master-only services
        that failed here as master)."""
        down = [name for name in config.services_to_run(role) if not services.running(name)]
        return down, services.failed_here(self.paths.service_state_dir, config.services)

    def facts(self) -> NodeFacts:
        config = self.config()
        agent = self.agent_state()
        daemons = {
            "keepalived": self.keepalived.running(),
            "conntrackd": self.conntrackd.running(),
            "agent": bool(agent),
            "sync": bool(agent.get("sync")),
        }
        role = self.effective_role() if config else Role.UNKNOWN
        down, failed = self.service_facts(config, role) if config else ([], [])
        priority = agent.get("priority")
        return NodeFacts(
            hostname=socket.gethostname(),
            version=__version__,
            configured=config is not None,
            role=role,
            maintenance=self.in_maintenance(),
            services=daemons,
            holds_floating_ips=bool(config and self.floating_ips_held(config)),
            interface_up=self.interface_up(config.interface) if config else None,
            services_down=down,
            failed_here=failed,
            links_down=self.links_down(config.all_tracked_interfaces) if config else [],
            priority=priority if isinstance(priority, int) else None,
            standby=standby_facts(config, self.conntrackd, agent) if config else {},
            warnings=(link_warnings(agent.get("cluster_link"), time.time(), config,
                                    socket.gethostname()) if config else []),
        )

    def inventory(self) -> dict:
        """What pre-flight compares between the nodes."""
        async def discover() -> tuple[list, list[str]]:
            return await discover_addresses(), await link_names()

        addresses, links = asyncio.run(discover())
        return {
            "hostname": socket.gethostname(),
            "version": __version__,
            "configured": self.paths.cluster_file.exists(),
            "addresses": [
                {"interface": a.interface, "address": a.address, "label": a.label}
                for a in addresses
            ],
            "links": links,
            "keepalived": self._version_or_none(self.keepalived),
            "conntrackd": self._version_or_none(self.conntrackd),
            "link_addresses": link_addresses(),
            "time": time.time(),
        }

    @staticmethod
    def _version_or_none(daemon) -> str | None:
        try:
            return daemon.version()
        except DaemonError:
            return None

    # --- writing -------------------------------------------------------------------------

    def managed_files(self) -> list[Path]:
        """Files a create, edit or destroy may change here: what a rollback restores. Not
        the role file: the agent alone writes it, as keepalived moves the node."""
        p = self.paths
        return [p.cluster_file, p.keepalived_conf, p.conntrackd_conf, p.maintenance_flag,
                p.peer_link]

    def apply(self, config: ClusterConfig, claim: bool = False) -> None:
        """Write cluster.toml and both daemon configurations; keepalived checks its own first.
        ``claim``: keepalived's with the owner's priority (see ``PRIORITY_CLAIM``)."""
        hostname = socket.gethostname()
        try:
            config.node(hostname)
        except KeyError:
            raise NodeError(
                f"this node's hostname {hostname} is not one of the cluster's nodes "
                f"({', '.join(n.hostname for n in config.nodes)})"
            ) from None
        hook = hook_command(skutui_command(), self.paths.transition_mark,
                            self.paths.keepalived_report)
        keepalived_text = render_keepalived(config, hostname, self.paths, hook, claim,
                                            services.check_command())
        self._check_keepalived(keepalived_text)
        self.firewall.check(config, hostname)
        self.paths.local_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        if not self.paths.maintenance_flag.exists():
            write_text_atomic(self.paths.maintenance_flag, MAINTENANCE_OFF + "\n")
        store.save(config, self.paths.cluster_file)
        write_text_atomic(self.paths.keepalived_conf, keepalived_text)
        write_text_atomic(self.paths.conntrackd_conf, render_conntrackd(config, hostname, self.paths))

    def _check_keepalived(self, text: str) -> None:
        with tempfile.NamedTemporaryFile("w", suffix=".conf") as tmp:
            tmp.write(text)
            tmp.flush()
            problem = self.keepalived.config_test(Path(tmp.name))
        if problem:
            raise NodeError(f"keepalived refuses the rendered configuration: {problem}")

    def reload(self) -> None:
        """Re-render both daemon configurations from cluster.toml; keepalived re-reads its own
        without dropping the floating IPs, conntrackd is restarted only if its file changed.

        A new heartbeat transport makes keepalived re-create its instance, which starts as
        backup without the floating IPs: on the master that one reload claims the owner's
        priority, and once keepalived speaks the new transport the usual one is put back."""
        config = self.config()
        if config is None:
            raise NodeError("no cluster is configured on this node")
        before = self.paths.conntrackd_conf.read_bytes() if self.paths.conntrackd_conf.exists() else b""
        claim = (self.keepalived.running() and self.role() is Role.MASTER
                 and self.heard_transport(config) != config.heartbeat_transport)
        self.apply(config, claim)
        self.firewall.install(config, socket.gethostname())
        if self.keepalived.running():
            self.keepalived.reload()
        if claim:
            self._await_transport(config)
            self.apply(config)
            self.keepalived.reload()
        if self.conntrackd.running() and self.paths.conntrackd_conf.read_bytes() != before:
            self.conntrackd.restart()

    def heard_transport(self, config: ClusterConfig) -> str:
        """The transport keepalived speaks now, as the kernel records it: a multicast instance
        has joined VRRP's group on the cluster NIC."""
        for link in _ip_json("maddr", "show", "dev", config.interface):
            if any(entry.get("address") in VRRP_GROUPS for entry in link.get("maddr", [])):
                return TRANSPORT_MULTICAST
        return TRANSPORT_UNICAST

    def _await_transport(self, config: ClusterConfig) -> None:
        deadline = time.monotonic() + TRANSPORT_SWITCH_TIMEOUT
        while self.heard_transport(config) != config.heartbeat_transport:
            if time.monotonic() > deadline:
                raise NodeError(f"keepalived did not take the {config.heartbeat_transport} heartbeat "
                                f"within {TRANSPORT_SWITCH_TIMEOUT:g} s")
            time.sleep(TRANSPORT_SWITCH_POLL)

    def start(self) -> None:
        """conntrackd, keepalived, then the agent, each by its unit, as at boot. A daemon
        running since before its configuration was written (Debian's conntrackd, started
        with Debian's file) is restarted, so that it runs skutui's."""
        config = self.config()
        if config is None:
            raise NodeError("no cluster is configured on this node")
        self.set_handover(HANDOVER_OFF)  # a handover left by a process that was stopped
        # skutui's table before keepalived: a floating IP is never held without the guard.
        self.firewall.install(config, socket.gethostname())
        self.units_follow_cluster()
        # An agent disabled by hand would not start at the next boot.
        self.systemctl.enable(AGENT_UNIT)
        self.conntrackd.start_current(self.paths.conntrackd_conf)
        self.keepalived.start_current(self.paths.keepalived_conf)
        self.agent.start()

    def prepare(self) -> None:
        """Before keepalived starts (its unit runs this): skutui's table, as ``start``
        installs it: after a reboot the kernel holds none, and keepalived must not hold a
        floating IP without the takeover guard. The role file is the agent's alone; one
        left saying master counts as backup until this keepalived says otherwise
        (``effective_role``)."""
        try:
            config = self.config()
        except codec.ConfigError:
            return  # keepalived runs on the configuration it was given; the agent reports this
        if config is not None:
            self.firewall.install(config, socket.gethostname())

    def units_follow_cluster(self) -> None:
        """skutui's drop-ins on Debian's keepalived and conntrackd units exist exactly while
        this node has a cluster.toml; systemd re-reads its units when they change."""
        changed = (install_drop_ins(self.paths) if self.paths.cluster_file.exists()
                   else remove_drop_ins(self.paths))
        if changed:
            self.systemctl.daemon_reload()

    def stop(self) -> None:
        """Stop everything and make sure no floating IP is left to announce."""
        self.agent.stop()
        self.keepalived.stop()
        self.conntrackd.stop()
        self.set_handover(HANDOVER_OFF)
        try:
            config = self.config()
        except codec.ConfigError:
            return  # unreadable; keepalived's own clean stop released its addresses
        if config:
            self.release_floating_ips(config)
            if self.firewall.armed() is False:
                self.firewall.guard(config, socket.gethostname(), armed=True)

    def release_floating_ips(self, config: ClusterConfig) -> list[str]:
        released = self.floating_ips_held(config)
        for cidr, link in released:
            subprocess.run(["ip", "addr", "del", cidr, "dev", link], capture_output=True)
        return [cidr for cidr, _ in released]

    def erase(self, keep_keys: bool = False) -> None:
        """Stop and remove this node's cluster configuration, and the peer's skutui key from
        root's authorized_keys, so no trust outlives the cluster (``keep_keys``: create erases
        the peer right after the key exchange). This node's own key and pins stay; Debian's
        keepalived and conntrackd units are left as Debian installed them."""
        self.stop()
        self.firewall.remove()
        for path in [*self.managed_files(), self.paths.role_file, self.paths.generation_file]:
            path.unlink(missing_ok=True)
        self.units_follow_cluster()
        if not keep_keys:
            authorized_keys.revoke(self.paths.authorized_keys)
        # Commands queued for the old peer must not replay onto the next one.
        if self.paths.journal_dir.exists():
            Journal(self.paths.journal_dir).discard_pending()

    def pin_peer_link(self, address: str, link_address: str | None) -> str:
        """Pin the peer's link-layer address on the cluster NIC (at create, and by
        ``skutui cluster rekey``); a running table takes it at once."""
        pin = pin_peer_link(self.paths, address, link_address)
        config = self.config()
        if config is not None and self.firewall.armed() is not None:
            self.firewall.install(config, socket.gethostname())
        return (f"{socket.gethostname()} accepts VRRP and conntrackd traffic from {address} "
                f"only with link-layer address {pin.link_address}" if pin.link_address else
                f"{socket.gethostname()} accepts VRRP and conntrackd traffic from {address} "
                "(its cluster NIC has no link-layer address to pin)")

    def write_role(self, role: Role) -> None:
        """The agent's alone (``skutui.agent.role_supervisor``), as keepalived moves the node.
        Only when it changes: a synced write would only delay the conntrackd commit after it."""
        if self.role() is not role:
            write_text_atomic(self.paths.role_file, role.value + "\n")

    def set_maintenance(self, on: bool) -> str:
        config = self.config()
        if config is None:
            raise NodeError("no cluster is configured on this node")
        hostname = socket.gethostname()
        if on == self.in_maintenance():
            state = "already" if on else "not"
            raise NodeError(f"The node {hostname} is {state} under maintenance")
        if not on and not self.interface_up(config.interface):
            raise NodeError(
                f"The Cluster Interface '{config.interface}' is not UP; bring it up before "
                "leaving maintenance"
            )
        if not on:
            services.forget_failures(self.paths.service_state_dir)
        # keepalived tracks this file: a non-zero value puts the instance in FAULT, and the
        # agent writes the role as keepalived moves the node.
        write_text_atomic(self.paths.maintenance_flag, (MAINTENANCE_ON if on else MAINTENANCE_OFF) + "\n")
        self.set_handover(HANDOVER_OFF)
        if on:
            return f"{hostname} is in maintenance"
        return f"{hostname} left maintenance and rejoins the cluster"

    # --- handing the master role over ------------------------------------------------------

    def set_handover(self, value: int) -> None:
        """keepalived adds ``value`` to this node's priority (see ``HANDOVER_YIELD`` and
        ``HANDOVER_NOW``); 0 puts it back."""
        if value == HANDOVER_OFF and not self.paths.handover_file.exists():
            return
        self.paths.run_dir.mkdir(parents=True, exist_ok=True)
        write_text_atomic(self.paths.handover_file, f"{value}\n", mode=0o644)

    def hand_over(self, timeout: float) -> float:
        """Rank this node below the peer and wait until keepalived made the peer master (it
        takes the floating IPs while this node still answers, and this node lets them go on
        the peer's first advert). Returns the seconds it took; on timeout this node stays
        master and NodeError says so."""
        if self.effective_role() is not Role.MASTER:
            raise NodeError(f"{socket.gethostname()} is not the master; nothing to hand over")
        started = time.monotonic()
        self.set_handover(HANDOVER_YIELD)
        while self.role() is Role.MASTER and self.keepalived.running():
            if time.monotonic() - started > timeout:
                self.set_handover(HANDOVER_OFF)
                raise NodeError(f"the peer did not take over the floating IPs within "
                                f"{timeout:.1f} s; {socket.gethostname()} stays master")
            time.sleep(HANDOVER_POLL)
        return time.monotonic() - started

    def commit_connections(self) -> None:
        """Put the peer's connections, as conntrackd received them, into this node's kernel
        now, before a planned takeover: the first packets this node forwards as master find
        them there."""
        result = self.conntrackd.ctl("-c")
        if result.returncode != 0:
            raise NodeError(f"conntrackd -c failed: {result.stderr.strip() or result.returncode}")

    # --- rollback ------------------------------------------------------------------------

    @staticmethod
    def _restore_files(files: list[tuple[Path, bytes | None, int]]) -> list[Path]:
        """Write back every file that differs from the snapshot's; returns those written."""
        changed = []
        for path, data, mode in files:
            if data is None:
                if path.exists() or path.is_symlink():
                    path.unlink()
                    changed.append(path)
                continue
            if _holds(path, data, mode):
                continue  # untouched: nothing to write (and a full disk cannot stop it)
            # The file's own mode: a restored keepalived.conf stays as readable as it was.
            write_bytes_atomic(path, data, mode)
            changed.append(path)
        return changed

    def _no_cluster_no_role(self, files: list[tuple[Path, bytes | None, int]],
                            running: dict) -> None:
        """A node put back to no cluster has no role either (its agent, the role's writer,
        is not running then to say otherwise)."""
        if not running.get("agent") and _without_cluster(files):
            self.paths.role_file.unlink(missing_ok=True)

    def snapshot(self) -> dict:
        files: dict[str, str | None] = {}
        modes: dict[str, int] = {}
        for path in self.managed_files():
            try:
                files[str(path)] = base64.b64encode(path.read_bytes()).decode()
                modes[str(path)] = stat.S_IMODE(path.stat().st_mode)
            except FileNotFoundError:
                files[str(path)] = None
        return {"files": files, "modes": modes, "running": self._running()}

    def _running(self) -> dict[str, bool]:
        return {"keepalived": self.keepalived.running(), "conntrackd": self.conntrackd.running(),
                "agent": bool(self.agent_state())}

    def restore(self, snapshot: dict) -> None:
        """Put this node back as ``snapshot`` found it. If the same daemons run as then,
        only the files that differ are written back and re-read (a failed edit costs no
        takeover); otherwise everything is stopped, restored and started as it was."""
        files, running = _restore_plan(snapshot, self.managed_files())
        if self._running() == running:
            changed = self._restore_files(files)
            self._no_cluster_no_role(files, running)
            if self.paths.keepalived_conf in changed and running.get("keepalived"):
                self.keepalived.reload()
            if self.paths.conntrackd_conf in changed and running.get("conntrackd"):
                self.conntrackd.restart()
            self.units_follow_cluster()
            return
        self.stop()
        self._restore_files(files)
        self._no_cluster_no_role(files, running)
        self.units_follow_cluster()
        if running.get("conntrackd"):
            self.conntrackd.start()
        if running.get("keepalived"):
            self.keepalived.start()
        if running.get("agent"):
            self.agent.start()


def _without_cluster(files: list[tuple[Path, bytes | None, int]]) -> bool:
    return any(data is None and path.name == "cluster.toml" for path, data, _ in files)


def _restore_plan(snapshot: object, managed: list[Path]
                  ) -> tuple[list[tuple[Path, bytes | None, int]], dict]:
    """The files (path, content or None for absent, mode) and daemons of a snapshot, checked
    whole before restore() stops or writes anything. A snapshot holds this node's
    ``managed`` files only: any other path is refused, whoever sent it (the peer runs
    restore here over SSH)."""
    try:
        if not isinstance(snapshot, dict):
            raise TypeError("not an object")
        files, modes, running = snapshot["files"], snapshot.get("modes", {}), snapshot["running"]
        if not all(isinstance(part, dict) for part in (files, modes, running)):
            raise TypeError("files, modes and running must be objects")
        plan = []
        for name, content in files.items():
            mode = modes.get(name, codec.FILE_MODE)
            if "\0" in name or Path(name) not in managed:
                raise ValueError(f"{name!r} is not a file a snapshot holds (only "
                                 f"{', '.join(map(str, managed))})")
            if type(mode) is not int or not 0 <= mode <= 0o7777:
                raise ValueError(f"the mode of {name!r} is {mode!r}")
            data = None if content is None else base64.b64decode(content, validate=True)
            plan.append((Path(name), data, mode))
    except KeyError as exc:
        raise SnapshotError(f"the snapshot to restore has no {exc} key") from None
    except (TypeError, ValueError) as exc:
        raise SnapshotError(f"the snapshot to restore is not valid: {exc}") from None
    return plan, running


def _holds(path: Path, data: bytes, mode: int) -> bool:
    """Whether ``path`` is a regular file with exactly these bytes and this mode."""
    try:
        info = path.lstat()
        return (stat.S_ISREG(info.st_mode) and stat.S_IMODE(info.st_mode) == mode
                and path.read_bytes() == data)
    except OSError:
        return False
