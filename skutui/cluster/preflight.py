"""Pre-flight: what is checked before a cluster is created, and how each check reads.

The request's values are checked first, against this node's addresses, before the peer is
contacted (:func:`check_request`). Then the checks run in the order of :func:`check_names`;
each check is a small function of what was found, so the console's fake answers with the
product's own words. Nothing on either node is changed, the key exchange aside, which
authentication needs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any

from skutui import __version__
from skutui.cluster.nodeops import NodeOps, SkutuiNotInstalled
from skutui.cluster.transaction import reason
from skutui.domain import settings, validation
from skutui.domain.errors import ValidationError
from skutui.domain.model import InterfaceAddress, split_floating_ip
from skutui.domain.values import format_seconds
from skutui.domain.wire import CheckResult, CreateRequest, Progress
from skutui.system.package import install_hint

NO_LOCAL_CLUSTER = "No cluster on this node"
PEER_AUTHENTICATED = "Peer reachable and authenticated"
SAME_VERSION = "Same skutui version"
DIFFERENT_HOSTNAMES = "Different hostnames"
PEER_NIC = "Cluster NIC on the peer"
LINKS_ON_BOTH = "Links on both nodes"
DAEMONS = ("keepalived", "conntrackd")
KEEPALIVED_INSTALLED = "keepalived installed"
CONNTRACKD_INSTALLED = "conntrackd installed"
CLOCKS_AGREE = "Clocks agree"
ROUTER_ID_FREE = "Virtual router id {vrid} free"

CLOCK_SKEW_MAX = 5.0
"""Seconds two nodes' clocks may differ before pre-flight fails (logs and certificates)."""
ADVERTS_HEARD = 3
"""Listen this many check intervals for other VRRP routers: a live one adverts each interval."""

RoutersHeard = Callable[[str, float], Collection[tuple[str, int]]]
"""(this node's address, seconds) -> (sender, virtual router id) of each VRRP advert heard;
blocking, run in a thread."""
Authenticate = Callable[[str, str, CreateRequest, Progress], Awaitable[None]]
"""(peer's address, this node's address, request, progress): pin the peer's host key and
exchange keys with the password, or change nothing."""


def check_names(virtual_router_id: int = settings.VIRTUAL_ROUTER_ID.default) -> list[str]:
    """Every check, in the order pre-flight runs and reports them."""
    return [NO_LOCAL_CLUSTER, PEER_AUTHENTICATED, SAME_VERSION, DIFFERENT_HOSTNAMES, PEER_NIC,
            LINKS_ON_BOTH, KEEPALIVED_INSTALLED, CONNTRACKD_INSTALLED, CLOCKS_AGREE,
            ROUTER_ID_FREE.format(vrid=virtual_router_id)]


@dataclass(frozen=True)
class Checked:
    """A create request whose values are checked, before the peer is contacted."""

    local: InterfaceAddress
    remote_ip: str
    settings: dict[str, Any]
    """As ``settings.check_all`` gives them; failback may still be the word ``remote``."""

    @property
    def check_interval(self) -> float:
        return self.settings.get("check_interval", settings.CHECK_INTERVAL.default)

    @property
    def virtual_router_id(self) -> int:
        return self.settings.get("virtual_router_id", settings.VIRTUAL_ROUTER_ID.default)

    @property
    def named_links(self) -> list[str]:
        """The links the settings name besides the cluster NIC: tracked interfaces and the
        links of floating IPs placed elsewhere."""
        named = [*self.settings.get("tracked_interfaces", ())]
        named += [split_floating_ip(text, self.local.interface)[1]
                  for text in self.settings.get("floating_ips", ())]
        return [name for name in dict.fromkeys(named) if name != self.local.interface]


@dataclass(frozen=True)
class Contacted:
    """What pre-flight learnt, for create to go on from."""

    checked: Checked
    local_inventory: dict[str, Any]
    remote_inventory: dict[str, Any]
    remote: NodeOps


