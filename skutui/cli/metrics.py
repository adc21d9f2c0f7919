"""``skutui metrics``: this node's metrics as its agent writes them for node_exporter."""

from __future__ import annotations

import argparse
import sys

from skutui.cli.common import EXIT_OK, CommandError, print_json
from skutui.domain.paths import Paths
from skutui.system import control


def samples(text: str) -> list[dict]:
    """The text format's samples as {"name", "labels", "value"} (for ``--json``)."""
    found = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        head, _, value = line.rpartition(" ")
        name, _, rest = head.partition("{")
        labels = {}
        for pair in rest.rstrip("}").split('",') if rest else []:
            key, _, text_value = pair.partition("=")
            labels[key] = text_value.strip('"').replace('\\"', '"').replace("\\n", "\n").replace("\\\\", "\\")
        found.append({"name": name, "labels": labels, "value": float(value)})
    return found


def _metrics(args: argparse.Namespace) -> int:
    try:
        text = control.request(Paths.from_env().control_socket, "metrics")["text"]
    except control.ControlError as exc:
        raise CommandError(str(exc)) from None
    if args.json:
        print_json({"metrics": samples(text)})
    else:
        sys.stdout.write(text)
    return EXIT_OK


def register(commands: argparse._SubParsersAction, name: str, help: str) -> None:
    parser = commands.add_parser(
        name, help=help,
        description="Print this node's metrics in Prometheus's text format, as the agent keeps "
                    "them in cluster.toml's metrics_file for node_exporter's textfile collector.")
    parser.add_argument("--json", action="store_true",
                        help='{"metrics": [{"name", "labels", "value"}, ...]}')
    parser.set_defaults(func=_metrics)
