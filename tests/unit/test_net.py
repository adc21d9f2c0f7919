"""Interface discovery: ``ip -j -d addr show`` read into addresses, on samples and for real."""

import asyncio

from skutui.system.net import addresses_from_ip, discover_addresses, link_names


def link(name, addrs, flags=("BROADCAST", "UP", "LOWER_UP"), kind=None):
    found = {"ifname": name, "flags": list(flags), "addr_info": addrs}
    if kind:
        found["linkinfo"] = {"info_kind": kind}
    return found


def inet(address, prefixlen, label=None, family="inet"):
    found = {"family": family, "local": address, "prefixlen": prefixlen}
    if label:
        found["label"] = label
    return found


LINKS = [
    link("lo", [inet("127.0.0.1", 8, "lo")], flags=("LOOPBACK", "UP", "LOWER_UP")),
    link("eth0", [inet("198.18.0.1", 24, "eth0"), inet("198.18.0.50", 24, "eth0:1")]),
    link("br0", [inet("198.18.1.1", 24, "br0")], kind="bridge"),
    link("eth1", [inet("198.18.2.1", 24, "eth1")], flags=("BROADCAST",)),
]


def test_each_address_with_its_links_kind_flags_and_label():
    by_address = {a.address: a for a in addresses_from_ip(LINKS)}
    assert by_address["127.0.0.1"].loopback
    eth0 = by_address["198.18.0.1"]
    assert (eth0.interface, eth0.prefixlen, eth0.kind, eth0.is_alias, eth0.up) == (
        "eth0", 24, None, False, True,
    )
    alias = by_address["198.18.0.50"]
    assert alias.interface == "eth0" and alias.label == "eth0:1" and alias.is_alias
    assert by_address["198.18.1.1"].kind == "bridge"
    assert by_address["198.18.2.1"].up is False


def test_ipv6_without_label_takes_the_link_name_and_link_local_is_left_out():
    found = addresses_from_ip([link("eth0", [inet("2001:db8::1", 64, family="inet6"),
                                             inet("fe80::1", 64, family="inet6")])])
    assert [(a.interface, a.address, a.is_alias) for a in found] == [("eth0", "2001:db8::1", False)]


def test_a_link_without_addresses_or_name_gives_nothing():
    assert addresses_from_ip([link("eth2", []), {"addr_info": [inet("198.18.0.9", 24)]}]) == []


def test_real_ip_reports_loopback_inside_a_running_event_loop():
    async def inside_loop():
        return await discover_addresses(), await link_names()

    found, names = asyncio.run(inside_loop())
    assert any(a.address == "127.0.0.1" and a.interface == "lo" and a.loopback for a in found)
    assert "lo" in names
