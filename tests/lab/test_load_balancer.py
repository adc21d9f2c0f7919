"""A real load balancer behind the cluster: Debian's haproxy on both nodes, nginx in a backend
namespace, an HTTP client on the host asking through the floating IP.

One cluster serves the whole module (creating one takes seconds): haproxy's configuration is
written on node-a only and reaches node-b through the synced /etc/haproxy, and everything is
set up through the command line's flags. Each test starts from, and leaves, a healthy
cluster (one master holding the floating IP, both rows green, haproxy on both nodes), from
either node as master. Measured times are printed (``pytest -s``); only generous bounds are
asserted.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

import pytest

from skutui.domain import codec
from skutui.domain.render import SERVICE_FALL, SERVICE_RISE, vrrp_priority
from skutui_lab import Lab
from tests.lab.backend import WEB_BODY, Backend, WebServer, http_get
from tests.lab.labcluster import EXTRA_LINK, INTERVAL, VIP, A, B, LabCluster, wait_for
from tests.lab.test_agent import kill_keepalived
from tests.lab.test_cluster import AddressMonitor, hold_for
from tests.lab.test_faults import until

pytestmark = pytest.mark.lab

HAPROXY_CFG = """\
# written on node-a only; node-b gets it through the synced /etc/haproxy
global
    daemon
    maxconn 256

defaults
    mode http
    timeout connect 2s
    timeout client 10s
    timeout server 10s

frontend www
    bind :80
    default_backend web

backend web
    server backend 198.18.0.10:8080
"""
SERVICE_MOVE = SERVICE_FALL * 1.0 + 3 * INTERVAL + 10.0
"""Bound on a dead service moving the floating IPs: keepalived's checks (one a second, at
most), the handover, and room for a loaded machine."""
SETTLE = SERVICE_RISE * 1.0 + 3 * INTERVAL + 10.0
"""Bound on a node turning green again, or a healthy peer taking over by keepalived's own
ranking (its master-down interval)."""
HOLD = SERVICE_FALL * 1.0 + 3 * INTERVAL + 2.0
"""How long the floating IP must stay put to show it is not moving: longer than a dead
service takes to move it (keepalived's checks, then the handover)."""
NOT_READY = "not ready to take over: haproxy is down"
FLOATING = f"{VIP}/24"
MASTER_ONLY_LINK = "eth2"
"""A link made on the master alone, which a floating IP must not be put on."""


def stamp(line: str) -> float:
    """The moment ``ip -ts monitor`` printed in front of ``line``."""
    return datetime.fromisoformat(line[1:line.index("]")]).timestamp()


def measured(what: str, seconds: float) -> None:
    print(f"MEASURED {what}: {seconds * 1000:.0f} ms")


def link_addresses(cluster: LabCluster, node: str, link: str) -> str:
    return cluster.run(node, "ip", "-o", "addr", "show", "dev", link).stdout


class Requests:
    """HTTP through the floating IP on a new connection per request, in a loop on a thread of
    its own; ``answers`` holds the moments of the answers."""

    def __init__(self, balanced: Balanced):
        self.balanced = balanced
        self.answers: list[float] = []
        self.failed = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                ok = http_get(VIP, 80, timeout=0.25) == WEB_BODY
            except OSError:
                ok = False
            if ok:
                self.answers.append(time.monotonic())
            else:
                self.failed += 1
            time.sleep(0.01)

    def answered_since(self, moment: float) -> bool:
        return bool(self.answers) and self.answers[-1] > moment

    def outage(self, moment: float) -> float:
        """The longest time without an answer across ``moment``."""
        around = [at for at in self.answers if at >= moment - 0.25]
        return max((later - earlier for earlier, later in zip(around, around[1:], strict=False)),
                   default=float("inf"))

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)


