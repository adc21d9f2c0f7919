"""skutui's nftables table as text, what ``nft -j`` says of it, the node table's warnings,
and VRRPv3 adverts byte for byte."""

import dataclasses
import os
import shutil
import subprocess

import pytest

from skutui.domain import firewall, vrrp
from skutui.domain.digest import NodeFacts, digest
from skutui.domain.model import ClusterConfig, Node, Role, Status

IPV4 = (Node("node-a", "198.18.0.1"), Node("node-b", "198.18.0.2"))
IPV6 = (Node("node-a", "2001:db8::1"), Node("node-b", "2001:db8::2"))
MAC_B = "02:00:c6:12:00:02"
NFT = shutil.which("nft") or ("/usr/sbin/nft" if os.path.exists("/usr/sbin/nft") else None)
UNSHARE = shutil.which("unshare")
needs_nft = pytest.mark.skipif(
    NFT is None or UNSHARE is None or os.geteuid() != 0,
    reason="nft -c needs nft, unshare and root (it runs in a network namespace of its own)")


def cluster(nodes=IPV4, **changes):
    return dataclasses.replace(ClusterConfig(interface="eth0", nodes=nodes,
                                             floating_ips=("198.18.0.100/24",)), **changes)


def chain(text: str, name: str) -> list[str]:
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip() == f"chain {name} {{")
    end = next(i for i in range(start, len(lines)) if lines[i].strip() == "}")
    return [line.strip() for line in lines[start + 1:end]]


# --- the table ---------------------------------------------------------------------------------


def test_the_table_replaces_any_table_of_its_name_in_one_transaction():
    text = firewall.render_table(cluster(), "node-a", peer_link=MAC_B, armed=True)
    lines = text.splitlines()
    assert lines[1:4] == ["table inet skutui {}", "delete table inet skutui", "table inet skutui {"]
    assert text.count("table inet skutui {\n") == 1


def test_the_cluster_link_accepts_vrrp_and_conntrackd_from_the_peers_address_and_mac_only():
    rules = chain(firewall.render_table(cluster(), "node-a", peer_link=MAC_B, armed=True), "cluster_link")
    assert rules == [
        "type filter hook input priority filter - 10; policy accept;",
        f'iifname "eth0" meta l4proto 112 ip saddr 198.18.0.2 ether saddr {MAC_B} accept',
        'iifname "eth0" meta l4proto 112 @th,8,8 51 counter name foreign_vrrp drop',
        'iifname "eth0" meta l4proto 112 counter name other_vrrp drop',
        f'iifname "eth0" udp dport 3780 ip saddr 198.18.0.2 ether saddr {MAC_B} accept',
        'iifname "eth0" udp dport 3780 counter name foreign_conntrackd drop',
    ]


def test_the_peer_is_node_a_on_node_b_and_the_router_id_is_the_clusters():
    rules = chain(firewall.render_table(cluster(virtual_router_id=7), "node-b", peer_link=None,
                                        armed=True), "cluster_link")
    assert rules[1] == 'iifname "eth0" meta l4proto 112 ip saddr 198.18.0.1 accept'
    assert "@th,8,8 7 counter name foreign_vrrp drop" in rules[2]


def test_an_ipv6_peer_may_speak_vrrp_from_its_link_local_address_with_its_mac():
    rules = chain(firewall.render_table(cluster(nodes=IPV6, floating_ips=("2001:db8::100/64",)),
                                        "node-a", peer_link=MAC_B, armed=True), "cluster_link")
    assert rules[1] == (f'iifname "eth0" meta l4proto 112 ip6 saddr {{ 2001:db8::2, fe80::/10 }} '
                        f"ether saddr {MAC_B} accept")


def test_the_guard_holds_every_floating_ip_while_armed_and_none_once_disarmed():
    config = cluster(floating_ips=("198.18.0.100/24", "198.18.0.101/24", "2001:db8::100/64"))
    armed = firewall.render_table(config, "node-a", peer_link=MAC_B, armed=True)
    assert "elements = { 198.18.0.100, 198.18.0.101 }" in armed
    assert "elements = { 2001:db8::100 }" in armed
    disarmed = firewall.render_table(config, "node-a", peer_link=MAC_B, armed=False)
    assert "elements" not in disarmed
    assert chain(armed, "takeover_guard") == chain(disarmed, "takeover_guard") == [
        "type filter hook prerouting priority mangle; policy accept;",
        "tcp flags & (fin | syn | rst | ack) != syn ct state invalid,new ip daddr @guarded_ipv4 "
        "counter name takeover_held drop",
        "tcp flags & (fin | syn | rst | ack) != syn ct state invalid,new ip6 daddr @guarded_ipv6 "
        "counter name takeover_held drop",
    ]
    assert firewall.render_guard(config, armed=True) == (
        "flush set inet skutui guarded_ipv4\n"
        "add element inet skutui guarded_ipv4 { 198.18.0.100, 198.18.0.101 }\n"
        "flush set inet skutui guarded_ipv6\n"
        "add element inet skutui guarded_ipv6 { 2001:db8::100 }\n")
    assert firewall.render_guard(config, armed=False) == (
        "flush set inet skutui guarded_ipv4\nflush set inet skutui guarded_ipv6\n")


