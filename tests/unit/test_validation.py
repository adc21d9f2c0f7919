import dataclasses
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from skutui.domain import validation as v
from skutui.domain.errors import ValidationError
from skutui.domain.model import ClusterConfig, InterfaceAddress, Node
from skutui.domain.settings import BY_KEY, Context

ETH0 = InterfaceAddress("eth0", "198.18.0.1", 24, label="eth0", kind="veth")
ADDRESSES = [
    InterfaceAddress("lo", "127.0.0.1", 8, label="lo", loopback=True),
    ETH0,
    InterfaceAddress("eth0", "198.18.0.50", 24, label="eth0:1", kind="veth"),
    InterfaceAddress("eth1", "192.0.2.10", 24, label="eth1"),
    InterfaceAddress("br0", "203.0.113.1", 24, label="br0", kind="bridge"),
    InterfaceAddress("cl_maintenance", "10.255.0.1", 32, kind="dummy"),
    InterfaceAddress("eth2", "192.0.2.20", 24, label="eth2", up=False),
    InterfaceAddress("eth0", "fd00::1", 64, kind="veth"),
]


def check_interval(value):
    return BY_KEY["check_interval"].check(value, Context())


def failback(value, local, remote):
    return BY_KEY["failback"].check(value, Context(local=local, remote=remote, nodes=(local, remote)))


def tracked_interfaces(names, available, cluster_interface=None):
    return BY_KEY["tracked_interfaces"].check(names, Context(links=available, interface=cluster_interface))


def floating_ip(value):
    return BY_KEY["floating_ips"].read(value)


def floating_ips(items, node_ips=()):
    return BY_KEY["floating_ips"].check(items, Context(node_ips=tuple(node_ips)))


def virtual_router_id(value):
    return BY_KEY["virtual_router_id"].check(value, Context())


def fails(field, call, *args, contains=()):
    with pytest.raises(ValidationError) as caught:
        call(*args)
    assert caught.value.field == field
    for text in (contains if isinstance(contains, tuple) else (contains,)):
        assert text in str(caught.value)
    return caught.value


# IP addresses


@pytest.mark.parametrize(
    ("value", "expected"),
    [("198.18.0.1", "198.18.0.1"), (" 198.18.0.1 ", "198.18.0.1"), ("FD00:0::1", "fd00::1")],
)
def test_ip_address_normalises(value, expected):
    assert v.ip_address(value, "remote_ip") == expected


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("198.18.0", "not an IP address"),
        ("hello", "not an IP address"),
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("224.0.0.18", "multicast"),
        ("169.254.1.1", "link-local"),
        ("fe80::1", "link-local"),
        ("fe80::1%eth0", "scope"),
        ("255.255.255.255", "broadcast"),
    ],
)
def test_ip_address_rejects(value, words):
    error = fails("remote_ip", v.ip_address, value, "remote_ip", contains=words)
    assert error.message.startswith("Remote IP")


def test_ip_address_rejects_non_text():
    fails("local_ip", v.ip_address, 42, "local_ip", contains="must be text")


# floating IPs


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("198.18.0.100/24", "198.18.0.100/24"),
        ("198.18.0.100", "198.18.0.100/32"),
        ("2001:DB8::100/64", "2001:db8::100/64"),
        ("2001:db8::100", "2001:db8::100/128"),
        ("198.18.0.0/31", "198.18.0.0/31"),
    ],
)
def test_floating_ip_normalises(value, expected):
    assert floating_ip(value) == expected


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("198.18.0.100/33", "not an address with a prefix"),
        ("nonsense", "not an address with a prefix"),
        ("198.18.0.0/24", "network address of 198.18.0.0/24"),
        ("198.18.0.255/24", "broadcast address"),
        ("127.0.0.5/8", "loopback"),
        ("", "empty"),
    ],
)
def test_floating_ip_rejects(value, words):
    fails("floating_ips", floating_ip, value, contains=words)


def test_floating_ips_reject_repeats_and_cluster_ips():
    assert floating_ips(["198.18.0.100/24", "fd00::100"]) == ("198.18.0.100/24", "fd00::100/128")
    fails("floating_ips", floating_ips, ["198.18.0.100/24", "198.18.0.100/32"], contains="listed twice")
    fails("floating_ips", floating_ips, ["198.18.0.1/24"], ["198.18.0.1"], contains="own cluster address")


# local IP


