"""Starting, stopping and asking the daemons a node runs: keepalived, conntrackd, the agent.

systemd runs all three (:mod:`skutui.system.units` says how): they are started, stopped and
reloaded through ``systemctl``, so that systemd alone starts them at boot and again when one
dies, and never finds a copy it did not start. Whether one runs is read from /proc by its
command line, which names skutui's own configuration: a stopped (SIGSTOP) keepalived does
not count, and reading it costs no process.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from skutui.domain.paths import Paths
from skutui.system.units import AGENT_UNIT, CONNTRACKD_UNIT, KEEPALIVED_UNIT, Systemctl, UnitError

STOP_TIMEOUT = 5.0
POLL = 0.02


class DaemonError(UnitError):
    """A daemon could not be started, stopped or asked; the message says which and why."""


@dataclass(frozen=True)
class Binary:
    name: str
    debian_package: str

    def path(self) -> str:
        found = shutil.which(self.name, path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin")
        if not found:
            raise DaemonError(
                f"{self.name} is not installed; install the Debian package {self.debian_package}"
            )
        return found

    def version(self, flag: str) -> str:
        """The first ``vX.Y.Z`` the binary prints about itself ("unknown" if none)."""
        out = subprocess.run([self.path(), flag], capture_output=True, text=True)
        found = VERSION.search(out.stdout + out.stderr)
        return found.group(1) if found else "unknown"


VERSION = re.compile(r"\bv(\d+(?:\.\d+)+)\b")

KEEPALIVED = Binary("keepalived", "keepalived")
CONNTRACKD = Binary("conntrackd", "conntrackd")


def process_ids(*arguments: str, comm: str | None = None,
                match: Callable[[list[bytes]], bool] | None = None) -> list[int]:
    """PIDs whose argument list holds every one of ``arguments`` (and named ``comm``, and
    accepted by ``match``, if given)."""
    wanted = [a.encode() for a in arguments]
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            if comm and Path(entry.path, "comm").read_text().strip() != comm[:15]:
                continue
            args = Path(entry.path, "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if args != [b""] and all(w in args for w in wanted) and (match is None or match(args)):
            found.append(int(entry.name))
    return sorted(found)


def started_since_boot(pid: int) -> float | None:
    """When ``pid`` started, in seconds since boot (None if it is gone)."""
    try:
        return int(_stat_fields(pid)[19]) / os.sysconf("SC_CLK_TCK")
    except (IndexError, ValueError):
        return None


def started_at(pid: int) -> float | None:
    """When ``pid`` started, in seconds since the epoch (None if it is gone)."""
    since_boot = started_since_boot(pid)
    try:
        boot = next(float(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines()
                    if line.startswith("btime "))
    except (IndexError, ValueError, StopIteration, OSError):
        return None
    return None if since_boot is None else boot + since_boot


def started_before(pids: Sequence[int], path: Path) -> bool:
    """Whether a process of ``pids`` started before ``path`` was last written: it runs an
    older configuration (Debian's own, at a cluster's creation) and must be restarted. The
    kernel's boot time is a whole second, so a daemon started in the second after the write
    may count as older too: a restart too many, never one too few."""
    try:
        written = path.stat().st_mtime
    except OSError:
        return False
    times = [t for t in map(started_at, pids) if t is not None]
    return any(t < written for t in times)


def _stat_fields(pid: int) -> list[str]:
    """The fields of /proc/PID/stat after the command name: state, ppid, …; [] if gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return []


def _pid_state(pid: int) -> str | None:
    """The kernel's one-letter state of ``pid`` (R, S, T for stopped, Z…), None if gone."""
    fields = _stat_fields(pid)
    return fields[0] if fields else None


def _pid_alive(pid: int) -> bool:
    return _pid_state(pid) not in (None, "Z")


def _wait_gone(pids: list[int], timeout: float) -> list[int]:
    deadline = time.monotonic() + timeout
    while pids and time.monotonic() < deadline:
        pids = [p for p in pids if _pid_alive(p)]
        if pids:
            time.sleep(POLL)
    return pids


def terminate(pids: list[int], name: str) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    left = _wait_gone(pids, STOP_TIMEOUT)
    for pid in left:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    if _wait_gone(left, STOP_TIMEOUT):
        raise DaemonError(f"{name} (pid {', '.join(map(str, left))}) did not stop")