@dataclass
class Balanced:
    cluster: LabCluster

    def rows(self, seen_from: str) -> dict[str, dict]:
        return self.cluster.nodes(seen_from)

    def master(self) -> str:
        holders = until(self.cluster.vip_holders, lambda h: len(h) == 1, SETTLE, f"{VIP} on one node")
        return next(iter(holders))

    def haproxy(self, node: str) -> bool:
        return self.cluster.run(node, "pgrep", "-x", "haproxy").returncode == 0

    def listens(self, node: str) -> bool:
        """haproxy has its frontend's socket open (port 80, any address)."""
        return ":80 " in self.cluster.run(node, "ss", "-Hltn", "sport", "=", ":80").stdout

    def kill_haproxy(self, node: str) -> None:
        """haproxy dies and stays dead until started by hand: Debian's unit would start it
        again at once (Restart=always), as if it had never failed."""
        self.cluster.hold_restarts(node, ("haproxy.service",))
        self.cluster.run(node, "pkill", "-KILL", "-x", "haproxy", check=True)
        wait_for(lambda: not self.haproxy(node), 5, f"haproxy gone on {node}")

    def start_haproxy(self, node: str) -> None:
        result = self.cluster.run(node, "service", "haproxy", "start")
        assert result.returncode == 0, result.stdout + result.stderr

    def restore(self) -> None:
        """haproxy runs on both nodes again, under its unit's own restarts: what a test that
        stopped half-way left dead does not fail the tests after it."""
        for node in (A, B):
            self.cluster.release_restarts(node)
            if not self.haproxy(node):
                self.start_haproxy(node)

    def served(self) -> str:
        return http_get(VIP, 80, timeout=3.0)

    def answers(self) -> bool:
        """HTTP through the floating IP works now (the new master may still be starting
        haproxy)."""
        try:
            return self.served() == WEB_BODY
        except OSError:
            return False

    def healthy(self) -> str:
        """Wait for one master with the floating IP, both rows green, haproxy listening on
        both; returns the master."""
        master = self.master()
        backup = self.cluster.other(master)

        def green() -> bool:
            rows = self.rows(master)
            return ((rows[master]["role"], rows[master]["status"]) == ("master", "ok")
                    and (rows[backup]["role"], rows[backup]["status"]) == ("backup", "ok"))

        wait_for(green, SETTLE, f"{master} master and {backup} backup, both green")
        assert self.listens(A) and self.listens(B)
        assert self.served() == WEB_BODY
        return master


@pytest.fixture(scope="module")
def balanced_cluster(lab: Lab) -> Iterator[Balanced]:
    cluster = LabCluster(lab)
    cluster.reset()
    backend, web = Backend(), WebServer()
    try:
        backend.start()
        web.start()
        for node in (A, B):
            # A second link on each node, for the cluster to track.
            cluster.run(node, "ip", "link", "add", EXTRA_LINK, "type", "veth", "peer", "name",
                        f"{EXTRA_LINK}p", check=True)
            for link in (EXTRA_LINK, f"{EXTRA_LINK}p"):
                cluster.run(node, "ip", "link", "set", link, "up", check=True)
        cluster.file(A, "/etc/haproxy/haproxy.cfg").write_text(HAPROXY_CFG)
        cluster.created("--synced-paths", "/etc/haproxy", "--services-on-both", "haproxy",
                        "--tracked-interfaces", EXTRA_LINK)
        wait_for(lambda: cluster.read(B, "/etc/haproxy/haproxy.cfg") == HAPROXY_CFG, 20,
                 "haproxy.cfg reaches node-b through the sync")
        balanced = Balanced(cluster)
        wait_for(lambda: balanced.haproxy(A) and balanced.haproxy(B), 20, "haproxy on both nodes")
        # node-b's haproxy may have started on its own old configuration, before the sync
        # brought node-a's: the operator's reload, run on the master, replays on the backup.
        reload = cluster.skutui(A, "exec", "--", "service", "haproxy", "reload")
        assert reload.returncode == 0, reload.stdout + reload.stderr
        wait_for(lambda: all(balanced.listens(node) for node in (A, B)), 10, "haproxy listens on both")
        yield balanced
    finally:
        web.stop()
        backend.stop()
        cluster.reset()
        cluster.assert_clean()


