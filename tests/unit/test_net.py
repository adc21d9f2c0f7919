"""Interface discovery: netlink messages joined into addresses, on fake and real netlink."""

import asyncio
import socket

from skutui.system.net import IFF_LOOPBACK, IFF_UP, addresses_from_netlink, discover_addresses


class FakeMessage(dict):
    """Stands in for a pyroute2 message: ``get`` by name or by a (container, name) path."""

    def get(self, key, default=None):
        if isinstance(key, tuple):
            value = self
            for part in key:
                value = dict.get(value, part) if isinstance(value, dict) else None
            return default if value is None else value
        return dict.get(self, key, default)


def link(index, name, flags=IFF_UP, kind=None):
    msg = FakeMessage(index=index, ifname=name, flags=flags)
    if kind:
        msg["linkinfo"] = {"kind": kind}
    return msg


def addr(index, address, prefixlen, label=None, family=socket.AF_INET):
    msg = FakeMessage(index=index, IFA_ADDRESS=address, prefixlen=prefixlen, family=family)
    if label:
        msg["IFA_LABEL"] = label
    return msg


LINKS = [
    link(1, "lo", IFF_UP | IFF_LOOPBACK),
    link(2, "eth0"),
    link(3, "br0", kind="bridge"),
    link(4, "eth1", flags=0),
]


def test_joins_addresses_to_links_with_kind_flags_and_label():
    found = addresses_from_netlink(
        LINKS,
        [
            addr(1, "127.0.0.1", 8, "lo"),
            addr(2, "198.18.0.1", 24, "eth0"),
            addr(2, "198.18.0.50", 24, "eth0:1"),
            addr(3, "198.18.1.1", 24, "br0"),
            addr(4, "198.18.2.1", 24, "eth1"),
        ],
    )
    by_address = {a.address: a for a in found}
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
    found = addresses_from_netlink(
        LINKS,
        [
            addr(2, "2001:db8::1", 64, family=socket.AF_INET6),
            addr(2, "fe80::1", 64, family=socket.AF_INET6),
        ],
    )
    assert [(a.interface, a.address, a.is_alias) for a in found] == [("eth0", "2001:db8::1", False)]


def test_address_on_unknown_link_is_skipped():
    assert addresses_from_netlink(LINKS, [addr(99, "198.18.0.9", 24)]) == []


def test_real_netlink_reports_loopback_inside_a_running_event_loop():
    async def inside_loop():
        return await discover_addresses()

    found = asyncio.run(inside_loop())
    loopbacks = [a for a in found if a.loopback]
    assert any(a.address == "127.0.0.1" and a.interface == "lo" for a in loopbacks)
