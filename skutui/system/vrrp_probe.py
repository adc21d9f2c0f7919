"""Listen for VRRP adverts on the segment before choosing a virtual router id.

Another cluster already using the same id on the segment makes both clusters flap; the
original product never checked. Needs root (a raw socket for IP protocol 112).
"""

from __future__ import annotations

import ipaddress
import socket
import time

VRRP_PROTOCOL = 112


def _vrid_of(packet: bytes, family: int) -> int | None:
    """The virtual router id of an advert. IPv4 raw sockets hand over the IP header too."""
    offset = (packet[0] & 0x0F) * 4 if family == socket.AF_INET else 0
    if len(packet) < offset + 2:
        return None
    return packet[offset + 1]


def routers_heard(local_ip: str, seconds: float) -> set[tuple[str, int]]:
    """(sender, virtual router id) of every advert heard for ``seconds``."""
    family = socket.AF_INET6 if ipaddress.ip_address(local_ip).version == 6 else socket.AF_INET
    heard: set[tuple[str, int]] = set()
    with socket.socket(family, socket.SOCK_RAW, VRRP_PROTOCOL) as sock:
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            sock.settimeout(left)
            try:
                packet, sender = sock.recvfrom(2048)
            except TimeoutError:
                break
            vrid = _vrid_of(packet, family)
            if vrid is not None:
                heard.add((sender[0], vrid))
    return heard