@pytest.fixture
def balanced(balanced_cluster: Balanced) -> Iterator[Balanced]:
    balanced_cluster.healthy()
    yield balanced_cluster
    balanced_cluster.restore()


# --- set up through the flags ------------------------------------------------------------------


def test_the_flags_set_services_synced_paths_and_tracked_links_and_http_flows(balanced: Balanced) -> None:
    cluster = balanced.cluster
    shown = cluster.skutui(A, "cluster", "show")
    assert shown.returncode == 0, shown.stderr
    lines = dict(line.split(":", 1) for line in shown.stdout.splitlines())
    assert lines["Services on both"].strip() == "haproxy"
    assert lines["Services"].strip() == "none"
    assert lines["Synced paths"].strip() == "/etc/skutui, /etc/haproxy"
    assert lines["Tracked interfaces"].strip() == f"eth0, {EXTRA_LINK}"
    keepalived = cluster.read(A, "/etc/keepalived/keepalived.conf")
    assert "vrrp_script service_haproxy {" in keepalived and "service_haproxy\n" in keepalived
    assert cluster.read(B, "/etc/haproxy/haproxy.cfg") == HAPROXY_CFG
    assert balanced.served() == WEB_BODY


# --- item 2: a dead service moves the master ----------------------------------------------------


def test_killing_haproxy_on_the_master_moves_the_floating_ip_and_names_it(balanced: Balanced) -> None:
    cluster = balanced.cluster
    master = balanced.master()
    taker = cluster.other(master)
    started = time.monotonic()
    balanced.kill_haproxy(master)
    wait_for(lambda: cluster.vip_holders() == {taker}, SERVICE_MOVE, f"{VIP} moves to {taker}",
             poll=0.02)
    measured(f"haproxy killed -> {VIP} on {taker} (interval {INTERVAL:g} s)", time.monotonic() - started)
    assert balanced.served() == WEB_BODY
    for seen_from in (master, taker):
        rows = balanced.rows(seen_from)
        assert (rows[taker]["role"], rows[taker]["status"]) == ("master", "ok"), rows[taker]
        row = rows[master]
        assert (row["role"], row["status"], row["colour"], row["message"]) == (
            "backup", "failure", "red", NOT_READY), row
    assert "handing the floating IPs to" in cluster.agent_log(master)

    # Restarted: it rejoins as a ready backup, and the floating IP stays where it is.
    balanced.start_haproxy(master)
    wait_for(lambda: balanced.rows(taker)[master]["status"] == "ok", SETTLE, f"{master} green again")
    assert balanced.healthy() == taker


def test_haproxy_down_on_both_nodes_keeps_the_floating_ip_where_it_is(balanced: Balanced) -> None:
    """The node to take over is no better: the floating IP stays and is still answered (the
    address, if not the service), and the first node whose haproxy returns takes it."""
    cluster = balanced.cluster
    master = balanced.master()
    backup = cluster.other(master)
    balanced.kill_haproxy(backup)
    wait_for(lambda: balanced.rows(master)[backup]["message"] == NOT_READY, SETTLE,
             f"{backup} not ready")
    # ... and ranked down by its keepalived, whose checks lag the node table's: until then
    # it rightly counts as the better node.
    config = codec.loads(cluster.read(backup, "/etc/skutui/cluster.toml"))
    wait_for(lambda: cluster.agent_state(backup)["priority"] < vrrp_priority(config, backup),
             SETTLE, f"{backup} ranked down")
    balanced.kill_haproxy(master)
    hold_for(cluster, HOLD, lambda: cluster.vip_holders() == {master},
             f"{VIP} stays on {master} while haproxy is down on both")
    rows = balanced.rows(master)
    assert (rows[master]["role"], rows[master]["status"], rows[master]["message"]) == (
        "master", "failure", "haproxy is down"), rows[master]
    assert (rows[backup]["role"], rows[backup]["message"]) == ("backup", NOT_READY), rows[backup]

    balanced.start_haproxy(backup)
    wait_for(lambda: cluster.vip_holders() == {backup}, SETTLE,
             f"{backup}, whose haproxy is back, takes {VIP}", poll=0.02)
    balanced.start_haproxy(master)
    assert balanced.healthy() == backup


