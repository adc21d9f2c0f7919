"""Small, checked wrappers around the host: commands, root, programs, /proc and mounts."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from skutui.domain.errors import Failed
from skutui_lab.topology import NODE_PATH


class LabError(Failed):
    """An expected failure, with a message naming the thing and the fix."""


PROGRAM_PACKAGES: dict[str, str] = {
    "ip": "iproute2",
    "nsenter": "util-linux",
    "unshare": "util-linux",
    "sshd": "openssh-server",
    "ssh-keygen": "openssh-client",
    "openssl": "openssl",
    "keepalived": "keepalived",
    "conntrackd": "conntrackd",
    "conntrack": "conntrack",
    "rsync": "rsync",
    "nft": "nftables",
    "inotifywait": "inotify-tools",
    "haproxy": "haproxy",
    "nginx": "nginx-light",
}
"""Every program the lab runs or a node must offer skutui, with the Debian package holding it
(haproxy on the nodes and nginx on the backend are the load balancer the tests put behind
the cluster)."""


def require_root(action: str) -> None:
    if os.geteuid() != 0:
        raise LabError(
            f"'skutui lab {action}' must run as root: the lab creates network namespaces, "
            "mounts and processes (try: sudo skutui lab " + action + ")"
        )


def require_programs(names: Sequence[str] = tuple(PROGRAM_PACKAGES)) -> None:
    missing = [name for name in names if shutil.which(name, path=NODE_PATH) is None]
    if missing:
        packages = sorted({PROGRAM_PACKAGES[name] for name in missing})
        raise LabError(
            f"missing program{'s' if len(missing) > 1 else ''} {', '.join(missing)}: "
            f"install with: apt-get install {' '.join(packages)}"
        )


def run(argv: Sequence[str], stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run a host command; a failure becomes a LabError quoting the command and its stderr."""
    try:
        result = subprocess.run(
            list(argv), input=stdin, capture_output=True, text=True, check=False
        )
    except OSError as exc:
        raise LabError(f"cannot run {argv[0]}: {exc.strerror}") from None
    if result.returncode != 0:
        detail = (result.stderr or result.stdout).strip() or f"exit code {result.returncode}"
        raise LabError(f"'{' '.join(argv)}' failed: {detail}")
    return result


# --- processes ------------------------------------------------------------------------


def proc_stat(pid: int) -> tuple[str, int, int] | None:
    """(state, parent PID, start time in clock ticks), or None when the PID is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = raw[raw.rindex(")") + 2 :].split()
    return fields[0], int(fields[1]), int(fields[19])


def cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (FileNotFoundError, ProcessLookupError):
        return []
    return raw.decode(errors="replace").split("\0")[:-1]


def process_environment(pid: int) -> dict[str, str]:
    """The environment ``pid`` was started with (empty when gone or unreadable)."""
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return {}
    pairs = (item.decode(errors="replace").partition("=") for item in raw.split(b"\0") if item)
    return {key: value for key, _, value in pairs}


def is_running(pid: int) -> bool:
    """True while the PID exists and is not a zombie waiting for its parent."""
    stat = proc_stat(pid)
    return stat is not None and stat[0] not in ("Z", "X")


def all_pids() -> Iterator[int]:
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            yield int(entry.name)


def children_of(parent: int) -> list[int]:
    return [pid for pid in all_pids() if (stat := proc_stat(pid)) and stat[1] == parent]


def reap(pid: int) -> None:
    """Collect the exit status when the PID is our own child; anyone else's is not ours to reap."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


# --- network names and mounts ---------------------------------------------------------

NETNS_DIR = Path("/run/netns")


def link_exists(name: str) -> bool:
    return Path("/sys/class/net", name).exists()


def netns_exists(name: str) -> bool:
    return (NETNS_DIR / name).exists()


def mount_points() -> list[str]:
    """Mount points of this process's mount namespace, unescaped."""
    points = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        field = line.split()[4]
        points.append(field.encode().decode("unicode_escape"))
    return points


def is_mount_point(path: Path) -> bool:
    return str(path) in mount_points()


# --- cgroups ----------------------------------------------------------------------------

CGROUP_REMOVE_TIMEOUT = 5.0


def remove_cgroup(name: str, scratch: Path) -> None:
    """Remove cgroup ``name`` and every cgroup under it, once the processes in them are gone.
    The cgroup2 hierarchy is mounted for this in a mount namespace of its own (at
    ``scratch``), so nothing is mounted on the host and nothing is left mounted."""
    script = ('mount -t cgroup2 none "$1" || exit 1; cd "$1"; [ -d "$2" ] || exit 0; '
              'find "$2" -depth -type d -exec rmdir {} + 2>/dev/null; [ ! -d "$2" ]')
    scratch.mkdir(exist_ok=True)
    try:
        deadline = time.monotonic() + CGROUP_REMOVE_TIMEOUT
        while True:
            done = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c",
                                   script, "sh", str(scratch), name],
                                  capture_output=True, text=True, check=False)
            if done.returncode == 0:
                return
            if time.monotonic() > deadline:
                raise LabError(f"cannot remove the lab's cgroup {name}: a process of the node "
                               "is still in it (" + (done.stderr.strip() or "busy") + ")")
            time.sleep(0.05)
    finally:
        with contextlib.suppress(OSError):
            scratch.rmdir()
