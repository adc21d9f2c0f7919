"""Two real cluster nodes on this machine, for demos and integration tests.

Each node boots like an appliance: a named network namespace plus its own mount, UTS, PID
and cgroup namespaces, a disk of its own (an overlay of the host's root filesystem, kept in
a per-node folder), and Debian's systemd as PID 1 (``skutui_lab.init`` builds the node, then
execs it), which starts sshd, Debian's enabled keepalived and conntrackd units and skutui's
agent unit from the node's /etc/systemd/system. The cluster's /etc folders are bind-mounted
from the node's folder on the host, so a test reads from the host what skutui wrote inside
a node. ``reboot`` ends every process of a node and boots it again from the same disk.
Every object is written to the state file before it is created, so ``down`` removes
exactly what ``up`` made, even after an ``up`` that died half-way.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import selectors
import shlex
import shutil
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import skutui
from skutui.domain.model import CHECK_INTERVAL_MAX, CHECK_INTERVAL_MIN
from skutui.domain.paths import Paths
from skutui.system.files import write_text_atomic
from skutui.system.units import AGENT_UNIT, LAUNCHER, agent_unit
from skutui_lab import init as node_init
from skutui_lab.system import (
    NETNS_DIR,
    LabError,
    all_pids,
    children_of,
    cmdline,
    is_mount_point,
    is_running,
    link_exists,
    netns_exists,
    proc_stat,
    process_environment,
    reap,
    remove_cgroup,
    require_programs,
    require_root,
    run,
)
from skutui_lab.topology import (
    BRIDGE,
    BRIDGE_IP,
    DEFAULT_ADVERT,
    FLOATING_IP,
    INTERFACE,
    NETWORK,
    NODE_MARKER,
    NODE_NAMES,
    NODE_PATH,
    NODES,
    PASSWORD,
    PREFIXLEN,
    LabNode,
    lab_dir_from_env,
    node_by_name,
)

STATE_VERSION = 1
INIT_MODULE = "skutui_lab.init"
READY_TIMEOUT = 15.0
BOOT_TIMEOUT = 30.0
"""Seconds a node's systemd may take to finish booting (about half a second here)."""
STOP_TIMEOUT = 5.0
LOCK_TIMEOUT = 30.0
POLL = 0.005

BOUND_FILES = ("etc/shadow", "etc/hostname")
BOUND_DIRS = ("etc/ssh", "etc/keepalived", "etc/conntrackd", "etc/skutui", "etc/haproxy")
SEEDED_FROM_HOST = ("etc/keepalived", "etc/conntrackd", "etc/haproxy")
"""Copied from the host, so a node starts like a fresh install: packages present, unconfigured.
/etc/haproxy is each node's own, so the cluster's sync is what copies its configuration."""
PRIVATE_TMPFS = (("/run", 0o755), ("/tmp", 0o1777))
ROOT_DOTFILES = {
    ".bashrc": ("/usr/share/base-files/dot.bashrc", "/etc/skel/.bashrc"),
    ".profile": ("/usr/share/base-files/dot.profile", "/etc/skel/.profile"),
}
"""Debian's stock root dotfiles, so the host's own (which may reorder PATH) do not apply."""
OVERLAY_OPAQUE = "trusted.overlay.opaque"
HOLD = "zz-lab-hold.conf"
"""A runtime drop-in (in /run: a reboot forgets it) that keeps systemd from starting a unit
again when its daemon dies; its name sorts after skutui's own drop-in, so it wins."""
DEBIAN_ENABLED = ("ssh.service", "keepalived.service", "conntrackd.service")
"""Units a fresh Debian 12 with openssh-server, keepalived and conntrackd has enabled: each
package's postinst enables its unit. keepalived.service starts at boot as soon as
/etc/keepalived/keepalived.conf is not empty."""
DEBIAN_ALIASES = {"sshd.service": "ssh.service"}
MASKED = ("getty.target", "console-getty.service", "systemd-logind.service",
          "systemd-timesyncd.service")
"""Nothing to log in on or synchronise in a lab node: consoles, seats and the clock are the host's."""
MASKED_GENERATORS = ("systemd-sysv-generator",)
"""The host's /etc/init.d scripts are not the node's services."""
SYSTEM_UNIT_DIR = "lib/systemd/system"
HIDDEN_FROM_NODES = ("usr/sbin/policy-rc.d", "var/lib/skutui")
"""/var/lib/skutui holds a node's history: the node's own, on its disk, never the host's."""


@dataclass(frozen=True)
class NodeStatus:
    name: str
    ip: str
    hostname: str
    up: bool
    pid: int | None
    """Host PID of the node's PID 1."""
    sshd: bool


