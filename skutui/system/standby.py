"""What this node has, and its agent knows, that says whether it could take over now: the
``standby`` part of its node facts (the rules are ``skutui.domain.readiness``'s).

Read on each read of the node table, so kept cheap: one ``conntrackd -s``, one ``ip -j link``,
file checks for the services, and what the agent published in ``agent.json``.
"""

from __future__ import annotations

import json
import logging
import subprocess
from pathlib import Path
from typing import Any

from skutui.domain.conntrack import parse_stats
from skutui.domain.model import ClusterConfig
from skutui.domain.readiness import (
    LINK_DOWN,
    LINK_MISSING,
    LINK_UP,
    SERVICE_INSTALLED,
    SERVICE_MISSING,
)
from skutui.system.daemons import Conntrackd, DaemonError

log = logging.getLogger(__name__)

STATS_TIMEOUT = 0.5
"""conntrackd answers ``-s`` in milliseconds; one that does not within this is mute. Well
under what the other node waits for this node's facts (2 s): a hung conntrackd is the node's
fault to report, not a node that cannot be reached."""
UNIT_DIRS = (Path("/etc/systemd/system"), Path("/lib/systemd/system"), Path("/usr/lib/systemd/system"))
INIT_DIR = Path("/etc/init.d")


def conntrack_stats(conntrackd: Conntrackd) -> dict[str, int] | None:
    """conntrackd's counters, or None when it does not answer."""
    if not conntrackd.running():
        return None
    try:
        result = conntrackd.ctl("-s", timeout=STATS_TIMEOUT)
    except (OSError, subprocess.TimeoutExpired, DaemonError):
        return None
    if result.returncode != 0:
        return None
    try:
        return parse_stats(result.stdout)
    except ValueError:
        log.warning("conntrackd -s printed what skutui cannot read: %r", result.stdout[:200])
        return None


def link_states(names: tuple[str, ...] | list[str]) -> dict[str, str]:
    """Each link: up (administratively and with carrier), down, or missing."""
    result = subprocess.run(["ip", "-j", "link", "show"], capture_output=True, text=True)
    try:
        links = {link.get("ifname"): link for link in json.loads(result.stdout or "[]")}
    except ValueError:
        links = {}
    states = {}
    for name in names:
        flags = (links.get(name) or {}).get("flags")
        if flags is None:
            states[name] = LINK_MISSING
        else:
            states[name] = LINK_UP if "UP" in flags and "LOWER_UP" in flags else LINK_DOWN
    return states


def service_installed(name: str) -> bool:
    """A unit or an init script of that name exists: it can be started here."""
    unit = name if "." in name else f"{name}.service"
    return (INIT_DIR / name).exists() or any((folder / unit).exists() for folder in UNIT_DIRS)


def standby_facts(config: ClusterConfig | None, conntrackd: Conntrackd,
                  agent: dict[str, Any]) -> dict[str, Any]:
    """``agent``: what the agent published (``agent.json``), {} when it is not running."""
    observed = agent.get("observed") or {}
    facts: dict[str, Any] = {
        "conntrack": conntrack_stats(conntrackd),
        "sync": observed.get("sync"),
        "replication_queue": agent.get("queued"),
        "drift": observed.get("drift"),
    }
    if config is not None:
        facts["links"] = link_states(config.all_tracked_interfaces)
        facts["services"] = {name: SERVICE_INSTALLED if service_installed(name) else SERVICE_MISSING
                             for name in config.services}
    return facts
