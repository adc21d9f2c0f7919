"""What a node does when keepalived moves it to MASTER, BACKUP or FAULT.

keepalived runs the MASTER hook after it has already taken the floating IPs, so these steps
are kept short: slow work here delays the takeover of connection state and resets TCP
connections. Each step is logged and a failed step does not stop the ones after it.
"""

from __future__ import annotations

import logging
import subprocess
from collections.abc import Callable

from skutui.domain.model import Role
from skutui.system.node import LocalNode

log = logging.getLogger("skutui.agent")

MASTER_CONNTRACK_STEPS = (("-c",), ("-f",), ("-R",), ("-B",))
"""Commit the peer's connections to the kernel, flush the caches, resync from the kernel,
then send everything to the peer."""
BACKUP_CONNTRACK_STEPS = (("-t",), ("-n",))
"""Shorten kernel timers of connections this node no longer serves, ask the master for a resync."""
FAULT_CONNTRACK_STEPS = (("-t",),)
SERVICE_STEP_TIMEOUT = 60.0
"""Seconds a service start or stop may take: the next transition waits for this one."""


def _conntrack_steps(node: LocalNode, steps) -> list[str]:
    failed = []
    for flags in steps:
        try:
            result = node.conntrackd.ctl(*flags)
        except (OSError, subprocess.TimeoutExpired) as exc:
            failed.append(f"conntrackd {' '.join(flags)}: {exc}")
            continue
        if result.returncode != 0:
            failed.append(f"conntrackd {' '.join(flags)}: {result.stderr.strip() or result.returncode}")
    return failed


def _services(node: LocalNode, action: str) -> list[str]:
    config = node.config()
    failed = []
    for name in config.services if config else ():
        try:
            result = subprocess.run(["service", name, action], capture_output=True, text=True,
                                    timeout=SERVICE_STEP_TIMEOUT)
        except subprocess.TimeoutExpired:
            failed.append(f"service {name} {action}: not done after {SERVICE_STEP_TIMEOUT:g} s; "
                          "stopped")
            continue
        except OSError as exc:
            failed.append(f"service {name} {action}: {exc}")
            continue
        if result.returncode != 0:
            failed.append(f"service {name} {action}: {result.stderr.strip() or result.returncode}")
    return failed


def to_master(node: LocalNode) -> list[str]:
    node.write_role(Role.MASTER)
    return _conntrack_steps(node, MASTER_CONNTRACK_STEPS) + _services(node, "start")


def to_backup(node: LocalNode) -> list[str]:
    node.write_role(Role.BACKUP)
    failed = []
    if not node.conntrackd.running():
        try:
            node.conntrackd.start()
        except Exception as exc:  # noqa: BLE001 - reported, the next steps still run
            failed.append(f"conntrackd start: {exc}")
    return failed + _conntrack_steps(node, BACKUP_CONNTRACK_STEPS) + _services(node, "stop")


def to_fault(node: LocalNode) -> list[str]:
    node.write_role(Role.MAINTENANCE)
    return _conntrack_steps(node, FAULT_CONNTRACK_STEPS)


STATE_ROLES = {"master": Role.MASTER, "backup": Role.BACKUP, "fault": Role.MAINTENANCE}
"""keepalived's states (as its notify hook and FIFO name them) and the role each gives."""

TRANSITIONS: dict[str, Callable[[LocalNode], list[str]]] = {
    "master": to_master,
    "backup": to_backup,
    "fault": to_fault,
}
def run_transition(node: LocalNode, state: str) -> list[str]:
    """The steps for keepalived's ``state`` (master, backup, fault); returns those that failed."""
    return TRANSITIONS[state](node)


def outcome_event(state: str, failed: list[str]) -> tuple[str, str, dict]:
    """The ``service`` event (message, level, data) that reports a transition's steps."""
    role = STATE_ROLES[state]
    message = f"{state.upper()} steps done"
    if failed:
        message += "; failed steps: " + "; ".join(failed)
    return message, "error" if failed else "info", {
        "role": role.value, "cause": f"keepalived {state.upper()}", "failed": failed}
