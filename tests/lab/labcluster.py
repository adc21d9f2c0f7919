"""Driving skutui inside the lab nodes, and reading from the host what it did there."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import stat
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from skutui.system.daemons import is_agent_command
from skutui.system.units import AGENT_UNIT, CONNTRACKD_UNIT, KEEPALIVED_UNIT
from skutui_lab import NODES, PASSWORD, Lab
from skutui_lab.topology import FLOATING_IP, INTERFACE

T = TypeVar("T")

NODE_A, NODE_B = NODES
A, B = NODE_A.name, NODE_B.name
VIP = FLOATING_IP.split("/")[0]
INTERVAL = 0.2
"""Check interval of the test clusters: short, so elections and failovers take a second."""
ELECTION = 3 * INTERVAL + 2.0
"""Longer than a takeover at INTERVAL (three adverts missed, then the backup's skew): how long
a state must hold to show that no election moved it."""
EVENTUALLY = 30.0
"""How long a test waits for what must happen. Ample on purpose: a wait that succeeds ends at
once, the machines are shared, and how fast things happen is for the benches to measure."""
EXEC_TIMEOUT = 60.0
TREES = ("/etc/skutui", "/etc/keepalived", "/etc/conntrackd", "/root/.ssh")
"""What a cluster command may change on a node: compared whole before and after."""
LOAD_BALANCER = "haproxy"
"""Debian's haproxy, which the load-balancer tests run on both nodes."""
EXTRA_LINK = "eth1"
"""A second link in each node, for the tests that track one or put a floating IP on it."""
UNREACHABLE_TABLE = "skutui_test_unreachable"
UNREACHABLE_RULES = (
    f"add table inet {UNREACHABLE_TABLE}\n"
    f"add chain inet {UNREACHABLE_TABLE} input {{ type filter hook input priority 0 ; }}\n"
    f"add rule inet {UNREACHABLE_TABLE} input tcp dport 22 reject with tcp reset\n")
"""sshd refuses every new connection at once (a reset, so nothing waits for a timeout)."""
HELD_UNITS = (KEEPALIVED_UNIT, CONNTRACKD_UNIT, AGENT_UNIT)


def wait_for(check: Callable[[], T], timeout: float, what: str, poll: float = 0.05) -> T:
    """Poll ``check`` until it returns something true; fail naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout:g} s (last seen: {value!r})")
        time.sleep(poll)


def file_tree(root: Path, skip: tuple[str, ...] = ()) -> dict[str, tuple]:
    """Every entry under ``root`` with its type, mode and content hash (``skip``: relative
    paths left out with everything under them)."""
    if not root.exists():
        return {".": ("missing",)}
    entries: dict[str, tuple] = {}
    for directory, dirs, files in os.walk(root):
        relative = os.path.relpath(directory, root)
        dirs[:] = sorted(d for d in dirs if os.path.normpath(os.path.join(relative, d)) not in skip)
        entries[relative + "/"] = ("dir", stat.S_IMODE(os.lstat(directory).st_mode))
        for name in sorted(files):
            path = os.path.join(directory, name)
            key = os.path.normpath(os.path.join(relative, name))
            if key in skip:
                continue
            info = os.lstat(path)
            if stat.S_ISLNK(info.st_mode):
                entries[key] = ("link", os.readlink(path))
            else:
                digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()
                entries[key] = ("file", stat.S_IMODE(info.st_mode), digest)
    return entries


def tree_changes(before: dict, after: dict, prefix: str = "") -> list[str]:
    """What differs between two ``both_trees``/``trees`` results, one line per entry."""
    changes = []
    for key in sorted(set(before) | set(after)):
        old, new = before.get(key), after.get(key)
        if isinstance(old, dict) or isinstance(new, dict):
            changes += tree_changes(old or {}, new or {}, f"{prefix}{key} ")
        elif old != new:
            changes.append(f"{prefix}{key}: {old or 'absent'} -> {new or 'absent'}")
    return changes


class LabCluster:
    """Drives skutui inside the lab nodes and reads what it did, from the nodes and the host."""

    def __init__(self, lab: Lab):
        self.lab = lab

    # --- running things in a node -----------------------------------------------------------

    def run(self, node: str, *argv: str, input: str | None = None,
            timeout: float = EXEC_TIMEOUT, check: bool = False) -> subprocess.CompletedProcess:
        return self.lab.exec(node, list(argv), input=input, capture_output=True, text=True,
                             timeout=timeout, check=check)

    def sh(self, node: str, script: str, **kwargs: Any) -> subprocess.CompletedProcess:
        return self.run(node, "sh", "-c", script, **kwargs)

    def skutui(self, node: str, *args: str, **kwargs: Any) -> subprocess.CompletedProcess:
        return self.run(node, "skutui", *args, **kwargs)

    @staticmethod
    def ip(node: str) -> str:
        return {A: NODE_A.ip, B: NODE_B.ip}[node]

    @staticmethod
    def other(node: str) -> str:
        return B if node == A else A

    def create_args(self, node: str = A, *extra: str, interval: float = INTERVAL) -> list[str]:
        return ["cluster", "create", "--local-ip", self.ip(node),
                "--remote-ip", self.ip(self.other(node)), "--password-stdin",
                "--floating-ip", FLOATING_IP, "--trust-new-host-key", "--yes",
                "--check-interval", f"{interval:g}", *extra]

    def check_args(self, node: str = A, *extra: str, interval: float = INTERVAL) -> list[str]:
        args = [a for a in self.create_args(node, *extra, interval=interval) if a != "--yes"]
        args[1] = "check"
        return args

    def create(self, *extra: str, node: str = A, password: str = PASSWORD,
               interval: float = INTERVAL) -> subprocess.CompletedProcess:
        return self.skutui(node, *self.create_args(node, *extra, interval=interval),
                           input=password + "\n")

    def created(self, *extra: str, **kwargs: Any) -> subprocess.CompletedProcess:
        """A cluster made on node-a: a master, b backup, the floating IP on a."""
        result = self.create(*extra, **kwargs)
        assert result.returncode == 0, f"create failed:\n{result.stdout}\n{result.stderr}"
        return result

    # --- what the operator sees ---------------------------------------------------------------

    def nodes(self, node: str) -> dict[str, dict]:
        """``skutui nodes --json`` run on ``node``, keyed by hostname."""
        result = self.skutui(node, "nodes", "--json")
        assert result.returncode == 0, result.stderr
        return {row["hostname"]: row for row in json.loads(result.stdout)}

    # --- what is really there ---------------------------------------------------------------

    def cidrs(self, node: str) -> list[str]:
        out = self.run(node, "ip", "-o", "-4", "addr", "show", "dev", INTERFACE, check=True).stdout
        return [line.split()[3] for line in out.splitlines()]

    def addresses(self, node: str) -> list[str]:
        return [cidr.split("/")[0] for cidr in self.cidrs(node)]

    def holds_vip(self, node: str) -> bool:
        return VIP in self.addresses(node)

    def vip_holders(self) -> set[str]:
        return {node for node in (A, B) if self.holds_vip(node)}

    def processes(self, node: str) -> list[str]:
        return self.run(node, "ps", "-eo", "args=", check=True).stdout.splitlines()

    def daemons(self, node: str) -> set[str]:
        """Which of keepalived, conntrackd and the skutui agent run in ``node``."""
        found = set()
        for args in self.processes(node):
            program = os.path.basename(args.split()[0]) if args.split() else ""
            if program in ("keepalived", "conntrackd"):
                found.add(program)
            elif is_agent_command([word.encode() for word in args.split()]):
                found.add("agent")
        return found

    def count(self, node: str, program: str) -> int:
        """How many processes named ``program`` run in ``node``."""
        return sum(1 for args in self.processes(node)
                   if args.split() and os.path.basename(args.split()[0]) == program)

    def file(self, node: str, path: str) -> Path:
        return self.lab.host_path(node, path)

    def read(self, node: str, path: str) -> str:
        return self.file(node, path).read_text()

    def trees(self, node: str, roots: tuple[str, ...] = TREES,
              skip: dict[str, tuple[str, ...]] | None = None) -> dict[str, dict]:
        skip = skip or {}
        return {root: file_tree(self.file(node, root), skip.get(root, ())) for root in roots}

    def both_trees(self, **kwargs: Any) -> dict[str, dict]:
        return {node: self.trees(node, **kwargs) for node in (A, B)}

    def agent_state(self, node: str) -> dict:
        """The running agent's own account (``skutui events --state --json``)."""
        result = self.skutui(node, "events", "--state", "--json")
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)

    def agent_log(self, node: str) -> str:
        """Everything ``skutui logs`` shows on ``node`` (the journal, in a lab node)."""
        result = self.skutui(node, "logs", "--lines", "all")
        assert result.returncode == 0, result.stderr
        return result.stdout

    # --- systemd --------------------------------------------------------------------------

    def hold_restarts(self, node: str, units: tuple[str, ...] = HELD_UNITS) -> None:
        """For tests of a daemon that stays dead until an operator acts (see
        :meth:`Lab.hold_restarts`); ``reset`` (or a reboot) lifts it."""
        self.lab.hold_restarts(node, units)

    def release_restarts(self, node: str) -> None:
        self.lab.release_restarts(node)

    def active(self, node: str, unit: str) -> bool:
        return self.run(node, "systemctl", "is-active", "--quiet", unit).returncode == 0

    # --- faults ---------------------------------------------------------------------------

    @contextmanager
    def unreachable(self, node: str) -> Iterator[None]:
        """``node`` cannot be reached over SSH: its sshd refuses new connections and the
        sessions open to it (the peer's kept connection among them) are cut. Undone on
        leaving, by the table's name."""
        self.run(node, "nft", "-f", "-", input=UNREACHABLE_RULES, check=True)
        try:
            self.run(node, "pkill", "-f", "sshd: root")
            yield
        finally:
            self.run(node, "nft", "delete", "table", "inet", UNREACHABLE_TABLE, check=True)

    # --- a clean slate ----------------------------------------------------------------------

    def reset(self) -> None:
        """No cluster, no skutui keys or pins, no firewall rule, no extra address on either
        node: every test starts from two freshly installed machines. Both nodes at once:
        keepalived alone takes a second to stop."""
        with ThreadPoolExecutor(2) as pool:
            list(pool.map(self._reset_node, (A, B)))

    def _reset_node(self, node: str) -> None:
        # keepalived gives its children a second to end when stopped; a reset needs none of
        # its goodbyes (the addresses it leaves are removed below). The agent goes first, so
        # that it does not take keepalived's death for a fault to act on.
        self.sh(node, f"systemctl stop {AGENT_UNIT}; systemctl kill --signal=KILL {KEEPALIVED_UNIT}; "
                f"systemctl stop {KEEPALIVED_UNIT}; systemctl reset-failed; true", check=True)
        self.release_restarts(node)
        erase = self.skutui(node, "node", "erase")
        assert erase.returncode == 0, f"{node}: node erase failed: {erase.stderr}"
        for cidr in self.cidrs(node):
            if cidr.split("/")[0] != self.ip(node):
                self.run(node, "ip", "addr", "del", cidr, "dev", INTERFACE, check=True)
        self.sh(node, "nft flush ruleset; hostname " + node +
                "; find /etc/skutui -mindepth 1 -delete"
                "; rm -f /root/.ssh/authorized_keys /root/.ssh/known_hosts"
                "; rm -rf /run/skutui; find /var/lib/skutui -mindepth 1 -delete"
                # The load balancer the tests put behind the cluster (its unit would start a
                # killed one again), and their extra link.
                f"; systemctl stop {LOAD_BALANCER}.service; systemctl reset-failed "
                f"{LOAD_BALANCER}.service; pkill -KILL -x {LOAD_BALANCER}; rm -f /run/{LOAD_BALANCER}.pid"
                f"; ip link del {EXTRA_LINK} 2>/dev/null; true", check=True)
        self._restore_from_host(node, "/etc/haproxy")

    def _restore_from_host(self, node: str, folder: str) -> None:
        """The node's own copy of a host folder as a fresh install has it (the folder stays:
        it is a mount point)."""
        mine, host = self.file(node, folder), Path(folder)
        for entry in list(mine.iterdir()) if mine.is_dir() else []:
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
        if host.is_dir():
            shutil.copytree(host, mine, symlinks=True, dirs_exist_ok=True)

    def assert_clean(self) -> None:
        for node in (A, B):
            assert not self.file(node, "/etc/skutui/cluster.toml").exists(), node
            assert not self.file(node, "/etc/keepalived/keepalived.conf").exists(), node
            assert not self.file(node, "/etc/conntrackd/conntrackd.conf").exists(), node
            assert self.daemons(node) == set(), (node, self.processes(node))
            assert not any(os.path.basename(args.split()[0]) == LOAD_BALANCER
                           for args in self.processes(node) if args.split()), node
            assert VIP not in self.addresses(node), node