# --- item 3: a tracked link down is a red FAULT, not maintenance --------------------------------


def test_a_tracked_link_down_on_the_master_is_a_red_fault_naming_it(balanced: Balanced) -> None:
    cluster = balanced.cluster
    master = balanced.master()
    taker = cluster.other(master)
    cluster.run(master, "ip", "link", "set", EXTRA_LINK, "down", check=True)
    try:
        wait_for(lambda: cluster.vip_holders() == {taker}, SETTLE, f"{VIP} moves to {taker}")
        for seen_from in (master, taker):
            row = until(lambda seen_from=seen_from: balanced.rows(seen_from)[master],
                        lambda r: r["role"] == "fault", SETTLE, f"{seen_from} sees the fault")
            assert (row["status"], row["colour"], row["message"]) == (
                "failure", "red", f"FAULT: {EXTRA_LINK} is down"), row
        assert balanced.served() == WEB_BODY
    finally:
        cluster.run(master, "ip", "link", "set", EXTRA_LINK, "up", check=True)
    assert balanced.healthy() == taker


# --- item 6: maintenance never leaves the floating IPs unserved ----------------------------------


def test_maintenance_on_the_master_is_refused_while_the_peer_cannot_take_over(balanced: Balanced) -> None:
    cluster = balanced.cluster
    master = balanced.master()
    peer = cluster.other(master)
    kill_keepalived(cluster, peer)
    try:
        wait_for(lambda: balanced.rows(master)[peer]["status"] == "failure", SETTLE,
                 f"{master} sees {peer} failing")
        refused = cluster.skutui(master, "maintenance", "on")
        assert refused.returncode == 1, refused.stdout + refused.stderr
        assert refused.stdout == ""
        assert refused.stderr.startswith(f"skutui: Maintenance refused: {master} is the master and "
                                         f"{peer} cannot take over (backup, FAILURE: not ready to take "
                                         "over: keepalived is down"), refused.stderr
        assert "--force" in refused.stderr and VIP in refused.stderr
        assert cluster.vip_holders() == {master} and balanced.served() == WEB_BODY
        assert cluster.read(master, "/etc/skutui/local/maintenance").strip() == "0"

        forced = cluster.skutui(master, "maintenance", "on", "--force")
        assert forced.returncode == 0, forced.stderr
        assert forced.stdout.startswith(f"{master} is in maintenance; {peer} cannot take over")
        assert f"the floating IPs ({VIP}/24) are UNSERVED" in forced.stdout, forced.stdout
        wait_for(lambda: cluster.vip_holders() == set(), SETTLE, "nobody holds the floating IP")
        with pytest.raises(OSError):
            balanced.served()
        off = cluster.skutui(master, "maintenance", "off")
        assert off.returncode == 0, off.stderr
    finally:
        started = cluster.skutui(peer, "node", "start")
        assert started.returncode == 0, started.stderr
    balanced.healthy()


