"""PID 1 of a lab node until systemd takes over: builds the node's machine, then execs systemd.

Started by the lab as ``unshare --mount --uts --pid --fork --propagation private python -m
skutui_lab.init SPEC READY_FD`` inside the node's network namespace. It reads what to build
from SPEC (JSON written by the lab):

- a cgroup of its own (``cgroup``, under the cgroup2 hierarchy) and a cgroup namespace
  rooted there, so the node's systemd manages only its own processes;
- the node's disk: an overlay of the host's root filesystem with a per-node upper folder,
  so whatever the node writes (/etc, /var, an installed package) stays in that folder and
  survives ``skutui lab reboot``, while /usr and the rest read through from the host;
- the folders a test reads from the host, bind-mounted over it (``binds``), private /run and
  /tmp, and the host paths the node runs from that those would hide (``expose``);
- /proc with /proc/sys read-only except for the node's own network settings, a read-only
  /sys, the node's cgroup2 tree, and a /dev holding only harmless devices: systemd and its
  services in the node cannot change the host's kernel settings or reach its consoles;
- its hostname and its address on the cluster NIC.

It reports ``{"ok": true}`` or ``{"error": "..."}`` as one line on READY_FD, makes the
overlay the root of the namespace and replaces itself with systemd, which boots the node
from the units in its /etc/systemd/system. When systemd (PID 1) dies, the kernel kills every
process of the node. Standard library only: the lab imports nothing else before systemd runs.
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import platform
import socket
import subprocess
import sys

MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_REMOUNT = 32
MS_BIND = 4096
MS_REC = 16384
MNT_DETACH = 2
CLONE_NEWCGROUP = 0x02000000
SSHD_PORT = 22
TCP_LISTEN = "0A"
SYSTEMD = "/lib/systemd/systemd"
CONTAINER = "skutui-lab"
"""The ``container`` variable systemd reads: it then boots as in a container (no udev,
no hardware clock, no consoles to set up)."""
NODE_ENV = "SKUTUI_LAB_NODE"
"""Set in PID 1's environment to the node's folder: how the lab tells its nodes' PID 1 from
any other process, before and after the exec into systemd."""
DEVICES = ("null", "zero", "full", "random", "urandom", "tty")
PIVOT_ROOT_SYSCALL = {"x86_64": 155, "aarch64": 41, "riscv64": 41, "ppc64le": 203, "s390x": 217}

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mount.argtypes = (ctypes.c_char_p,) * 3 + (ctypes.c_ulong, ctypes.c_char_p)
_libc.umount2.argtypes = (ctypes.c_char_p, ctypes.c_int)
_libc.unshare.argtypes = (ctypes.c_int,)


class NodeSetupError(Exception):
    pass


def _fail(what: str) -> NodeSetupError:
    return NodeSetupError(f"{what}: {os.strerror(ctypes.get_errno())}")


def _mount(source: str, target: str, fstype: str | None, flags: int = 0,
           data: str | None = None) -> None:
    if _libc.mount(source.encode(), target.encode(), fstype.encode() if fstype else None,
                   flags, data.encode() if data else None) != 0:
        raise _fail(f"cannot mount {source} on {target}")


def _umount(target: str) -> None:
    if _libc.umount2(target.encode(), MNT_DETACH) != 0 and ctypes.get_errno() not in (
            errno.EINVAL, errno.ENOENT):
        raise _fail(f"cannot unmount {target}")


def _bind(source: str, target: str, read_only: bool = False) -> None:
    _mount(source, target, None, MS_BIND | MS_REC)
    if read_only:
        _mount("none", target, None, MS_BIND | MS_REMOUNT | MS_RDONLY)


def _mount_point(path: str, like_dir: bool) -> None:
    """A place to mount on, made inside the node's own disk when it does not exist."""
    if like_dir:
        os.makedirs(path, exist_ok=True)
    elif not os.path.lexists(path):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        open(path, "a").close()