def check_request(request: CreateRequest, addresses: Sequence[InterfaceAddress],
                  hostname: str) -> Checked:
    """Every value of ``request`` checked, against this node's ``addresses`` too: raises
    ValidationError before anything is asked of the peer or changed on either node."""
    if not request.password:
        raise ValidationError("password", "The remote root password is empty; enter it.")
    unknown = set(request.settings) - {s.key for s in settings.creatable()}
    if unknown:
        raise ValidationError(sorted(unknown)[0], f"{', '.join(sorted(unknown))} cannot be "
                              "set at creation; change it with cluster edit afterwards.")
    floating = request.settings.get("floating_ips", ())
    local = validation.local_ip(request.local_ip, addresses, floating)
    remote_ip = validation.remote_ip(request.remote_ip, local)
    given = settings.check_all(request.settings, settings.Context(
        local=hostname, node_ips=(local.address, remote_ip)))
    validation.services_listed_once(given.get("services", ()), given.get("services_on_both", ()))
    if request.host_key_fingerprint is not None:
        validation.host_key_fingerprint(request.host_key_fingerprint)
    return Checked(local, remote_ip, given)


async def run(checked: Checked, local: NodeOps, connect: Callable[[str], NodeOps],
              authenticate: Authenticate, routers_heard: RoutersHeard, request: CreateRequest,
              progress: Progress) -> tuple[list[CheckResult], Contacted | None]:
    """Every check, each with its own result; a peer that cannot be reached ends the list
    (nothing else can be compared). ``connect``: the peer's NodeOps, given its address."""
    local_ip, remote_ip = checked.local.address, checked.remote_ip
    local_inventory = await local.inventory()
    checks = [no_local_cluster(local_inventory)]
    progress(f"Connecting to {remote_ip}")
    try:
        await authenticate(remote_ip, local_ip, request, progress)
        remote = connect(remote_ip)
        remote_inventory = await remote.inventory()
    except SkutuiNotInstalled as exc:
        checks += skutui_missing(remote_ip, exc)
        return checks, None
    except Exception as exc:  # noqa: BLE001 - reported as the failing check
        checks.append(peer_unreachable(exc))
        return checks, None
    remote.name = remote_inventory["hostname"]
    checks.append(peer_authenticated(remote_ip, remote_inventory))
    checks += compare(checked.local, remote_ip, local_inventory, remote_inventory,
                      checked.named_links)
    interval = checked.check_interval
    progress(f"Listening for other VRRP routers for {format_seconds(ADVERTS_HEARD * interval)} s")
    checks.append(await listen_for_routers(routers_heard, local_ip, remote_ip, interval,
                                           checked.virtual_router_id))
    return checks, Contacted(checked, local_inventory, remote_inventory, remote)


# --- the checks, one function each: what was found -> how it reads ------------------------------


def no_local_cluster(inventory: dict[str, Any]) -> CheckResult:
    if inventory["configured"]:
        return CheckResult(NO_LOCAL_CLUSTER, False,
                           f"{inventory['hostname']} already belongs to a cluster",
                           "destroy the existing cluster first")
    return CheckResult(NO_LOCAL_CLUSTER, True, "this node has no cluster yet")


def peer_unreachable(exc: BaseException) -> CheckResult:
    return CheckResult(PEER_AUTHENTICATED, False, reason(exc),
                       "fix the connection, then run the checks again")


def skutui_missing(remote_ip: str, exc: SkutuiNotInstalled) -> list[CheckResult]:
    """Logged in, but the peer has no skutui: nothing else can be asked of it."""
    return [CheckResult(PEER_AUTHENTICATED, True, f"logged in to {remote_ip} with skutui's key"),
            CheckResult(SAME_VERSION, False, str(exc), f"install skutui {__version__} on "
                        f"{remote_ip}: {install_hint(__version__)}")]


def peer_authenticated(remote_ip: str, inventory: dict[str, Any]) -> CheckResult:
    return CheckResult(PEER_AUTHENTICATED, True,
                       f"logged in to {remote_ip} ({inventory['hostname']}) with skutui's key")


