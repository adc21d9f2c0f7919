"""Checks on what the operator types and on what cluster.toml holds.

Each function returns the normalised value or raises ``ValidationError``. A message names
the thing, the value and the fix, in the operator's words, so the UI and the CLI can show it
as it is. Nothing here touches the system: facts about this machine (its addresses, its
links) are passed in by the caller.
"""

from __future__ import annotations

import dataclasses
import functools
import ipaddress
import re
from collections.abc import Collection, Iterable, Sequence
from decimal import Decimal, InvalidOperation
from pathlib import PurePosixPath

from skutui.domain.errors import BadInput
from skutui.domain.model import (
    CHECK_INTERVAL_MAX,
    CHECK_INTERVAL_MIN,
    CHECK_INTERVAL_STEP,
    FAILBACK_DISABLED,
    ClusterConfig,
    InterfaceAddress,
    Node,
)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

VIRTUAL_ROUTER_ID_MIN = 1
VIRTUAL_ROUTER_ID_MAX = 255

INTERFACE_NAME_MAX = 15
"""Linux IFNAMSIZ less the terminating NUL."""

USABLE_LINK_KINDS: frozenset[str | None] = frozenset({None, "veth", "bond", "team", "vlan"})
"""Link kinds that may carry the cluster IP.

The cluster NIC must be this node's own wire to the peer, so that keepalived sees a lost
wire as a failure and the VRRP adverts really reach the other node. A physical NIC (kind
None), a bond, a team and a VLAN on top of them qualify; veth is how containers and the lab
get their NIC. Rejected, among others: dummy (no wire: each node would hear nobody and both
would become master), bridge (stays up while its uplink port is down when any other port is
up, so a cut cable is not seen), macvlan/ipvlan (cannot reach their own lower device and are
usually created and removed by other software, keepalived's VMACs included), tun, wireguard
and other layer-3 links (no ARP, so no gratuitous ARP after a takeover).
"""

FAILBACK_LOCAL = "local"
FAILBACK_REMOTE = "remote"
RESERVED_HOSTNAMES = frozenset({FAILBACK_DISABLED, FAILBACK_LOCAL, FAILBACK_REMOTE})
"""Words the failback field gives a meaning of its own; a node named so would be ambiguous."""

_HOSTNAME_LABEL = re.compile(r"[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?")
"""One label of a hostname as systemd accepts it: letters, digits, '_' and inner hyphens."""
_HOSTNAME_MAX = 253
_SERVICE_NAME = re.compile(r"[A-Za-z0-9:_.@\\-]+")
_FINGERPRINT_PREFIX = "SHA256:"
_FINGERPRINT_BODY = re.compile(r"[A-Za-z0-9+/]{43}")
"""A SHA256 digest in base64 without its padding, as OpenSSH prints it."""

_LABELS = {
    "local_ip": "Local IP",
    "remote_ip": "Remote IP",
    "floating_ips": "Floating IP",
    "check_interval": "Check interval",
    "failback": "Failback",
    "tracked_interfaces": "Tracked interface",
    "interface": "Cluster interface",
    "virtual_router_id": "Virtual router ID",
    "local_hostname": "Local hostname",
    "remote_hostname": "Remote hostname",
    "hostname": "Hostname",
    "password": "Password",
    "synced_paths": "Synced path",
    "services": "Service",
    "nodes": "Node",
    "ip": "Node IP",
    "host_key_fingerprint": "Host key fingerprint",
}


class ValidationError(BadInput, ValueError):
    """A value the operator can fix; ``field`` names the input, ``key`` the place in cluster.toml."""

    def __init__(self, field: str, message: str, *, key: tuple[str, ...] | None = None) -> None:
        super().__init__(message)
        self.field = field
        self.message = message
        self.key: tuple[str, ...] = key if key is not None else (field,)


def label(field: str) -> str:
    """The words a message uses for a field, e.g. ``Remote IP`` for ``remote_ip``."""
    return _LABELS.get(field, field.replace("_", " ").capitalize())


def _problem(field: str, what: str, *, fix: str) -> ValidationError:
    """``<Label> <what>; <fix>.``: the shape of every message here."""
    return ValidationError(field, f"{label(field)} {what}; {fix}.")


def _text(value: object, field: str, what: str) -> str:
    if not isinstance(value, str):
        raise ValidationError(field, f"{label(field)} must be text ({what}), not {value!r}.")
    text = value.strip()
    if not text:
        raise ValidationError(field, f"{label(field)} is empty; enter {what}.")
    return text