def test_local_ip_returns_the_interface_address():
    assert v.local_ip("198.18.0.1", ADDRESSES) == ETH0
    assert v.local_ip("192.0.2.10", ADDRESSES).interface == "eth1"
    assert v.local_ip("fd00:0::1", ADDRESSES).interface == "eth0"


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("127.0.0.1", "loopback"),
        ("198.18.0.50", ("alias address (eth0:1)", "primary address of eth0")),
        ("203.0.113.1", ("br0, a bridge link",)),
        ("10.255.0.1", ("dummy link",)),
        ("192.0.2.20", ("eth2, which is down",)),
        ("198.18.0.9", ("not configured on this machine", "198.18.0.1")),
    ],
)
def test_local_ip_rejects(value, words):
    fails("local_ip", v.local_ip, value, ADDRESSES, contains=words)


def test_local_ip_rejects_a_floating_ip():
    fails("local_ip", v.local_ip, "198.18.0.1", ADDRESSES, ["198.18.0.1/24"], contains="is a floating IP")


def test_cluster_candidates_are_what_local_ip_accepts():
    candidates = v.cluster_candidates(ADDRESSES)
    assert [(a.interface, a.address) for a in candidates] == [
        ("eth0", "198.18.0.1"),
        ("eth1", "192.0.2.10"),
        ("eth0", "fd00::1"),
    ]
    link_local = InterfaceAddress("eth0", "fe80::1", 64, kind="veth")
    assert v.cluster_candidates([link_local]) == []
    for address in candidates:
        assert v.local_ip(address.address, ADDRESSES) == address


def test_local_ip_lists_only_usable_candidates():
    error = fails("local_ip", v.local_ip, "198.18.0.9", ADDRESSES)
    assert "127.0.0.1" not in error.message and "203.0.113.1" not in error.message


@pytest.mark.parametrize("kind", sorted(k for k in v.USABLE_LINK_KINDS if k))
def test_local_ip_accepts_real_nic_kinds(kind):
    address = InterfaceAddress("nic0", "192.0.2.30", 24, kind=kind)
    assert v.local_ip("192.0.2.30", [address]) == address


@pytest.mark.parametrize("kind", ["macvlan", "ipvlan", "dummy", "bridge", "wireguard", "tun"])
def test_local_ip_rejects_virtual_kinds(kind):
    address = InterfaceAddress("nic0", "192.0.2.30", 24, kind=kind)
    fails("local_ip", v.local_ip, "192.0.2.30", [address], contains=f"a {kind} link")


# remote IP


def test_remote_ip():
    assert v.remote_ip("198.18.0.2", ETH0) == "198.18.0.2"
    assert v.remote_ip("fd00::2", "fd00::1") == "fd00::2"
    error = fails("remote_ip", v.remote_ip, "198.18.0.1", ETH0)
    assert error.message == (
        "Remote IP 198.18.0.1 is this node's own address; enter the peer's cluster address."
    )
    fails("remote_ip", v.remote_ip, "fd00::2", ETH0, contains=("IPv6", "IPv4"))


# passwords


def test_passwords_match():
    assert v.passwords("s3cret", "s3cret") == "s3cret"


@pytest.mark.parametrize(("first", "second"), [("", ""), ("s3cret", "s3cre"), ("s3cret", "")])
def test_passwords_never_echoed(first, second):
    error = fails("password", v.passwords, first, second)
    assert not first or first not in error.message
    assert not second or second not in error.message


# check interval


@pytest.mark.parametrize(
    ("value", "expected"),
    [("1", 1.0), ("0.1", 0.1), ("40", 40.0), (" 2.50 ", 2.5), ("1.500", 1.5), (3, 3.0), (0.25, 0.25)],
)
def test_check_interval_accepts(value, expected):
    assert check_interval(value) == expected


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("0.09", "out of range"),
        ("40.01", "out of range"),
        ("0", "out of range"),
        ("-1", "out of range"),
        ("1.234", "more than two decimals"),
        (0.001, "more than two decimals"),
        ("nan", "not a number"),
        ("inf", "not a number"),
        (math.nan, "not a number"),
        (math.inf, "not a number"),
        ("one", "not a number"),
        ("", "empty"),
        (True, "not a number"),
        (None, "not a number"),
    ],
)
def test_check_interval_rejects(value, words):
    error = fails("check_interval", check_interval, value, contains=words)
    assert "0.1 to 40" in error.message


@given(st.integers(min_value=10, max_value=4000))
def test_check_interval_every_centisecond_step(centiseconds):
    text = f"{centiseconds / 100:.2f}"
    assert check_interval(text) == pytest.approx(centiseconds / 100)


# failback


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("disabled", "disabled"),
        ("Disabled", "disabled"),
        ("local", "node-a"),
        ("remote", "node-b"),
        ("node-a", "node-a"),
        ("NODE-B", "node-b"),
    ],
)
def test_failback(value, expected):
    assert failback(value, "node-a", "node-b") == expected


def test_failback_rejects_a_stranger():
    fails("failback", failback, "node-c", "node-a", "node-b", contains=("node-c", "disabled, node-a or node-b"))


# tracked interfaces


