"""``skutui agent run``: the node agent, as its unit starts it; ``skutui agent notify STATE``:
keepalived's notify hook, when the agent's mark did not come: the transition is handed to
the agent, which runs it (started first if it is not running); this command never runs a
step nor writes the role itself."""

from __future__ import annotations

import argparse
import logging

from skutui.domain.paths import Paths
from skutui.system import control, logs
from skutui.system.hook import STATES, Moment, read_report
from skutui.system.node import LocalNode


def hand_over(paths: Paths, state: str, at: Moment | None = None) -> str:
    """Give keepalived's transition to ``state``, made at ``at`` (the hook's moment; else
    its report's, else now), to the agent; what happened, for the log. With the moment, a
    hand-over that comes after a newer transition is known as stale by the agent."""
    if at is None:
        report = read_report(paths.keepalived_report)
        at = report.at if report is not None and report.state == state else Moment.now()
    try:
        answer = control.request(paths.control_socket, "transition", state=state,
                                 boot=at.boot, since_boot=at.since_boot)
    except (control.ControlError, OSError, ValueError) as exc:
        node = LocalNode(paths)
        if not (paths.cluster_file.exists() and node.keepalived.running()):
            return (f"no agent answered ({exc}) and keepalived no longer runs (the node is "
                    f"being stopped): the transition to {state} is left")
        try:
            node.agent.start()
        except Exception as start_error:  # noqa: BLE001 - keepalived's hook must always end
            return (f"no agent took the transition to {state} ({exc}) and it could not be "
                    f"started: {start_error}")
        return (f"no agent answered ({exc}); started it: it takes the transition to {state} "
                "as it starts")
    if answer.get("taken"):
        return f"the transition to {state} was handed to the agent"
    return f"the agent had taken the transition to {state} already"


def _moment(boot: str | None, uptime: str | None) -> Moment | None:
    """The hook's moment: this boot's id and /proc/uptime as it read them."""
    if not boot or not uptime:
        return None
    whole, _, fraction = uptime.partition(".")
    try:
        return Moment(boot, int(whole) * 100 + int((fraction + "00")[:2]))
    except ValueError:
        return None


def _notify(args) -> int:
    """keepalived's hook: hand the transition over, log how, always answer 0 to keepalived."""
    paths = Paths.from_env()
    logs.setup(paths)
    said = hand_over(paths, args.state, _moment(args.boot, args.uptime))
    logging.getLogger("skutui.agent").info("notify: %s", said)
    return 0


def _run(args) -> int:
    # The agent's own parts (SSH, the sync) load for the agent only, not for keepalived's hook.
    from skutui.agent.main import main

    return main([str(Paths.from_env().config_root)])


def register(commands: argparse._SubParsersAction, name: str, help: str) -> None:
    agent = commands.add_parser(name, help=help)
    agent_steps = agent.add_subparsers(title="operations", metavar="OPERATION", required=True)
    notify = agent_steps.add_parser("notify", help="keepalived's transition hook")
    notify.add_argument("state", choices=STATES)
    notify.add_argument("boot", nargs="?", help="this boot's id, as the hook read it")
    notify.add_argument("uptime", nargs="?", help="/proc/uptime, as the hook read it")
    notify.set_defaults(func=_notify)
    run = agent_steps.add_parser("run", help="run the node agent (its systemd unit does)")
    run.set_defaults(func=_run)