def test_maintenance_on_the_master_hands_over_before_it_lets_the_floating_ip_go(balanced: Balanced) -> None:
    cluster = balanced.cluster
    master = balanced.master()
    taker = cluster.other(master)
    monitors = {node: AddressMonitor(cluster, node) for node in (A, B)}
    failures: list[str] = []
    stop = threading.Event()

    def ask() -> None:
        while not stop.is_set():
            try:
                balanced.served()
            except OSError as exc:
                failures.append(str(exc))
            time.sleep(0.02)

    client = threading.Thread(target=ask, daemon=True)
    client.start()
    try:
        on = cluster.skutui(master, "maintenance", "on")
        assert on.returncode == 0, on.stderr
        assert on.stdout.startswith(f"{master} is in maintenance; {taker} committed the connection "
                                    f"state and took over the floating IPs ({VIP}/24) in "), on.stdout
        wait_for(lambda: cluster.vip_holders() == {taker}, SETTLE, f"{VIP} on {taker} only")
        time.sleep(0.5)
    finally:
        stop.set()
        client.join(timeout=10)
        for monitor in monitors.values():
            monitor.stop()
    added = [stamp(line) for line in monitors[taker].vip_changes() if "Deleted" not in line]
    deleted = [stamp(line) for line in monitors[master].vip_changes() if "Deleted" in line]
    assert added and deleted, (monitors[taker].lines, monitors[master].lines)
    # ip monitor's timestamps, from the host's one clock. The taker's keepalived sends its
    # first advert a hair before it adds the address, and the old master lets it go on that
    # advert: the two moments coincide. Going into FAULT at once (as maintenance did before)
    # leaves the address nowhere for the taker's whole skew, which this bound tells apart.
    config = codec.loads(cluster.read(master, "/etc/skutui/cluster.toml"))
    skew = (256 - vrrp_priority(config, taker)) / 256 * config.check_interval
    gap = added[0] - deleted[0]
    print(f"MEASURED {master} let {VIP} go {gap * 1e6:.0f} us before {taker} held it "
          f"(its skew: {skew * 1000:.0f} ms); failed requests: {len(failures)} {failures[:3]}")
    assert gap < skew / 2, (added, deleted)
    assert balanced.rows(taker)[master]["role"] == "maintenance"
    off = cluster.skutui(master, "maintenance", "off")
    assert off.returncode == 0, off.stderr
    assert balanced.healthy() == taker


# --- item 1: edits apply at once; master-only services leave with the master ----------------------


