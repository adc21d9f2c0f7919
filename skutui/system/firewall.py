"""skutui's nftables table on this node, and the peer's pinned link-layer address.

The table is rendered by :mod:`skutui.domain.firewall` and applied here with ``nft -f``:
checked first with ``nft -c``, then applied as one transaction, so the kernel holds the old
table or the new one, never half of either. It is installed when the node starts (at
create, at ``skutui node start`` and at boot), kept across reloads with the guard armed or
disarmed as it was, armed and disarmed by the role transitions, and removed by erase.

The peer's link-layer address on the cluster NIC is pinned like its host key: learnt at
create from what the peer itself reports over the pinned SSH connection, kept in this
node's never-synced folder, and changed only by create or ``skutui cluster rekey``.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass

from skutui.domain import firewall
from skutui.domain.errors import Failed
from skutui.domain.model import ClusterConfig
from skutui.domain.paths import Paths
from skutui.system.daemons import Binary
from skutui.system.files import write_text_atomic

NFT = Binary("nft", "nftables")
NFT_TIMEOUT = 10.0
NO_LINK_ADDRESS = "none"
"""Written in the pin for a cluster NIC without a link-layer address (a tunnel): the filter
then checks the peer's address alone."""


class FirewallError(Failed):
    """nftables refused or failed skutui's table; the message says what it said."""


def _ip_json(*args: str) -> list[dict]:
    try:
        out = subprocess.run(["ip", "-j", *args], capture_output=True, text=True, timeout=NFT_TIMEOUT)
        return json.loads(out.stdout or "[]") if out.returncode == 0 else []
    except (OSError, ValueError, subprocess.TimeoutExpired):
        return []


def link_addresses() -> dict[str, str]:
    """Each Ethernet link's own link-layer address, by link name."""
    found = {}
    for link in _ip_json("link", "show"):
        if link.get("link_type") == "ether" and link.get("ifname") and link.get("address"):
            try:
                found[link["ifname"]] = firewall.link_address(link["address"])
            except ValueError:
                continue
    return found


def neighbour_link_address(interface: str, address: str) -> str | None:
    """The link-layer address this node's neighbour table holds for ``address``, if any."""
    for entry in _ip_json("neigh", "show", address, "dev", interface):
        if entry.get("lladdr"):
            return str(entry["lladdr"]).lower()
    return None


@dataclass(frozen=True)
class PeerLinkPin:
    """The peer's pinned link-layer address; ``link_address`` None: its NIC has none."""

    address: str
    link_address: str | None

    def line(self) -> str:
        return f"{self.address} {self.link_address or NO_LINK_ADDRESS}\n"


def pinned_peer_link(paths: Paths) -> PeerLinkPin | None:
    try:
        words = paths.peer_link.read_text().split()
    except OSError:
        return None
    if len(words) != 2:
        return None
    address, link = words
    if link == NO_LINK_ADDRESS:
        return PeerLinkPin(address, None)
    try:
        return PeerLinkPin(address, firewall.link_address(link))
    except ValueError:
        return None


def pin_peer_link(paths: Paths, address: str, link_address: str | None) -> PeerLinkPin:
    """Pin ``link_address`` (checked) as the peer's, replacing any pin before it."""
    pin = PeerLinkPin(address, None if link_address is None else firewall.link_address(link_address))
    paths.local_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    write_text_atomic(paths.peer_link, pin.line())
    return pin


class Nft:
    """``nft`` itself: every call checked, every failure named."""

    def run(self, *args: str, text: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
        try:
            result = subprocess.run([NFT.path(), *args], input=text, capture_output=True,
                                    text=True, timeout=NFT_TIMEOUT)
        except subprocess.TimeoutExpired:
            raise FirewallError(f"`nft {' '.join(args)}` did not finish within {NFT_TIMEOUT:g} s") from None
        except OSError as exc:
            raise FirewallError(f"cannot run nft: {exc.strerror}") from None
        if check and result.returncode != 0:
            detail = (result.stderr or result.stdout).strip() or f"exit code {result.returncode}"
            raise FirewallError(f"nftables refused skutui's table ({firewall.FAMILY} "
                                f"{firewall.TABLE}): {detail}")
        return result

    def apply(self, text: str) -> None:
        """Check ``text`` with ``nft -c``, then apply it as one transaction."""
        self.run("-c", "-f", "-", text=text)
        self.run("-f", "-", text=text)

    def table(self) -> object:
        """``nft -j list table inet skutui`` as JSON; None when there is no such table (or
        no nft to hold one)."""
        try:
            NFT.path()
        except Failed:
            return None
        result = self.run("-j", "list", "table", firewall.FAMILY, firewall.TABLE, check=False)
        if result.returncode != 0:
            return None
        try:
            return json.loads(result.stdout)
        except ValueError:
            return None


class NodeFirewall:
    """skutui's table on this node, rendered from the cluster configuration and the pin."""

    def __init__(self, paths: Paths, nft: Nft | None = None) -> None:
        self.paths = paths
        self.nft = nft or Nft()

    def render(self, config: ClusterConfig, hostname: str, armed: bool,
               counters: dict[str, firewall.Counter] | None = None) -> str:
        peer = config.peer_of(hostname)
        pin = pinned_peer_link(self.paths)
        link = pin.link_address if pin is not None and pin.address == peer.ip else None
        return firewall.render_table(config, hostname, peer_link=link, armed=armed,
                                     counters=counters)

    def check(self, config: ClusterConfig, hostname: str) -> None:
        """``nft -c`` of the table this configuration makes; nothing is applied."""
        self.nft.run("-c", "-f", "-", text=self.render(config, hostname, armed=True))

    def install(self, config: ClusterConfig, hostname: str, armed: bool | None = None) -> None:
        """The table as ``config`` and the pin make it, replacing the one there, its
        counters carried over. ``armed`` None: the guard stays as it is (armed when there
        was no table)."""
        document = self.nft.table()
        if armed is None:
            armed = firewall.guard_armed_in(document) is not False
        counters = firewall.counters_from_json(document) if document is not None else None
        self.nft.apply(self.render(config, hostname, armed, counters))

    def guard(self, config: ClusterConfig, hostname: str, armed: bool) -> None:
        """Arm or disarm the takeover guard; the whole table is installed when it is missing."""
        if self.nft.table() is None:
            self.install(config, hostname, armed)
            return
        self.nft.apply(firewall.render_guard(config, armed))

    def armed(self) -> bool | None:
        return firewall.guard_armed_in(self.nft.table())

    def counters(self) -> dict[str, firewall.Counter]:
        document = self.nft.table()
        return firewall.counters_from_json(document) if document is not None else {}

    def remove(self) -> None:
        if self.nft.table() is not None:
            self.nft.run("-f", "-", text=firewall.render_removal())

