"""The cluster's vocabulary: configuration, nodes, roles and statuses.

Pure data: nothing here touches the system or imports the UI.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

SCHEMA_VERSION = 1

DEFAULT_CHECK_INTERVAL = 1.0
"""Seconds between VRRP adverts (keepalived ``advert_int``)."""

CHECK_INTERVAL_MIN = 0.1
CHECK_INTERVAL_MAX = 40.0
CHECK_INTERVAL_STEP = 0.01
"""VRRPv3 carries the advert interval in centiseconds."""

DEFAULT_VIRTUAL_ROUTER_ID = 51

FAILBACK_DISABLED = "disabled"

TRANSPORT_UNICAST = "unicast"
TRANSPORT_MULTICAST = "multicast"
TRANSPORTS = (TRANSPORT_UNICAST, TRANSPORT_MULTICAST)
"""How VRRP adverts travel: to the peer's cluster IP, or to VRRP's multicast group."""

METRICS_FILE_SUFFIX = ".prom"
"""node_exporter's textfile collector reads only files named so."""
DEBIAN_TEXTFILE_DIR = "/var/lib/prometheus/node-exporter"
"""Where Debian's prometheus-node-exporter reads text files from."""

MAINTENANCE_TRACK_FILE = "maintenance"
"""Name of the keepalived track_file that holds the maintenance flag: non-zero means FAULT."""

LINK_SEPARATOR = "@"
"""Between a floating IP and the link that carries it: ``198.18.1.100/24@eth1``."""


class Role(str, enum.Enum):
    MASTER = "master"
    BACKUP = "backup"
    MAINTENANCE = "maintenance"
    """The operator put the node in maintenance."""
    FAULT = "fault"
    """keepalived's FAULT without maintenance: a tracked link is down."""
    UNKNOWN = "unknown"


class Status(str, enum.Enum):
    OK = "ok"
    FAILURE = "failure"
    UNREACHABLE = "unreachable"
    MAINTENANCE = "maintenance"

    @property
    def colour(self) -> str:
        return STATUS_COLOURS[self]

    @property
    def label(self) -> str:
        """Text shown beside the colour, so the table reads without colour."""
        return self.value.upper()


STATUS_COLOURS: dict[Status, str] = {
    Status.OK: "green",
    Status.FAILURE: "red",
    Status.UNREACHABLE: "grey",
    Status.MAINTENANCE: "orange",
}


@dataclass(frozen=True)
class Node:
    hostname: str
    ip: str


@dataclass(frozen=True)
class ClusterConfig:
    """What both nodes share; stored as cluster.toml and synced master -> backup."""

    interface: str
    """The cluster NIC: same name on both nodes, carries each node's cluster IP."""
    nodes: tuple[Node, Node]
    heartbeat_transport: str = TRANSPORT_UNICAST
    check_interval: float = DEFAULT_CHECK_INTERVAL
    failback: str = FAILBACK_DISABLED
    """``disabled`` or the hostname of the node that takes the floating IPs back."""
    tracked_interfaces: tuple[str, ...] = ()
    """Links keepalived watches besides the cluster NIC (which is always tracked)."""
    floating_ips: tuple[str, ...] = ()
    """CIDRs held by the master, e.g. ``198.18.0.100/24``; ``…@eth1`` on a link other than
    the cluster NIC."""
    synced_paths: tuple[str, ...] = ()
    services: tuple[str, ...] = ()
    """Services started on the master and stopped on the backup."""
    services_on_both: tuple[str, ...] = ()
    """Services kept running on both nodes (hot standby): only the floating IPs move."""
    virtual_router_id: int = DEFAULT_VIRTUAL_ROUTER_ID
    webhook_url: str = ""
    """Where each event is POSTed as JSON; empty: no webhook."""
    metrics_file: str = ""
    """The Prometheus text file the agent keeps for node_exporter; empty: none."""
    schema_version: int = SCHEMA_VERSION

    def node(self, hostname: str) -> Node:
        for node in self.nodes:
            if node.hostname == hostname:
                return node
        raise KeyError(hostname)

    def peer_of(self, hostname: str) -> Node:
        for node in self.nodes:
            if node.hostname != hostname:
                return node
        raise KeyError(hostname)

    @property
    def placed_floating_ips(self) -> tuple[tuple[str, str], ...]:
        """Each floating IP as (CIDR, the link that carries it)."""
        return tuple(split_floating_ip(text, self.interface) for text in self.floating_ips)

    @property
    def all_services(self) -> tuple[str, ...]:
        """Master-only services first, then those on both nodes."""
        return (*self.services, *self.services_on_both)

    def services_to_run(self, role: Role) -> tuple[str, ...]:
        """The services a node in ``role`` runs: the master all of them, a standing-by node
        (backup, fault) those on both; a node in maintenance is left to the operator."""
        if role is Role.MASTER:
            return self.all_services
        if role is Role.MAINTENANCE:
            return ()
        return self.services_on_both

    @property
    def all_tracked_interfaces(self) -> tuple[str, ...]:
        """Cluster NIC first, then the operator's list, without repeats."""
        seen: dict[str, None] = {self.interface: None}
        for name in self.tracked_interfaces:
            seen.setdefault(name, None)
        return tuple(seen)


@dataclass(frozen=True)
class InterfaceAddress:
    """One address found on one link, as interface discovery reports it."""

    interface: str
    """The link's name (``eth0``), never the address label."""
    address: str
    prefixlen: int
    label: str = ""
    """The address label; differs from ``interface`` for alias addresses (``eth0:1``)."""
    kind: str | None = None
    """The link kind from netlink (``veth``, ``bridge``, ``dummy``…); None for physical NICs."""
    loopback: bool = False
    up: bool = True

    @property
    def is_alias(self) -> bool:
        return bool(self.label) and self.label != self.interface


def split_floating_ip(text: str, default_link: str) -> tuple[str, str]:
    """``CIDR[@LINK]`` as (CIDR, link); without a link, ``default_link`` (the cluster NIC)."""
    cidr, _, link = text.partition(LINK_SEPARATOR)
    return cidr, link or default_link
