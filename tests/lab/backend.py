"""A server behind the cluster's floating IP, for tests of what a failover does to traffic.

The backend is a network namespace of its own on the lab bridge (198.18.0.10) running a TCP
echo server. Both nodes carry the same nftables table: the floating IP's port is DNAT'ed to
the backend and SNAT'ed to the floating IP itself, so the backend answers whichever node
holds the floating IP; and a stateful filter drops every packet of a connection the node has
no conntrack entry for (only a new SYN may start one). Without the master's connection state
(conntrackd), a connection that moves to the other node dies there.

Everything made here has a fixed name and is removed by that name, even after a failed test.
"""

from __future__ import annotations

import contextlib
import itertools
import socket
import struct
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field

from skutui_lab import BRIDGE
from tests.lab.labcluster import VIP, LabCluster, wait_for

NETNS = "skutui-backend"
VETH = "skutui-veth-be"
"""The host end, on the lab bridge; the namespace's end is called eth0."""
BACKEND_IP = "198.18.0.10"
BACKEND_MAC = "02:00:c6:12:00:0a"
"""Fixed, so a backend made again for the next test answers at the address the nodes'
neighbour caches still hold (a new random one goes unheard until those entries expire)."""
PORT = 7777
TABLE = "skutui_test_lb"
FORWARDING = {"net.ipv4.ip_forward": "1", "net.ipv4.conf.all.send_redirects": "0",
              "net.ipv4.conf.eth0.send_redirects": "0"}
"""A node forwards the floating IP's traffic back out of eth0, where it came in: without
the redirects switched off it would tell the client to go to the backend directly."""

ECHO_SERVER = """
import socket, sys, threading
server = socket.create_server((sys.argv[1], int(sys.argv[2])), backlog=16)
print("listening", flush=True)
def echo(conn):
    with conn:
        while data := conn.recv(65536):
            conn.sendall(data)
while True:
    conn, _ = server.accept()
    threading.Thread(target=echo, args=(conn,), daemon=True).start()
"""

SYN_ONLY = "tcp flags & (fin | syn | rst | ack) == syn"


def ruleset() -> str:
    """The load balancer's nftables table, the same on both nodes, so that the connection
    state one node syncs to the other matches the other's rules exactly."""
    return f"""\
table ip {TABLE} {{
    chain prerouting {{
        type nat hook prerouting priority dstnat; policy accept;
        ip daddr {VIP} tcp dport {PORT} dnat to {BACKEND_IP}:{PORT}
    }}
    chain postrouting {{
        type nat hook postrouting priority srcnat; policy accept;
        ip daddr {BACKEND_IP} tcp dport {PORT} snat to {VIP}
    }}
    chain forward {{
        type filter hook forward priority filter; policy drop;
        ct state established,related counter name known accept
        ct state new {SYN_ONLY} counter name opened accept
        counter name unknown drop
    }}
    chain input {{
        type filter hook input priority filter; policy accept;
        ct state invalid drop
        ct state new meta l4proto tcp {SYN_ONLY.replace('==', '!=')} counter name stray drop
    }}
    counter known {{ }}
    counter opened {{ }}
    counter unknown {{ }}
    counter stray {{ }}
}}
"""


