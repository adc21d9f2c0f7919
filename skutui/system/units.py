"""skutui under systemd: its agent's unit, the drop-ins that put Debian's keepalived and
conntrackd units to work for the cluster, ``systemctl``, and readiness for ``Type=notify``.

Debian's ``keepalived.service`` and ``conntrackd.service`` stay the only units that run
those daemons: while this node is in a cluster, a drop-in beside each (in
/etc/systemd/system/UNIT.d/skutui.conf) gives it skutui's command line and paths, orders
conntrackd before keepalived and restarts either when it dies; ``skutui cluster destroy``
removes both drop-ins, which leaves the units exactly as Debian installed them. There is
never a second unit that could start a second keepalived or conntrackd, and nothing to mask
and later unmask. The agent's own unit is installed with the package and does nothing on a
node without a cluster.

Every text here is rendered from :class:`Paths`, so a path is written in one place only.
"""

from __future__ import annotations

import os
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path

from skutui.domain.errors import Failed
from skutui.domain.paths import Paths
from skutui.domain.render import keepalived_environment
from skutui.system.files import write_text_atomic

LAUNCHER = "/usr/sbin/skutui"
"""skutui's command on an appliance: on root's PATH, also for a non-interactive SSH session."""
AGENT_UNIT = "skutui-agent.service"
KEEPALIVED_UNIT = "keepalived.service"
CONNTRACKD_UNIT = "conntrackd.service"
PACKAGE_UNIT_DIR = Path("/lib/systemd/system")
"""Where a package installs its units: the agent's."""
ADMIN_UNIT_DIR = Path("/etc/systemd/system")
"""Where the drop-ins go: the local administrator's place, which a package never touches."""
DROP_IN = "skutui.conf"
BOOTED_MARK = Path("/run/systemd/system")
"""Exists exactly when systemd is PID 1 (what sd_booted() checks)."""
SYSTEMCTL_TIMEOUT = 120.0
"""Seconds a systemctl call may take: a start waits for the daemon to report ready."""
RESTART_SEC = 1
"""Seconds systemd waits before starting keepalived or conntrackd again after it died."""
AGENT_RESTART_SEC = 2

KEEPALIVED_BINARY = "/usr/sbin/keepalived"
CONNTRACKD_BINARY = "/usr/sbin/conntrackd"
"""Where Debian's packages put the daemons (their own units name these paths too)."""


class UnitError(Failed):
    """systemd refused or failed an action; the message says which unit and where to look."""


def booted(mark: Path = BOOTED_MARK) -> bool:
    return mark.is_dir()


def _header(purpose: str) -> str:
    return (f"# Written by skutui while this node is in a cluster; `skutui cluster destroy` "
            f"removes it.\n# {purpose}\n")


def agent_unit(paths: Paths, launcher: str = LAUNCHER) -> str:
    """skutui-agent.service, as the package installs it."""
    return f"""\
# skutui's node agent: configuration sync, command replication and role events. It runs
# only on a node in a cluster, after the conntrackd and keepalived it pulls in.
[Unit]
Description=skutui node agent (configuration sync, command replication, role events)
Documentation=man:skutui(8)
ConditionPathExists={paths.cluster_file}
Wants=network-online.target {CONNTRACKD_UNIT} {KEEPALIVED_UNIT}
After=network-online.target {CONNTRACKD_UNIT} {KEEPALIVED_UNIT}

[Service]
Type=notify
ExecStart={launcher} agent run
Restart=always
RestartSec={AGENT_RESTART_SEC}
SyslogIdentifier=skutui
RuntimeDirectory={paths.run_dir.name}
RuntimeDirectoryPreserve=yes

[Install]
WantedBy=multi-user.target
"""


def keepalived_drop_in(paths: Paths, launcher: str = LAUNCHER,
                       binary: str = KEEPALIVED_BINARY) -> str:
    """Debian's keepalived.service, with skutui's command line: VRRP only, skutui's pid files
    (no clash with a default keepalived), its dumps in skutui's run folder. Before it starts,
    ``skutui node prepare`` installs skutui's table, so that no floating IP is ever held
    without the takeover guard."""
    environment = " ".join(f"{key}={value}" for key, value in keepalived_environment(paths).items())
    return _header("keepalived for the cluster: after conntrackd, started again when it dies.") + f"""\
[Unit]
Wants={CONNTRACKD_UNIT}
After={CONNTRACKD_UNIT}

[Service]
ExecStartPre={launcher} node prepare
ExecStart=
ExecStart={binary} --dont-fork --vrrp --use-file {paths.keepalived_conf} \
--pid {paths.keepalived_pid} --vrrp_pid {paths.vrrp_pid}
Environment={environment}
RuntimeDirectory={paths.run_dir.name}
RuntimeDirectoryPreserve=yes
Restart=always
RestartSec={RESTART_SEC}
"""


