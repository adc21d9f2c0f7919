"""VRRPv3 advertisements (RFC 5798), as bytes: what the agent sends for a keepalived that died.

A master that stops says so with an advert at priority 0; the backup then takes over after
its skew time alone, instead of waiting three advert intervals for a master that is silent.
keepalived sends it on a clean stop; when keepalived is killed, the agent sends it for it,
with exactly what keepalived's own adverts carry (router id, interval, virtual addresses),
so the peer's keepalived accepts it as its master's.

Pure: building and checking packets; the raw socket that sends them is in skutui.system.
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass

from skutui.domain.model import TRANSPORT_MULTICAST, ClusterConfig
from skutui.domain.render import advertised_addresses

PROTOCOL = 112
"""IP protocol number of VRRP."""
VERSION = 3
TYPE_ADVERTISEMENT = 1
TTL = 255
"""RFC 5798: sent with TTL (hop limit) 255, and dropped by a receiver when it is not."""
MULTICAST_GROUPS = {4: "224.0.0.18", 6: "ff02::12"}
PRIORITY_STOP = 0
"""The master stops: the backup takes over after its skew time."""
PRIORITY_OWNER = 255
HEADER = struct.Struct("!BBBBHH")
"""version|type, router id, priority, address count, reserved|max advert interval, checksum."""
INTERVAL_MAX_CENTISECONDS = 0x0FFF


@dataclass(frozen=True)
class Advert:
    """One VRRPv3 advertisement and the addresses it travels between."""

    router_id: int
    priority: int
    interval: float
    """Seconds; carried in centiseconds."""
    addresses: tuple[str, ...]
    """The virtual addresses, all of one family (VRRPv3 carries one family per instance)."""
    source: str
    destination: str

    @property
    def family(self) -> int:
        return ipaddress.ip_address(self.source).version


def stop_advert(cfg: ClusterConfig, local_hostname: str) -> Advert:
    """The advert ``local_hostname``'s keepalived sends when it stops as master: priority 0,
    to the peer (unicast) or to VRRP's group (multicast), as the heartbeat transport says."""
    local, peer = cfg.node(local_hostname), cfg.peer_of(local_hostname)
    family = ipaddress.ip_address(local.ip).version
    destination = (MULTICAST_GROUPS[family] if cfg.heartbeat_transport == TRANSPORT_MULTICAST
                   else peer.ip)
    return Advert(cfg.virtual_router_id, PRIORITY_STOP, cfg.check_interval,
                  advertised_addresses(cfg, local_hostname), local.ip, destination)


def _centiseconds(interval: float) -> int:
    value = round(interval * 100)
    if not 1 <= value <= INTERVAL_MAX_CENTISECONDS:
        raise ValueError(f"advert interval {interval:g} s is outside VRRPv3's 0.01 to 40.95 s")
    return value


def _sum16(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return total


def checksum(source: str, destination: str, vrrp: bytes) -> int:
    """VRRPv3's checksum: the Internet checksum over a pseudo-header (as for UDP) and the
    VRRP message, for IPv4 as for IPv6 (RFC 5798, 5.2.8)."""
    src, dst = ipaddress.ip_address(source), ipaddress.ip_address(destination)
    if src.version != dst.version:
        raise ValueError(f"{source} and {destination} are not of one family")
    if src.version == 4:
        pseudo = src.packed + dst.packed + struct.pack("!BBH", 0, PROTOCOL, len(vrrp))
    else:
        pseudo = src.packed + dst.packed + struct.pack("!I3xB", len(vrrp), PROTOCOL)
    return ~_sum16(pseudo + vrrp) & 0xFFFF


def encode(advert: Advert) -> bytes:
    """The VRRP message of ``advert`` (what follows the IP header), checksum included."""
    if not 1 <= advert.router_id <= 255:
        raise ValueError(f"virtual router id {advert.router_id} is outside 1 to 255")
    if not 0 <= advert.priority <= 255:
        raise ValueError(f"priority {advert.priority} is outside 0 to 255")
    addresses = [ipaddress.ip_address(a) for a in advert.addresses]
    if any(a.version != advert.family for a in addresses):
        raise ValueError(f"the addresses {', '.join(advert.addresses)} are not all of the "
                         f"family of {advert.source}")
    body = b"".join(a.packed for a in addresses)
    header = HEADER.pack((VERSION << 4) | TYPE_ADVERTISEMENT, advert.router_id, advert.priority,
                         len(addresses), _centiseconds(advert.interval), 0)
    unsummed = header + body
    total = checksum(advert.source, advert.destination, unsummed)
    return unsummed[:6] + struct.pack("!H", total) + unsummed[8:]


@dataclass(frozen=True)
class Heard:
    """What a received VRRP message says."""

    version: int
    router_id: int
    priority: int
    interval: float
    addresses: tuple[str, ...]


def decode(message: bytes, family: int) -> Heard:
    """A VRRP message (without its IP header); ValueError when it is not a whole one."""
    if len(message) < HEADER.size:
        raise ValueError(f"{len(message)} bytes is shorter than a VRRP header")
    kind, router_id, priority, count, interval, _ = HEADER.unpack_from(message)
    size = 4 if family == 4 else 16
    body = message[HEADER.size:HEADER.size + count * size]
    if len(body) != count * size:
        raise ValueError(f"the advert names {count} addresses but carries {len(body)} bytes")
    addresses = tuple(str(ipaddress.ip_address(body[i:i + size])) for i in range(0, len(body), size))
    return Heard(kind >> 4, router_id, priority, (interval & INTERVAL_MAX_CENTISECONDS) / 100,
                 addresses)