def _unusable_reason(ip: IPAddress) -> str | None:
    """Why an address cannot be a cluster or floating IP, or None when it can."""
    if ip.is_unspecified:
        return "is the unspecified address"
    if ip.is_loopback:
        return "is a loopback address"
    if ip.is_multicast:
        return "is a multicast address"
    if ip.is_link_local:
        return "is a link-local address, which needs an interface scope"
    if isinstance(ip, ipaddress.IPv4Address) and ip == ipaddress.IPv4Address("255.255.255.255"):
        return "is the broadcast address"
    return None


def _refuse_scope(text: str, field: str) -> None:
    """An address with '%…' names a scope, which keepalived and the peer cannot share."""
    if "%" in text:
        raise ValidationError(
            field, f"{label(field)} {text!r} has an interface scope; enter the address without '%…'."
        )


def _parse_ip(value: object, field: str) -> IPAddress:
    text = _text(value, field, "an IPv4 or IPv6 address")
    _refuse_scope(text, field)
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        raise ValidationError(
            field,
            f"{label(field)} {text!r} is not an IP address; enter an IPv4 address such as "
            "198.18.0.1 or an IPv6 address such as 2001:db8::1.",
        ) from None
    reason = _unusable_reason(ip)
    if reason:
        raise ValidationError(field, f"{label(field)} {ip} {reason}; enter a unicast address.")
    return ip


def ip_address(value: object, field: str = "ip") -> str:
    """A unicast IPv4 or IPv6 address a node can use, in its canonical text form."""
    return str(_parse_ip(value, field))


def floating_ip(value: object, field: str = "floating_ips") -> str:
    """A floating IP as ``address/prefix``.

    A bare address gets the host prefix (/32 or /128), the same default keepalived applies,
    so the address is held without adding a route for a whole subnet. The subnet's own
    network and broadcast addresses are refused: the kernel would not answer ARP for them.
    """
    text = _text(value, field, "an address with its prefix, such as 198.18.0.100/24")
    _refuse_scope(text, field)
    try:
        iface = ipaddress.ip_interface(text)
    except ValueError:
        raise ValidationError(
            field,
            f"{label(field)} {text!r} is not an address with a prefix; enter one such as "
            "198.18.0.100/24 or 2001:db8::100/64.",
        ) from None
    ip = iface.ip
    reason = _unusable_reason(ip)
    if reason:
        raise ValidationError(field, f"{label(field)} {text} {reason}; enter a unicast address.")
    network = iface.network
    if isinstance(ip, ipaddress.IPv4Address) and network.prefixlen <= 30:
        if ip in (network.network_address, network.broadcast_address):
            which = "network" if ip == network.network_address else "broadcast"
            raise ValidationError(
                field,
                f"{label(field)} {text} is the {which} address of {network}; "
                "enter a host address inside the subnet.",
            )
    return f"{ip}/{network.prefixlen}"


def floating_ips(values: Iterable[object], cluster_ips: Iterable[str] = ()) -> tuple[str, ...]:
    """Each floating IP normalised; no repeats and none equal to a node's cluster IP."""
    cluster = {ipaddress.ip_address(ip) for ip in cluster_ips}
    seen: dict[IPAddress, str] = {}
    for value in values:
        cidr = floating_ip(value)
        ip = ipaddress.ip_interface(cidr).ip
        if ip in cluster:
            raise ValidationError(
                "floating_ips",
                f"Floating IP {cidr} is a node's own cluster address; "
                "a floating IP must be an address no node owns.",
            )
        if ip in seen:
            raise ValidationError(
                "floating_ips", f"Floating IP {ip} is listed twice ({seen[ip]} and {cidr}); keep one."
            )
        seen[ip] = cidr
    return tuple(seen.values())


def local_ip(
    value: object,
    addresses: Sequence[InterfaceAddress],
    floating_ips: Iterable[str] = (),
) -> InterfaceAddress:
    """The address on this machine that becomes this node's cluster IP.

    It must be found among ``addresses`` (interface discovery), sit on an up link of a
    usable kind (see ``USABLE_LINK_KINDS``), not be an alias such as ``eth0:1`` (aliases
    are how floating IPs are often added by hand, and the peer must show the cluster IP on
    the same interface name), and not be a floating IP (it would move to the peer).
    """
    ip = _parse_ip(value, "local_ip")
    floating = {ipaddress.ip_interface(floating_ip(cidr)).ip for cidr in floating_ips}
    if ip in floating:
        raise ValidationError(
            "local_ip",
            f"Local IP {ip} is a floating IP; enter this node's own cluster address, "
            "not one the master carries.",
        )
    matches = [a for a in addresses if _discovered_ip(a) == ip]
    if not matches:
        candidates = ", ".join(a.address for a in cluster_candidates(addresses)) or "none found"
        raise ValidationError(
            "local_ip",
            f"Local IP {ip} is not configured on this machine; enter one of its addresses "
            f"({candidates}).",
        )
    usable = [a for a in matches if _usable(a)]
    if usable:
        return usable[0]
    found = matches[0]
    raise ValidationError("local_ip", f"Local IP {ip} {_unusable_link_reason(found)}")


