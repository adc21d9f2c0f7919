"""A server behind the cluster's floating IP, for tests of what a failover does to traffic.

The backend is a network namespace of its own on the lab bridge (198.18.0.10) running a TCP
echo server and an HTTP/1.1 server that keeps connections alive. Both nodes carry the same
nftables table: the floating IP's ports are DNAT'ed to the backend and SNAT'ed to the
floating IP itself, so the backend answers whichever node holds the floating IP; and a
stateful filter drops every packet of a connection the node has no conntrack entry for
(only a new SYN may start one). Without the master's connection state (conntrackd), a
connection that moves to the other node dies there.

:func:`hardened_ruleset` is a load balancer as a careful operator writes one: a strict
conntrack (``nf_conntrack_tcp_loose=0``) and ``ct state invalid drop`` on forward only. A
mid-stream segment that reaches the new master before conntrackd committed its connection
is INVALID there, is not DNAT'ed, and goes to the floating IP itself, where the kernel
answers it with a reset: only skutui's takeover guard keeps such connections alive.

Everything made here has a fixed name and is removed by that name, even after a failed test.
"""

from __future__ import annotations

import contextlib
import http.client
import itertools
import json
import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

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
HTTP_PORT = 80
"""The floating IP's HTTP port; the backend's server listens on BACKEND_HTTP_PORT."""
BACKEND_HTTP_PORT = 8081
"""Not WEB_PORT: nginx (WebServer) listens there in the same namespace."""
TABLE = "skutui_test_lb"
STRICT_CONNTRACK = {"net.netfilter.nf_conntrack_tcp_loose": "0"}
"""No pick-up of connections in mid-stream: a segment without a conntrack entry is INVALID."""
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

HTTP_SERVER = """
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        body = self.path.encode() + b"\\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
ThreadingHTTPServer.daemon_threads = True
ThreadingHTTPServer.request_queue_size = 64
server = ThreadingHTTPServer((sys.argv[1], int(sys.argv[2])), Handler)
print("listening", flush=True)
server.serve_forever()
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


def hardened_ruleset() -> str:
    """The load balancer of the takeover-guard tests: DNAT of the floating IP's HTTP port to
    the backend, SNAT to the floating IP, and a forward filter that drops INVALID packets,
    with nothing on input: what the kernel does with a segment to the floating IP that has
    no conntrack entry is then the product's business alone."""
    return f"""\
table ip {TABLE} {{
    chain prerouting {{
        type nat hook prerouting priority dstnat; policy accept;
        ip daddr {VIP} tcp dport {HTTP_PORT} dnat to {BACKEND_IP}:{BACKEND_HTTP_PORT}
    }}
    chain postrouting {{
        type nat hook postrouting priority srcnat; policy accept;
        ip daddr {BACKEND_IP} tcp dport {BACKEND_HTTP_PORT} snat to {VIP}
    }}
    chain forward {{
        type filter hook forward priority filter; policy accept;
        ct state invalid counter name invalid drop
        ct state established,related counter name known accept
    }}
    counter invalid {{ }}
    counter known {{ }}
}}
"""


