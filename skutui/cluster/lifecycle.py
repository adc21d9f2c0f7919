"""Create, edit and destroy, step by step on both nodes, and how long each step may take.

Both nodes are driven through the same :class:`~skutui.cluster.nodeops.NodeOps`. Every
change to both nodes runs in a :func:`~skutui.cluster.transaction.transaction`: snapshotted
first, rolled back as a whole when any step fails or the operator interrupts it. What a
change will be (the new configuration, the lines that say what changed) is decided by pure
functions here, so the console's fake decides it the same way.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Collection, Mapping
from typing import Any

from skutui.cluster.nodeops import NodeOps
from skutui.cluster.preflight import Contacted
from skutui.cluster.transaction import locked, reason, transaction
from skutui.domain import settings, validation
from skutui.domain.errors import Failed, Refused, ValidationError
from skutui.domain.model import ClusterConfig, Node, Role, Status
from skutui.domain.render import vrrp_priority
from skutui.domain.values import format_seconds
from skutui.domain.wire import NodeRow, Progress
from skutui.system.change import Change

ELECTION_MARGIN = 5.0
"""Seconds allowed beyond keepalived's own 3 x advert interval for a node to settle."""
NOTIFY_MARGIN = 1.0
"""Seconds from a keepalived transition until the role file says it (the agent writes it
when keepalived's notify FIFO line comes, keepalived's hook when no agent runs)."""
ROLE_POLL_MAX = 0.2
"""Seconds between two reads of a node's role while waiting for it."""


def no_progress(line: str) -> None:
    pass


# --- what a change will be -----------------------------------------------------------------


def new_config(contacted: Contacted, synced_root: str) -> ClusterConfig:
    """The configuration both nodes get, once pre-flight knows both hostnames."""
    checked = contacted.checked
    local, remote = contacted.local_inventory["hostname"], contacted.remote_inventory["hostname"]
    context = settings.Context(local=local, remote=remote)
    given = settings.check_all(checked.settings, context)
    # cluster.toml's own folder first: the backup must always receive the cluster's file.
    given["synced_paths"] = tuple(dict.fromkeys((synced_root, *given.get("synced_paths", ()))))
    config = ClusterConfig(
        interface=checked.local.interface,
        nodes=(Node(local, checked.local.address), Node(remote, checked.remote_ip)),
        **given,
    )
    validation.validate_config(config)
    return config


LINKED_SETTINGS = ("tracked_interfaces", "floating_ips")
"""Settings that name links, which must exist on both nodes."""


def edited(config: ClusterConfig, changes: dict, hostname: str,
           links: Collection[str] | None,
           peer_links: Collection[str] | None = None) -> tuple[ClusterConfig, list[str]]:
    """The configuration with ``changes`` made, and one line per setting that changed (none:
    nothing to do). ``links``, ``peer_links``: both nodes' link names, when a setting that
    names links changes (see ``LINKED_SETTINGS``)."""
    unknown = set(changes) - {s.key for s in settings.editable()}
    if unknown:
        raise ValidationError(sorted(unknown)[0], f"{', '.join(sorted(unknown))} cannot be "
                              "changed on a running cluster.")
    context = settings.Context.of(config, hostname, links, peer_links)
    updated = validation.validate_config(
        dataclasses.replace(config, **settings.check_all(changes, context)))
    return updated, settings.changes(config, updated, context)


def named_links(config: ClusterConfig) -> list[str]:
    """The links a configuration names besides the cluster NIC."""
    named = [*config.tracked_interfaces, *(link for _, link in config.placed_floating_ips)]
    return [name for name in dict.fromkeys(named) if name != config.interface]


def not_cleaned(name: str, why: str) -> str:
    """The warning a destroy gives when the peer could not be erased."""
    return f"{name} was not cleaned ({why}); run `skutui node erase` on it"


def master_down(config: ClusterConfig, hostname: str) -> float:
    """keepalived's Master_Down_Interval for ``hostname``: after this long without an advert,
    a backup makes itself master (RFC 5798: 3 adverts plus a skew from its priority)."""
    skew = (256 - vrrp_priority(config, hostname)) / 256
    return (3 + skew) * config.check_interval


HANDOVER_MARGIN = 2.0
"""Seconds allowed beyond the peer's master-down interval for a planned handover."""


def handover_timeout(config: ClusterConfig, taker: str) -> float:
    """How long a master ranked below ``taker`` waits for it to take the floating IPs: the
    taker hears the master's lower adverts and waits out its master-down interval."""
    return master_down(config, taker) + HANDOVER_MARGIN


def takeover_refusal(taker: NodeRow) -> str | None:
    """Why ``taker`` could not take the floating IPs over now; None when it can: a backup
    whose own row is green (keepalived, conntrackd and its services running)."""
    if taker.role is Role.BACKUP and taker.status is Status.OK:
        return None
    return f"{taker.hostname} cannot take over ({taker.role.value}, {taker.status.label}: {taker.message})"