def compare(local: InterfaceAddress, remote_ip: str, mine: dict, theirs: dict,
            links: Sequence[str] = ()) -> list[CheckResult]:
    """The checks that compare both nodes' inventories; ``links``: those the settings name."""
    checks = [
        CheckResult(SAME_VERSION, mine["version"] == theirs["version"],
                    f"{mine['version']} here, {theirs['version']} on the peer",
                    "install the same skutui version on both nodes"),
        CheckResult(DIFFERENT_HOSTNAMES, mine["hostname"] != theirs["hostname"],
                    f"{mine['hostname']} and {theirs['hostname']}",
                    "give each node its own hostname (hostnamectl set-hostname)"),
    ]
    nic = [a for a in theirs["addresses"] if a["address"] == remote_ip]
    same_nic = bool(nic) and nic[0]["interface"] == local.interface and nic[0]["label"] == nic[0]["interface"]
    found = f"{remote_ip} is on {nic[0]['label']}" if nic else f"{remote_ip} is not configured on the peer"
    checks.append(CheckResult(
        PEER_NIC, same_nic, f"{found}; this node uses {local.interface}",
        f"put {remote_ip} on the peer's {local.interface} (not an alias)"))
    checks.append(links_on_both(links, mine, theirs))
    for daemon, name in zip(DAEMONS, (KEEPALIVED_INSTALLED, CONNTRACKD_INSTALLED), strict=True):
        ok = bool(mine[daemon]) and bool(theirs[daemon])
        checks.append(CheckResult(
            name, ok, f"{mine[daemon] or 'missing'} here, {theirs[daemon] or 'missing'} on the peer",
            f"apt-get install {daemon} on the node that lacks it"))
    skew = abs(mine["time"] - theirs["time"])
    checks.append(CheckResult(CLOCKS_AGREE, skew <= CLOCK_SKEW_MAX, f"{skew:.1f} s apart",
                              "synchronise both clocks (NTP)"))
    return checks


def links_on_both(links: Sequence[str], mine: dict, theirs: dict) -> CheckResult:
    """Every link a setting names exists on both nodes: a tracked link missing on one keeps
    it in FAULT, a floating IP's link missing leaves the address nowhere to go."""
    if not links:
        return CheckResult(LINKS_ON_BOTH, True, "no link named besides the cluster NIC")
    missing = [f"{name} is missing on {node['hostname']}" for name in links
               for node in (mine, theirs) if name not in node.get("links", ())]
    if missing:
        return CheckResult(LINKS_ON_BOTH, False, "; ".join(missing),
                           "name links both nodes have (ip link lists them)")
    return CheckResult(LINKS_ON_BOTH, True, f"{', '.join(links)} on both")


async def listen_for_routers(routers_heard: RoutersHeard, local_ip: str, remote_ip: str,
                             interval: float, vrid: int) -> CheckResult:
    try:
        heard = await asyncio.to_thread(routers_heard, local_ip, ADVERTS_HEARD * interval)
    except OSError as exc:
        return router_id_unheard(vrid, exc)
    return router_id_free(vrid, heard, (local_ip, remote_ip))


def router_id_unheard(vrid: int, exc: OSError) -> CheckResult:
    return CheckResult(ROUTER_ID_FREE.format(vrid=vrid), False, f"cannot listen for VRRP: {exc}",
                       "run skutui as root")


def router_id_free(vrid: int, heard: Collection[tuple[str, int]], ours: tuple[str, str]) -> CheckResult:
    """Adverts from both nodes themselves do not count (a cluster being re-created)."""
    name = ROUTER_ID_FREE.format(vrid=vrid)
    others = sorted(src for src, heard_vrid in heard if heard_vrid == vrid and src not in ours)
    if others:
        return CheckResult(name, False, f"already used by {', '.join(others)}",
                           "stop that router or choose another virtual router id")
    return CheckResult(name, True, f"no other router uses it ({len(heard)} adverts heard)")