def cluster_candidates(addresses: Iterable[InterfaceAddress]) -> list[InterfaceAddress]:
    """The addresses ``local_ip`` would accept, in discovery order: what the operator picks from."""
    return [a for a in addresses if _usable(a)]


def _discovered_ip(address: InterfaceAddress) -> IPAddress | None:
    """The address discovery reported, without an IPv6 zone; None if it cannot be parsed."""
    try:
        return ipaddress.ip_address(address.address.split("%", 1)[0])
    except ValueError:
        return None


def _usable(address: InterfaceAddress) -> bool:
    ip = _discovered_ip(address)
    return (
        ip is not None
        and _unusable_reason(ip) is None
        and not address.loopback
        and not address.is_alias
        and address.kind in USABLE_LINK_KINDS
        and address.up
    )


def _unusable_link_reason(address: InterfaceAddress) -> str:
    if address.loopback:
        return (
            f"is on the loopback interface {address.interface}; "
            "enter the address of the NIC that reaches the peer."
        )
    if address.is_alias:
        return (
            f"is an alias address ({address.label}); use the primary address of "
            f"{address.interface}, which the peer must show on the same interface name."
        )
    if address.kind not in USABLE_LINK_KINDS:
        return (
            f"is on {address.interface}, a {address.kind} link; the cluster IP must be on a "
            "physical NIC, bond, team, VLAN or veth, so that losing the wire to the peer is seen."
        )
    return f"is on {address.interface}, which is down; bring the link up first."


def remote_ip(value: object, local: str | InterfaceAddress) -> str:
    """The peer's cluster IP: a different address of the same family as the local one."""
    ip = _parse_ip(value, "remote_ip")
    local_text = local.address if isinstance(local, InterfaceAddress) else local
    local_addr = ipaddress.ip_address(local_text)
    if ip == local_addr:
        raise ValidationError(
            "remote_ip",
            f"Remote IP {ip} is this node's own address; enter the peer's cluster address.",
        )
    if ip.version != local_addr.version:
        raise ValidationError(
            "remote_ip",
            f"Remote IP {ip} is IPv{ip.version} but the local IP {local_addr} is "
            f"IPv{local_addr.version}; enter the peer's IPv{local_addr.version} cluster address.",
        )
    return str(ip)


def host_key_fingerprint(value: object) -> str:
    """The peer's SSH host-key fingerprint as ``ssh-keygen -lf`` prints it, ``SHA256:`` and
    43 base64 characters; pasted without ``SHA256:`` it is given back with it."""
    field = "host_key_fingerprint"
    text = _text(value, field, "the fingerprint ssh-keygen -lf shows on the peer")
    body = text.removeprefix(_FINGERPRINT_PREFIX)
    if not _FINGERPRINT_BODY.fullmatch(body):
        raise ValidationError(
            field,
            f"{label(field)} {text!r} is not a SHA256 fingerprint; enter it as "
            "ssh-keygen -lf prints it on the peer (SHA256: and 43 characters).",
        )
    return _FINGERPRINT_PREFIX + body


def passwords(first: str, second: str) -> str:
    """The peer's root password, typed twice. Messages never repeat it."""
    if not first:
        raise ValidationError("password", "Password is empty; enter the peer's root password.")
    if first != second:
        raise ValidationError(
            "password", "The two passwords differ; type the peer's root password twice."
        )
    return first