def _wait_until(check, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(POLL)
    return check()


class UnitDaemon:
    """A daemon that systemd runs as ``unit``; found by its command line in /proc."""

    unit = ""
    name = ""

    def __init__(self, paths: Paths, systemctl: Systemctl | None = None):
        self.paths = paths
        self.systemctl = systemctl or Systemctl()

    def pids(self) -> list[int]:
        raise NotImplementedError

    def running(self) -> bool:
        return bool(self.pids())

    def _started(self) -> None:
        if not _wait_until(self.running, STOP_TIMEOUT):
            raise DaemonError(f"{self.name} did not start; see `journalctl -u {self.unit}`")

    def start(self) -> None:
        """systemd starts it (a Type=notify unit: once it reported ready) unless it runs."""
        self.systemctl.start(self.unit)
        self._started()

    def restart(self) -> None:
        self.systemctl.restart(self.unit)
        self._started()

    def stop(self) -> None:
        """systemd stops it; a copy systemd did not start (by hand, by an older skutui) is
        stopped too, so that none is left to answer for this node."""
        self.systemctl.stop(self.unit)
        terminate(self.pids(), self.name)

    def runs_older_than(self, path: Path) -> bool:
        """It runs, but started before ``path`` (its configuration) was last written."""
        return started_before(self.pids(), path)

    def start_current(self, conf: Path) -> None:
        """Running on ``conf`` as written now: started, or restarted when its unit runs one
        started before the file was written, or one that is not skutui's at all (Debian's
        unit started before skutui's drop-in existed)."""
        if self.runs_older_than(conf) or (not self.running() and self.systemctl.active(self.unit)):
            self.restart()
        else:
            self.start()


class Keepalived(UnitDaemon):
    unit = KEEPALIVED_UNIT
    name = "keepalived"

    def pids(self) -> list[int]:
        return process_ids(str(self.paths.keepalived_conf), comm="keepalived")

    def running(self) -> bool:
        return bool(self._running_pids())

    def running_since(self) -> float | None:
        """Seconds since boot when the keepalived running now started (its first process);
        None when it is not running. One look at /proc for both."""
        times = [t for t in map(started_since_boot, self._running_pids()) if t is not None]
        return min(times) if times else None

    def _running_pids(self) -> list[int]:
        """Its processes, none of them stopped (SIGSTOP, a debugger); else none: a stopped
        keepalived sends no advert, so the peer takes over while this node still holds the
        floating IPs; it counts as not running, and the agent releases them."""
        pids = self.pids()
        return [] if any(_pid_state(pid) in ("T", "t") for pid in pids) else pids

    def version(self) -> str:
        return KEEPALIVED.version("--version")

    def config_test(self, conf: Path) -> str | None:
        """None when keepalived accepts ``conf``, else what it complained about."""
        out = subprocess.run(
            [KEEPALIVED.path(), "--config-test", "-f", str(conf)], capture_output=True, text=True
        )
        return None if out.returncode == 0 else (out.stderr or out.stdout).strip()

    def reload(self) -> None:
        """Re-read the configuration without dropping the floating IPs the master holds
        (Debian's unit sends SIGHUP to keepalived's main process)."""
        if not self.running():
            raise DaemonError("keepalived is not running; it cannot be reloaded")
        self.systemctl.reload(self.unit)


class Conntrackd(UnitDaemon):
    unit = CONNTRACKD_UNIT
    name = "conntrackd"

    def pids(self) -> list[int]:
        return process_ids(str(self.paths.conntrackd_conf), comm="conntrackd")

    def version(self) -> str:
        return CONNTRACKD.version("-v")

    def _started(self) -> None:
        """Running, and answering on its socket (what every transition step talks to)."""
        if not _wait_until(lambda: self.running() and self.paths.conntrackd_socket.exists(),
                           STOP_TIMEOUT):
            raise DaemonError(f"conntrackd did not start; see `journalctl -u {self.unit}`")

    def stop(self) -> None:
        super().stop()
        self.paths.conntrackd_lock.unlink(missing_ok=True)

    def ctl(self, *flags: str, timeout: float = 10.0) -> subprocess.CompletedProcess:
        """One client request to the running daemon (``-c``, ``-f``, ``-R``, ``-B``, ``-t``…)."""
        return subprocess.run(
            [CONNTRACKD.path(), "-C", str(self.paths.conntrackd_conf), *flags],
            capture_output=True,
            text=True,
            timeout=timeout,
        )


AGENT_COMMAND = (b"agent", b"run")
"""The agent is ``skutui agent run``: how its process is told from every other."""


def is_agent_command(args: Sequence[bytes]) -> bool:
    """Whether a command line (``/proc/PID/cmdline`` split) runs the agent: ``skutui`` (the
    launcher, or ``python -m skutui``) followed by ``agent run``."""
    for index, arg in enumerate(args[:-2]):
        if (arg == b"skutui" or arg.endswith(b"/skutui")) and tuple(args[index + 1:index + 3]) == AGENT_COMMAND:
            return True
    return False


class AgentDaemon(UnitDaemon):
    """The node agent: ``skutui agent run``, which its unit starts."""

    unit = AGENT_UNIT
    name = "skutui agent"

    def pids(self) -> list[int]:
        return process_ids(match=is_agent_command)

    def start(self) -> None:
        """Its start job queued, and its process there: the agent reports ready (its unit
        is Type=notify) only once its control socket answers, a Python start-up later, and
        create must read the peer's first role long before that."""
        self.systemctl.run("start", "--no-block", self.unit)
        self._started()

    def stop(self) -> None:
        super().stop()
        self.paths.agent_state.unlink(missing_ok=True)
