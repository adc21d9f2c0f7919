"""skutui's nftables table on two real nodes: busy connections kept across a takeover behind
a strict load balancer, a dead master's keepalived handed over at once, forged VRRP from a
third machine on the segment dropped and reported, a changed peer link-layer address
reported and re-pinned, and the floating IPs re-announced when a split brain heals.

Each protection is shown twice: it holds with skutui's table, and the same scene without the
part of the table that provides it fails (connections reset, the floating IP taken away).
Measured times are printed (``pytest -s``); speed itself is the benchmarks' business. Two
tests, one cluster each, every scene played on it in turn: a cluster is made once, not once
per scene.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from skutui.domain import firewall
from tests.lab.backend import (
    Backend,
    KeepAliveClients,
    LoadBalancer,
    Neighbour,
    wait_vip_moved,
)
from tests.lab.labcluster import ELECTION, EVENTUALLY, INTERVAL, VIP, A, B, EventStream, LabCluster, wait_for
from tests.lab.test_agent import kill_keepalived, measured

pytestmark = pytest.mark.lab

CONNECTIONS = 16
SETTLE = 15.0
"""Seconds for every busy connection to answer again after a takeover (or to be lost)."""
LOST_AFTER = 3.0
"""Seconds without an answer after which a connection of the run without conntrackd counts
as lost (far beyond any stall a takeover with conntrackd causes)."""
FORGERY = 5.0
"""Seconds the forged adverts are sent for."""
VRID = 51
"""The lab clusters' virtual router id (the default)."""


def armed(cluster: LabCluster, node: str) -> bool | None:
    result = cluster.run(node, "nft", "-j", "list", "table", "inet", "skutui")
    return firewall.guard_armed_in(json.loads(result.stdout) if result.returncode == 0 else None)


def counter(cluster: LabCluster, node: str, name: str) -> int:
    out = cluster.run(node, "nft", "-j", "list", "counter", "inet", "skutui", name, check=True).stdout
    return firewall.counters_from_json(json.loads(out))[name].packets


def link_address(cluster: LabCluster, node: str) -> str:
    return json.loads(cluster.run(node, "ip", "-j", "link", "show", "eth0", check=True).stdout)[0]["address"]


# --- the takeover guard ------------------------------------------------------------------------


@pytest.fixture
def hardened(cluster: LabCluster) -> Iterator[tuple[LabCluster, LoadBalancer]]:
    """The backend behind a strict load balancer on both nodes (nf_conntrack_tcp_loose=0,
    ``ct state invalid drop`` on forward), set up before the cluster is created so that
    connection tracking runs from the first packet."""
    backend, balancer = Backend(), LoadBalancer(cluster, hardened=True)
    try:
        backend.start()
        for node in (A, B):
            balancer.install(node)
        yield cluster, balancer
    finally:
        balancer.remove()
        backend.stop()


def synced_to(cluster: LabCluster, node: str, clients: KeepAliveClients) -> None:
    """``node``'s conntrackd holds every client connection in its external cache."""
    def held() -> bool:
        cache = cluster.run(node, "conntrackd", "-C", "/etc/conntrackd/conntrackd.conf", "-e").stdout
        return all(f"sport={port}" in cache for port in clients.ports)
    wait_for(held, 10, f"{node}'s conntrackd holds the {CONNECTIONS} connections")


@contextmanager
def busy(timeout: float = 10.0) -> Iterator[KeepAliveClients]:
    clients = KeepAliveClients(CONNECTIONS, timeout=timeout)
    try:
        clients.start()
        yield clients
    finally:
        clients.stop()


def failed_back_to_a(cluster: LabCluster) -> float:
    """``skutui node start`` on node-a, whose keepalived was killed: it takes the floating IP
    back (failback to node-a). Returns when it was started."""
    restarted = time.monotonic()
    started = cluster.skutui(A, "node", "start")
    assert started.returncode == 0, started.stderr
    wait_vip_moved(cluster, A, EVENTUALLY)
    return restarted


