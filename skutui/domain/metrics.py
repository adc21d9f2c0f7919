"""The node's metrics in Prometheus's text format, for node_exporter's textfile collector.

One family per fact, each labelled with the node, so that both nodes' files read side by
side in one Prometheus. Pure: the agent gathers the values (``skutui.agent.metrics``) and
writes the text where cluster.toml's ``metrics_file`` says.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from skutui.domain.model import Role, Status

PREFIX = "skutui_"


@dataclass(frozen=True)
class Family:
    name: str
    help: str
    type: str
    samples: tuple[tuple[Mapping[str, str], float], ...] = field(default_factory=tuple)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if float(value).is_integer():
        return str(int(value))
    return repr(float(value))


def render(families: list[Family]) -> str:
    lines = []
    for family in families:
        if not family.samples:
            continue
        name = PREFIX + family.name
        lines += [f"# HELP {name} {family.help}", f"# TYPE {name} {family.type}"]
        for labels, value in family.samples:
            shown = ",".join(f'{key}="{_escape(str(text))}"' for key, text in sorted(labels.items()))
            lines.append(f"{name}{{{shown}}} {_number(value)}")
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class NodeMetrics:
    """What a node reports; None where it does not know (the sample is left out)."""

    node: str
    role: Role
    status: Status
    failovers: int = 0
    last_failover_gap: float | None = None
    last_failover_time: float | None = None
    sync_lag: float | None = None
    last_sync: float | None = None
    replication_queue: int | None = None
    conntrack: Mapping[str, int] | None = None
    drift_files: int | None = None
    foreign_vrrp_dropped: int | None = None
    standby_ready: bool | None = None


def families(m: NodeMetrics) -> list[Family]:
    node = {"node": m.node}

    def one(value: float | None) -> tuple[tuple[Mapping[str, str], float], ...]:
        return () if value is None else ((node, float(value)),)

    conntrack = m.conntrack or {}
    return [
        Family("role", "The node's role: 1 for the role it holds, 0 for the others.", "gauge",
               tuple(({**node, "role": role.value}, float(role is m.role)) for role in Role)),
        Family("status", "The node's status in the node table: 1 for its status.", "gauge",
               tuple(({**node, "status": status.value}, float(status is m.status))
                     for status in Status)),
        Family("failovers_total", "Failovers in this node's history (both directions).",
               "counter", one(m.failovers)),
        Family("last_failover_gap_seconds", "Seconds the floating IPs had no master in the "
               "last failover.", "gauge", one(m.last_failover_gap)),
        Family("last_failover_timestamp_seconds", "When the last failover's new master held "
               "the floating IPs.", "gauge", one(m.last_failover_time)),
        Family("sync_lag_seconds", "Seconds the oldest change not pushed to the peer has "
               "waited (0 in step); on the master only.", "gauge", one(m.sync_lag)),
        Family("last_sync_timestamp_seconds", "When the master last pushed or compared the "
               "synced files.", "gauge", one(m.last_sync)),
        Family("replication_queue", "Commands queued for the peer, not yet acknowledged.",
               "gauge", one(m.replication_queue)),
        Family("conntrack_entries", "Connections in conntrackd's caches (the master's internal "
               "one should be in the backup's external one).", "gauge",
               tuple(({**node, "cache": cache}, float(conntrack[cache]))
                     for cache in ("internal", "external") if cache in conntrack)),
        Family("conntrack_sync_errors_total", "conntrackd's sync channel: messages lost or "
               "malformed, send and receive errors, failed cache operations.", "counter",
               tuple(({**node, "error": key}, float(conntrack[key]))
                     for key in ("lost", "malformed", "send_errors", "recv_errors", "failed")
                     if key in conntrack)),
        Family("config_drift_files", "Synced files that differ between the nodes, as the "
               "master last found them.", "gauge", one(m.drift_files)),
        Family("vrrp_foreign_dropped_total", "VRRP adverts dropped on the cluster NIC that did "
               "not come from the peer.", "counter", one(m.foreign_vrrp_dropped)),
        Family("standby_ready", "1 when this backup could take over now.", "gauge",
               one(None if m.standby_ready is None else float(m.standby_ready))),
    ]