def floating_ips_text(config: ClusterConfig) -> str:
    return ", ".join(config.floating_ips) or "none configured"


def maintenance_refused(config: ClusterConfig, master: str, refusal: str) -> Refused:
    return Refused(
        f"Maintenance refused: {master} is the master and {refusal}, so nobody would serve the "
        f"floating IPs ({floating_ips_text(config)}).",
        f"Fix the peer first, or add --force to put {master} in maintenance anyway and leave "
        "them unserved.")


def maintenance_forced(config: ClusterConfig, done: str, refusal: str) -> str:
    return (f"{done}; {refusal}: the floating IPs ({floating_ips_text(config)}) are UNSERVED "
            "until one of the nodes can hold them again")


def maintenance_handed_over(config: ClusterConfig, done: str, taker: str, seconds: float) -> str:
    return (f"{done}; {taker} committed the connection state and took over the floating IPs "
            f"({floating_ips_text(config)}) in {seconds:.1f} s, before this node let them go")


def maintenance_standby(done: str, master: str, node: str) -> str:
    return (f"{done}; {master} keeps serving the floating IPs, with no backup until {node} "
            "leaves maintenance")


def expected_roles(config: ClusterConfig, remote: str) -> tuple[Role, Role]:
    """(this node's, the peer's) role once both run: this node is master unless failback
    names the peer, whose higher priority then takes the floating IPs."""
    if config.failback == remote:
        return Role.BACKUP, Role.MASTER
    return Role.MASTER, Role.BACKUP


def link_address(inventory: Mapping[str, Any], interface: str) -> str | None:
    """The link-layer address a node reports for its ``interface`` (None: it has none)."""
    found = inventory.get("link_addresses")
    return found.get(interface) if isinstance(found, dict) else None


def pinning_line(local: str, remote: str, links: tuple[str | None, str | None]) -> str:
    return f"Pinning MAC addresses: {local} {links[0] or 'none'}, {remote} {links[1] or 'none'}"


async def pin_link_addresses(local: NodeOps, remote: NodeOps, config: ClusterConfig,
                             links: tuple[str | None, str | None], progress: Progress) -> None:
    """Each node pins the other's link-layer address on the cluster NIC: only from that
    address, and the other's cluster IP, does it accept VRRP and conntrackd traffic.
    ``links``: (this node's, the peer's), as each reported its own over the pinned SSH
    connection. ``config`` lists this node first."""
    (here, there), (mine, theirs) = config.nodes, links
    progress(pinning_line(local.name, remote.name, links))
    await local.pin_peer_link(there.ip, theirs)
    await remote.pin_peer_link(here.ip, mine)


async def repin_link_addresses(local: NodeOps, remote: NodeOps, config: ClusterConfig,
                               progress: Progress) -> None:
    """Each node asked for its own link-layer address again, and pinned on the other (what
    ``skutui cluster rekey`` runs, inside its own transaction). ``config`` lists this node
    first."""
    inventories = [await local.inventory(), await remote.inventory()]
    await pin_link_addresses(local, remote, config, (
        link_address(inventories[0], config.interface),
        link_address(inventories[1], config.interface)), progress)


# --- the changes ------------------------------------------------------------------------------


async def create(local: NodeOps, remote: NodeOps, config: ClusterConfig,
                 progress: Progress, links: tuple[str | None, str | None]) -> None:
    """Erase the peer, configure both, pin each other's link-layer address, start this node
    first so it becomes master, then the peer; any failure, or an interruption, rolls both
    nodes back as they were. ``config`` lists this node first (see :func:`new_config`);
    ``links`` are both nodes' link-layer addresses on the cluster NIC, this node's first."""
    interval = config.check_interval
    local_expected, remote_expected = expected_roles(config, remote.name)
    addresses = (config.nodes[0].ip, config.nodes[1].ip)
    both = [(local, local_expected), (remote, remote_expected)]

    async def steps() -> None:
        progress(f"Erasing the cluster configuration of {remote.name}")
        await remote.erase(keep_keys=True)
        progress(f"Writing the configuration on {local.name}")
        await local.apply(config)
        progress(f"Writing the configuration on {remote.name}")
        await remote.apply(config)
        await pin_link_addresses(local, remote, config, links, progress)
        progress(f"Starting {local.name}")
        await local.start()
        await wait_role(local, Role.MASTER, interval, progress)
        progress(f"Starting {remote.name}")
        await remote.start()
        await wait_role(remote, remote_expected, interval, progress, addresses)
        try:
            await wait_role(local, local_expected, interval,
                            progress if local_expected is Role.BACKUP else no_progress)
        except Failed:
            # This node lost its role to the peer (which may have read as backup a moment
            # before): a peer that made itself master is the cause to name.
            await hold_roles(both, 0.0, interval, addresses)
            raise
        # The peer starts as backup whatever it hears: only a whole master-down interval
        # without turning master shows that it hears this node's adverts.
        hold = master_down(config, remote.name) + NOTIFY_MARGIN
        progress(f"Checking for {format_seconds(hold)} s that {remote.name} hears {local.name}")
        await hold_roles(both, hold, interval, addresses)

    change = Change("cluster create", local.name, peer=remote.name, peer_ip=addresses[1])
    await transaction([local, remote], steps, progress, change=change)
    progress(f"Cluster created: {local.name} and {remote.name}")


