"""Checks on what the operator types besides the settings (addresses, password, host key,
hostnames), and on a whole cluster.toml.

Each function returns the normalised value or raises ``ValidationError``. A message names
the thing, the value and the fix, in the operator's words, so the UI and the CLI can show it
as it is. Nothing here touches the system: facts about this machine (its addresses, its
links) are passed in by the caller. The settings' own checks are in ``settings``.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
from collections.abc import Iterable, Sequence

from skutui.domain import values
from skutui.domain.errors import ValidationError
from skutui.domain.model import ClusterConfig, InterfaceAddress, Node, split_floating_ip
from skutui.domain.settings import BY_KEY, FAILBACK_WORDS, INTERFACE, SERVICES, SERVICES_ON_BOTH, SETTINGS, Context

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

_FINGERPRINT_PREFIX = "SHA256:"
_FINGERPRINT_BODY = re.compile(r"[A-Za-z0-9+/]{43}")
"""A SHA256 digest in base64 without its padding, as OpenSSH prints it."""

_LABELS = {
    "local_ip": "Local IP",
    "remote_ip": "Remote IP",
    "local_hostname": "Local hostname",
    "remote_hostname": "Remote hostname",
    "hostname": "Hostname",
    "password": "Password",
    "nodes": "Node",
    "ip": "Node IP",
    "host_key_fingerprint": "Host key fingerprint",
}
"""The inputs that are not settings; a setting's label is in its row of the table."""


def label(field: str) -> str:
    """The words a message uses for a field, e.g. ``Remote IP`` for ``remote_ip``."""
    if field in BY_KEY:
        return BY_KEY[field].item_label
    return _LABELS.get(field, field.replace("_", " ").capitalize())


def ip_address(value: object, field: str = "ip") -> str:
    """A unicast IPv4 or IPv6 address a node can use, in its canonical text form."""
    return str(values.ip_address(value, field, label(field)))


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
    ip = values.ip_address(value, "local_ip", label("local_ip"))
    floating = {ipaddress.ip_interface(split_floating_ip(text, "")[0]).ip
                for text in BY_KEY["floating_ips"].check(floating_ips, Context())}
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


def _discovered_ip(address: InterfaceAddress) -> values.IPAddress | None:
    """The address discovery reported, without an IPv6 zone; None if it cannot be parsed."""
    try:
        return ipaddress.ip_address(address.address.split("%", 1)[0])
    except ValueError:
        return None


def _usable(address: InterfaceAddress) -> bool:
    ip = _discovered_ip(address)
    return (
        ip is not None
        and values.unusable_reason(ip) is None
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
    ip = values.ip_address(value, "remote_ip", label("remote_ip"))
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
    text = values.text(value, field, label(field), "the fingerprint ssh-keygen -lf shows on the peer")
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


def hostname(value: object, field: str = "hostname") -> str:
    """A node's hostname as the cluster uses it: an RFC 1123 name that is not a reserved word."""
    name = values.hostname_spelling(value, field, label(field))
    if name.lower() in FAILBACK_WORDS:
        raise ValidationError(
            field,
            f"{label(field)} {name!r} is a word the failback setting uses; give the node "
            "another hostname (hostnamectl set-hostname NAME).",
        )
    return name


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
    interface = INTERFACE.check(cfg.interface, Context())
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
    context = Context(nodes=(first_name, second_name), node_ips=(first_ip, second_ip),
                      interface=interface)
    checked = {setting.key: setting.check(getattr(cfg, setting.key), context)
               for setting in SETTINGS}
    services_listed_once(checked["services"], checked["services_on_both"])
    return dataclasses.replace(
        cfg, nodes=(Node(first_name, first_ip), Node(second_name, second_ip)), **checked)


def services_listed_once(services: Sequence[str], on_both: Sequence[str]) -> None:
    """A service either moves with the master or runs on both nodes, never both."""
    twice = [name for name in on_both if name in services]
    if twice:
        raise ValidationError(
            "services_on_both",
            f"{SERVICES.item_label} {twice[0]} is listed in both {SERVICES.label} and "
            f"{SERVICES_ON_BOTH.label}; keep it in one: {SERVICES.label} runs it on the master "
            f"only, {SERVICES_ON_BOTH.label} keeps it running on both nodes.")