def test_floating_ips_on_another_nic_are_guarded_by_address():
    config = cluster(floating_ips=("198.18.0.100/24", "203.0.113.7/24@eth1"))
    assert firewall.floating_addresses(config) == {4: ["198.18.0.100", "203.0.113.7"], 6: []}


def test_counters_are_carried_over_into_the_new_table():
    text = firewall.render_table(cluster(), "node-a", peer_link=MAC_B, armed=False,
                                 counters={firewall.FOREIGN_VRRP: firewall.Counter(42, 1344)})
    assert "counter foreign_vrrp {\n\t\tpackets 42 bytes 1344\n\t}" in text
    assert "counter takeover_held {\n\t\tpackets 0 bytes 0\n\t}" in text


@needs_nft
@pytest.mark.parametrize("nodes,floats,mac,armed", [
    (IPV4, ("198.18.0.100/24",), MAC_B, True),
    (IPV4, (), None, False),
    (IPV6, ("2001:db8::100/64", "198.18.0.100/24"), MAC_B, True),
])
def test_nft_accepts_the_table(nodes, floats, mac, armed):
    text = firewall.render_table(cluster(nodes=nodes, floating_ips=floats), "node-a",
                                 peer_link=mac, armed=armed,
                                 counters={firewall.TAKEOVER_HELD: firewall.Counter(3, 180)})
    result = subprocess.run([UNSHARE, "--net", NFT, "-c", "-f", "-"], input=text,
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr


# --- what nft -j says --------------------------------------------------------------------------


LISTED = {"nftables": [
    {"metainfo": {"version": "1.0.6", "json_schema_version": 1}},
    {"table": {"family": "inet", "name": "skutui", "handle": 57}},
    {"counter": {"family": "inet", "name": "takeover_held", "table": "skutui", "handle": 3,
                 "packets": 28, "bytes": 2149}},
    {"counter": {"family": "inet", "name": "foreign_vrrp", "table": "skutui", "handle": 4,
                 "packets": 5, "bytes": 160}},
    {"counter": {"family": "inet", "name": "mine", "table": "skutui", "handle": 9,
                 "packets": 1, "bytes": 1}},
    {"counter": {"family": "ip", "name": "foreign_vrrp", "table": "other", "handle": 1,
                 "packets": 9, "bytes": 9}},
    {"set": {"family": "inet", "name": "guarded_ipv4", "table": "skutui", "type": "ipv4_addr",
             "handle": 7, "elem": ["198.18.0.100"]}},
    {"set": {"family": "inet", "name": "guarded_ipv6", "table": "skutui", "type": "ipv6_addr",
             "handle": 8}},
]}


def test_counters_and_the_guard_are_read_from_nft_json():
    assert firewall.counters_from_json(LISTED) == {
        "takeover_held": firewall.Counter(28, 2149), "foreign_vrrp": firewall.Counter(5, 160)}
    assert firewall.guard_armed_in(LISTED) is True
    disarmed = {"nftables": [item for item in LISTED["nftables"]
                             if item.get("set", {}).get("name") != "guarded_ipv4"]}
    assert firewall.guard_armed_in(disarmed) is False
    assert firewall.guard_armed_in(None) is None
    assert firewall.guard_armed_in({"nftables": []}) is None
    assert firewall.counters_from_json(["not", "nft"]) == {}


@pytest.mark.parametrize("text,normal", [
    ("02:00:C6:12:00:02", "02:00:c6:12:00:02"), (" d6-39-18-e9-7c-33 ", "d6:39:18:e9:7c:33")])
def test_link_addresses_are_normalised(text, normal):
    assert firewall.link_address(text) == normal


@pytest.mark.parametrize("text", ["", "02:00:c6:12:00", "zz:00:c6:12:00:02", "00:00:00:00:00:00",
                                  "01:00:5e:00:00:12", "ff:ff:ff:ff:ff:ff"])
def test_what_is_not_a_unicast_ethernet_address_is_refused(text):
    with pytest.raises(ValueError):
        firewall.link_address(text)


# --- the node table's warnings --------------------------------------------------------------


def test_foreign_vrrp_is_warned_of_for_a_minute_after_it_was_last_dropped():
    status = {"dropped": {firewall.FOREIGN_VRRP: 250}, "last_rise": {firewall.FOREIGN_VRRP: 1000.0},
              "peer_link_pinned": MAC_B, "peer_link_seen": MAC_B}
    warned = firewall.link_warnings(status, 1030.0, cluster(), "node-a")
    assert warned == ["Warning: foreign VRRP for router id 51 dropped on eth0 (250 so far, not "
                      "from node-b (198.18.0.2))"]
    assert firewall.link_warnings(status, 1000.0 + firewall.RECENT_DROPS + 1, cluster(), "node-a") == []
    assert firewall.link_warnings(None, 1000.0, cluster(), "node-a") == []


def test_a_peer_answering_from_another_mac_is_warned_of():
    status = {"peer_link_pinned": MAC_B, "peer_link_seen": "02:00:c6:12:00:99"}
    assert firewall.link_warnings(status, 0.0, cluster(), "node-a") == [
        "Warning: node-b (198.18.0.2) answers from link-layer address 02:00:c6:12:00:99, pinned "
        f"{MAC_B}; run `skutui cluster rekey` if its NIC changed"]
    assert "not the pinned" in firewall.changed_link_message(cluster(), "node-a", MAC_B,
                                                            "02:00:c6:12:00:99")


def test_warnings_follow_the_message_and_keep_the_status():
    facts = NodeFacts(Role.MASTER, {"keepalived": True, "conntrackd": True, "sync": True,
                                    "agent": True}, warnings=("Warning: something",))
    result = digest(facts, Role.BACKUP)
    assert (result.status, result.message) == (Status.OK, "Node online and active; Warning: something")
    unreachable = digest(NodeFacts(Role.UNKNOWN, reachable=False, warnings=("x",)), None)
    assert unreachable.message == "Node unreachable"


def test_each_drop_counter_has_its_words():
    for name in (firewall.FOREIGN_VRRP, firewall.OTHER_VRRP, firewall.FOREIGN_CONNTRACKD):
        message = firewall.drop_message(name, 3, cluster(), "node-a")
        assert message.startswith("dropped 3 ") and "node-b (198.18.0.2)" in message


# --- VRRPv3 adverts ---------------------------------------------------------------------------


KEEPALIVED_ADVERT = bytes.fromhex("313364010064174cc6120064")
"""An advert keepalived 2.2.7 sent in the lab: from 198.18.0.2 to 198.18.0.1, router id 51,
priority 100, every 1 s, for 198.18.0.100."""


def test_an_advert_is_byte_for_byte_what_keepalived_sends():
    advert = vrrp.Advert(51, 100, 1.0, ("198.18.0.100",), "198.18.0.2", "198.18.0.1")
    assert vrrp.encode(advert) == KEEPALIVED_ADVERT
    assert vrrp.decode(KEEPALIVED_ADVERT, 4) == vrrp.Heard(3, 51, 100, 1.0, ("198.18.0.100",))


@pytest.mark.parametrize("source,destination,addresses", [
    ("198.18.0.1", "224.0.0.18", ("198.18.0.100", "198.18.0.101")),
    ("fe80::1", "ff02::12", ("2001:db8::100",)),
    ("2001:db8::1", "2001:db8::2", ("2001:db8::100", "2001:db8::101")),
])
def test_a_checksum_sums_to_zero_with_its_pseudo_header(source, destination, addresses):
    message = vrrp.encode(vrrp.Advert(51, 0, 0.1, addresses, source, destination))
    assert vrrp.checksum(source, destination, message) == 0
    assert vrrp.decode(message, 6 if ":" in source else 4).addresses == addresses


@pytest.mark.parametrize("changes,problem", [
    ({"router_id": 0}, "virtual router id"), ({"priority": 256}, "priority"),
    ({"interval": 41.0}, "advert interval"), ({"addresses": ("2001:db8::100",)}, "family"),
])
def test_an_advert_that_cannot_be_is_refused(changes, problem):
    advert = dataclasses.replace(
        vrrp.Advert(51, 0, 1.0, ("198.18.0.100",), "198.18.0.1", "198.18.0.2"), **changes)
    with pytest.raises(ValueError, match=problem):
        vrrp.encode(advert)


def test_a_truncated_advert_is_not_decoded():
    with pytest.raises(ValueError):
        vrrp.decode(KEEPALIVED_ADVERT[:10], 4)
    with pytest.raises(ValueError):
        vrrp.decode(KEEPALIVED_ADVERT[:7], 4)


def test_the_stop_advert_carries_what_keepalived_advertises_where_the_transport_says():
    unicast = vrrp.stop_advert(cluster(check_interval=0.1), "node-a")
    assert unicast == vrrp.Advert(51, 0, 0.1, ("198.18.0.100",), "198.18.0.1", "198.18.0.2")
    multicast = vrrp.stop_advert(cluster(heartbeat_transport="multicast", floating_ips=()), "node-b")
    assert multicast == vrrp.Advert(51, 0, 1.0, ("192.0.0.8",), "198.18.0.2", "224.0.0.18")
    ipv6 = vrrp.stop_advert(cluster(nodes=IPV6, heartbeat_transport="multicast",
                                    floating_ips=("198.18.0.100/24",)), "node-a")
    assert (ipv6.addresses, ipv6.destination) == (("fe80::5c:1",), "ff02::12")