def test_busy_connections_survive_takeover_and_failback_only_with_conntrackd_and_the_guard(
        hardened) -> None:
    """16 keep-alive HTTP connections requesting in a loop through the floating IP, one
    cluster, four takeovers:

    1. node-a's keepalived killed: node-a's agent tells node-b at once (priority 0), keeps
       the floating IP until node-b is master, then releases it; no connection is lost, the
       segments that reached node-b before its commit were held, not reset;
    2. node-a back (failback): none lost either;
    3. node-b's guard emptied, node-a's keepalived killed again: the segments that come
       before the commit are answered with a reset, connections die;
    4. node-b's table whole again but its conntrackd stopped: the guard holds the segments,
       nothing is committed, and every connection is lost. The guard buys time for
       conntrackd, nothing else.
    """
    cluster, balancer = hardened
    cluster.created("--failback", "local")
    assert (armed(cluster, A), armed(cluster, B)) == (False, True), \
        "the master's guard is disarmed after its commit, the backup's armed"

    with busy() as clients:
        synced_to(cluster, B, clients)
        held_on_b = counter(cluster, B, firewall.TAKEOVER_HELD)
        events = EventStream(cluster, A)
        try:
            kill_keepalived(cluster, A)
            killed = time.monotonic()
            wait_vip_moved(cluster, B, EVENTUALLY)
            clients.wait_replies(time.monotonic(), 10, SETTLE, "every connection answers on node-b")
            _, handover = events.wait(killed - 1, lambda e: e["kind"] == "service"
                                      and e["data"].get("service") == "keepalived"
                                      and e["data"].get("told") and e["data"].get("released"),
                                      EVENTUALLY, "node-a's agent hands over")
        finally:
            events.stop()
        assert clients.lost() == [], clients.lost()
        takeover_stall = clients.longest_stall(killed)
        assert counter(cluster, B, firewall.TAKEOVER_HELD) > held_on_b, \
            "segments reached node-b before its commit, and the guard held them"
        assert (armed(cluster, A), armed(cluster, B)) == (True, False)
        assert balancer.counter(B, "invalid") == 0
        assert handover["data"]["told"] == cluster.ip(B), handover
        assert handover["data"]["released"] == [f"{VIP}/24"], handover
        assert handover["data"]["failed"] == [], handover
        assert "told node-b to take over now (VRRP priority 0" in handover["message"], handover
        assert "node-b was master" in handover["message"], handover
        rows = cluster.nodes(B)
        assert (rows[B]["role"], rows[B]["status"]) == ("master", "ok"), rows[B]

        synced_to(cluster, A, clients)
        held_on_a = counter(cluster, A, firewall.TAKEOVER_HELD)
        restarted = failed_back_to_a(cluster)
        clients.wait_replies(time.monotonic(), 10, SETTLE, "every connection answers on node-a")
        assert clients.lost() == [], clients.lost()
        failback_stall = clients.longest_stall(restarted)
        assert counter(cluster, A, firewall.TAKEOVER_HELD) > held_on_a
        assert (armed(cluster, A), armed(cluster, B)) == (False, True)
    measured("longest stall of 16 busy connections at the takeover", takeover_stall)
    measured("longest stall of 16 busy connections at the failback", failback_stall)

    with busy() as clients:
        synced_to(cluster, B, clients)
        cluster.run(B, "nft", "flush", "chain", "inet", "skutui", firewall.GUARD_CHAIN, check=True)
        kill_keepalived(cluster, A)
        wait_vip_moved(cluster, B, EVENTUALLY)
        wait_for(clients.lost, SETTLE, "a connection is lost")
        time.sleep(1)
    lost = clients.lost()
    print(f"MEASURED connections lost without the guard: {len(lost)} of {CONNECTIONS}")
    # Reset, mostly; a client whose segment came in the gap may time out first.
    assert lost and any("reset" in line.lower() for line in lost), lost

    restored = cluster.skutui(B, "node", "start")
    assert restored.returncode == 0, restored.stderr
    assert "tcp flags" in cluster.run(B, "nft", "list", "chain", "inet", "skutui",
                                      firewall.GUARD_CHAIN, check=True).stdout, "node-b's guard is back"
    failed_back_to_a(cluster)
    with busy(timeout=LOST_AFTER) as clients:
        cluster.hold_restarts(B)
        cluster.run(B, "pkill", "-x", "conntrackd", check=True)
        wait_for(lambda: "conntrackd" not in cluster.daemons(B), 5, "node-b's conntrackd stops")
        kill_keepalived(cluster, A)
        wait_vip_moved(cluster, B, EVENTUALLY)
        wait_for(lambda: len(clients.lost()) == CONNECTIONS, SETTLE + LOST_AFTER,
                 "every connection is lost")
    resets = sum("reset" in line.lower() for line in clients.lost())
    print(f"MEASURED without conntrackd: {CONNECTIONS} of {CONNECTIONS} lost, {resets} of them reset")


# --- the cluster link filter ---------------------------------------------------------------------


