"""``skutui node …`` and ``skutui agent …``: the plumbing one node runs on itself.

The lifecycle on the master runs these on the peer over SSH; they read JSON on stdin where
they take data and print JSON on stdout, so that nothing secret ever sits in an argument.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys

from skutui.core import store
from skutui.core.paths import Paths


def _node():
    from skutui.node import LocalNode

    return LocalNode(Paths.from_env())


def _answer(method: str):
    """A step that prints what this node answers, as one JSON document."""

    def run(args) -> int:
        answer = getattr(_node(), method)()
        json.dump(answer.to_dict() if hasattr(answer, "to_dict") else answer, sys.stdout)
        sys.stdout.write("\n")
        return 0

    return run


def _facts(args) -> int:
    """Facts once, or with ``--stream`` one line of facts for each line read, until end of
    input: the console keeps this running on the peer instead of starting it per read."""
    node = _node()
    for _ in sys.stdin if args.stream else [None]:
        print(json.dumps(node.facts().to_dict()), flush=True)
    return 0


def _restore(args) -> int:
    from skutui.agent_cli import request_from_stdin
    from skutui.cli import EXIT_BAD_INPUT, CommandError
    from skutui.node import SnapshotError

    snapshot = request_from_stdin("snapshot")
    try:
        _node().restore(snapshot)
    except SnapshotError as exc:
        raise CommandError(str(exc), EXIT_BAD_INPUT) from None
    return 0


def _apply(args) -> int:
    """A bad cluster.toml on standard input is bad input (exit 2), as is a bad file."""
    config = store.load_bytes(sys.stdin.buffer.read(), source="standard input")
    _node().apply(config)
    return 0


def _simple(method: str):
    def run(args) -> int:
        getattr(_node(), method)()
        return 0

    return run


def _maintenance(args) -> int:
    print(_node().set_maintenance(args.state == "on"))
    return 0


def _notify(args) -> int:
    """keepalived's hook: run the transition, log failures, always answer 0 to keepalived."""
    from skutui.agent.transitions import TRANSITIONS

    logging.basicConfig(
        filename=str(Paths.from_env().agent_log), level=logging.INFO,
        format="%(asctime)s %(levelname)s notify: %(message)s",
    )
    log = logging.getLogger("skutui.agent")
    failed = TRANSITIONS[args.state](_node())
    from skutui.agent_cli import announce_transition

    announce_transition(Paths.from_env(), args.state, failed)
    log.info("transition to %s%s", args.state, f"; failed: {'; '.join(failed)}" if failed else "")
    return 0


def register(commands: argparse._SubParsersAction) -> None:
    node = commands.add_parser("node", help="operations on this node (used by the lifecycle over SSH)")
    steps = node.add_subparsers(title="operations", metavar="OPERATION", required=True)
    for name, func, text in (
        ("inventory", _answer("inventory"), "print what pre-flight compares, as JSON"),
        ("reload", _simple("reload"), "re-render the daemon configurations and reload keepalived"),
        ("snapshot", _answer("snapshot"), "print the files and daemons a rollback restores, as JSON"),
        ("restore", _restore, "restore a snapshot read from standard input"),
        ("apply", _apply, "write the cluster.toml read from standard input and the daemon configurations"),
        ("start", _simple("start"), "start conntrackd, keepalived and the agent"),
        ("stop", _simple("stop"), "stop them and release any floating IP"),
        ("erase", _simple("erase"), "stop and remove this node's cluster configuration"),
    ):
        step = steps.add_parser(name, help=text)
        step.set_defaults(func=func)
    facts = steps.add_parser("facts", help="print this node's facts as JSON")
    facts.add_argument("--stream", action="store_true",
                       help="print them again for each line read on standard input")
    facts.set_defaults(func=_facts)
    from skutui.agent_cli import register_node_steps

    register_node_steps(steps)
    maintenance = steps.add_parser("maintenance", help="put this node in or out of maintenance")
    maintenance.add_argument("state", choices=("on", "off"))
    maintenance.set_defaults(func=_maintenance)

    agent = commands.add_parser("agent", help="the node agent")
    agent_steps = agent.add_subparsers(title="operations", metavar="OPERATION", required=True)
    notify = agent_steps.add_parser("notify", help="keepalived's transition hook")
    notify.add_argument("state", choices=("master", "backup", "fault"))
    notify.set_defaults(func=_notify)

