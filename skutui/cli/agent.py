"""``skutui agent notify STATE``: keepalived's transition hook, when no agent ran it."""

from __future__ import annotations

import argparse
import logging

from skutui.agent.transitions import TRANSITIONS, outcome_event
from skutui.domain.paths import Paths
from skutui.system.control import post_event
from skutui.system.node import LocalNode


def announce_transition(paths: Paths, state: str, failed: list[str]) -> bool:
    """For keepalived's notify hook, when it ran the transition itself: tell the agent how
    its steps went. Best effort: the hook's own work never waits on the agent."""
    message, level, data = outcome_event(state, failed)
    return post_event(paths.control_socket, "service", message, level=level, **data)


def _notify(args) -> int:
    """keepalived's hook: run the transition, log failures, always answer 0 to keepalived."""
    logging.basicConfig(
        filename=str(Paths.from_env().agent_log), level=logging.INFO,
        format="%(asctime)s %(levelname)s notify: %(message)s",
    )
    log = logging.getLogger("skutui.agent")
    failed = TRANSITIONS[args.state](LocalNode(Paths.from_env()))
    announce_transition(Paths.from_env(), args.state, failed)
    log.info("transition to %s%s", args.state, f"; failed: {'; '.join(failed)}" if failed else "")
    return 0


def register(commands: argparse._SubParsersAction, name: str, help: str) -> None:
    agent = commands.add_parser(name, help=help)
    agent_steps = agent.add_subparsers(title="operations", metavar="OPERATION", required=True)
    notify = agent_steps.add_parser("notify", help="keepalived's transition hook")
    notify.add_argument("state", choices=("master", "backup", "fault"))
    notify.set_defaults(func=_notify)

