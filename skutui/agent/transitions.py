"""What a node does when keepalived moves it to MASTER, BACKUP or FAULT.

keepalived runs the MASTER hook after it has already taken the floating IPs, so these steps
are kept short: slow work here delays the takeover of connection state and resets TCP
connections. Each step is logged and a failed step does not stop the ones after it. Only
the agent runs them, after it wrote the role file (:mod:`.role_supervisor`); keepalived's
hook runs none (it hands the transition to the agent, started first if need be).

These are the connection-state steps only: the agent's service keeper starts and stops the
operator's services in the background, each with its own time limit, so a slow service never
delays the commit of this transition nor the next one.
"""

from __future__ import annotations

import logging
import subprocess
from collections.abc import Callable

from skutui.agent.takeover import set_guard
from skutui.domain.model import Role
from skutui.system.node import LocalNode

log = logging.getLogger("skutui.agent")

MASTER_CONNTRACK_STEPS = (("-c",), ("-f",), ("-R",), ("-B",))
"""Commit the peer's connections to the kernel, flush the caches, resync from the kernel,
then send everything to the peer."""
BACKUP_CONNTRACK_STEPS = (("-t",), ("-n",))
"""Shorten kernel timers of connections this node no longer serves, ask the master for a resync."""
FAULT_CONNTRACK_STEPS = (("-t",),)


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


def to_master(node: LocalNode) -> list[str]:
    """The takeover guard is disarmed right after the commit (whether or not it worked): a
    segment that still has no conntrack entry then belongs to no connection this node can
    carry, and is answered with a reset."""
    commit, rest = MASTER_CONNTRACK_STEPS[:1], MASTER_CONNTRACK_STEPS[1:]
    failed = _conntrack_steps(node, commit) + set_guard(node, armed=False)
    return failed + _conntrack_steps(node, rest)


def to_backup(node: LocalNode) -> list[str]:
    failed = set_guard(node, armed=True)
    if not node.conntrackd.running():
        try:
            node.conntrackd.start()
        except Exception as exc:  # noqa: BLE001 - reported, the next steps still run
            failed.append(f"conntrackd start: {exc}")
    return failed + _conntrack_steps(node, BACKUP_CONNTRACK_STEPS)


def to_fault(node: LocalNode) -> list[str]:
    return set_guard(node, armed=True) + _conntrack_steps(node, FAULT_CONNTRACK_STEPS)


STATE_ROLES = {"master": Role.MASTER, "backup": Role.BACKUP, "fault": Role.MAINTENANCE}
"""keepalived's states (as its notify hook and FIFO name them) and the role each gives."""

TRANSITIONS: dict[str, Callable[[LocalNode], list[str]]] = {
    "master": to_master,
    "backup": to_backup,
    "fault": to_fault,
}


def run_transition(node: LocalNode, state: str) -> list[str]:
    """The agent's steps for keepalived's ``state`` (master, backup, fault): the connection
    state only (see the module's docstring); returns those that failed."""
    return TRANSITIONS[state](node)


def outcome_event(state: str, failed: list[str], seconds: float | None = None
                  ) -> tuple[str, str, dict]:
    """The ``service`` event (message, level, data) that reports a transition's steps;
    ``seconds``: how long they took (the history's conntrack commit time on a takeover)."""
    role = STATE_ROLES[state]
    message = f"{state.upper()} steps done"
    if failed:
        message += "; failed steps: " + "; ".join(failed)
    data: dict = {"role": role.value, "cause": f"keepalived {state.upper()}", "failed": failed}
    if seconds is not None:
        data["seconds"] = round(seconds, 4)
    return message, "error" if failed else "info", data