class EventStream:
    """``skutui events --json`` running in a node, every line read as it arrives with the
    moment it arrived; stopped by its PID inside the node."""

    def __init__(self, cluster: LabCluster, node: str):
        self.cluster, self.node = cluster, node
        self.events: list[tuple[float, dict]] = []
        self.proc = subprocess.Popen(
            cluster.lab.command(node, ["sh", "-c", "echo $$; exec skutui events --json "
                                                   "--recent 1"]),
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True, env=cluster.lab.environment())
        self.pid = int(self.proc.stdout.readline())
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        # The agent's latest event comes first: proof that the stream is subscribed.
        wait_for(lambda: self.events, 10, f"the event stream on {node} starts", poll=0.01)

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.events.append((time.monotonic(), json.loads(line)))

    def since(self, moment: float, kind: str | None = None) -> list[tuple[float, dict]]:
        return [(at, event) for at, event in list(self.events)
                if at >= moment and (kind is None or event["kind"] == kind)]

    def wait(self, moment: float, match: Callable[[dict], bool], timeout: float,
             what: str) -> tuple[float, dict]:
        """The first event after ``moment`` that ``match`` accepts, and when it arrived."""
        found = wait_for(lambda: next((item for item in self.since(moment) if match(item[1])),
                                      None), timeout, f"{self.node}: {what}", poll=0.01)
        return found

    def stop(self) -> None:
        self.cluster.run(self.node, "kill", str(self.pid))
        try:
            self.proc.wait(timeout=10)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
        self.reader.join(timeout=10)


class CreateRun:
    """``skutui cluster create`` running in node-a, its output lines read as they come.
    SIGINT is as from a terminal (a run started in the background inherits it ignored)."""

    def __init__(self, cluster: LabCluster, password: str = PASSWORD):
        self.process = subprocess.Popen(
            cluster.lab.command(A, ["sh", "-c", 'echo $$; exec "$@"', "sh", "skutui",
                                    *cluster.create_args()]),
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env=cluster.lab.environment(),
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        self.pid = self.process.stdout.readline().strip()
        self.lines: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        self.process.stdin.write(password + "\n")
        self.process.stdin.close()

    def _read(self) -> None:
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))

    def wait_line(self, prefix: str, timeout: float) -> None:
        wait_for(lambda: any(line.startswith(prefix) for line in self.lines), timeout,
                 f"create prints {prefix!r}; it printed:\n" + "\n".join(self.lines))

    def finish(self) -> tuple[int, str, str]:
        """Its exit status, standard output and error, once it ended (killed after 60 s)."""
        try:
            self.process.wait(timeout=60)
        finally:
            if self.process.poll() is None:
                self.process.kill()
            self.reader.join(timeout=10)
        return self.process.returncode, "\n".join(self.lines), self.process.stderr.read()
