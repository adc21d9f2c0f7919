"""The two-node lab for the benchmarks that need real daemons.

A benchmark brings the lab up itself, creates its cluster with `skutui cluster create` on
node-a, measures, destroys the cluster and brings the lab down, in `finally` too. The lab has
fixed names (bridge, namespaces, addresses), so a lab that already exists on this machine is
somebody else's: the benchmarks refuse to start rather than tear it down.

Traffic stays on the lab's 198.18.0.0/24 and loopback. Times are host-side time.monotonic(),
which the nodes share (they have their own PID, mount, UTS and network namespaces, not time).
"""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from common import BenchError, cmdline, kill_tree, note, parent_of

from skutui.system.daemons import is_agent_command
from skutui_lab import PASSWORD, Lab

T = TypeVar("T")

A, B = "node-a", "node-b"
IPS = {A: "198.18.0.1", B: "198.18.0.2"}
VIP = "198.18.0.100"
VIP_CIDR = f"{VIP}/24"
INTERFACE = "eth0"
NETNS_DIR = Path("/run/netns")
LAB_NETNS = ("skutui-node-a", "skutui-node-b")

ROLE_FILE = "/etc/skutui/local/role"
MAINTENANCE_FLAG = "/etc/skutui/local/maintenance"
CLUSTER_FILE = "/etc/skutui/cluster.toml"
HAPROXY_CFG = """\
global
    daemon
defaults
    mode http
    timeout connect 1s
    timeout client 5s
    timeout server 5s
frontend www
    bind :80
    http-request return status 200 content-type text/plain string "{answer}"
"""
"""haproxy answering every request itself with ``answer``: the service the load-balancer
benches kill and time, with no backend of its own to wait on."""
KEEPALIVED_CONF = "/etc/keepalived/keepalived.conf"
BASELINE_KEY = "/root/.ssh/skutui-bench-baseline"
"""root's own key, unrestricted, as the original tool logs in: skutui's key runs skutui's
steps only, so the baselines (rsync, a command per ssh) cannot use it."""
NODE_KNOWN_HOSTS = "/etc/skutui/local/known_hosts"
SSH_OPTIONS = ("-F", "/dev/null", "-i", BASELINE_KEY, "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
               "-o", f"UserKnownHostsFile={NODE_KNOWN_HOSTS}", "-o", "StrictHostKeyChecking=yes",
               "-o", "ConnectTimeout=10")
"""The plain OpenSSH client with the baseline's key and the host key skutui pinned."""

CREATE_TIMEOUT = 180.0
SETTLE_TIMEOUT = 60.0


def other(node: str) -> str:
    return B if node == A else A


def wait_for(check: Callable[[], T], timeout: float, what: str, poll: float = 0.02) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise BenchError(f"{what}: not within {timeout:g} s (last seen: {value!r})")
        time.sleep(poll)


def vrrp_limit(keepalived_conf: str) -> tuple[float, int, float]:
    """(advert_int, priority, 3 x advert_int + skew) read from a rendered keepalived.conf;
    skew = (256 - priority) x advert_int / 256 (VRRPv3)."""
    advert = re.search(r"^\s*advert_int\s+([\d.]+)", keepalived_conf, re.M)
    priority = re.search(r"^\s*priority\s+(\d+)", keepalived_conf, re.M)
    if not advert or not priority:
        raise BenchError("advert_int or priority missing from keepalived.conf")
    interval, prio = float(advert.group(1)), int(priority.group(1))
    return interval, prio, 3 * interval + (256 - prio) * interval / 256