def check_interval(value: object) -> float:
    """Seconds between VRRP adverts: 0.1 to 40 in steps of 0.01 (VRRPv3 counts centiseconds)."""
    fix = (
        f"enter seconds from {CHECK_INTERVAL_MIN:g} to {CHECK_INTERVAL_MAX:g} "
        f"in steps of {CHECK_INTERVAL_STEP:g}"
    )
    problem = functools.partial(_problem, "check_interval", fix=fix)
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise problem(f"{value!r} is not a number")
    text = value.strip() if isinstance(value, str) else repr(value)
    if not text:
        raise problem("is empty")
    try:
        seconds = Decimal(text)
    except InvalidOperation:
        raise problem(f"{text!r} is not a number") from None
    if not seconds.is_finite():
        raise problem(f"{text!r} is not a number")
    try:
        finer = seconds != seconds.quantize(Decimal(str(CHECK_INTERVAL_STEP)))
    except InvalidOperation:  # too many digits to quantize: far out of range, said below
        finer = False
    if finer:
        raise problem(f"{text} has more than two decimals")
    if not Decimal(str(CHECK_INTERVAL_MIN)) <= seconds <= Decimal(str(CHECK_INTERVAL_MAX)):
        raise problem(f"{text} is out of range")
    return float(seconds)


def failback(value: object, local_hostname: str, remote_hostname: str) -> str:
    """``disabled`` or the hostname of the node that takes the floating IPs back on return.

    Accepts ``disabled``, ``local``, ``remote`` or either hostname (any case).
    """
    choices = f"{FAILBACK_DISABLED}, {local_hostname} or {remote_hostname}"
    text = _text(value, "failback", choices)
    word = text.lower()
    if word == FAILBACK_DISABLED:
        return FAILBACK_DISABLED
    if word == FAILBACK_LOCAL:
        return local_hostname
    if word == FAILBACK_REMOTE:
        return remote_hostname
    for hostname in (local_hostname, remote_hostname):
        if word == hostname.lower():
            return hostname
    raise ValidationError(
        "failback", f"Failback {text!r} is not a node of this cluster; enter {choices}."
    )


def interface_name(value: object, field: str = "interface") -> str:
    """A Linux link name (not an address label such as ``eth0:1``)."""
    text = _text(value, field, "an interface name such as eth0")
    if len(text) > INTERFACE_NAME_MAX:
        raise ValidationError(
            field,
            f"{label(field)} {text!r} is longer than {INTERFACE_NAME_MAX} characters; "
            "enter a Linux interface name.",
        )
    if ":" in text:
        raise ValidationError(
            field,
            f"{label(field)} {text!r} is an address label, not a link; "
            f"enter the link name ({text.split(':', 1)[0]!r}).",
        )
    if text in (".", "..") or any(ch == "/" or ch.isspace() or not ch.isprintable() for ch in text):
        raise ValidationError(field, f"{label(field)} {text!r} is not a valid interface name.")
    return text


def tracked_interfaces(
    names: str | Iterable[object],
    available: Collection[str] | None,
    cluster_interface: str | None = None,
) -> tuple[str, ...]:
    """Links keepalived watches besides the cluster NIC, without repeats.

    ``names`` may be a list or one string separated by commas or spaces. With ``available``
    (this node's link names) each must exist; None checks only the spelling, as when reading
    cluster.toml. The cluster NIC is dropped from the list: keepalived always tracks it.
    """
    if isinstance(names, str):
        names = [part for part in re.split(r"[,\s]+", names) if part]
    result: dict[str, None] = {}
    for value in names:
        name = interface_name(value, "tracked_interfaces")
        if name == cluster_interface:
            continue
        if available is not None and name not in available:
            known = ", ".join(sorted(available)) or "none"
            raise ValidationError(
                "tracked_interfaces",
                f"Tracked interface {name} does not exist on this node; enter one of: {known}.",
            )
        result.setdefault(name, None)
    return tuple(result)


def hostname(value: object, field: str = "hostname") -> str:
    """A node's hostname as the cluster uses it: an RFC 1123 name that is not a reserved word."""
    text = _text(value, field, "the node's hostname")
    labels = text.split(".")
    if len(text) > _HOSTNAME_MAX or not all(_HOSTNAME_LABEL.fullmatch(part) for part in labels):
        raise ValidationError(
            field,
            f"{label(field)} {text!r} is not a valid hostname; use letters, digits, hyphens and "
            "underscores (hostnamectl set-hostname NAME).",
        )
    if text.lower() in RESERVED_HOSTNAMES:
        raise ValidationError(
            field,
            f"{label(field)} {text!r} is a word the failback setting uses; give the node "
            "another hostname (hostnamectl set-hostname NAME).",
        )
    return text


def hostname_pair(local: object, remote: object) -> tuple[str, str]:
    """Both hostnames valid and different: the cluster tells its nodes apart by hostname."""
    local_name = hostname(local, "local_hostname")
    remote_name = hostname(remote, "remote_hostname")
    if local_name.lower() == remote_name.lower():
        raise ValidationError(
            "remote_hostname",
            f"Both nodes are named {local_name}; give each node its own hostname "
            "(hostnamectl set-hostname NAME) before creating the cluster.",
        )
    return local_name, remote_name


