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
from collections.abc import Collection

from skutui.cluster.nodeops import NodeOps
from skutui.cluster.preflight import Contacted
from skutui.cluster.transaction import reason, transaction
from skutui.domain import settings, validation
from skutui.domain.errors import Failed, ValidationError
from skutui.domain.model import ClusterConfig, Node, Role
from skutui.domain.render import vrrp_priority
from skutui.domain.values import format_seconds
from skutui.domain.wire import Progress

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
    config = ClusterConfig(
        interface=checked.local.interface,
        nodes=(Node(local, checked.local.address), Node(remote, checked.remote_ip)),
        synced_paths=(synced_root,),
        **settings.check_all(checked.settings, context),
    )
    validation.validate_config(config)
    return config


def edited(config: ClusterConfig, changes: dict, hostname: str,
           links: Collection[str] | None) -> tuple[ClusterConfig, list[str]]:
    """The configuration with ``changes`` made, and one line per setting that changed (none:
    nothing to do). ``links``: this node's link names, when tracked interfaces change."""
    unknown = set(changes) - {s.key for s in settings.editable()}
    if unknown:
        raise ValidationError(sorted(unknown)[0], f"{', '.join(sorted(unknown))} cannot be "
                              "changed on a running cluster.")
    context = settings.Context.of(config, hostname, links)
    updated = validation.validate_config(
        dataclasses.replace(config, **settings.check_all(changes, context)))
    return updated, settings.changes(config, updated, context)


def not_cleaned(name: str, why: str) -> str:
    """The warning a destroy gives when the peer could not be erased."""
    return f"{name} was not cleaned ({why}); run `skutui node erase` on it"


def master_down(config: ClusterConfig, hostname: str) -> float:
    """keepalived's Master_Down_Interval for ``hostname``: after this long without an advert,
    a backup makes itself master (RFC 5798: 3 adverts plus a skew from its priority)."""
    skew = (256 - vrrp_priority(config, hostname)) / 256
    return (3 + skew) * config.check_interval


def expected_roles(config: ClusterConfig, remote: str) -> tuple[Role, Role]:
    """(this node's, the peer's) role once both run: this node is master unless failback
    names the peer, whose higher priority then takes the floating IPs."""
    if config.failback == remote:
        return Role.BACKUP, Role.MASTER
    return Role.MASTER, Role.BACKUP


# --- the changes ------------------------------------------------------------------------------


async def create(local: NodeOps, remote: NodeOps, config: ClusterConfig,
                 progress: Progress) -> None:
    """Erase the peer, configure both, start this node first so it becomes master, then the
    peer; any failure, or an interruption, rolls both nodes back as they were. ``config``
    lists this node first (see :func:`new_config`)."""
    interval = config.check_interval
    local_expected, remote_expected = expected_roles(config, remote.name)
    addresses = (config.nodes[0].ip, config.nodes[1].ip)

    async def steps() -> None:
        progress(f"Erasing the cluster configuration of {remote.name}")
        await remote.erase()
        progress(f"Writing the configuration on {local.name}")
        await local.apply(config)
        progress(f"Writing the configuration on {remote.name}")
        await remote.apply(config)
        progress(f"Starting {local.name}")
        await local.start()
        await wait_role(local, Role.MASTER, interval, progress)
        progress(f"Starting {remote.name}")
        await remote.start()
        await wait_role(remote, remote_expected, interval, progress)
        await wait_role(local, local_expected, interval,
                        progress if local_expected is Role.BACKUP else no_progress)
        # The peer starts as backup whatever it hears: only a whole master-down interval
        # without turning master shows that it hears this node's adverts.
        hold = master_down(config, remote.name) + NOTIFY_MARGIN
        progress(f"Checking for {format_seconds(hold)} s that {remote.name} hears {local.name}")
        await hold_roles([(local, local_expected), (remote, remote_expected)], hold, interval,
                         addresses)

    await transaction([local, remote], steps, progress)
    progress(f"Cluster created: {local.name} and {remote.name}")


RELOADING = "Reloading both nodes"


async def edit(local: NodeOps, remote: NodeOps, updated: ClusterConfig, progress: Progress) -> None:
    """Both nodes keep running: a failed edit puts the files back without a takeover."""

    async def steps() -> None:
        for ops in (local, remote):
            progress(f"Applying on {ops.name}")
            await ops.apply(updated)
        # The backup first: when a new heartbeat transport makes the master's keepalived
        # re-create its instance, the old one says goodbye (priority 0) and the backup must
        # already listen on the new transport, where the master is back at once.
        progress(RELOADING)
        await remote.reload()
        await local.reload()

    await transaction([local, remote], steps, progress, stop_first=False)


async def destroy(local: NodeOps, remote: NodeOps, progress: Progress) -> list[str]:
    """Stop and erase both nodes, the backup first so it never takes over. Returns
    warnings (e.g. the peer could not be reached and must be cleaned by hand)."""
    warnings = []
    progress(f"Stopping and erasing {remote.name}")
    try:
        await remote.erase()
    except Exception as exc:  # noqa: BLE001 - this node is still cleaned
        warnings.append(not_cleaned(remote.name, reason(exc)))
    progress(f"Stopping and erasing {local.name}")
    await local.erase()
    return warnings


# --- waiting for the roles ----------------------------------------------------------------------


async def wait_role(node: NodeOps, role: Role, interval: float, progress: Progress) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 3 * interval + ELECTION_MARGIN
    while True:
        facts = await node.facts()
        if facts.role is role:
            progress(f"{node.name} is {role.value}")
            return
        if loop.time() > deadline:
            raise Failed(f"{node.name} did not become {role.value} (it is {facts.role.value})")
        await asyncio.sleep(min(interval, ROLE_POLL_MAX))


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
                raise Failed(
                    f"{node.name} made itself master instead of staying {role.value}: it does "
                    "not hear the other node's VRRP adverts, so both would hold the floating "
                    f"IPs (split brain); let IP protocol 112 (VRRP) pass between {addresses[0]} "
                    f"and {addresses[1]} in both directions")
        if wrong:
            node, role, actual = wrong[0]
            raise Failed(f"{node.name} turned {actual.value} instead of staying "
                         f"{role.value} while the cluster settled")
        if loop.time() > deadline:
            return
        await asyncio.sleep(min(interval, ROLE_POLL_MAX))
