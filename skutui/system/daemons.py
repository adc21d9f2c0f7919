"""Starting, stopping and asking the daemons a node runs: keepalived, conntrackd, the agent.

The daemons are driven directly through their binaries with skutui's own pid files and
configuration paths, so the same code works with or without an init system and two nodes
never collide on a default pid file (keepalived then exits 0 silently without running).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from skutui.domain.errors import Failed
from skutui.domain.paths import Paths
from skutui.domain.render import keepalived_environment

STOP_TIMEOUT = 5.0
POLL = 0.02


class DaemonError(Failed):
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


def process_ids(*arguments: str, comm: str | None = None) -> list[int]:
    """PIDs whose argument list holds every one of ``arguments`` (and named ``comm``, if given)."""
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
        if args != [b""] and all(w in args for w in wanted):
            found.append(int(entry.name))
    return sorted(found)


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


def spawn_detached(argv: list[str], log: Path | None = None, env: dict[str, str] | None = None) -> None:
    """Start a daemon in its own session so that it outlives the command that started it."""
    with contextlib.ExitStack() as closing:
        out = closing.enter_context(open(log, "ab")) if log else subprocess.DEVNULL
        subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=out,
            start_new_session=True,
            close_fds=True,
            env={**os.environ, **env} if env else None,
        )


def _wait_until(check, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(POLL)
    return check()


class Keepalived:
    def __init__(self, paths: Paths):
        self.paths = paths

    def pids(self) -> list[int]:
        return process_ids(str(self.paths.keepalived_conf), comm="keepalived")

    def running(self) -> bool:
        """Its processes exist and none of them is stopped (SIGSTOP, a debugger): a
        stopped keepalived sends no advert, so the peer takes over while this node still
        holds the floating IPs; it counts as not running, and the agent releases them."""
        pids = self.pids()
        return bool(pids) and not any(_pid_state(pid) in ("T", "t") for pid in pids)

    def version(self) -> str:
        return KEEPALIVED.version("--version")

    def config_test(self, conf: Path) -> str | None:
        """None when keepalived accepts ``conf``, else what it complained about."""
        out = subprocess.run(
            [KEEPALIVED.path(), "--config-test", "-f", str(conf)], capture_output=True, text=True
        )
        return None if out.returncode == 0 else (out.stderr or out.stdout).strip()

    def start(self) -> None:
        if self.pids():
            return
        self.paths.run_dir.mkdir(parents=True, exist_ok=True)
        spawn_detached(
            [
                KEEPALIVED.path(),
                "--vrrp",
                "--use-file", str(self.paths.keepalived_conf),
                "--pid", str(self.paths.keepalived_pid),
                "--vrrp_pid", str(self.paths.vrrp_pid),
            ],
            env=keepalived_environment(self.paths),
        )
        if not _wait_until(self.running, STOP_TIMEOUT):
            raise DaemonError("keepalived did not start; run keepalived --config-test")

    def stop(self) -> None:
        terminate(self.pids(), "keepalived")

    def reload(self) -> None:
        """Re-read the configuration without dropping the floating IPs the master holds."""
        parents = [p for p in self.pids() if self._is_parent(p)]
        if not parents:
            raise DaemonError("keepalived is not running; it cannot be reloaded")
        for pid in parents:
            os.kill(pid, signal.SIGHUP)

    @staticmethod
    def _is_parent(pid: int) -> bool:
        try:
            ppid = int(_stat_fields(pid)[1])
            parent_comm = Path(f"/proc/{ppid}/comm").read_text().strip()
        except (OSError, IndexError, ValueError):
            return False
        return parent_comm != "keepalived"


class Conntrackd:
    def __init__(self, paths: Paths):
        self.paths = paths

    def pids(self) -> list[int]:
        return process_ids(str(self.paths.conntrackd_conf), comm="conntrackd")

    def running(self) -> bool:
        return bool(self.pids())

    def version(self) -> str:
        return CONNTRACKD.version("-v")

    def start(self) -> None:
        if self.running():
            return
        self.paths.run_dir.mkdir(parents=True, exist_ok=True)
        # A lock file left by a killed conntrackd makes the next start fail.
        self.paths.conntrackd_lock.unlink(missing_ok=True)
        spawn_detached([CONNTRACKD.path(), "-C", str(self.paths.conntrackd_conf)])
        if not _wait_until(lambda: self.paths.conntrackd_socket.exists(), STOP_TIMEOUT):
            raise DaemonError("conntrackd did not start; see its log")

    def stop(self) -> None:
        terminate(self.pids(), "conntrackd")
        self.paths.conntrackd_lock.unlink(missing_ok=True)

    def ctl(self, *flags: str, timeout: float = 10.0) -> subprocess.CompletedProcess:
        """One client request to the running daemon (``-c``, ``-f``, ``-R``, ``-B``, ``-t``…)."""
        return subprocess.run(
            [CONNTRACKD.path(), "-C", str(self.paths.conntrackd_conf), *flags],
            capture_output=True,
            text=True,
            timeout=timeout,
        )


AGENT_MARK = "--skutui-agent"
"""Marks the agent's command line, so it is found by its arguments, not by a pid file."""


class AgentDaemon:
    """The node agent as a process: ``python -m skutui.agent`` of this very installation."""

    def __init__(self, paths: Paths):
        self.paths = paths

    def pids(self) -> list[int]:
        return process_ids(AGENT_MARK, str(self.paths.config_root))

    def start(self) -> None:
        if self.pids():
            return
        self.paths.run_dir.mkdir(parents=True, exist_ok=True)
        spawn_detached(
            [sys.executable, "-m", "skutui.agent", AGENT_MARK, str(self.paths.config_root)],
            log=self.paths.agent_log,
        )

    def stop(self) -> None:
        terminate(self.pids(), "skutui agent")
        self.paths.agent_state.unlink(missing_ok=True)