def join_own_cgroup(name: str, scratch: str) -> None:
    """Move into cgroup ``name`` of the cgroup2 hierarchy and root a cgroup namespace there:
    the node's systemd then sees that cgroup as the whole tree, and two nodes (or two labs)
    never manage each other's units."""
    _mount("cgroup2", scratch, "cgroup2", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    try:
        path = os.path.join(scratch, name)
        os.makedirs(path, exist_ok=True)
        with open(os.path.join(path, "cgroup.procs"), "w") as procs:
            procs.write("0\n")
    except OSError as exc:
        raise NodeSetupError(f"cannot make the node's cgroup {name}: {exc.strerror}") from None
    finally:
        _umount(scratch)
    if _libc.unshare(CLONE_NEWCGROUP) != 0:
        raise _fail("cannot make a cgroup namespace")


def build_root(spec: dict) -> str:
    """The node's root filesystem, mounted at spec["root"]: returns that path."""
    root = spec["root"]
    disk = spec["disk"]
    _mount("overlay", root, "overlay", 0,
           f"lowerdir=/,upperdir={disk['upper']},workdir={disk['work']}")
    for source, target in spec["binds"]:
        _mount_point(root + target, os.path.isdir(source))
        _bind(source, root + target)
    # Paths the node runs from that its private /tmp or /run would hide: held open before
    # the tmpfs covers them, then bound back at the same place.
    held = [(path, os.open(path, os.O_PATH), os.path.isdir(path)) for path in spec["expose"]]
    for target, mode in spec["tmpfs"]:
        _mount("tmpfs", root + target, "tmpfs", MS_NOSUID | MS_NODEV, f"mode={mode:o}")
    for path, fd, like_dir in held:
        _mount_point(root + path, like_dir)
        _bind(f"/proc/self/fd/{fd}", root + path)
        os.close(fd)
    _kernel_filesystems(root)
    _devices(root)
    return root


def _kernel_filesystems(root: str) -> None:
    _mount("proc", root + "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    # The kernel's settings are the host's: read-only, except the node's own network stack
    # (bound first: a bind of a read-only mount is read-only too).
    _bind(root + "/proc/sys", root + "/proc/sys")
    _bind(root + "/proc/sys/net", root + "/proc/sys/net")
    _mount("none", root + "/proc/sys", None, MS_BIND | MS_REMOUNT | MS_RDONLY)
    if os.path.exists(root + "/proc/sysrq-trigger"):
        _bind(root + "/proc/sysrq-trigger", root + "/proc/sysrq-trigger", read_only=True)
    _mount("sysfs", root + "/sys", "sysfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC)
    _mount("cgroup2", root + "/sys/fs/cgroup", "cgroup2", MS_NOSUID | MS_NODEV | MS_NOEXEC)


def _devices(root: str) -> None:
    dev = root + "/dev"
    _mount("tmpfs", dev, "tmpfs", MS_NOSUID, "mode=755")
    for name in DEVICES:
        _mount_point(f"{dev}/{name}", like_dir=False)
        _bind(f"/dev/{name}", f"{dev}/{name}")
    # systemd writes its boot messages to the console: they go nowhere, the journal has them.
    _mount_point(f"{dev}/console", like_dir=False)
    _bind("/dev/null", f"{dev}/console")
    os.makedirs(f"{dev}/pts")
    _mount("devpts", f"{dev}/pts", "devpts", MS_NOSUID | MS_NOEXEC,
           "newinstance,ptmxmode=0666,mode=0620")
    os.symlink("pts/ptmx", f"{dev}/ptmx")
    os.makedirs(f"{dev}/shm")
    _mount("tmpfs", f"{dev}/shm", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777")
    for number, name in enumerate(("stdin", "stdout", "stderr")):
        os.symlink(f"/proc/self/fd/{number}", f"{dev}/{name}")
    os.symlink("/proc/self/fd", f"{dev}/fd")


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


def enter_root(root: str) -> None:
    """Make ``root`` the root of this mount namespace; the host's tree is detached from it,
    so nothing in the node can reach the host's files except through the overlay."""
    number = PIVOT_ROOT_SYSCALL.get(platform.machine())
    if number is None:
        raise NodeSetupError(f"no pivot_root system call number known for {platform.machine()}")
    os.chdir(root)
    if _libc.syscall(number, b".", b".") != 0:
        raise _fail(f"cannot make {root} the node's root")
    _umount(".")
    os.chdir("/")


def _report(fd: int, message: dict) -> None:
    os.write(fd, (json.dumps(message) + "\n").encode())
    os.close(fd)


def main(argv: list[str]) -> int:
    spec_path, ready_fd = argv[0], int(argv[1])
    os.set_inheritable(ready_fd, False)
    os.umask(0o022)
    os.chdir("/")
    try:
        with open(spec_path) as handle:
            spec = json.load(handle)
        join_own_cgroup(spec["cgroup"], spec["root"])
        socket.sethostname(spec["hostname"])
        build_network(spec)
        root = build_root(spec)
        with open(root + spec["marker"], "w") as handle:
            handle.write(spec["name"] + "\n")
        enter_root(root)
    except (NodeSetupError, OSError, subprocess.SubprocessError, KeyError, ValueError) as exc:
        _report(ready_fd, {"error": str(exc)})
        return 1
    _report(ready_fd, {"ok": True})
    environment = {"container": CONTAINER, NODE_ENV: os.path.dirname(spec_path),
                   "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                   "LANG": "C.UTF-8"}
    try:
        os.execve(SYSTEMD, [SYSTEMD], environment)
    except OSError as exc:
        print(f"cannot start {SYSTEMD}: {exc.strerror}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