def virtual_router_id(value: object) -> int:
    """The VRRP group number, 1 to 255; another cluster on the segment must use another."""
    fix = (
        f"enter a whole number from {VIRTUAL_ROUTER_ID_MIN} to {VIRTUAL_ROUTER_ID_MAX} "
        "that no other VRRP group on this network uses"
    )
    problem = functools.partial(_problem, "virtual_router_id", fix=fix)
    if isinstance(value, str) and value.strip().isdigit():
        number = int(value.strip())
    elif isinstance(value, int) and not isinstance(value, bool):
        number = value
    else:
        shown = value.strip() if isinstance(value, str) else value
        raise problem(f"{shown!r} is not a whole number")
    if not VIRTUAL_ROUTER_ID_MIN <= number <= VIRTUAL_ROUTER_ID_MAX:
        raise problem(f"{number} is out of range")
    return number


def synced_path(value: object) -> str:
    """An absolute path the master copies to the backup."""
    text = _text(value, "synced_paths", "an absolute path such as /etc/haproxy")
    path = PurePosixPath(text)
    if not path.is_absolute() or ".." in path.parts:
        raise ValidationError(
            "synced_paths",
            f"Synced path {text!r} is not an absolute path without '..'; "
            "enter one such as /etc/haproxy.",
        )
    return str(path)


def service_name(value: object) -> str:
    """A systemd unit the master starts and the backup stops."""
    text = _text(value, "services", "a service name such as haproxy")
    if not _SERVICE_NAME.fullmatch(text):
        raise ValidationError(
            "services", f"Service {text!r} is not a valid service name; enter one such as haproxy."
        )
    return text


def _node(node: Node) -> tuple[str, str]:
    """One node's hostname and IP checked; errors point at its table in cluster.toml."""
    try:
        name = hostname(node.hostname, "hostname")
    except ValidationError as error:
        error.key = ("nodes", str(node.hostname))
        raise
    try:
        ip = ip_address(node.ip, "ip")
    except ValidationError as error:
        error.key = ("nodes", node.hostname, "ip")
        raise
    return name, ip


def validate_config(cfg: ClusterConfig) -> ClusterConfig:
    """The whole configuration checked and normalised, as read from or written to cluster.toml."""
    interface = interface_name(cfg.interface)
    if len(cfg.nodes) != 2:
        raise ValidationError(
            "nodes", f"The cluster has {len(cfg.nodes)} nodes; it must have exactly two."
        )
    first, second = cfg.nodes
    first_name, first_ip = _node(first)
    second_name, second_ip = _node(second)
    if first_name.lower() == second_name.lower():
        raise ValidationError(
            "nodes",
            f"Both nodes are named {first_name}; each node needs its own hostname.",
            key=("nodes", second.hostname),
        )
    node_key = ("nodes", second.hostname, "ip")
    if first_ip == second_ip:
        raise ValidationError(
            "nodes",
            f"Both nodes have the cluster IP {first_ip}; each node needs its own.",
            key=node_key,
        )
    if ipaddress.ip_address(first_ip).version != ipaddress.ip_address(second_ip).version:
        raise ValidationError(
            "nodes",
            f"Node IPs {first_ip} and {second_ip} are of different families; "
            "both cluster addresses must be IPv4 or both IPv6.",
            key=node_key,
        )
    if cfg.failback == FAILBACK_DISABLED:
        chosen_failback = FAILBACK_DISABLED
    elif cfg.failback in (first_name, second_name):
        chosen_failback = cfg.failback
    else:
        raise ValidationError(
            "failback",
            f"Failback {cfg.failback!r} is not a node of this cluster; "
            f"enter {FAILBACK_DISABLED}, {first_name} or {second_name}.",
        )
    return dataclasses.replace(
        cfg,
        interface=interface,
        nodes=(Node(first_name, first_ip), Node(second_name, second_ip)),
        check_interval=check_interval(cfg.check_interval),
        failback=chosen_failback,
        tracked_interfaces=tracked_interfaces(cfg.tracked_interfaces, None, interface),
        floating_ips=floating_ips(cfg.floating_ips, (first_ip, second_ip)),
        synced_paths=tuple(dict.fromkeys(synced_path(p) for p in cfg.synced_paths)),
        services=tuple(dict.fromkeys(service_name(s) for s in cfg.services)),
        virtual_router_id=virtual_router_id(cfg.virtual_router_id),
    )
