"""Sending one VRRPv3 advertisement on the cluster NIC, as keepalived would, and hearing the
advert of the master that answers it (both need root).

The kernel builds the IP header: this node's cluster address as the source (the socket is
bound to it, and to the NIC), TTL or hop limit 255 as VRRP requires, to the peer's address
or to VRRP's multicast group.
"""

from __future__ import annotations

import ipaddress
import socket
import struct
import time

from skutui.domain.vrrp import PROTOCOL, TTL, Advert, Heard, decode, encode


def send(advert: Advert, interface: str) -> None:
    """Send ``advert`` once on ``interface``; OSError when the kernel refuses it."""
    message = encode(advert)
    destination = ipaddress.ip_address(advert.destination)
    family = socket.AF_INET if advert.family == 4 else socket.AF_INET6
    with socket.socket(family, socket.SOCK_RAW, PROTOCOL) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, interface.encode())
        index = socket.if_nametoindex(interface)
        if family == socket.AF_INET:
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, TTL)
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, TTL)
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 0)
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF,
                            struct.pack("4s4si", b"\0" * 4, ipaddress.ip_address(advert.source).packed,
                                        index))
            sock.bind((advert.source, 0))
            sock.sendto(message, (str(destination), 0))
        else:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, TTL)
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, TTL)
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_LOOP, 0)
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, index)
            scope = index if ipaddress.ip_address(advert.source).is_link_local else 0
            sock.bind((advert.source, 0, 0, scope))
            sock.sendto(message, (str(destination), 0, 0, index if destination.is_multicast else 0))


class MasterListener:
    """Listens, from before an advert is sent, for the VRRP adverts a new master sends:
    ``with MasterListener(...) as listener: send(...); listener.wait(...)``. For the
    multicast heartbeat it joins VRRP's group itself (keepalived, dead, no longer does)."""

    def __init__(self, interface: str, local_ip: str, group: str | None) -> None:
        self.interface, self.local_ip, self.group = interface, local_ip, group
        self.family = ipaddress.ip_address(local_ip).version
        self.sock: socket.socket | None = None

    def __enter__(self) -> MasterListener:
        family = socket.AF_INET if self.family == 4 else socket.AF_INET6
        sock = socket.socket(family, socket.SOCK_RAW, PROTOCOL)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, self.interface.encode())
            index = socket.if_nametoindex(self.interface)
            if self.group and self.family == 4:
                sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, struct.pack(
                    "4s4si", ipaddress.ip_address(self.group).packed, b"\0" * 4, index))
            elif self.group:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_JOIN_GROUP, struct.pack(
                    "16si", ipaddress.ip_address(self.group).packed, index))
        except BaseException:
            sock.close()
            raise
        self.sock = sock
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def wait(self, sender: str, router_id: int, timeout: float) -> Heard | None:
        """The first advert from ``sender`` for ``router_id`` with a priority above 0 (a
        master's), or None after ``timeout`` seconds."""
        assert self.sock is not None, "used inside its with block"
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            self.sock.settimeout(left)
            try:
                packet, source = self.sock.recvfrom(2048)
            except TimeoutError:
                return None
            if self.family == 4:
                packet = packet[(packet[0] & 0x0F) * 4:]
            heard_from = ipaddress.ip_address(source[0].split("%")[0])
            # VRRPv3 over IPv6 multicast comes from the peer's link-local address.
            if heard_from != ipaddress.ip_address(sender) and not (
                    heard_from.version == 6 and heard_from.is_link_local):
                continue
            try:
                heard = decode(packet, self.family)
            except ValueError:
                continue
            if heard.router_id == router_id and heard.priority > 0:
                return heard
        return None
