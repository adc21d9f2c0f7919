"""The node agent: keeps a node's part of the cluster working while no console is open.

``python -m skutui.agent.run`` is the long-running process (started by ``LocalNode.start``);
it runs each VRRP transition as keepalived's notify FIFO reports it. keepalived's notify hook
(``notify_hook.sh``) runs ``skutui agent notify STATE`` itself only when the agent did not.
"""

from __future__ import annotations

import sys

from skutui.core.paths import Paths
from skutui.daemons import process_ids, spawn_detached, terminate

AGENT_MARK = "--skutui-agent"
"""Marks the agent's command line, so it is found by its arguments, not by a pid file."""


def agent_pids(paths: Paths) -> list[int]:
    return process_ids(AGENT_MARK, str(paths.config_root))


def start_agent(paths: Paths) -> None:
    if agent_pids(paths):
        return
    paths.run_dir.mkdir(parents=True, exist_ok=True)
    spawn_detached(
        [sys.executable, "-m", "skutui.agent.run", AGENT_MARK, str(paths.config_root)],
        log=paths.agent_log,
    )


def stop_agent(paths: Paths) -> None:
    terminate(agent_pids(paths), "skutui agent")
    paths.agent_state.unlink(missing_ok=True)
