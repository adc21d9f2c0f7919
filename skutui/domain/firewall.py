"""skutui's own nftables table on each node: the takeover guard and the cluster link filter.

One table, ``inet skutui``, rendered here from the cluster configuration and applied whole,
atomically, by :mod:`skutui.system.firewall`. It holds two things:

- **The takeover guard.** keepalived holds the floating IPs before anyone hears of the
  transition, so the first segments of busy connections reach the new master before
  conntrackd has committed their state. Without a conntrack entry such a segment is INVALID
  (``nf_conntrack_tcp_loose=0``) or picked up as NEW, is not DNAT'ed, and reaches the
  floating IP itself, where the kernel answers it with a reset: the connection dies although
  its state is on its way. The guard drops instead (never answers) every TCP segment to a
  floating IP that does not open a connection and has no conntrack entry; the client
  retransmits, and once conntrackd's commit made the entry, the retransmission flows.
  The guard is *armed* on every node except a master whose commit has run: after the
  commit, a segment without an entry belongs to a connection nobody can carry any more, and
  a reset tells its client so at once, instead of leaving it to retransmit for minutes.
- **The cluster link filter.** VRRPv3 has no authentication and conntrackd's UDP channel
  none either, and keepalived's ``check_unicast_src`` compares a source address anyone on
  the segment can forge. On the cluster NIC, VRRP (IP protocol 112) and conntrackd's port
  are accepted only from the peer: its cluster address *and* its link-layer address, pinned
  at create. Everything else of the kind is dropped and counted, VRRP for this cluster's
  virtual router id apart from the rest, so that a forger is seen.

Pure: the text only. Counters are carried over from the table being replaced, so an apply
never hides what was dropped before it.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass

from skutui.domain.model import ClusterConfig
from skutui.domain.render import CONNTRACKD_PORT
from skutui.domain.vrrp import PROTOCOL as VRRP_PROTOCOL

FAMILY = "inet"
TABLE = "skutui"

GUARD_CHAIN = "takeover_guard"
GUARD_PRIORITY = "mangle"
"""prerouting at -150: after conntrack (-200) has looked the segment up, before DNAT (-100)
could send a segment picked up as NEW to a backend that knows nothing of it."""
LINK_CHAIN = "cluster_link"
LINK_PRIORITY = "filter - 10"
"""input: only what is addressed to this node; what it forwards is never touched."""
GUARDED_SETS = {4: "guarded_ipv4", 6: "guarded_ipv6"}
"""The floating IPs the guard covers: all of them while armed, none once disarmed."""
SET_TYPES = {4: "ipv4_addr", 6: "ipv6_addr"}
OPENS_A_CONNECTION = "tcp flags & (fin | syn | rst | ack) == syn"

TAKEOVER_HELD = "takeover_held"
"""Segments the guard dropped (each one retransmitted by its client)."""
FOREIGN_VRRP = "foreign_vrrp"
"""VRRP for this cluster's virtual router id from anyone but the peer: a forger, or a
misconfigured neighbour using the same id."""
OTHER_VRRP = "other_vrrp"
"""VRRP for other virtual router ids from anyone but the peer."""
FOREIGN_CONNTRACKD = "foreign_conntrackd"
"""conntrackd's port from anyone but the peer."""
COUNTERS = (TAKEOVER_HELD, FOREIGN_VRRP, OTHER_VRRP, FOREIGN_CONNTRACKD)

IPV6_LINK_LOCAL = "fe80::/10"
"""VRRPv3 over IPv6 multicast may come from the peer's link-local address."""
VRID_FIELD = "@th,8,8"
"""The second byte of the VRRP header: the virtual router id."""

_LINK_ADDRESS = re.compile(r"[0-9a-f]{2}(:[0-9a-f]{2}){5}")


@dataclass(frozen=True)
class Counter:
    packets: int = 0
    bytes: int = 0


def link_address(value: str) -> str:
    """An Ethernet address as nftables and ``ip`` print it (lower case, colons);
    ValueError when it is not one."""
    normal = value.strip().lower().replace("-", ":")
    if not _LINK_ADDRESS.fullmatch(normal):
        raise ValueError(f"{value!r} is not an Ethernet link-layer address (like 02:00:5e:00:01:33)")
    if normal == "00:00:00:00:00:00" or int(normal[:2], 16) & 1:
        raise ValueError(f"{value} is not a unicast link-layer address")
    return normal