def _host(*argv: str, check: bool = True, input: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(list(argv), capture_output=True, text=True, check=check, input=input,
                          timeout=30)


@dataclass
class Backend:
    """The backend namespace with its echo and HTTP servers; ``stop`` removes them all, by
    name."""

    servers: list[subprocess.Popen] = field(default_factory=list)

    def start(self) -> None:
        self.stop()
        _host("ip", "netns", "add", NETNS)
        _host("ip", "link", "add", VETH, "type", "veth", "peer", "name", "eth0", "address",
              BACKEND_MAC, "netns", NETNS)
        _host("ip", "link", "set", VETH, "master", BRIDGE, "up")
        for command in (["addr", "add", f"{BACKEND_IP}/24", "dev", "eth0"],
                        ["link", "set", "lo", "up"], ["link", "set", "eth0", "up"]):
            _host("ip", "-n", NETNS, *command)
        for program, port in ((ECHO_SERVER, PORT), (HTTP_SERVER, BACKEND_HTTP_PORT)):
            server = subprocess.Popen(
                ["ip", "netns", "exec", NETNS, sys.executable, "-c", program, BACKEND_IP,
                 str(port)],
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                text=True)
            self.servers.append(server)
            assert server.stdout.readline().strip() == "listening", f"the server on {port} starts"

    def stop(self) -> None:
        for server in self.servers:
            server.kill()
            server.wait(timeout=10)
        self.servers.clear()
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

    hardened: bool = False
    """The takeover-guard tests' load balancer (:func:`hardened_ruleset`, strict conntrack)."""

    def install(self, node: str) -> None:
        settings = {**FORWARDING, **(STRICT_CONNTRACK if self.hardened else {})}
        self.saved[node] = {key: self.cluster.run(node, "sysctl", "-n", key, check=True)
                            .stdout.strip() for key in settings}
        for key, value in settings.items():
            self.cluster.run(node, "sysctl", "-q", "-w", f"{key}={value}", check=True)
        self.cluster.run(node, "nft", "-f", "-",
                         input=hardened_ruleset() if self.hardened else ruleset(), check=True)

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


class KeepAliveClients:
    """``count`` HTTP/1.1 keep-alive connections to the floating IP, each requesting in a
    loop from its own thread (one request every ``pause`` seconds), each reply's arrival
    noted. A connection is lost when a request fails: a reset, the server closing it, or
    no answer within ``timeout`` seconds; a lost connection is not opened again."""

    def __init__(self, count: int = 16, pause: float = 0.02, timeout: float = 10.0):
        self.pause, self.timeout = pause, timeout
        self.connections = [http.client.HTTPConnection(VIP, HTTP_PORT, timeout=timeout)
                            for _ in range(count)]
        self.replies: list[list[float]] = [[] for _ in range(count)]
        self.failures: list[BaseException | None] = [None] * count
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(index,), daemon=True)
                         for index in range(count)]

    def _run(self, index: int) -> None:
        connection, replies = self.connections[index], self.replies[index]
        try:
            while not self._stop.is_set():
                connection.request("GET", f"/{index}/{len(replies)}")
                response = connection.getresponse()
                body = response.read()
                assert response.status == 200 and body == f"/{index}/{len(replies)}\n".encode()
                replies.append(time.monotonic())
                time.sleep(self.pause)
        except BaseException as exc:  # noqa: BLE001 - the test reads it
            self.failures[index] = exc

    def start(self) -> None:
        """Connect them all (connections tracked from their SYN), then start requesting."""
        for connection in self.connections:
            connection.connect()
            connection.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for thread in self._threads:
            thread.start()
        wait_for(lambda: all(len(r) >= 5 for r in self.replies) or any(self.failures), 10,
                 "five replies on every connection")
        assert not any(self.failures), self.failures

    @property
    def ports(self) -> list[int]:
        return [c.sock.getsockname()[1] for c in self.connections if c.sock is not None]

    def lost(self) -> list[str]:
        """One line per lost connection: its index and what ended it."""
        return [f"#{index}: {failure!r}" for index, failure in enumerate(self.failures) if failure]

    def wait_replies(self, moment: float, count: int, timeout: float, what: str) -> None:
        """Every connection still alive has ``count`` replies after ``moment`` (or was lost)."""
        wait_for(lambda: all(self.failures[i] or sum(t > moment for t in r) >= count
                             for i, r in enumerate(self.replies)), timeout, what)

    def longest_stall(self, start: float) -> float:
        """The longest silence between two replies on any one connection, from ``start``."""
        gaps = [b - a for replies in self.replies
                for a, b in itertools.pairwise([t for t in replies if t >= start])]
        return max(gaps, default=0.0)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=self.timeout + 5)
        for connection in self.connections:
            with contextlib.suppress(OSError):
                if connection.sock is not None:
                    connection.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                               struct.pack("ii", 1, 0))
            connection.close()


NEIGHBOUR_NETNS = "skutui-neighbour"
NEIGHBOUR_VETH = "skutui-veth-nb"
NEIGHBOUR_IP = "198.18.0.20"
NEIGHBOUR_MAC = "02:00:c6:12:00:14"

FORGER = """
import socket, struct, sys, time
from skutui.domain.vrrp import PROTOCOL, TTL, Advert, encode
seconds, interval, router_id, address = float(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
adverts = []
for spec in sys.argv[5:]:
    source, destination, priority = spec.split(",")
    message = encode(Advert(router_id, int(priority), interval, (address,), source, destination))
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0xC0, 20 + len(message), 0, 0, TTL, PROTOCOL,
                         0, socket.inet_aton(source), socket.inet_aton(destination))
    adverts.append((header + message, destination))
sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
sock.setsockopt(socket.IPPROTO_IP, socket.IP_HDRINCL, 1)
sent, deadline = 0, time.monotonic() + seconds
while time.monotonic() < deadline:
    for packet, destination in adverts:
        sock.sendto(packet, (destination, 0))
        sent += 1
    time.sleep(interval)
print(sent)
"""


# --- a web server behind a load balancer on the nodes -----------------------------------------

WEB_PORT = 8080
WEB_BODY = "served by the backend\n"
NGINX_CONF = """\
daemon off;
master_process on;
worker_processes 1;
user root;
pid {root}/nginx.pid;
error_log {root}/error.log;
events {{ worker_connections 256; }}
http {{
    access_log off;
    client_body_temp_path {root}/body;
    proxy_temp_path {root}/proxy;
    fastcgi_temp_path {root}/fastcgi;
    uwsgi_temp_path {root}/uwsgi;
    scgi_temp_path {root}/scgi;
    server {{
        listen {ip}:{port};
        location / {{ root {root}/www; }}
    }}
}}
"""