def conntrackd_drop_in(paths: Paths, binary: str = CONNTRACKD_BINARY) -> str:
    """Debian's conntrackd.service, with skutui's configuration, before keepalived. A
    conntrackd killed outright leaves its lock file, which would stop the next one."""
    return _header("conntrackd for the cluster: before keepalived, started again when it dies.") + f"""\
[Unit]
Before={KEEPALIVED_UNIT}

[Service]
ExecStartPre=-/bin/rm -f {paths.conntrackd_lock}
ExecStart=
ExecStart={binary} -C {paths.conntrackd_conf}
RuntimeDirectory={paths.run_dir.name}
RuntimeDirectoryPreserve=yes
Restart=always
RestartSec={RESTART_SEC}
"""


@dataclass(frozen=True)
class DropIn:
    unit: str
    text: str

    def path(self, unit_dir: Path = ADMIN_UNIT_DIR) -> Path:
        return unit_dir / f"{self.unit}.d" / DROP_IN


def drop_ins(paths: Paths, launcher: str = LAUNCHER) -> tuple[DropIn, ...]:
    return (DropIn(CONNTRACKD_UNIT, conntrackd_drop_in(paths)),
            DropIn(KEEPALIVED_UNIT, keepalived_drop_in(paths, launcher)))


class Systemctl:
    """``systemctl`` for the system manager; every failure names the unit and its journal."""

    def __init__(self, program: str = "systemctl", mark: Path = BOOTED_MARK) -> None:
        self.program = program
        self.mark = mark

    def require(self) -> None:
        if not booted(self.mark):
            raise UnitError(
                "systemd is not running on this machine (no /run/systemd/system): skutui runs "
                "keepalived, conntrackd and its agent as systemd units; boot the node with "
                "systemd (Debian's default)")

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        self.require()
        try:
            result = subprocess.run([self.program, *args], capture_output=True, text=True,
                                    timeout=SYSTEMCTL_TIMEOUT)
        except subprocess.TimeoutExpired:
            raise UnitError(f"`systemctl {' '.join(args)}` did not finish within "
                            f"{SYSTEMCTL_TIMEOUT:g} s") from None
        except OSError as exc:
            raise UnitError(f"cannot run systemctl: {exc.strerror}") from None
        if check and result.returncode != 0:
            units = [a for a in args if a.endswith(".service")]
            where = (" (see `journalctl -u " + " -u ".join(units) + "`)") if units else ""
            detail = (result.stderr or result.stdout).strip() or f"exit code {result.returncode}"
            raise UnitError(f"`systemctl {' '.join(args)}` failed: {detail}{where}")
        return result

    def start(self, *units: str) -> None:
        self.run("start", *units)

    def stop(self, *units: str) -> None:
        self.run("stop", *units)

    def restart(self, *units: str) -> None:
        self.run("restart", *units)

    def reload(self, *units: str) -> None:
        self.run("reload", *units)

    def enable(self, *units: str) -> None:
        self.run("enable", "--quiet", *units)

    def daemon_reload(self) -> None:
        self.run("daemon-reload")

    def active(self, unit: str) -> bool:
        return self.run("is-active", "--quiet", unit, check=False).returncode == 0

    def show(self, unit: str, *properties: str) -> dict[str, str]:
        out = self.run("show", unit, *(f"--property={p}" for p in properties)).stdout
        return dict(line.partition("=")[::2] for line in out.splitlines() if "=" in line)

    def main_pid(self, unit: str) -> int:
        try:
            return int(self.show(unit, "MainPID").get("MainPID", "0"))
        except ValueError:
            return 0


def install_drop_ins(paths: Paths, unit_dir: Path = ADMIN_UNIT_DIR) -> bool:
    """Write skutui's drop-ins where they differ; True when one was written (systemd must
    then reload its units)."""
    changed = False
    for drop_in in drop_ins(paths):
        target = drop_in.path(unit_dir)
        try:
            if target.read_text() == drop_in.text:
                continue
        except OSError:
            pass
        target.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(target, drop_in.text, mode=0o644)
        changed = True
    return changed


def remove_drop_ins(paths: Paths, unit_dir: Path = ADMIN_UNIT_DIR) -> bool:
    """Remove skutui's drop-ins (and their folders when nothing else is in them); True when
    one was removed."""
    changed = False
    for drop_in in drop_ins(paths):
        target = drop_in.path(unit_dir)
        if target.exists() or target.is_symlink():
            target.unlink()
            changed = True
        try:
            target.parent.rmdir()
        except OSError:
            pass  # absent, or it holds the administrator's own drop-ins
    return changed


def notify(state: str, environ: dict[str, str] | None = None) -> bool:
    """Tell systemd ``state`` (``READY=1``, ``STOPPING=1``…) on $NOTIFY_SOCKET, the way
    sd_notify() does, without a library; False when not run by systemd as Type=notify."""
    address = (os.environ if environ is None else environ).get("NOTIFY_SOCKET", "")
    if not address or address[0] not in "/@":
        return False
    target = "\0" + address[1:] if address[0] == "@" else address
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
        try:
            sock.sendto(state.encode(), target)
        except OSError:
            return False
    return True