def _host(*argv: str, check: bool = True, input: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(list(argv), capture_output=True, text=True, check=check, input=input,
                          timeout=30)


@dataclass
class Backend:
    """The backend namespace and its echo server; ``stop`` removes both, by name."""

    server: subprocess.Popen | None = None

    def start(self) -> None:
        self.stop()
        _host("ip", "netns", "add", NETNS)
        _host("ip", "link", "add", VETH, "type", "veth", "peer", "name", "eth0", "address",
              BACKEND_MAC, "netns", NETNS)
        _host("ip", "link", "set", VETH, "master", BRIDGE, "up")
        for command in (["addr", "add", f"{BACKEND_IP}/24", "dev", "eth0"],
                        ["link", "set", "lo", "up"], ["link", "set", "eth0", "up"]):
            _host("ip", "-n", NETNS, *command)
        self.server = subprocess.Popen(
            ["ip", "netns", "exec", NETNS, sys.executable, "-c", ECHO_SERVER, BACKEND_IP,
             str(PORT)],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            text=True)
        assert self.server.stdout.readline().strip() == "listening", "the echo server starts"

    def stop(self) -> None:
        if self.server is not None:
            self.server.kill()
            self.server.wait(timeout=10)
            self.server = None
        if _host("ip", "link", "show", VETH, check=False).returncode == 0:
            _host("ip", "link", "del", VETH)
        if NETNS in _host("ip", "netns", "list").stdout.split():
            _host("ip", "netns", "del", NETNS)


@dataclass
class LoadBalancer:
    """The nftables table and the forwarding settings on both nodes; ``remove`` undoes
    both (the table by name, each setting to the value it had)."""

    cluster: LabCluster
    saved: dict[str, dict[str, str]] = field(default_factory=dict)

    def install(self, node: str) -> None:
        self.saved[node] = {key: self.cluster.run(node, "sysctl", "-n", key, check=True)
                            .stdout.strip() for key in FORWARDING}
        for key, value in FORWARDING.items():
            self.cluster.run(node, "sysctl", "-q", "-w", f"{key}={value}", check=True)
        self.cluster.run(node, "nft", "-f", "-", input=ruleset(), check=True)

    def remove(self) -> None:
        for node, values in self.saved.items():
            self.cluster.run(node, "nft", "delete", "table", "ip", TABLE)
            for key, value in values.items():
                self.cluster.run(node, "sysctl", "-q", "-w", f"{key}={value}")
        self.saved.clear()

    def counter(self, node: str, name: str) -> int:
        """Packets counted by one of the table's named counters on ``node``."""
        out = self.cluster.run(node, "nft", "list", "counter", "ip", TABLE, name,
                               check=True).stdout
        return int(out.split("packets")[1].split()[0])

    def tracked(self, node: str, client_port: int) -> list[str]:
        """``node``'s kernel conntrack entries for the client's connection."""
        out = self.cluster.run(node, "conntrack", "-L", "-p", "tcp", "--orig-port-src",
                               str(client_port)).stdout
        return [line for line in out.splitlines() if f"dport={PORT}" in line]


class EchoClient:
    """One TCP connection to the floating IP, from the host (the bridge's 198.18.0.254)."""

    def __init__(self, timeout: float = 5.0):
        self.sock = socket.create_connection((VIP, PORT), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.port = self.sock.getsockname()[1]
        self.sent = 0

    def echo(self, timeout: float) -> float:
        """Send one numbered line and wait for it to come back; returns the round trip in
        seconds. A timeout or a reset raises."""
        self.sent += 1
        line = f"line {self.sent}\n".encode()
        started = time.monotonic()
        self.sock.settimeout(timeout)
        self.sock.sendall(line)
        received = b""
        while len(received) < len(line):
            chunk = self.sock.recv(len(line) - len(received))
            if not chunk:
                raise ConnectionResetError("the echo server closed the connection")
            received += chunk
        assert received == line, (received, line)
        return time.monotonic() - started

    def close(self) -> None:
        with contextlib.suppress(OSError):
            # Closed with a reset: no FIN handshake left behind for the next test's nodes.
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.sock.close()


def wait_vip_moved(cluster: LabCluster, to: str, timeout: float) -> None:
    wait_for(lambda: cluster.vip_holders() == {to}, timeout, f"{VIP} held by {to} only",
             poll=0.02)


class Traffic:
    """One echo every 20 ms on ``client``'s connection, from a thread, each reply's arrival
    noted; the first failure (a timeout, a reset) ends it and is kept."""

    def __init__(self, client: EchoClient):
        self.client = client
        self.replies: list[float] = []
        self.failure: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                self.client.echo(timeout=10)
                self.replies.append(time.monotonic())
                time.sleep(0.02)
        except BaseException as exc:  # noqa: BLE001 - the test reads it
            self.failure = exc

    def start(self) -> None:
        self._thread.start()
        wait_for(lambda: len(self.replies) >= 5 or self.failure, 5, "the first echoes")

    def since(self, moment: float) -> list[float]:
        return [t for t in self.replies if t > moment]

    def wait_echoes(self, moment: float, count: int, timeout: float, what: str) -> None:
        wait_for(lambda: len(self.since(moment)) >= count or self.failure, timeout, what)

    def longest_gap(self, start: float) -> float:
        """The longest silence between two replies from ``start`` on."""
        replies = [t for t in self.replies if t >= start]
        return max((b - a for a, b in itertools.pairwise(replies)), default=0.0)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=15)
