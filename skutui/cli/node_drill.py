"""``skutui node drill …``: the steps a drill runs on the peer: the mark that makes its
hand-over's cause "drill", and the probe (``skutui.system.drill``)."""

from __future__ import annotations

import argparse
import ipaddress
import json
import socket
import sys

from skutui.cli.common import EXIT_OK, CommandError
from skutui.domain.paths import Paths
from skutui.system import drill


def _address(text: str) -> str:
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an IP address") from None


def _port(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port (1 to 65535)")
    return int(text)


def _drill_id(text: str) -> str:
    if not text or len(text) > 100 or not all(ch.isalnum() or ch in "-_." for ch in text):
        raise argparse.ArgumentTypeError(f"{text!r} is not a drill id (letters, digits, - _ .)")
    return text


def _mark(args: argparse.Namespace) -> int:
    drill.mark(Paths.from_env(), args.drill)
    return EXIT_OK


def _unmark(args: argparse.Namespace) -> int:
    drill.unmark(Paths.from_env())
    return EXIT_OK


def _probe(args: argparse.Namespace) -> int:
    """Probes from the start; prints a report for each line read, until end of input."""
    try:
        probe = drill.Probe(socket.gethostname(), args.address, args.port)
    except OSError as exc:
        raise CommandError(f"the drill's probe cannot use UDP port {args.port}: "
                           f"{exc.strerror or exc}") from None
    try:
        for _line in sys.stdin:
            print(json.dumps(probe.report()), flush=True)
    finally:
        probe.close()
    return EXIT_OK


def register_node_step(steps: argparse._SubParsersAction) -> None:
    step = steps.add_parser("drill", help="a drill's steps on this node")
    actions = step.add_subparsers(title="steps", metavar="STEP", required=True)
    mark = actions.add_parser("mark", help="this node's next hand-over is a drill's")
    mark.add_argument("drill", type=_drill_id)
    mark.set_defaults(func=_mark)
    actions.add_parser("unmark", help="remove the mark").set_defaults(func=_unmark)
    probe = actions.add_parser("probe", help="answer and send probes through the floating IP "
                                             "until end of input; a report for each line read")
    probe.add_argument("--address", type=_address, required=True)
    probe.add_argument("--port", type=_port, required=True)
    probe.set_defaults(func=_probe)