def test_tracked_interfaces():
    available = {"eth0", "eth1", "eth2"}
    assert tracked_interfaces(["eth1", "eth2", "eth1"], available) == ("eth1", "eth2")
    assert tracked_interfaces("eth1, eth2,eth0", available, "eth0") == ("eth1", "eth2")
    assert tracked_interfaces([], available) == ()
    assert tracked_interfaces(["eth9"], None) == ("eth9",)


@pytest.mark.parametrize(
    ("names", "words"),
    [
        (["eth9"], ("eth9 does not exist", "eth0, eth1")),
        (["eth0:1"], "address label"),
        (["a" * 16], "longer than 15"),
        (["bad/name"], "not a valid interface name"),
        ([""], "empty"),
    ],
)
def test_tracked_interfaces_rejects(names, words):
    fails("tracked_interfaces", tracked_interfaces, names, {"eth0", "eth1"}, contains=words)


# hostnames, virtual router id


def test_hostname_pair():
    assert v.hostname_pair("node-a", "node-b.example.com") == ("node-a", "node-b.example.com")
    assert v.hostname_pair("lb_1", "lb_2") == ("lb_1", "lb_2")
    fails("local_hostname", v.hostname_pair, "lb..example", "lb", contains="not a valid hostname")
    fails("remote_hostname", v.hostname_pair, "lb", "LB", contains=("Both nodes are named lb", "hostnamectl"))
    fails("local_hostname", v.hostname_pair, "-bad", "lb", contains="not a valid hostname")
    fails("remote_hostname", v.hostname_pair, "lb", "disabled", contains="failback")


@pytest.mark.parametrize(("value", "expected"), [(1, 1), ("255", 255), (" 51 ", 51)])
def test_virtual_router_id(value, expected):
    assert virtual_router_id(value) == expected


@pytest.mark.parametrize("value", [0, 256, "-1", "5.5", True, 5.0, "x"])
def test_virtual_router_id_rejects(value):
    fails("virtual_router_id", virtual_router_id, value, contains="1 to 255")


# the whole configuration


def config(**changes):
    base = ClusterConfig(
        interface="eth0",
        nodes=(Node("node-a", "198.18.0.1"), Node("node-b", "198.18.0.2")),
        floating_ips=("198.18.0.100/24",),
    )
    return dataclasses.replace(base, **changes)


def test_validate_config_normalises():
    cfg = v.validate_config(
        config(
            check_interval=2,
            floating_ips=("198.18.0.100", "FD00::100/64"),
            tracked_interfaces=("eth1", "eth0", "eth1"),
            synced_paths=("/etc/haproxy/",),
        )
    )
    assert cfg.check_interval == 2.0 and isinstance(cfg.check_interval, float)
    assert cfg.floating_ips == ("198.18.0.100/32", "fd00::100/64")
    assert cfg.tracked_interfaces == ("eth1",)
    assert cfg.synced_paths == ("/etc/haproxy",)


@pytest.mark.parametrize(
    ("changes", "field", "key"),
    [
        ({"interface": "eth0:1"}, "interface", ("interface",)),
        ({"nodes": (Node("node-a", "198.18.0.1"),)}, "nodes", ("nodes",)),
        ({"nodes": (Node("node-a", "198.18.0.1"), Node("node-a", "198.18.0.2"))}, "nodes", ("nodes", "node-a")),
        ({"nodes": (Node("node-a", "198.18.0.1"), Node("node-b", "198.18.0.1"))}, "nodes", ("nodes", "node-b", "ip")),
        ({"nodes": (Node("node-a", "198.18.0.1"), Node("node-b", "fd00::2"))}, "nodes", ("nodes", "node-b", "ip")),
        ({"nodes": (Node("node-a", "bad"), Node("node-b", "198.18.0.2"))}, "ip", ("nodes", "node-a", "ip")),
        ({"nodes": (Node("bad-", "198.18.0.1"), Node("node-b", "198.18.0.2"))}, "hostname", ("nodes", "bad-")),
        ({"check_interval": 50}, "check_interval", ("check_interval",)),
        ({"failback": "node-c"}, "failback", ("failback",)),
        ({"floating_ips": ("198.18.0.2/24",)}, "floating_ips", ("floating_ips",)),
        ({"virtual_router_id": 0}, "virtual_router_id", ("virtual_router_id",)),
        ({"synced_paths": ("etc/haproxy",)}, "synced_paths", ("synced_paths",)),
        ({"synced_paths": ("/etc/../root",)}, "synced_paths", ("synced_paths",)),
        ({"services": ("ha proxy",)}, "services", ("services",)),
    ],
)
def test_validate_config_rejects(changes, field, key):
    error = fails(field, v.validate_config, config(**changes))
    assert error.key == key