class LineStream:
    """A command's output lines as they arrive, each with its arrival time."""

    def __init__(self, process: subprocess.Popen, name: str):
        self.process = process
        self.name = name
        self.lines: queue.Queue[tuple[float, str | None]] = queue.Queue()
        self.pending: list[tuple[float, str]] = []
        """Lines already taken from the queue but not yet matched (they come first)."""
        self.thread = threading.Thread(target=self._pump, daemon=True)
        self.thread.start()

    def _pump(self) -> None:
        for line in self.process.stdout:
            self.lines.put((time.monotonic(), line.rstrip("\n")))
        self.lines.put((time.monotonic(), None))

    def wait(self, predicate: Callable[[str], bool], timeout: float) -> tuple[float, str]:
        """The first line from now on for which ``predicate`` holds, and when it arrived."""
        deadline = time.monotonic() + timeout
        while self.pending:
            at, line = self.pending.pop(0)
            if predicate(line):
                return at, line
        while True:
            try:
                at, line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise BenchError(f"{self.name}: nothing expected within {timeout:g} s") from None
            if line is None:
                raise BenchError(f"{self.name} ended (status {self.process.wait()})")
            if predicate(line):
                return at, line

    def drain(self) -> None:
        self.pending.clear()
        while True:
            try:
                self.lines.get_nowait()
            except queue.Empty:
                return


class EventStream(LineStream):
    """`skutui events --json` in a node: the agent's events as dicts."""

    def wait_event(self, predicate: Callable[[dict], bool], timeout: float) -> tuple[float, dict]:
        def matches(line: str) -> bool:
            try:
                event = json.loads(line)
            except ValueError:
                return False
            return isinstance(event, dict) and predicate(event)

        at, line = self.wait(matches, timeout)
        return at, json.loads(line)