@dataclass(frozen=True)
class LabStatus:
    up: bool
    built: bool
    """A state file exists: something of a lab was made (up, half-built or broken)."""
    advert: float
    bridge: bool
    nodes: tuple[NodeStatus, ...]


def inside_node() -> str | None:
    """The node's name when this process runs inside a lab node."""
    try:
        return NODE_MARKER.read_text().strip() or None
    except OSError:
        return None


def check_advert(advert: float) -> float:
    if not CHECK_INTERVAL_MIN <= advert <= CHECK_INTERVAL_MAX:
        raise LabError(
            f"advert interval {advert:g} s is out of range: "
            f"use {CHECK_INTERVAL_MIN:g} to {CHECK_INTERVAL_MAX:g} s"
        )
    return round(advert, 2)


def _opaque(folder: Path) -> None:
    """Hide the host's folder of the same name under this one in the node's overlay."""
    try:
        os.setxattr(folder, OVERLAY_OPAQUE, b"y")
    except OSError as exc:
        raise LabError(
            f"cannot mark {folder} opaque for the node's overlay ({exc.strerror}): "
            "put the lab folder on a filesystem with trusted xattrs (ext4, xfs, tmpfs)"
        ) from None


def _ipv6_off(link: str) -> None:
    """No router solicitations or DAD chatter from the host's end of the lab's links."""
    knob = Path(f"/proc/sys/net/ipv6/conf/{link}/disable_ipv6")
    if knob.exists():
        knob.write_text("1")


def _under(path: Path, parent: str) -> bool:
    return path == Path(parent) or Path(parent) in path.parents


def _package_root() -> Path:
    """The folder holding the running ``skutui`` package: what the nodes must import."""
    return Path(skutui.__file__).resolve().parent.parent


def _source_path() -> str | None:
    """The PYTHONPATH that makes a node import the skutui that built the lab: none for an
    installed package, which the interpreter finds by itself; a source tree (an editable
    install, a checkout run from its folder) goes first."""
    root = _package_root()
    return None if root.name in ("site-packages", "dist-packages") else str(root)