def test_edits_apply_at_once_and_master_only_services_leave_with_the_master(balanced: Balanced) -> None:
    """Last in the module: haproxy becomes master-only. Two edits (each reloads both nodes)
    carry everything: the first adds a floating IP on a named link and a synced path and
    empties the services on both, the second adds haproxy as a master-only service and
    removes the path again."""
    cluster = balanced.cluster
    master = balanced.master()
    backup = cluster.other(master)
    extra = "198.18.0.101"
    # A /32: the address alone, no second route into the lab's network through that link.
    cluster.run(master, "ip", "link", "add", MASTER_ONLY_LINK, "type", "veth", "peer", "name",
                f"{MASTER_ONLY_LINK}p", check=True)
    try:
        refused = cluster.skutui(master, "cluster", "edit", "--floating-ip", FLOATING,
                                 "--floating-ip", f"{extra}/32@{MASTER_ONLY_LINK}")
        assert refused.returncode == 2, refused.stdout + refused.stderr
        assert (f"link {MASTER_ONLY_LINK} does not exist on {backup}; name a link both nodes have"
                in refused.stderr), refused.stderr
        assert refused.stderr.count("\n") == 1 and "Traceback" not in refused.stderr
    finally:
        cluster.run(master, "ip", "link", "del", MASTER_ONLY_LINK, check=True)
    assert f"{extra}/" not in cluster.read(master, "/etc/keepalived/keepalived.conf")

    # /root is each node's own (an overlay), so only the sync can copy between them.
    folder = "/root/skutui-lb-test"
    kept = ("/etc/skutui", "/etc/haproxy")
    try:
        cluster.sh(master, f"mkdir -p {folder} && echo first > {folder}/first.cfg", check=True)
        first = cluster.skutui(master, "cluster", "edit", "--services-on-both", "",
                               "--floating-ip", FLOATING, "--floating-ip", f"{extra}/32@{EXTRA_LINK}",
                               "--synced-paths", ",".join((*kept, folder)))
        assert first.returncode == 0, first.stderr
        assert "Services on both: haproxy -> none" in first.stdout
        assert f"Floating IPs: {FLOATING} -> {FLOATING}, {extra}/32@{EXTRA_LINK}" in first.stdout
        assert f"Synced paths: {', '.join(kept)} -> {', '.join((*kept, folder))}" in first.stdout
        for node in (A, B):
            assert f"{extra}/32 dev {EXTRA_LINK}" in cluster.read(node, "/etc/keepalived/keepalived.conf")
        wait_for(lambda: f"{extra}/32" in link_addresses(cluster, master, EXTRA_LINK), SETTLE,
                 f"{extra} on {master}'s {EXTRA_LINK}")
        assert f"{extra}/" not in link_addresses(cluster, master, "eth0")
        assert f"{extra}/" not in link_addresses(cluster, backup, EXTRA_LINK)
        wait_for(lambda: cluster.sh(backup, f"cat {folder}/first.cfg").stdout == "first\n", 20,
                 f"{folder} reaches {backup} without another change")
        for node in (A, B):
            cluster.run(node, "service", "haproxy", "stop", check=True)

        second = cluster.skutui(master, "cluster", "edit", "--services", "haproxy",
                                "--synced-paths", ",".join(kept))
        started = time.monotonic()
        assert second.returncode == 0, second.stderr
        assert "Services: none -> haproxy" in second.stdout
        wait_for(lambda: balanced.haproxy(master), 3 * INTERVAL + 5, f"haproxy started on {master}",
                 poll=0.02)
        measured("edit returned -> haproxy running on the master", time.monotonic() - started)
        hold_for(cluster, 2.0, lambda: not balanced.haproxy(backup), f"{backup} does not run it")
        assert balanced.served() == WEB_BODY
        cluster.sh(master, f"echo second > {folder}/second.cfg", check=True)
        cluster.file(master, "/etc/haproxy/marker").write_text("still synced\n")
        wait_for(lambda: cluster.sh(backup, "cat /etc/haproxy/marker").stdout == "still synced\n",
                 20, "/etc/haproxy still synced")
        assert cluster.sh(backup, f"test -e {folder}/second.cfg").returncode == 1, \
            f"{folder} is no longer synced"
    finally:
        for node in (A, B):
            cluster.sh(node, f"rm -rf {folder}", check=True)
        cluster.file(master, "/etc/haproxy/marker").unlink(missing_ok=True)

    # The master's keepalived dies under a new connection per request: the peer takes over
    # and starts haproxy, the old master, no longer acting as master, stops it.
    client = Requests(balanced)
    try:
        client.start()
        wait_for(lambda: client.answered_since(0.0), 10, f"HTTP through {master}")
        time.sleep(0.5)
        killed = time.monotonic()
        kill_keepalived(cluster, master)
        wait_for(lambda: cluster.holds_vip(backup), SETTLE, f"{backup} takes {VIP}")
        wait_for(lambda: balanced.haproxy(backup), SETTLE, f"haproxy started on {backup}")
        wait_for(lambda: not balanced.haproxy(master), SETTLE, f"haproxy stopped on {master}")
        answered = time.monotonic()
        wait_for(lambda: client.answered_since(answered), SETTLE, "HTTP through the new master")
        wait_for(lambda: f"{extra}/32" in link_addresses(cluster, backup, EXTRA_LINK), SETTLE,
                 f"{extra} moves to {backup}'s {EXTRA_LINK}")
        assert f"{extra}/" not in link_addresses(cluster, master, EXTRA_LINK)
    finally:
        client.stop()
        restarted = cluster.skutui(master, "node", "start")
        assert restarted.returncode == 0, restarted.stderr
    outage = client.outage(killed)
    config = codec.loads(cluster.read(backup, "/etc/skutui/cluster.toml"))
    limit = 3 * INTERVAL + (256 - vrrp_priority(config, backup)) / 256 * INTERVAL
    print(f"MEASURED L7 outage across kill -9 of {master}'s keepalived: {outage * 1000:.0f} ms "
          f"(VRRP limit {limit * 1000:.0f} ms), {client.failed} failed requests")
    assert outage < SETTLE, outage
    wait_for(lambda: balanced.rows(backup)[master]["status"] == "ok", SETTLE, f"{master} back as backup")
    hold_for(cluster, 2.0, lambda: not balanced.haproxy(master), f"{master}, now backup, does not run it")