@pytest.fixture
def neighbour(cluster: LabCluster) -> Iterator[Neighbour]:
    stranger = Neighbour()
    try:
        stranger.start()
        yield stranger
    finally:
        stranger.stop()


def forge(cluster: LabCluster, neighbour: Neighbour, until_moved: bool = False) -> tuple[int, bool]:
    """For FORGERY seconds, priority 255 to the master as if from the backup, and priority
    0 to the backup as if from the master; returns the adverts sent and whether node-a
    alone held the floating IP all along (and for a whole election after). ``until_moved``:
    stop as soon as node-a is seen without it."""
    forger = neighbour.forge_vrrp(FORGERY, INTERVAL / 4, VRID, [
        (cluster.ip(B), cluster.ip(A), 255), (cluster.ip(A), cluster.ip(B), 0)])
    kept = True
    deadline = time.monotonic() + FORGERY + ELECTION
    try:
        while time.monotonic() < deadline and (kept or not until_moved):
            kept = kept and cluster.vip_holders() == {A}
            time.sleep(0.05)
    finally:
        if not kept and until_moved:
            forger.kill()
    out, err = forger.communicate(timeout=30)
    if until_moved and not kept:
        return 0, kept
    assert forger.returncode == 0, err
    return int(out), kept


def forgery_is_dropped_counted_and_shown(cluster: LabCluster, neighbour: Neighbour) -> None:
    before = {node: counter(cluster, node, firewall.FOREIGN_VRRP) for node in (A, B)}
    events = EventStream(cluster, A)
    try:
        started = time.monotonic()
        sent, kept = forge(cluster, neighbour)
        assert kept, "node-a held the floating IP alone throughout"
        _, event = events.wait(started, lambda e: e["kind"] == "link", 10,
                               "node-a reports the forged adverts")
    finally:
        events.stop()
    assert event["level"] == "warning" and event["data"]["counter"] == firewall.FOREIGN_VRRP, event
    assert f"router id {VRID}" in event["message"] and "node-b" in event["message"], event
    dropped = {node: counter(cluster, node, firewall.FOREIGN_VRRP) - before[node] for node in (A, B)}
    print(f"MEASURED forged adverts sent {sent}, dropped on node-a {dropped[A]}, on node-b {dropped[B]}")
    assert dropped[A] >= sent // 2 - 1 and dropped[B] >= sent // 2 - 1, (sent, dropped)
    for seen_from in (A, B):
        rows = wait_for(lambda seen_from=seen_from: (lambda r: r if all(
            f"foreign VRRP for router id {VRID}" in row["message"] for row in r.values()) else None)(
                cluster.nodes(seen_from)), SETTLE, f"{seen_from}'s table warns on both rows")
        assert (rows[A]["role"], rows[A]["status"]) == ("master", "ok"), rows[A]
        assert (rows[B]["role"], rows[B]["status"]) == ("backup", "ok"), rows[B]


SPLIT = """table inet skutui_test_split {
    set heard { type ipv4_addr; flags dynamic; }
    chain input { type filter hook input priority raw; meta l4proto vrrp drop
    }
    chain output { type filter hook output priority raw; meta l4proto vrrp ip daddr != @heard drop
    }
}
"""
"""node-b neither hears nor is heard: both nodes make themselves master. node-b sends VRRP
again only to a node it has heard since."""
HEAL = """flush chain inet skutui_test_split input
add rule inet skutui_test_split input meta l4proto vrrp add @heard { ip saddr }
"""
"""node-b hears node-a again, and may answer it. Its regular adverts stay silent until
then, so node-a's advert reaches node-b first: node-b gives way, and node-a hears of
node-b only if node-b says so as it does (``higher_prio_send_advert``), which is what
makes node-a announce the floating IP again."""


def healed_split_brain_reannounces_the_master(cluster: LabCluster, neighbour: Neighbour) -> None:
    """node-b cut off takes the floating IP too, and a third machine's ARP cache follows
    its gratuitous ARP; when node-b hears node-a again it gives way, and the third
    machine's cache points at node-a again at once, not when its entry expires. Without
    ``higher_prio_send_advert`` in keepalived.conf node-b gives way silently, node-a never
    re-announces, and the neighbour keeps sending to node-b."""
    macs = {node: link_address(cluster, node) for node in (A, B)}
    neighbour.poke(VIP)
    wait_for(lambda: neighbour.link_address_of(VIP) == macs[A], 5, "the neighbour knows node-a")
    cluster.run(B, "nft", "-f", "-", input=SPLIT, check=True)
    try:
        wait_for(lambda: cluster.vip_holders() == {A, B}, EVENTUALLY, "both nodes hold the floating IP")
        wait_for(lambda: neighbour.link_address_of(VIP) == macs[B], EVENTUALLY,
                 "the neighbour follows node-b's gratuitous ARP")
        healed = time.monotonic()
        cluster.run(B, "nft", "-f", "-", input=HEAL, check=True)
        wait_for(lambda: cluster.vip_holders() == {A}, EVENTUALLY, "node-b gives the floating IP up")
        wait_for(lambda: neighbour.link_address_of(VIP) == macs[A], 3 * INTERVAL + 1.0,
                 "the neighbour's ARP entry for the floating IP is node-a's again", poll=0.01)
    finally:
        cluster.run(B, "nft", "delete", "table", "inet", "skutui_test_split", check=True)
    measured("split brain healed until the neighbour's ARP entry is node-a's", time.monotonic() - healed)