class Lab:
    """The two-node lab. Safe to construct anywhere; acting on it needs root."""

    def __init__(self, lab_dir: Path | str | None = None):
        self.lab_dir = Path(lab_dir) if lab_dir else lab_dir_from_env()
        self._launchers: dict[int, subprocess.Popen[bytes]] = {}

    # --- where things are -------------------------------------------------------------

    @property
    def state_file(self) -> Path:
        return self.lab_dir / "state.json"

    @property
    def nodes_dir(self) -> Path:
        return self.lab_dir / "nodes"

    def node_dir(self, node: str) -> Path:
        """Host folder of a node: its etc/ssh, etc/skutui… are the node's own /etc/ssh, /etc/skutui…"""
        return self.nodes_dir / self._node(node).name

    def host_path(self, node: str, path: str | Path) -> Path:
        """Where a path inside a node is on the host: its bound folder, else through /proc."""
        inside = Path("/", path)
        folder = self.node_dir(node)
        for relative in BOUND_FILES + BOUND_DIRS:
            if _under(inside, "/" + relative):
                return folder / inside.relative_to("/")
        return Path(f"/proc/{self.node_pid(node)}/root") / inside.relative_to("/")

    def disk(self, node: str) -> Path:
        """What the node wrote to its root filesystem (the overlay's upper folder)."""
        return self.node_dir(node) / "disk" / "upper"

    # --- the public actions -----------------------------------------------------------

    def up(self, advert: float | None = None) -> bool:
        """Build the lab; False when it was already up (then only the advert is updated)."""
        self._preflight("up")
        advert = None if advert is None else check_advert(advert)
        with self._locked():
            state = self._load()
            if state is not None and self._status(state).up:
                if advert is not None and advert != state["advert"]:
                    state["advert"] = advert
                    self._save(state)
                return False
            self._teardown(state or {})
            try:
                self._build(DEFAULT_ADVERT if advert is None else advert)
            except BaseException as exc:
                try:
                    self._teardown(self._load() or {})
                except LabError as cleanup:
                    raise LabError(
                        f"{exc}; clean-up also failed: {cleanup} (run 'skutui lab down')"
                    ) from None
                raise
        return True

    def down(self) -> bool:
        """Remove everything the lab made; False when there was nothing to remove."""
        self._preflight("down")
        with self._locked():
            state = self._load()
            leftovers = self._leftovers()
            self._teardown(state or {})
        return state is not None or leftovers

    def reboot(self, node: str, while_off: Callable[[], object] | None = None) -> None:
        """End every process of ``node`` at once, as a power cut does, and boot it again
        from its disk: a new network stack, /run and /tmp empty, systemd starting what the
        node's /etc/systemd/system enables. ``while_off`` runs while the node is off (a test
        changes the other node meanwhile); it must not call the lab's own actions."""
        self._preflight("reboot")
        name = self._node(node).name
        with self._locked():
            state = self._load()
            if state is None or not self._status(state).up:
                raise LabError(f"the lab is not up: 'skutui lab up' first, then reboot {name}")
            self._stop_nodes(state, only=name)
            remove_cgroup(f"{state.get('cgroup') or self.cgroup}/{name}", self.lab_dir / "cgroup")
            node_record = state["nodes"][name]
            for key in ("pid", "pid_start", "launcher", "launcher_start"):
                node_record.pop(key, None)
            self._save(state)
            lab_node = self._node(name)
            self._unplug(lab_node)
            try:
                if while_off is not None:
                    while_off()
            finally:
                # Whatever happened meanwhile, the node boots: a test that failed there must
                # not leave the lab without it.
                self._plug(lab_node)
                ready = {name: self._launch(state, lab_node, self.node_dir(name) / "spec.json")}
                self._wait_ready(state, ready)
                self._wait_booted(state, [name])

    def reinstall_skutui(self, node: str) -> None:
        """Put the lab's skutui back into a running node (after a test installed and purged
        the package there): the launcher and the agent's unit, enabled, and systemd told."""
        root = Path(f"/proc/{self.node_pid(node)}/root")
        for relative in (LAUNCHER.lstrip("/"), f"usr/{SYSTEM_UNIT_DIR}/{AGENT_UNIT}",
                         f"etc/systemd/system/multi-user.target.wants/{AGENT_UNIT}"):
            target = root / relative
            if target.exists() or target.is_symlink():
                target.unlink()
        self._install_skutui(root)
        self.exec(node, ["systemctl", "daemon-reload"], check=True, capture_output=True)

    def hold_restarts(self, node: str, units: Sequence[str]) -> None:
        """systemd no longer starts ``units`` again when their daemon dies, as if each had
        died too often: a daemon killed stays dead until it is started by hand (Debian's
        haproxy unit, say, would start it at once, as if it had never failed).
        ``release_restarts``, or a reboot, lifts it."""
        script = "".join(f"mkdir -p /run/systemd/system/{unit}.d && printf '[Service]\\n"
                         f"Restart=no\\n' > /run/systemd/system/{unit}.d/{HOLD}; "
                         for unit in units)
        self.exec(node, ["sh", "-c", script + "systemctl daemon-reload"], check=True,
                  capture_output=True)

    def release_restarts(self, node: str) -> None:
        self.exec(node, ["sh", "-c", f"if ls /run/systemd/system/*.d/{HOLD} >/dev/null 2>&1; "
                         f"then rm -f /run/systemd/system/*.d/{HOLD}; systemctl daemon-reload; fi"],
                  check=True, capture_output=True)

    def status(self) -> LabStatus:
        return self._status(self._load() or {})

    def is_up(self) -> bool:
        return self.status().up

    def info(self) -> dict[str, Any]:
        status = self.status()
        return {
            "nodes": [
                {"name": n.name, "ip": n.ip, "hostname": n.hostname, "cidr": n.cidr,
                 "interface": INTERFACE}
                for n in NODES
            ],
            "password": PASSWORD,
            "floating_ip": FLOATING_IP,
            "network": NETWORK,
            "bridge": BRIDGE,
            "bridge_ip": BRIDGE_IP,
            "advert": status.advert,
            "up": status.up or inside_node() is not None,
            "lab_dir": str(self.lab_dir),
        }

    def node_pid(self, node: str) -> int:
        """Host PID of the node's PID 1; LabError when the node is not running."""
        name = self._node(node).name
        record = (self._load() or {}).get("nodes", {}).get(name, {})
        if not self._init_alive(record):
            raise LabError(f"lab node {name} is not running: start the lab with 'skutui lab up'")
        return record["pid"]

    def command(self, node: str, argv: Sequence[str]) -> list[str]:
        """The host command that runs argv inside a node (all its namespaces, cwd /)."""
        require_root("exec")
        return self._enter(self.node_pid(node), argv)

    @staticmethod
    def environment(extra: dict[str, str] | None = None) -> dict[str, str]:
        """A login-like environment for commands in a node; the terminal settings pass through."""
        env = {"PATH": NODE_PATH, "HOME": "/root", "USER": "root", "LOGNAME": "root",
               "SHELL": "/bin/bash", "LANG": os.environ.get("LANG", "C.UTF-8")}
        for key, value in os.environ.items():
            if key in ("TERM", "COLORTERM", "NO_COLOR") or key.startswith("LC_"):
                env[key] = value
        env.update(extra or {})
        return env

    def exec(self, node: str, argv: Sequence[str], **kwargs: Any) -> subprocess.CompletedProcess:
        """subprocess.run inside a node; kwargs go to subprocess.run (env defaults to the node's)."""
        kwargs.setdefault("env", self.environment())
        return subprocess.run(self.command(node, argv), **kwargs)

    # --- checks -----------------------------------------------------------------------

    @staticmethod
    def _node(name: str) -> LabNode:
        try:
            return node_by_name(name)
        except KeyError:
            raise LabError(
                f"unknown lab node '{name}': choose {' or '.join(NODE_NAMES)}"
            ) from None

    def _preflight(self, action: str) -> None:
        node = inside_node()
        if node:
            raise LabError(f"this is lab node {node}: run 'skutui lab {action}' on the host")
        require_root(action)
        lab_dir = self.lab_dir.resolve()
        if _under(lab_dir, "/root"):
            raise LabError(
                f"lab folder {lab_dir} is under /root, which the nodes see through an overlay: "
                "set SKUTUI_LAB_DIR elsewhere (default /var/lib/skutui-lab)"
            )
        if lab_dir in (Path("/"), Path("/tmp"), Path("/run")) or set(",:") & set(str(lab_dir)):
            raise LabError(
                f"lab folder {lab_dir} cannot hold a lab: use its own folder without ',' or ':' "
                "(default /var/lib/skutui-lab)"
            )
        if action == "up":
            require_programs()
            if not Path("/proc/self/ns/net").exists():
                raise LabError("this kernel has no network namespaces: the lab cannot run here")
            if "overlay" not in Path("/proc/filesystems").read_text():
                raise LabError("this kernel has no overlay filesystem: the lab needs it for /root")

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """One lab command at a time: two concurrent ups would fight over the same names."""
        self.lab_dir.mkdir(parents=True, exist_ok=True)
        with open(self.lab_dir / "lock", "w") as handle:
            deadline = time.monotonic() + LOCK_TIMEOUT
            while True:
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise LabError(
                            f"another 'skutui lab' command holds {self.lab_dir / 'lock'}: "
                            "wait for it to finish"
                        ) from None
                    time.sleep(0.05)
            yield

    # --- state ------------------------------------------------------------------------

    def _load(self) -> dict[str, Any] | None:
        try:
            state = json.loads(self.state_file.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise LabError(
                f"cannot read lab state {self.state_file}: {exc} "
                f"(remove the file, then run 'skutui lab down')"
            ) from None
        if not isinstance(state, dict) or state.get("version") != STATE_VERSION:
            raise LabError(
                f"lab state {self.state_file} is from another skutui version: "
                f"remove it, then run 'skutui lab down'"
            )
        return state

    def _save(self, state: dict[str, Any]) -> None:
        write_text_atomic(self.state_file, json.dumps(state, indent=2, sort_keys=True) + "\n")

    # --- status -----------------------------------------------------------------------

    def _init_alive(self, record: dict[str, Any]) -> bool:
        """The recorded PID is still the node's PID 1 (same start time, our init, our spec)."""
        pid = record.get("pid")
        if not pid:
            return False
        stat = proc_stat(pid)
        return (
            stat is not None
            and is_running(pid)
            and stat[2] == record.get("pid_start")
            and self._is_our_init(pid)
        )

    def _is_our_init(self, pid: int) -> bool:
        """A node's PID 1 of this lab: its environment names a node folder of this lab (it
        does before and after the exec into systemd)."""
        folder = process_environment(pid).get(node_init.NODE_ENV, "")
        if folder.startswith(str(self.nodes_dir) + "/"):
            return True
        # A node's PID 1 from before nodes booted systemd: named by its command line.
        args = cmdline(pid)
        return INIT_MODULE in args and any(arg.startswith(str(self.nodes_dir) + "/")
                                           for arg in args)

    def _status(self, state: dict[str, Any]) -> LabStatus:
        nodes = []
        for node in NODES:
            record = state.get("nodes", {}).get(node.name, {})
            alive = self._init_alive(record) and netns_exists(node.netns) and link_exists(node.veth)
            sshd = alive and self._sshd_listening(record["pid"], node.ip)
            nodes.append(
                NodeStatus(node.name, node.ip, node.hostname, alive,
                           record.get("pid") if alive else None, sshd)
            )
        bridge = link_exists(BRIDGE)
        return LabStatus(
            up=bool(state) and state.get("phase") == "up" and bridge
            and all(n.up for n in nodes),
            built=bool(state),
            advert=state.get("advert", DEFAULT_ADVERT),
            bridge=bridge,
            nodes=tuple(nodes),
        )

    @staticmethod
    def _sshd_listening(pid: int, ip: str) -> bool:
        try:
            return node_init.listening(ip, node_init.SSHD_PORT, f"/proc/{pid}/net/tcp")
        except OSError:
            return False

    # --- building ---------------------------------------------------------------------

    def _build(self, advert: float) -> None:
        state: dict[str, Any] = {
            "version": STATE_VERSION,
            "phase": "building",
            "advert": advert,
            "created": time.time(),
            "netns_dir": {"existed": NETNS_DIR.exists(), "was_mount": is_mount_point(NETNS_DIR)},
            "cgroup": self.cgroup,
            "bridge": None,
            "nodes": {},
        }
        self._save(state)
        password_hash = run(["openssl", "passwd", "-6", "-stdin"], stdin=PASSWORD).stdout.strip()
        specs = {node.name: self._prepare_node(node, password_hash) for node in NODES}
        self._build_network(state)
        ready = {node.name: self._launch(state, node, specs[node.name]) for node in NODES}
        self._wait_ready(state, ready)
        self._wait_booted(state, [node.name for node in NODES])
        state["phase"] = "up"
        self._save(state)

    @property
    def cgroup(self) -> str:
        """This lab's cgroup (one per lab folder, so labs side by side never meet)."""
        digest = hashlib.sha256(str(self.lab_dir.resolve()).encode()).hexdigest()[:10]
        return f"skutui-lab-{digest}"

    def _prepare_node(self, node: LabNode, password_hash: str) -> Path:
        """Fill the node's host folder: its bound /etc folders, and its disk as a fresh
        Debian with openssh-server, keepalived, conntrackd and skutui installed."""
        folder = self.node_dir(node.name)
        if folder.exists():
            shutil.rmtree(folder)
        etc = folder / "etc"
        etc.mkdir(parents=True)
        (etc / "hostname").write_text(node.hostname + "\n")
        self._write_shadow(etc / "shadow", password_hash)
        self._write_ssh(etc / "ssh", node)
        for relative in SEEDED_FROM_HOST:
            source = Path("/", relative)
            if source.is_dir():
                shutil.copytree(source, folder / relative, symlinks=True)
            else:
                (folder / relative).mkdir()
        (etc / "skutui").mkdir(mode=0o755)
        (folder / "rootfs").mkdir()
        (folder / "disk" / "work").mkdir(parents=True)
        upper = self.disk(node.name)
        upper.mkdir()
        self._write_root_home(upper / "root")
        self._hide_host_leftovers(upper)
        self._write_systemd(upper / "etc")
        self._install_skutui(upper)
        spec = {
            "name": node.name,
            "hostname": node.hostname,
            "ip": node.ip,
            "cidr": node.cidr,
            "interface": INTERFACE,
            "cgroup": f"{self.cgroup}/{node.name}",
            "root": str(folder / "rootfs"),
            "disk": {"upper": str(upper), "work": str(folder / "disk" / "work")},
            "binds": [[str(folder / rel), "/" + rel] for rel in BOUND_FILES + BOUND_DIRS],
            "tmpfs": [list(item) for item in PRIVATE_TMPFS],
            "expose": self._exposed_paths(),
            "marker": str(NODE_MARKER),
        }
        spec_path = folder / "spec.json"
        spec_path.write_text(json.dumps(spec, indent=2) + "\n")
        return spec_path

    @staticmethod
    def _write_shadow(path: Path, password_hash: str) -> None:
        lines = []
        for line in Path("/etc/shadow").read_text().splitlines():
            fields = line.split(":")
            if fields[0] == "root" and len(fields) > 1:
                fields[1] = password_hash
            lines.append(":".join(fields))
        path.write_text("\n".join(lines) + "\n")
        host = os.stat("/etc/shadow")
        os.chown(path, host.st_uid, host.st_gid)
        os.chmod(path, 0o640)

    @staticmethod
    def _write_ssh(path: Path, node: LabNode) -> None:
        shutil.copytree("/etc/ssh", path, symlinks=True,
                        ignore=shutil.ignore_patterns("ssh_host_*"))
        key = path / "ssh_host_ed25519_key"
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"root@{node.hostname}",
             "-f", str(key)])
        config = f"""\
# sshd of lab node {node.name}: root may log in with the lab password.
ListenAddress {node.ip}
Port {node_init.SSHD_PORT}
HostKey /etc/ssh/ssh_host_ed25519_key
PidFile /run/sshd.pid
PermitRootLogin yes
PasswordAuthentication yes
KbdInteractiveAuthentication no
PubkeyAuthentication yes
UsePAM no
UseDNS no
PrintMotd no
MaxStartups 50:30:100
AcceptEnv LANG LC_*
Subsystem sftp internal-sftp
"""
        (path / "sshd_config").write_text(config)

    @staticmethod
    def _install_skutui(disk: Path) -> None:
        """What the package installs that the node boots with, but from the installation
        that brought the lab up: ``skutui`` on root's PATH (the very interpreter and
        package), the agent's unit, enabled as the package's postinst enables it."""
        launcher = disk / LAUNCHER.lstrip("/")
        launcher.parent.mkdir(parents=True, exist_ok=True)
        source = _source_path()
        env = "" if source is None else (
            f"PYTHONPATH={shlex.quote(source)}${{PYTHONPATH:+:$PYTHONPATH}} "
        )
        launcher.write_text(
            "#!/bin/sh\n# skutui from the installation that brought the lab up\n"
            f'{env}exec {shlex.quote(sys.executable)} -m skutui "$@"\n'
        )
        launcher.chmod(0o755)
        units = disk / "usr" / SYSTEM_UNIT_DIR
        units.mkdir(parents=True, exist_ok=True)
        (units / AGENT_UNIT).write_text(agent_unit(Paths()))
        wants = disk / "etc/systemd/system/multi-user.target.wants"
        wants.mkdir(parents=True, exist_ok=True)
        (wants / AGENT_UNIT).symlink_to(f"/{SYSTEM_UNIT_DIR}/{AGENT_UNIT}")

    @staticmethod
    def _write_systemd(etc: Path) -> None:
        """The node's own /etc/systemd/system (none of the host's): Debian's enabled units
        for the packages a node has, and what a lab node has no use for masked."""
        system = etc / "systemd" / "system"
        wants = system / "multi-user.target.wants"
        wants.mkdir(parents=True)
        _opaque(system)
        for unit in DEBIAN_ENABLED:
            (wants / unit).symlink_to(f"/{SYSTEM_UNIT_DIR}/{unit}")
        for alias, unit in DEBIAN_ALIASES.items():
            (system / alias).symlink_to(f"/{SYSTEM_UNIT_DIR}/{unit}")
        for unit in MASKED:
            (system / unit).symlink_to("/dev/null")
        generators = etc / "systemd" / "system-generators"
        generators.mkdir()
        for generator in MASKED_GENERATORS:
            (generators / generator).symlink_to("/dev/null")
        (etc / "fstab").write_text("# a lab node mounts nothing of its own\n")
        (etc / "machine-id").write_text(os.urandom(16).hex() + "\n")

    @staticmethod
    def _hide_host_leftovers(disk: Path) -> None:
        """What this host has that a fresh Debian has not, and that would change how the
        node installs packages: a policy-rc.d (left by an interrupted set-up) keeps every
        package script from starting or stopping a unit. An overlay whiteout hides it."""
        for relative in HIDDEN_FROM_NODES:
            if (Path("/") / relative).exists():
                target = disk / relative
                target.parent.mkdir(parents=True, exist_ok=True)
                os.mknod(target, stat.S_IFCHR | 0o600, os.makedev(0, 0))

    @staticmethod
    def _write_root_home(root: Path) -> None:
        """/root's own layer: stock dotfiles and an empty, node-own ~/.ssh. /root itself may
        be entered by anyone, unlike the host's: the interpreter the nodes run skutui with
        may live under it (pyenv), and an appliance lets any user run skutui (to be refused
        as not root, with a clear message)."""
        root.mkdir(mode=0o755)
        for name, candidates in ROOT_DOTFILES.items():
            source = next((Path(c) for c in candidates if Path(c).is_file()), None)
            if source:
                shutil.copyfile(source, root / name)
        ssh = root / ".ssh"
        ssh.mkdir(mode=0o700)
        _opaque(ssh)

    def _exposed_paths(self) -> list[str]:
        """Host paths the node runs from that its private /tmp or /run would hide."""
        package = Path(skutui.__file__).resolve().parent
        root = package.parent
        candidates = [package if root in (Path("/tmp"), Path("/run")) else root,
                      Path(sys.prefix), Path(sys.base_prefix),
                      Path(sys.executable).resolve().parent]
        hidden = [p.resolve() for p in candidates
                  if any(_under(p.resolve(), t) and p.resolve() != Path(t)
                         for t, _ in PRIVATE_TMPFS)]
        unique = sorted(set(hidden))
        return [str(p) for p in unique if not any(o in p.parents for o in unique)]

    def _build_network(self, state: dict[str, Any]) -> None:
        for node in NODES:
            state["nodes"][node.name] = {"netns": node.netns, "veth": node.veth}
        state["bridge"] = BRIDGE
        self._save(state)
        run(["ip", "link", "add", BRIDGE, "type", "bridge"])
        _ipv6_off(BRIDGE)
        run(["ip", "-batch", "-"],
            stdin=f"addr add {BRIDGE_IP}/{PREFIXLEN} dev {BRIDGE}\nlink set {BRIDGE} up\n")
        for node in NODES:
            self._plug(node)

    @staticmethod
    def _plug(node: LabNode) -> None:
        """The node's network stack and its cable to the bridge, new: nothing of a previous
        boot (addresses, firewall rules, connection tracking) is left in it. Its NIC keeps
        the same MAC address across reboots, as a machine's does (made from its IP)."""
        mac = "02:00:" + ":".join(f"{int(octet):02x}" for octet in node.ip.split("."))
        run(["ip", "netns", "add", node.netns])
        run(["ip", "link", "add", node.veth, "type", "veth", "peer", "name", INTERFACE,
             "address", mac, "netns", node.netns])
        _ipv6_off(node.veth)
        run(["ip", "link", "set", node.veth, "master", BRIDGE, "up"])

    @staticmethod
    def _unplug(node: LabNode) -> None:
        if link_exists(node.veth):
            run(["ip", "link", "del", node.veth])
        if netns_exists(node.netns):
            run(["ip", "netns", "del", node.netns])

    def _launch(self, state: dict[str, Any], node: LabNode, spec: Path) -> int:
        """Start the node's PID 1; returns the read end of its readiness pipe."""
        read_fd, write_fd = os.pipe()
        env = {"PATH": NODE_PATH, "HOME": "/root", "LANG": "C.UTF-8"}
        source = _source_path()
        if source is not None:
            env["PYTHONPATH"] = source
        argv = ["nsenter", f"--net={NETNS_DIR / node.netns}", "unshare", "--mount", "--uts",
                "--pid", "--fork", "--propagation", "private",
                sys.executable, "-m", INIT_MODULE, str(spec), str(write_fd)]
        try:
            with open(spec.parent / "init.log", "ab") as log:
                launcher = subprocess.Popen(
                    argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                    pass_fds=(write_fd,), cwd="/", env=env, start_new_session=True,
                )
        except OSError as exc:
            os.close(read_fd)
            raise LabError(f"cannot start lab node {node.name}: {exc}") from None
        finally:
            os.close(write_fd)
        self._launchers[launcher.pid] = launcher
        stat = proc_stat(launcher.pid)
        state["nodes"][node.name].update(
            launcher=launcher.pid, launcher_start=stat[2] if stat else None
        )
        self._save(state)
        return read_fd

    def _wait_ready(self, state: dict[str, Any], ready: dict[str, int]) -> None:
        selector = selectors.DefaultSelector()
        buffers = {}
        for name, fd in ready.items():
            selector.register(fd, selectors.EVENT_READ, name)
            buffers[name] = b""
        deadline = time.monotonic() + READY_TIMEOUT
        try:
            while selector.get_map():
                events = selector.select(max(0.0, deadline - time.monotonic()))
                if not events:
                    waiting = ", ".join(key.data for key in selector.get_map().values())
                    raise LabError(f"lab node {waiting} not ready after {READY_TIMEOUT:g} s"
                                   + self._log_tail(waiting.split(", ")[0]))
                for key, _ in events:
                    chunk = os.read(key.fd, 4096)
                    buffers[key.data] += chunk
                    if not chunk or b"\n" in buffers[key.data]:
                        selector.unregister(key.fd)
                        self._node_ready(state, key.data, buffers[key.data])
        finally:
            selector.close()
            for fd in ready.values():
                os.close(fd)

    def _node_ready(self, state: dict[str, Any], name: str, message: bytes) -> None:
        try:
            report = json.loads(message.decode().strip() or "{}")
        except ValueError:
            report = {}
        if not report.get("ok"):
            reason = report.get("error") or "its PID 1 exited during set-up"
            raise LabError(f"lab node {name} failed: {reason}" + self._log_tail(name))
        record = state["nodes"][name]
        deadline = time.monotonic() + READY_TIMEOUT
        while not (pids := [p for p in children_of(record["launcher"]) if self._is_our_init(p)]):
            if time.monotonic() > deadline:
                raise LabError(f"lab node {name}: cannot find its PID 1 under {record['launcher']}")
            time.sleep(POLL)
        stat = proc_stat(pids[0])
        record.update(pid=pids[0], pid_start=stat[2] if stat else None)
        self._save(state)

    def _wait_booted(self, state: dict[str, Any], names: list[str]) -> None:
        """Each node's sshd listens and its systemd has finished booting (``running``, or
        ``degraded`` when a unit failed: the boot is over either way)."""
        deadline = time.monotonic() + BOOT_TIMEOUT
        for name in names:
            node = self._node(name)
            pid = state["nodes"][name]["pid"]
            while not self._sshd_listening(pid, node.ip):
                if time.monotonic() > deadline or not is_running(pid):
                    raise LabError(f"lab node {name}: sshd is not listening on {node.ip} "
                                   f"after {BOOT_TIMEOUT:g} s; see 'skutui lab exec {name} "
                                   "-- journalctl -u ssh'" + self._log_tail(name))
                time.sleep(POLL * 4)
            try:
                booted = subprocess.run(
                    self._enter(pid, ["systemctl", "is-system-running", "--wait"]),
                    capture_output=True, text=True, env=self.environment(),
                    timeout=max(1.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                raise LabError(f"lab node {name}: systemd did not finish booting within "
                               f"{BOOT_TIMEOUT:g} s; see 'skutui lab exec {name} -- "
                               "systemctl list-jobs'") from None
            if booted.stdout.strip() not in ("running", "degraded"):
                raise LabError(f"lab node {name}: systemd reports "
                               f"'{booted.stdout.strip() or booted.stderr.strip()}' after boot")

    def _enter(self, pid: int, argv: Sequence[str]) -> list[str]:
        nsenter = shutil.which("nsenter", path=NODE_PATH) or "nsenter"
        # -r and -w: the root and folder of the node's PID 1, its own root filesystem.
        return [nsenter, "-t", str(pid), "-n", "-m", "-u", "-p", "-r", "-w", "--", *argv]

    def _log_tail(self, name: str) -> str:
        try:
            lines = (self.node_dir(name) / "init.log").read_text().strip().splitlines()
        except OSError:
            return ""
        return ("\n" + "\n".join(lines[-10:])) if lines else ""

    # --- tearing down -----------------------------------------------------------------

    def _leftovers(self) -> bool:
        return (
            bool(self._our_inits())
            or link_exists(BRIDGE)
            or any(netns_exists(n.netns) or link_exists(n.veth) for n in NODES)
        )

    def _our_inits(self) -> list[int]:
        """Every live node PID 1 started from this lab folder, recorded or not."""
        return [pid for pid in all_pids()
                if is_running(pid) and self._is_our_init(pid)
                and os.path.basename(cmdline(pid)[0]) != "unshare"]

    def _teardown(self, state: dict[str, Any]) -> None:
        self._stop_nodes(state)
        remove_cgroup(state.get("cgroup") or self.cgroup, self.lab_dir / "cgroup")
        self._remove_network(state)
        self._remove_host_paths(state)
        if self.nodes_dir.exists():
            shutil.rmtree(self.nodes_dir)
        self.state_file.unlink(missing_ok=True)

    def _stop_nodes(self, state: dict[str, Any], only: str | None = None) -> None:
        """Kill each node's PID 1 (or only that of node ``only``): the kernel then kills
        every process of that node."""
        records = [record for name, record in state.get("nodes", {}).items()
                   if only is None or name == only]
        victims = {r["pid"] for r in records if self._init_alive(r)}
        if only is None:
            victims |= set(self._our_inits())
        for pid in victims:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        launchers = [r["launcher"] for r in records if r.get("launcher")
                     and (stat := proc_stat(r["launcher"])) and stat[2] == r.get("launcher_start")]
        deadline = time.monotonic() + STOP_TIMEOUT
        for pid in list(victims) + launchers:
            popen = self._launchers.pop(pid, None)
            while True:
                if popen is not None:
                    popen.poll()
                else:
                    reap(pid)
                if not is_running(pid):
                    break
                if time.monotonic() > deadline:
                    raise LabError(f"lab process {pid} did not stop after SIGKILL: "
                                   f"check it with 'ps -p {pid}'")
                time.sleep(POLL)

    def _remove_network(self, state: dict[str, Any]) -> None:
        names = {n.veth for n in NODES} | {r.get("veth") for r in state.get("nodes", {}).values()}
        names |= {BRIDGE, state.get("bridge")}
        commands = [f"link del {name}" for name in sorted(filter(None, names))
                    if link_exists(name)]
        spaces = {n.netns for n in NODES} | {r.get("netns") for r in state.get("nodes", {}).values()}
        commands += [f"netns del {name}" for name in sorted(filter(None, spaces))
                     if netns_exists(name)]
        if commands:
            run(["ip", "-batch", "-"], stdin="\n".join(commands) + "\n")
        netns_dir = state.get("netns_dir", {})
        if netns_dir and NETNS_DIR.is_dir() and not any(NETNS_DIR.iterdir()):
            if not netns_dir.get("was_mount") and is_mount_point(NETNS_DIR):
                run(["umount", str(NETNS_DIR)])
            if not netns_dir.get("existed"):
                NETNS_DIR.rmdir()

    @staticmethod
    def _remove_host_paths(state: dict[str, Any]) -> None:
        """Remove mount points the lab created on the host, if nothing was put in them since."""
        for target in reversed(state.get("host_paths_created", [])):
            path = Path(target)
            with contextlib.suppress(OSError):
                if path.is_dir():
                    path.rmdir()
                elif path.is_file() and path.stat().st_size == 0:
                    path.unlink()
