"""PID 1 of a lab node: builds the node's private view of the machine, starts sshd, reaps.

Started by the lab as ``unshare --mount --uts --pid --fork --mount-proc --propagation
private python -m skutui_lab.init SPEC READY_FD`` inside the node's network namespace.
It reads what to mount from SPEC (JSON written by the lab), reports ``{"ok": true}`` or
``{"error": "..."}`` as one line on READY_FD, then stays as the namespace's reaper: when
it exits, the kernel kills every process of the node. Standard library only, so a node
costs one small interpreter.
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import signal
import socket
import subprocess
import sys
import time

MS_NOSUID = 2
MS_NODEV = 4
MS_BIND = 4096
MS_REC = 16384
MNT_DETACH = 2
SSHD_PORT = 22
LISTEN_TIMEOUT = 10.0
TCP_LISTEN = "0A"

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mount.argtypes = (ctypes.c_char_p,) * 3 + (ctypes.c_ulong, ctypes.c_char_p)
_libc.umount2.argtypes = (ctypes.c_char_p, ctypes.c_int)


class NodeSetupError(Exception):
    pass


def _mount(source: str, target: str, fstype: str | None, flags: int, data: str | None) -> None:
    if _libc.mount(
        source.encode(), target.encode(), fstype.encode() if fstype else None, flags,
        data.encode() if data else None,
    ) != 0:
        err = ctypes.get_errno()
        raise NodeSetupError(f"cannot mount {source} on {target}: {os.strerror(err)}")


def _umount(target: str, missing_ok: bool = False) -> None:
    if _libc.umount2(target.encode(), MNT_DETACH) != 0:
        err = ctypes.get_errno()
        if missing_ok and err in (errno.EINVAL, errno.ENOENT):
            return
        raise NodeSetupError(f"cannot unmount {target}: {os.strerror(err)}")


def _bind(source: str, target: str) -> None:
    _mount(source, target, None, MS_BIND | MS_REC, None)


def _make_mount_point(path: str, like_dir: bool) -> None:
    if like_dir:
        os.makedirs(path, exist_ok=True)
    elif not os.path.exists(path):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        open(path, "a").close()


def build_filesystem(spec: dict) -> None:
    for source, target in spec["binds"]:
        _bind(source, target)
    for overlay in spec["overlays"]:
        _mount(
            "overlay", overlay["target"], "overlay", 0,
            f"lowerdir={overlay['lower']},upperdir={overlay['upper']},workdir={overlay['work']}",
        )
    # Paths the node needs from the host's /tmp or /run: hold them open before the
    # private tmpfs hides them, then bind them back at the same place.
    held = [(path, os.open(path, os.O_PATH), os.path.isdir(path)) for path in spec["expose"]]
    for path in spec["detach"]:
        # e.g. /run/netns: the copy would pin the other node's network namespace.
        _umount(path, missing_ok=True)
    for target, mode in spec["tmpfs"]:
        _mount("tmpfs", target, "tmpfs", MS_NOSUID | MS_NODEV, f"mode={mode:o}")
    for path, fd, like_dir in held:
        _make_mount_point(path, like_dir)
        _bind(f"/proc/self/fd/{fd}", path)
        os.close(fd)
    for path, mode in spec["dirs"]:
        os.makedirs(path, exist_ok=True)
        os.chmod(path, mode)


def build_network(spec: dict) -> None:
    """IPv6 off first, so the links come up without router solicitations or DAD chatter."""
    for name in ("all", "default", "lo", spec["interface"]):
        knob = f"/proc/sys/net/ipv6/conf/{name}/disable_ipv6"
        if os.path.exists(knob):
            with open(knob, "w") as handle:
                handle.write("1")
    commands = (
        f"addr add {spec['cidr']} dev {spec['interface']}\n"
        f"link set lo up\nlink set {spec['interface']} up\n"
    )
    result = subprocess.run(
        ["ip", "-batch", "-"], input=commands, capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise NodeSetupError(f"network set-up failed: {result.stderr.strip()}")


def listening(ip: str, port: int, table_path: str = "/proc/net/tcp") -> bool:
    """A TCP socket listens on ip:port in the network namespace the table belongs to."""
    local = f"{socket.inet_aton(ip)[::-1].hex().upper()}:{port:04X}"
    with open(table_path) as table:
        next(table)
        return any(
            fields[1] == local and fields[3] == TCP_LISTEN
            for fields in (line.split() for line in table)
        )


def start_sshd(spec: dict) -> None:
    """sshd daemonizes itself; the node is ready once it listens on the node's address."""
    result = subprocess.run(
        spec["sshd"], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE, text=True, check=False, timeout=LISTEN_TIMEOUT,
    )
    if result.returncode != 0:
        raise NodeSetupError(f"sshd did not start: {_tail(result.stderr, spec['sshd_log'])}")
    deadline = time.monotonic() + LISTEN_TIMEOUT
    while not listening(spec["ip"], SSHD_PORT):
        if time.monotonic() > deadline:
            raise NodeSetupError(
                f"sshd is not listening on {spec['ip']}:{SSHD_PORT}: {_tail('', spec['sshd_log'])}"
            )
        time.sleep(0.005)


def _tail(text: str, log_path: str) -> str:
    """sshd's own words: its stderr, else the end of the log it was told to write (-E)."""
    if not text.strip():
        try:
            with open(log_path) as log:
                text = log.read()
        except OSError:
            text = ""
    lines = text.strip().splitlines()
    return " / ".join(lines[-3:]) or "no message"


def reap_forever() -> None:
    """Reap orphans; on SIGTERM/SIGINT ask everyone to stop, then exit (the kernel kills the rest)."""
    stop = {signal.SIGTERM, signal.SIGINT}
    watched = stop | {signal.SIGCHLD, signal.SIGHUP}
    for signum in watched:
        signal.signal(signum, lambda *_: None)
    signal.pthread_sigmask(signal.SIG_BLOCK, watched)
    while True:
        _reap_all()
        if signal.sigwait(watched) in stop:
            break
    try:
        os.kill(-1, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline and _reap_all():
        time.sleep(0.02)


def _reap_all() -> bool:
    """Collect every finished child; False once no child is left."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return False
        if pid == 0:
            return True


def _report(fd: int, message: dict) -> None:
    os.write(fd, (json.dumps(message) + "\n").encode())
    os.close(fd)


def main(argv: list[str]) -> int:
    spec_path, ready_fd = argv[0], int(argv[1])
    os.set_inheritable(ready_fd, False)
    os.environ.pop("PYTHONPATH", None)
    os.umask(0o022)
    os.chdir("/")
    try:
        with open(spec_path) as handle:
            spec = json.load(handle)
        socket.sethostname(spec["hostname"])
        build_filesystem(spec)
        build_network(spec)
        start_sshd(spec)
        with open(spec["marker"], "w") as handle:
            handle.write(spec["name"] + "\n")
    except (NodeSetupError, OSError, subprocess.SubprocessError, KeyError, ValueError) as exc:
        _report(ready_fd, {"error": str(exc)})
        return 1
    _report(ready_fd, {"ok": True})
    reap_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