def changed_peer_link_address_is_reported_and_re_pinned(cluster: LabCluster) -> None:
    """node-b's NIC gets another link-layer address: node-a drops its VRRP and conntrackd
    traffic, says why in its events and its table, and takes the new address once it is
    pinned again (what `skutui cluster rekey` does on each node)."""
    original, replaced = link_address(cluster, B), "02:00:c6:12:00:99"
    events = EventStream(cluster, A)
    try:
        started = time.monotonic()
        cluster.run(B, "ip", "link", "set", "dev", "eth0", "address", replaced, check=True)
        cluster.run(A, "ip", "neigh", "flush", "to", cluster.ip(B), "dev", "eth0", check=True)
        _, event = events.wait(started, lambda e: e["kind"] == "link" and e["level"] == "error",
                               15, "node-a reports node-b's new link-layer address")
        assert event["data"] == {"pinned": original, "seen": replaced}, event
        assert "skutui cluster rekey" in event["message"], event
        row = wait_for(lambda: (lambda r: r if replaced in r["message"] else None)(cluster.nodes(A)[A]),
                       10, "node-a's row warns")
        assert f"pinned {original}" in row["message"], row
        assert cluster.vip_holders() == {A}, "node-a is master: it does not need node-b's adverts"

        request = json.dumps({"address": cluster.ip(B), "link_address": replaced})
        pinned = cluster.skutui(A, "node", "pin-peer-link", input=request)
        assert pinned.returncode == 0, pinned.stderr
        assert replaced in pinned.stdout
        assert f"ether saddr {replaced}" in cluster.run(A, "nft", "list", "chain", "inet", "skutui",
                                                         firewall.LINK_CHAIN, check=True).stdout
        wait_for(lambda: replaced not in cluster.nodes(A)[A]["message"], 10,
                 "the warning goes once the new address is pinned")
        refused = cluster.skutui(A, "node", "pin-peer-link",
                                 input=json.dumps({"address": cluster.ip(B), "link_address": "nonsense"}))
        assert refused.returncode == 2 and "not an Ethernet link-layer address" in refused.stderr
    finally:
        events.stop()
        cluster.run(B, "ip", "link", "set", "dev", "eth0", "address", original)


def test_the_cluster_link_keeps_strangers_out_and_the_floating_ip_announced(
        cluster: LabCluster, neighbour: Neighbour) -> None:
    """One cluster, a third machine on the segment:

    1. it forges VRRP adverts for our router id for 5 s: nothing moves, both nodes count the
       drops, node-a reports them and both rows of the table warn;
    2. a split brain heals: the third machine's ARP entry for the floating IP is the
       master's MAC again at once;
    3. node-b's NIC changes its MAC: node-a reports it, and takes the new one once re-pinned;
    4. the filter emptied on both nodes: the same forgery takes the floating IP away.
    """
    cluster.created("--failback", "local")
    assert cluster.read(A, "/etc/skutui/local/peer_link").split() == [cluster.ip(B), link_address(cluster, B)]
    assert cluster.read(B, "/etc/skutui/local/peer_link").split() == [cluster.ip(A), link_address(cluster, A)]
    forgery_is_dropped_counted_and_shown(cluster, neighbour)
    healed_split_brain_reannounces_the_master(cluster, neighbour)
    changed_peer_link_address_is_reported_and_re_pinned(cluster)
    wait_vip_moved(cluster, A, EVENTUALLY)
    for node in (A, B):
        cluster.run(node, "nft", "flush", "chain", "inet", "skutui", firewall.LINK_CHAIN, check=True)
    _, kept = forge(cluster, neighbour, until_moved=True)
    assert not kept, "without the filter the forged adverts move the floating IP"