def floating_addresses(cfg: ClusterConfig) -> dict[int, list[str]]:
    """The floating IPs' addresses (no prefix, no NIC), by family."""
    found: dict[int, list[str]] = {4: [], 6: []}
    for entry in cfg.floating_ips:
        address = ipaddress.ip_interface(entry.split("@", 1)[0]).ip
        if str(address) not in found[address.version]:
            found[address.version].append(str(address))
    return found


def _counter(name: str, value: Counter) -> list[str]:
    return [f"\tcounter {name} {{", f"\t\tpackets {value.packets} bytes {value.bytes}", "\t}"]


def _set(family: int, elements: list[str]) -> list[str]:
    lines = [f"\tset {GUARDED_SETS[family]} {{", f"\t\ttype {SET_TYPES[family]}"]
    if elements:
        lines.append(f"\t\telements = {{ {', '.join(elements)} }}")
    return [*lines, "\t}"]


def _ip(address: str) -> str:
    return "ip" if ipaddress.ip_address(address).version == 4 else "ip6"


def _from_peer(peer_ip: str, peer_link: str | None) -> str:
    """The match for "sent by the peer": its address (IPv6 multicast VRRP may come from its
    link-local one) and, when pinned, its link-layer address."""
    if ipaddress.ip_address(peer_ip).version == 6:
        source = f"ip6 saddr {{ {peer_ip}, {IPV6_LINK_LOCAL} }}"
    else:
        source = f"ip saddr {peer_ip}"
    return f"{source} ether saddr {peer_link}" if peer_link else source


def guard_rules() -> list[str]:
    return [f"\t\t{OPENS_A_CONNECTION.replace('==', '!=')} ct state invalid,new "
            f"{'ip' if family == 4 else 'ip6'} daddr @{name} counter name {TAKEOVER_HELD} drop"
            for family, name in GUARDED_SETS.items()]


def link_rules(cfg: ClusterConfig, peer_ip: str, peer_link: str | None) -> list[str]:
    nic = f'iifname "{cfg.interface}"'
    peer = _from_peer(peer_ip, peer_link)
    vrrp = f"meta l4proto {VRRP_PROTOCOL}"
    return [
        f"\t\t{nic} {vrrp} {peer} accept",
        f"\t\t{nic} {vrrp} {VRID_FIELD} {cfg.virtual_router_id} counter name {FOREIGN_VRRP} drop",
        f"\t\t{nic} {vrrp} counter name {OTHER_VRRP} drop",
        f"\t\t{nic} udp dport {CONNTRACKD_PORT} {peer} accept",
        f"\t\t{nic} udp dport {CONNTRACKD_PORT} counter name {FOREIGN_CONNTRACKD} drop",
    ]


def render_table(cfg: ClusterConfig, local_hostname: str, *, peer_link: str | None,
                 armed: bool, counters: Mapping[str, Counter] | None = None) -> str:
    """The whole table, as one ``nft -f`` transaction that replaces any table of the name.

    ``peer_link``: the peer's pinned link-layer address, None when none is pinned (a NIC
    without one, or a cluster created before pinning: the filter then checks the address
    only). ``armed``: whether the takeover guard holds the floating IPs. ``counters``: the
    values to carry over from the table being replaced."""
    peer = cfg.peer_of(local_hostname)
    counters = counters or {}
    guarded = floating_addresses(cfg) if armed else {4: [], 6: []}
    body = [
        *(line for name in COUNTERS for line in _counter(name, counters.get(name, Counter()))),
        *(line for family in GUARDED_SETS for line in _set(family, guarded[family])),
        f"\tchain {GUARD_CHAIN} {{",
        f"\t\ttype filter hook prerouting priority {GUARD_PRIORITY}; policy accept;",
        *guard_rules(),
        "\t}",
        f"\tchain {LINK_CHAIN} {{",
        f"\t\ttype filter hook input priority {LINK_PRIORITY}; policy accept;",
        *link_rules(cfg, peer.ip, peer_link),
        "\t}",
    ]
    return "\n".join([
        "# skutui's table (takeover guard, cluster link filter); rendered from cluster.toml.",
        f"table {FAMILY} {TABLE} {{}}",
        f"delete table {FAMILY} {TABLE}",
        f"table {FAMILY} {TABLE} {{",
        *body,
        "}",
    ]) + "\n"