class LabBench:
    """`with LabBench() as lab:` -- the lab up for the benchmark, down afterwards whatever happens."""

    def __init__(self) -> None:
        self.lab = Lab()
        self.brought_up = False
        self.children: list[subprocess.Popen] = []
        self._old_sigterm: Any = None

    # --- up and down ---------------------------------------------------------------------

    def __enter__(self) -> LabBench:
        if os.geteuid() != 0:
            raise BenchError("the lab benchmarks need root (network namespaces, mounts)")
        status = self.lab.status()
        leftovers = [name for name in LAB_NETNS if (NETNS_DIR / name).exists()]
        if status.built or status.bridge or leftovers:
            raise BenchError(
                "a skutui lab already exists on this machine (state, bridge or namespaces): it "
                "may be someone else's tests, so the benchmark leaves it alone. If it is yours, "
                "remove it with `.venv/bin/skutui lab down` and start again.")
        self._old_sigterm = signal.signal(signal.SIGTERM, _exit_on_sigterm)
        note("bringing the lab up")
        try:
            self.lab.up()  # removes what it made if it fails half-way
        except BaseException:
            signal.signal(signal.SIGTERM, self._old_sigterm)
            raise
        self.brought_up = True
        return self

    def __exit__(self, *exc_info: object) -> None:
        try:
            for process in list(self.children):
                kill_tree(process)
            self.children.clear()
            if self.brought_up:
                try:
                    self.destroy()
                except Exception as exc:  # noqa: BLE001 - the lab goes down anyway
                    note(f"destroying the cluster failed ({exc}); the lab goes down anyway")
        finally:
            if self.brought_up:
                note("bringing the lab down")
                self.lab.down()
                self.brought_up = False
            if self._old_sigterm is not None:
                signal.signal(signal.SIGTERM, self._old_sigterm)

    # --- running things in a node --------------------------------------------------------

    def run(self, node: str, *argv: str, input: str | None = None, timeout: float = 60.0,
            check: bool = True) -> subprocess.CompletedProcess:
        result = self.lab.exec(node, list(argv), input=input, capture_output=True, text=True,
                               timeout=timeout)
        if check and result.returncode != 0:
            raise BenchError(f"{node}: `{' '.join(argv)}` exited {result.returncode}: "
                             f"{(result.stderr or result.stdout).strip()[-800:]}")
        return result

    def timed(self, node: str, *argv: str, timeout: float = 60.0) -> tuple[float, subprocess.CompletedProcess]:
        """Wall time of one command in a node, as its caller on the host waits for it."""
        command = self.lab.command(node, list(argv))
        env = self.lab.environment()
        started = time.monotonic()
        result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout)
        return time.monotonic() - started, result

    def skutui(self, node: str, *args: str, **kwargs: Any) -> subprocess.CompletedProcess:
        return self.run(node, "skutui", *args, **kwargs)

    def popen(self, node: str, argv: Sequence[str], env: dict[str, str] | None = None,
              **kwargs: Any) -> subprocess.Popen:
        """A long-running command in a node; stopped by :meth:`stop` or when the lab goes down."""
        process = subprocess.Popen(self.lab.command(node, list(argv)),
                                   env=self.lab.environment(env), **kwargs)
        self.children.append(process)
        return process

    def stream(self, node: str, argv: Sequence[str], name: str, kind: type[LineStream] = LineStream) -> LineStream:
        process = self.popen(node, argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL, text=True, bufsize=1)
        return kind(process, name)

    def events(self, node: str, recent: int = 1, keep: bool = False) -> EventStream:
        """`skutui events --json` on ``node``, connected: with ``recent`` >= 1 the first
        line (an event from before) proves the stream is open before anything is done. The
        past events are dropped unless ``keep``."""
        stream = self.stream(node, ["skutui", "events", "--json", "--recent", str(recent)],
                             f"skutui events on {node}", EventStream)
        if recent > 0:
            first = stream.wait(lambda line: True, 30.0)
            if keep:
                stream.pending.append(first)
        return stream  # type: ignore[return-value]

    def address_monitor(self, node: str) -> LineStream:
        """`ip monitor address` on the cluster NIC of ``node``, one line per change."""
        stream = self.stream(node, ["stdbuf", "-oL", "ip", "-o", "monitor", "address", "dev", INTERFACE],
                             f"ip monitor on {node}")
        time.sleep(0.3)  # ip prints nothing when it starts: give it time to subscribe
        return stream

    def stop(self, process_or_stream: subprocess.Popen | LineStream) -> None:
        process = getattr(process_or_stream, "process", process_or_stream)
        kill_tree(process)
        if process in self.children:
            self.children.remove(process)

    def ssh_options(self, node: str = A) -> list[str]:
        """OpenSSH client options that log in from ``node`` to its peer as root with a key of
        the baseline's own (made and allowed there on first use) and skutui's pinned host
        key; checked once. The lab going down takes the key and its line with it."""
        peer = IPS[other(node)]
        self.run(node, "sh", "-c", f"test -e {BASELINE_KEY} || ssh-keygen -q -t ed25519 -N '' "
                                   f"-C skutui-bench-baseline -f {BASELINE_KEY}")
        public = (self.read(node, BASELINE_KEY + ".pub") or "").strip()
        allowed = self.read(other(node), "/root/.ssh/authorized_keys") or ""
        if public.split()[1] not in allowed:
            self.run(other(node), "sh", "-c", "umask 077; cat >> /root/.ssh/authorized_keys",
                     input=public + "\n")
        result = self.run(node, "ssh", *SSH_OPTIONS, f"root@{peer}", "true", check=False)
        if result.returncode != 0:
            raise BenchError(f"plain ssh from {node} to {peer} with the baseline's key failed: "
                             f"{result.stderr.strip()}")
        return list(SSH_OPTIONS)

    def spawn_overhead(self, node: str = A, count: int = 5) -> float:
        """Median wall time of `true` in a node from the host: what entering the node adds
        to every timed command (nsenter), to take off both sides of a comparison."""
        times = sorted(self.timed(node, "true")[0] for _ in range(count))
        return times[len(times) // 2]

    # --- what is there -------------------------------------------------------------------

    def path(self, node: str, inside: str) -> Path:
        return self.lab.host_path(node, inside)

    def read(self, node: str, inside: str) -> str | None:
        try:
            return self.path(node, inside).read_text()
        except OSError:
            return None

    def role(self, node: str) -> str | None:
        text = self.read(node, ROLE_FILE)
        return text.strip() if text else None

    def addresses(self, node: str) -> list[str]:
        out = self.run(node, "ip", "-o", "-4", "addr", "show", "dev", INTERFACE).stdout
        return [line.split()[3].split("/")[0] for line in out.splitlines()]

    def holds_vip(self, node: str) -> bool:
        return VIP in self.addresses(node)

    def processes(self, node: str) -> list[int]:
        """Host PIDs of every process inside ``node`` (its PID namespace)."""
        namespace = os.readlink(f"/proc/{self.lab.node_pid(node)}/ns/pid")
        found = []
        for name in os.listdir("/proc"):
            if not name.isdigit():
                continue
            try:
                if os.readlink(f"/proc/{name}/ns/pid") == namespace:
                    found.append(int(name))
            except OSError:
                continue
        return found

    def keepalived_pids(self, node: str) -> list[int]:
        """keepalived's processes in ``node``: the VRRP child(ren) first, then the parent."""
        pids = [p for p in self.processes(node) if _comm(p) == "keepalived"]
        return sorted(pids, key=lambda p: 0 if _comm(parent_of(p) or 0) == "keepalived" else 1)

    def event_followers(self, node: str) -> list[int]:
        """`skutui events --json` processes in ``node``: what a console on the other node
        runs there (over SSH) to follow this node's events."""
        return [pid for pid in self.processes(node)
                if "events" in cmdline(pid) and "--json" in cmdline(pid)]

    def agent_pid(self, node: str) -> int | None:
        pids = [p for p in self.processes(node)
                if is_agent_command([arg.encode() for arg in cmdline(p)])]
        return pids[0] if pids else None

    def stable(self, master: str) -> bool:
        """``master`` holds the floating IP alone, both roles are as expected, and keepalived,
        conntrackd and the agent run on both nodes."""
        backup = other(master)
        if self.role(master) != "master" or self.role(backup) != "backup":
            return False
        for node in (master, backup):
            comms = {_comm(p) for p in self.processes(node)}
            if not {"keepalived", "conntrackd"} <= comms or self.agent_pid(node) is None:
                return False
        return self.holds_vip(master) and not self.holds_vip(backup)

    def wait_stable(self, master: str, timeout: float = SETTLE_TIMEOUT, hold: float = 1.0) -> None:
        """Wait until :meth:`stable` holds, and still holds ``hold`` seconds later."""
        deadline = time.monotonic() + timeout
        while True:
            wait_for(lambda: self.stable(master), max(0.1, deadline - time.monotonic()),
                     f"{master} master with the floating IP, {other(master)} backup", poll=0.1)
            time.sleep(hold)
            if self.stable(master):
                return
            if time.monotonic() > deadline:
                raise BenchError(f"the cluster did not settle with {master} as master")

    # --- the cluster ---------------------------------------------------------------------

    def create(self, interval: float, master: str = A) -> float:
        """`skutui cluster create` on ``master`` (the command from the README); seconds taken."""
        backup = other(master)
        note(f"creating the cluster on {master} (check interval {interval:g} s)")
        started = time.monotonic()
        self.skutui(master, "cluster", "create", "--local-ip", IPS[master], "--remote-ip", IPS[backup],
                    "--password-stdin", "--floating-ip", VIP_CIDR, "--trust-new-host-key", "--yes",
                    "--check-interval", f"{interval:g}", input=PASSWORD + "\n",
                    timeout=CREATE_TIMEOUT)
        took = time.monotonic() - started
        self.wait_stable(master)
        return took

    def configured(self) -> bool:
        return any(self.path(node, CLUSTER_FILE).exists() for node in (A, B))

    def destroy(self) -> None:
        """`skutui cluster destroy --yes` on the master; `skutui node erase` on both if that fails."""
        if not self.configured():
            return
        master = next((n for n in (A, B) if self.role(n) == "master"), A)
        note(f"destroying the cluster from {master}")
        result = self.skutui(master, "cluster", "destroy", "--yes", check=False, timeout=120)
        if result.returncode != 0:
            note(f"cluster destroy failed ({result.stderr.strip()}); erasing both nodes")
            for node in (A, B):
                self.skutui(node, "node", "erase", check=False, timeout=60)


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def _exit_on_sigterm(signum: int, frame: object) -> None:
    sys.exit(128 + signum)  # unwinds through `finally`: the lab still goes down
