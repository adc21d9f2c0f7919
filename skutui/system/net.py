"""Interface discovery, from ``ip -j -d addr show``.

One ``ip`` process answers in 3-10 ms with every link and its addresses; netlink through
pyroute2 took 180-340 ms, nearly all of it pyroute2's own import (bench/interfaces.py
measures both). It runs as an asyncio subprocess, so the console calls it from a worker on
its loop without blocking.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
from collections.abc import Iterable, Mapping
from typing import Any

from skutui.domain.errors import Failed
from skutui.domain.model import InterfaceAddress

IP_TIMEOUT = 10.0
IPV6_FAMILY = "inet6"


class DiscoveryError(Failed):
    """``ip`` could not list this node's links; the message says why."""


def addresses_from_ip(links: Iterable[Mapping[str, Any]]) -> list[InterfaceAddress]:
    """Each address of each link, as ``ip -j -d addr show`` lists them. IPv6 link-local
    addresses are left out: a cluster IP must be routable on the segment without a scope."""
    found: list[InterfaceAddress] = []
    for link in links:
        name = link.get("ifname")
        flags = link.get("flags") or []
        kind = (link.get("linkinfo") or {}).get("info_kind")
        for addr in link.get("addr_info") or []:
            address = addr.get("local")
            if not name or not address:
                continue
            if addr.get("family") == IPV6_FAMILY and ipaddress.ip_address(address).is_link_local:
                continue
            found.append(InterfaceAddress(
                interface=name,
                address=address,
                prefixlen=addr.get("prefixlen"),
                label=addr.get("label") or name,
                kind=kind,
                loopback="LOOPBACK" in flags,
                up="UP" in flags,
            ))
    return found


async def _ip_json(*args: str) -> list[dict[str, Any]]:
    try:
        process = await asyncio.create_subprocess_exec(
            "ip", "-j", *args, stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    except OSError as exc:
        raise DiscoveryError(f"cannot run ip to list this node's links: {exc.strerror}; "
                             "install the Debian package iproute2") from None
    try:
        out, err = await asyncio.wait_for(process.communicate(), IP_TIMEOUT)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise DiscoveryError(f"`ip -j {' '.join(args)}` did not answer within "
                             f"{IP_TIMEOUT:g} s") from None
    if process.returncode != 0:
        raise DiscoveryError(f"`ip -j {' '.join(args)}` failed: "
                             f"{err.decode(errors='replace').strip() or process.returncode}")
    try:
        data = json.loads(out or b"[]")
    except ValueError as exc:
        raise DiscoveryError(f"`ip -j {' '.join(args)}` printed no JSON ({exc})") from None
    return [item for item in data if isinstance(item, dict)]


async def discover_addresses() -> list[InterfaceAddress]:
    """Every address on every link of this network namespace."""
    return addresses_from_ip(await _ip_json("-d", "addr", "show"))


async def link_names() -> list[str]:
    """Names of the links of this network namespace, for tracked-interface choices."""
    return [str(link["ifname"]) for link in await _ip_json("link", "show") if link.get("ifname")]