@dataclass
class Neighbour:
    """A third machine on the lab bridge (198.18.0.20): an ARP cache to read, and a forger
    of VRRP adverts. ``stop`` removes it, by name."""

    def start(self) -> None:
        self.stop()
        _host("ip", "netns", "add", NEIGHBOUR_NETNS)
        _host("ip", "link", "add", NEIGHBOUR_VETH, "type", "veth", "peer", "name", "eth0",
              "address", NEIGHBOUR_MAC, "netns", NEIGHBOUR_NETNS)
        _host("ip", "link", "set", NEIGHBOUR_VETH, "master", BRIDGE, "up")
        for command in (["addr", "add", f"{NEIGHBOUR_IP}/24", "dev", "eth0"],
                        ["link", "set", "lo", "up"], ["link", "set", "eth0", "up"]):
            _host("ip", "-n", NEIGHBOUR_NETNS, *command)

    def python(self, program: str, *args: str) -> subprocess.CompletedProcess:
        return _host("ip", "netns", "exec", NEIGHBOUR_NETNS, sys.executable, "-c", program, *args)

    def poke(self, address: str) -> None:
        """One UDP datagram to ``address`` (port 9, discard): resolves it in the ARP cache."""
        self.python("import socket, sys; socket.socket(socket.AF_INET, socket.SOCK_DGRAM)"
                    ".sendto(b'x', (sys.argv[1], 9))", address)

    def link_address_of(self, address: str) -> str | None:
        """The link-layer address this neighbour's ARP cache holds for ``address``."""
        out = _host("ip", "-n", NEIGHBOUR_NETNS, "-j", "neigh", "show", address).stdout
        entries = [e for e in json.loads(out or "[]") if e.get("lladdr")]
        return entries[0]["lladdr"] if entries else None

    def forge_vrrp(self, seconds: float, interval: float, router_id: int,
                   adverts: list[tuple[str, str, int]]) -> subprocess.Popen:
        """Send forged VRRPv3 adverts for ``seconds``, each (source, destination, priority)
        every ``interval``, from this neighbour's own link-layer address; the process
        prints how many it sent."""
        return subprocess.Popen(
            ["ip", "netns", "exec", NEIGHBOUR_NETNS, sys.executable, "-c", FORGER,
             str(seconds), str(interval), str(router_id), VIP,
             *(f"{s},{d},{p}" for s, d, p in adverts)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def stop(self) -> None:
        if _host("ip", "link", "show", NEIGHBOUR_VETH, check=False).returncode == 0:
            _host("ip", "link", "del", NEIGHBOUR_VETH)
        if NEIGHBOUR_NETNS in _host("ip", "netns", "list").stdout.split():
            _host("ip", "netns", "del", NEIGHBOUR_NETNS)


@dataclass
class WebServer:
    """nginx (Debian's nginx-light) in the backend's namespace, serving ``WEB_BODY`` at
    ``BACKEND_IP:WEB_PORT``, its files in a folder of its own; ``stop`` ends it and removes
    the folder. The backend namespace must exist (``Backend.start``)."""

    server: subprocess.Popen | None = None
    folder: str | None = None

    def start(self) -> None:
        self.folder = tempfile.mkdtemp(prefix="skutui-web-")
        os.chmod(self.folder, 0o755)
        www = Path(self.folder, "www")
        www.mkdir()
        (www / "index.html").write_text(WEB_BODY)
        conf = Path(self.folder, "nginx.conf")
        conf.write_text(NGINX_CONF.format(root=self.folder, ip=BACKEND_IP, port=WEB_PORT))
        self.server = subprocess.Popen(
            ["ip", "netns", "exec", NETNS, "nginx", "-c", str(conf)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(lambda: _answers(BACKEND_IP, WEB_PORT), 10, "nginx in the backend answers")

    def stop(self) -> None:
        if self.server is not None:
            self.server.terminate()
            try:
                self.server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.server.kill()
                self.server.wait(timeout=10)
            self.server = None
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)
            self.folder = None


def _answers(ip: str, port: int) -> bool:
    try:
        return http_get(ip, port, timeout=1.0) == WEB_BODY
    except OSError:
        return False


def http_get(ip: str, port: int = 80, timeout: float = 2.0) -> str:
    """One request on a new connection; the body, or OSError (refused, reset, timed out)."""
    connection = http.client.HTTPConnection(ip, port, timeout=timeout)
    try:
        connection.request("GET", "/index.html", headers={"Connection": "close"})
        response = connection.getresponse()
        body = response.read().decode()
        if response.status != 200:
            raise OSError(f"HTTP {response.status} from {ip}:{port}: {body[:80]!r}")
        return body
    except http.client.HTTPException as exc:
        raise OSError(f"{ip}:{port}: {exc!r}") from exc
    finally:
        connection.close()