RELOADING = "Reloading both nodes"


async def edit(local: NodeOps, remote: NodeOps, updated: ClusterConfig, progress: Progress) -> None:
    """Both nodes keep running: a failed edit puts the files back without a takeover."""

    async def steps() -> None:
        # The backup's file first: it takes a push only inside the synced paths its own
        # cluster.toml names, and the master's agent pushes from a new one at once.
        for ops in (remote, local):
            progress(f"Applying on {ops.name}")
            await ops.apply(updated)
        # The backup first: when a new heartbeat transport makes the master's keepalived
        # re-create its instance, the old one says goodbye (priority 0) and the backup must
        # already listen on the new transport, where the master is back at once.
        progress(RELOADING)
        await remote.reload()
        await local.reload()

    change = Change("cluster edit", local.name, peer=remote.name,
                    peer_ip=updated.peer_of(local.name).ip)
    await transaction([local, remote], steps, progress, stop_first=False, change=change)


async def destroy(local: NodeOps, remote: NodeOps, progress: Progress) -> list[str]:
    """Stop and erase both nodes, the backup first so it never takes over; each removes the
    other's key. Returns warnings (e.g. the peer could not be reached and must be cleaned by hand)."""
    warnings: list[str] = []
    async with locked([local, remote], Change("cluster destroy", local.name, peer=remote.name),
                      unreachable_ok=True) as held:
        progress(f"Stopping and erasing {remote.name}")
        try:
            if remote not in held:
                raise Failed("it could not be reached")
            await remote.erase()
        except Exception as exc:  # noqa: BLE001 - this node is still cleaned
            warnings.append(not_cleaned(remote.name, reason(exc)))
        progress(f"Stopping and erasing {local.name}")
        await local.erase()
    return warnings


# --- waiting for the roles ----------------------------------------------------------------------


async def wait_role(node: NodeOps, role: Role, interval: float, progress: Progress,
                    addresses: tuple[str, str] | None = None) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 3 * interval + ELECTION_MARGIN
    while True:
        facts = await node.facts()
        if facts.role is role:
            progress(f"{node.name} is {role.value}")
            return
        if loop.time() > deadline:
            if addresses is not None and role is Role.BACKUP and facts.role is Role.MASTER:
                raise Failed(made_itself_master(node.name, role, addresses))
            raise Failed(f"{node.name} did not become {role.value} (it is {facts.role.value})")
        await asyncio.sleep(min(interval, ROLE_POLL_MAX))


def made_itself_master(name: str, role: Role, addresses: tuple[str, str]) -> str:
    return (f"{name} made itself master instead of staying {role.value}: it does not hear the "
            "other node's VRRP adverts, so both would hold the floating IPs (split brain); "
            f"let IP protocol 112 (VRRP) pass between {addresses[0]} and {addresses[1]} in "
            "both directions")


async def hold_roles(expected: list[tuple[NodeOps, Role]], seconds: float, interval: float,
                     addresses: tuple[str, str]) -> None:
    """Every node keeps its expected role for ``seconds``; a change is the create's failure."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds

    async def wrong_roles() -> list[tuple[NodeOps, Role, Role]]:
        seen = [(node, role, (await node.facts()).role) for node, role in expected]
        return [(node, role, actual) for node, role, actual in seen if actual is not role]

    while True:
        wrong = await wrong_roles()
        if wrong and not any(actual is Role.MASTER for _, _, actual in wrong):
            # The master stepping down is often seen first: the node taking over shows it
            # once its role file says so. Look again before naming the cause.
            await asyncio.sleep(NOTIFY_MARGIN)
            wrong = await wrong_roles() or wrong
        for node, role, actual in wrong:
            if actual is Role.MASTER:
                raise Failed(made_itself_master(node.name, role, addresses))
        if wrong:
            node, role, actual = wrong[0]
            raise Failed(f"{node.name} turned {actual.value} instead of staying "
                         f"{role.value} while the cluster settled")
        if loop.time() > deadline:
            return
        await asyncio.sleep(min(interval, ROLE_POLL_MAX))