def render_guard(cfg: ClusterConfig, armed: bool) -> str:
    """Arm or disarm the takeover guard in the table that is there, in one transaction,
    leaving the rest (and every counter) as it is."""
    guarded = floating_addresses(cfg) if armed else {4: [], 6: []}
    lines = []
    for family, name in GUARDED_SETS.items():
        lines.append(f"flush set {FAMILY} {TABLE} {name}")
        if guarded[family]:
            lines.append(f"add element {FAMILY} {TABLE} {name} {{ {', '.join(guarded[family])} }}")
    return "\n".join(lines) + "\n"


def render_removal() -> str:
    """The table gone, whether or not it was there."""
    return f"table {FAMILY} {TABLE} {{}}\ndelete table {FAMILY} {TABLE}\n"


def counters_from_json(document: object) -> dict[str, Counter]:
    """skutui's counters from ``nft -j list counters table inet skutui``."""
    found: dict[str, Counter] = {}
    items = document.get("nftables", []) if isinstance(document, dict) else []
    for item in items:
        counter = item.get("counter") if isinstance(item, dict) else None
        if (isinstance(counter, dict) and counter.get("table") == TABLE
                and counter.get("family") == FAMILY and counter.get("name") in COUNTERS):
            found[counter["name"]] = Counter(int(counter.get("packets", 0)),
                                             int(counter.get("bytes", 0)))
    return found


def guard_armed_in(document: object) -> bool | None:
    """Whether the takeover guard is armed in the table ``nft -j list table inet skutui``
    shows (None: no table)."""
    items = document.get("nftables", []) if isinstance(document, dict) else []
    seen = False
    for item in items:
        if not isinstance(item, dict):
            continue
        if isinstance(item.get("table"), dict) and item["table"].get("name") == TABLE:
            seen = True
        found = item.get("set")
        if isinstance(found, dict) and found.get("name") in GUARDED_SETS.values() and found.get("elem"):
            return True
    return False if seen else None


RECENT_DROPS = 60.0
"""Seconds the node table keeps warning after the last foreign VRRP was dropped, and the
least time between two events about the same drop counter."""


def _who(cfg: ClusterConfig, local_hostname: str) -> str:
    peer = cfg.peer_of(local_hostname)
    return f"{peer.hostname} ({peer.ip})"


def drop_message(counter: str, packets: int, cfg: ClusterConfig, local_hostname: str) -> str:
    """The event for a drop counter that rose by ``packets``."""
    peer, nic = _who(cfg, local_hostname), cfg.interface
    what = {
        FOREIGN_VRRP: f"VRRP adverts for this cluster's router id {cfg.virtual_router_id}",
        OTHER_VRRP: "VRRP adverts for other router ids",
        FOREIGN_CONNTRACKD: f"conntrackd packets (UDP {CONNTRACKD_PORT})",
    }[counter]
    return (f"dropped {packets} {what} on {nic} that did not come from {peer} with its pinned "
            "link-layer address")


def changed_link_message(cfg: ClusterConfig, local_hostname: str, pinned: str, seen: str) -> str:
    peer = _who(cfg, local_hostname)
    return (f"{peer} answers from link-layer address {seen} on {cfg.interface}, not the pinned "
            f"{pinned}: its VRRP and conntrackd traffic is dropped. If its NIC was replaced, "
            "run `skutui cluster rekey`; if not, something else claims its address")


def link_warnings(status: object, now: float, cfg: ClusterConfig, local_hostname: str) -> list[str]:
    """The node table's warnings from the agent's cluster-link status (``agent.json``)."""
    if not isinstance(status, dict):
        return []
    warnings = []
    rises = status.get("last_rise") or {}
    dropped = status.get("dropped") or {}
    at = rises.get(FOREIGN_VRRP) if isinstance(rises, dict) else None
    if isinstance(at, (int, float)) and now - at <= RECENT_DROPS:
        count = dropped.get(FOREIGN_VRRP, 0) if isinstance(dropped, dict) else 0
        warnings.append(f"Warning: foreign VRRP for router id {cfg.virtual_router_id} dropped "
                        f"on {cfg.interface} ({count} so far, not from {_who(cfg, local_hostname)})")
    pinned, seen = status.get("peer_link_pinned"), status.get("peer_link_seen")
    if isinstance(pinned, str) and isinstance(seen, str) and pinned != seen:
        warnings.append(f"Warning: {_who(cfg, local_hostname)} answers from link-layer address "
                        f"{seen}, pinned {pinned}; run `skutui cluster rekey` if its NIC changed")
    return warnings
