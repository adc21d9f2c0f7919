"""Interface discovery over netlink (pyroute2).

Only the asynchronous ``AsyncIPRoute`` is used: the synchronous ``IPRoute`` fails inside a
running event loop, and the console calls this from a worker on its loop.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable, Mapping
from typing import Any, Protocol

from skutui.domain.model import InterfaceAddress

IFF_UP = 0x1
IFF_LOOPBACK = 0x8


class NetlinkMessage(Protocol):
    """What discovery reads of a pyroute2 message: ``get`` by attribute name or path."""

    def get(self, key: Any, default: Any = None) -> Any: ...


def _links_by_index(links: Iterable[NetlinkMessage]) -> dict[int, Mapping[str, Any]]:
    table: dict[int, Mapping[str, Any]] = {}
    for link in links:
        flags = link.get("flags") or 0
        table[link.get("index")] = {
            "name": link.get("ifname"),
            "kind": link.get(("linkinfo", "kind")),
            "loopback": bool(flags & IFF_LOOPBACK),
            "up": bool(flags & IFF_UP),
        }
    return table


def addresses_from_netlink(
    links: Iterable[NetlinkMessage], addrs: Iterable[NetlinkMessage]
) -> list[InterfaceAddress]:
    """Join address messages to their links. IPv6 link-local addresses are left out:
    a cluster IP must be routable on the segment without a scope."""
    table = _links_by_index(links)
    found: list[InterfaceAddress] = []
    for addr in addrs:
        link = table.get(addr.get("index"))
        address = addr.get("IFA_ADDRESS") or addr.get("address")
        if link is None or not address:
            continue
        if addr.get("family") == socket.AF_INET6 and ipaddress.ip_address(address).is_link_local:
            continue
        found.append(
            InterfaceAddress(
                interface=link["name"],
                address=address,
                prefixlen=addr.get("prefixlen"),
                label=addr.get("IFA_LABEL") or link["name"],
                kind=link["kind"],
                loopback=link["loopback"],
                up=link["up"],
            )
        )
    return found


async def discover_addresses() -> list[InterfaceAddress]:
    """Every address on every link of this network namespace."""
    # pyroute2 takes 150-230 ms to import; the console and most commands never need it.
    from pyroute2 import AsyncIPRoute

    async with AsyncIPRoute() as ipr:
        links = [msg async for msg in await ipr.link("dump")]
        addrs = [msg async for msg in await ipr.addr("dump")]
    return addresses_from_netlink(links, addrs)


async def link_names() -> list[str]:
    """Names of the links of this network namespace, for tracked-interface choices."""
    # pyroute2 takes 150-230 ms to import (see discover_addresses).
    from pyroute2 import AsyncIPRoute

    async with AsyncIPRoute() as ipr:
        return [msg.get("ifname") async for msg in await ipr.link("dump")]
