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
from skutui.domain.model import TRANSPORT_MULTICAST, TRANSPORT_UNICAST, ClusterConfig, Role
from skutui.domain.paths import Paths
from skutui.domain.render import render_conntrackd, render_keepalived
from skutui.system import store
from skutui.system.daemons import AgentDaemon, Conntrackd, DaemonError, Keepalived
from skutui.system.files import write_bytes_atomic, write_text_atomic
from skutui.system.hook import hook_command
from skutui.system.journal import Journal
from skutui.system.net import discover_addresses

VRRP_GROUPS = ("224.0.0.18", "ff02::12")
"""VRRP's multicast groups (RFC 5798): what a multicast keepalived joins on its interface."""
TRANSPORT_SWITCH_TIMEOUT = 5.0
TRANSPORT_SWITCH_POLL = 0.01

MAINTENANCE_ON = "1"
MAINTENANCE_OFF = "0"


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
    holds_floating_ips: bool = False
    interface_up: bool | None = None

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
        )


def _ip_json(*args: str) -> list[dict]:
    out = subprocess.run(["ip", "-j", *args], capture_output=True, text=True)
    return json.loads(out.stdout or "[]") if out.returncode == 0 else []


class LocalNode:
    def __init__(self, paths: Paths | None = None):
        self.paths = paths or Paths.from_env()
        self.keepalived = Keepalived(self.paths)
        self.conntrackd = Conntrackd(self.paths)
        self.agent = AgentDaemon(self.paths)

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
        """The role this node really holds: the role file, except that a master whose
        keepalived is not running is a backup. keepalived died without a transition, so
        the file still says master, but the agent releases the floating IPs and the peer
        takes over: this node must neither push its configuration nor refuse the new
        master's."""
        role = self.role()
        if role is Role.MASTER and not self.keepalived.running():
            return Role.BACKUP
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

    def floating_ips_held(self, config: ClusterConfig) -> list[str]:
        wanted = {cidr.split("/")[0] for cidr in config.floating_ips}
        held = []
        for link in _ip_json("addr", "show", "dev", config.interface):
            for info in link.get("addr_info", []):
                if info.get("local") in wanted:
                    held.append(f"{info['local']}/{info['prefixlen']}")
        return held

    def interface_up(self, name: str) -> bool:
        links = _ip_json("link", "show", "dev", name)
        return bool(links) and "UP" in links[0].get("flags", [])

    def facts(self) -> NodeFacts:
        config = self.config()
        agent = self.agent_state()
        services = {
            "keepalived": self.keepalived.running(),
            "conntrackd": self.conntrackd.running(),
            "agent": bool(agent),
            "sync": bool(agent.get("sync")),
        }
        role = self.effective_role() if config else Role.UNKNOWN
        return NodeFacts(
            hostname=socket.gethostname(),
            version=__version__,
            configured=config is not None,
            role=role,
            maintenance=self.in_maintenance(),
            services=services,
            holds_floating_ips=bool(config and self.floating_ips_held(config)),
            interface_up=self.interface_up(config.interface) if config else None,
        )

    def inventory(self) -> dict:
        """What pre-flight compares between the nodes."""
        addresses = asyncio.run(discover_addresses())
        return {
            "hostname": socket.gethostname(),
            "version": __version__,
            "configured": self.paths.cluster_file.exists(),
            "addresses": [
                {"interface": a.interface, "address": a.address, "label": a.label}
                for a in addresses
            ],
            "keepalived": self._version_or_none(self.keepalived),
            "conntrackd": self._version_or_none(self.conntrackd),
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
        """Files a create, edit or destroy may change here: what a rollback restores."""
        p = self.paths
        return [p.cluster_file, p.keepalived_conf, p.conntrackd_conf, p.role_file,
                p.maintenance_flag]

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
        keepalived_text = render_keepalived(
            config, hostname, self.paths, hook_command(skutui_command(), self.paths.transition_mark),
            claim)
        self._check_keepalived(keepalived_text)
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
        if self.keepalived.running():
            self.keepalived.reload()
        if claim:
            self._await_transport(config)
            self.apply(config)
            self.keepalived.reload()
        if self.conntrackd.running() and self.paths.conntrackd_conf.read_bytes() != before:
            self.conntrackd.stop()
            self.conntrackd.start()

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
        """conntrackd first, so the first transition keepalived reports finds it running."""
        if self.config() is None:
            raise NodeError("no cluster is configured on this node")
        if not self.paths.role_file.exists():
            self.write_role(Role.BACKUP)
        self.conntrackd.start()
        self.keepalived.start()
        self.agent.start()

    def stop(self) -> None:
        """Stop everything and make sure no floating IP is left to announce."""
        self.agent.stop()
        self.keepalived.stop()
        self.conntrackd.stop()
        try:
            config = self.config()
        except codec.ConfigError:
            return  # unreadable; keepalived's own clean stop released its addresses
        if config:
            self.release_floating_ips(config)

    def release_floating_ips(self, config: ClusterConfig) -> list[str]:
        released = self.floating_ips_held(config)
        for cidr in released:
            subprocess.run(["ip", "addr", "del", cidr, "dev", config.interface], capture_output=True)
        return released

    def erase(self) -> None:
        """Stop and remove this node's cluster configuration (keys and pinned hosts stay)."""
        self.stop()
        for path in self.managed_files():
            path.unlink(missing_ok=True)
        # Commands queued for the old peer must not replay onto the next one.
        if self.paths.journal_dir.exists():
            Journal(self.paths.journal_dir).discard_pending()

    def write_role(self, role: Role) -> None:
        """Only when it changes: a transition's steps find it written already by the agent,
        and a second synced write would only delay the conntrackd commit after it."""
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
            self.write_role(Role.BACKUP)
        # keepalived tracks this file: a non-zero value puts the instance in FAULT.
        write_text_atomic(self.paths.maintenance_flag, (MAINTENANCE_ON if on else MAINTENANCE_OFF) + "\n")
        if on:
            self.write_role(Role.MAINTENANCE)
            return f"{hostname} is in maintenance; the peer takes over the floating IPs"
        return f"{hostname} left maintenance and rejoins the cluster"

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
        files, running = _restore_plan(snapshot)
        if self._running() == running:
            changed = self._restore_files(files)
            if self.paths.keepalived_conf in changed and running.get("keepalived"):
                self.keepalived.reload()
            if self.paths.conntrackd_conf in changed and running.get("conntrackd"):
                self.conntrackd.stop()
                self.conntrackd.start()
            return
        self.stop()
        self._restore_files(files)
        if running.get("conntrackd"):
            self.conntrackd.start()
        if running.get("keepalived"):
            self.keepalived.start()
        if running.get("agent"):
            self.agent.start()


def _restore_plan(snapshot: object) -> tuple[list[tuple[Path, bytes | None, int]], dict]:
    """The files (path, content or None for absent, mode) and daemons of a snapshot, checked
    whole before restore() stops or writes anything."""
    try:
        if not isinstance(snapshot, dict):
            raise TypeError("not an object")
        files, modes, running = snapshot["files"], snapshot.get("modes", {}), snapshot["running"]
        if not all(isinstance(part, dict) for part in (files, modes, running)):
            raise TypeError("files, modes and running must be objects")
        plan = []
        for name, content in files.items():
            mode = modes.get(name, codec.FILE_MODE)
            if not Path(name).is_absolute() or "\0" in name:
                raise ValueError(f"{name!r} is not an absolute path")
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
