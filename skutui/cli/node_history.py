"""``skutui node history``: the step that reads this node's records for the peer (``skutui
history`` on the other node, the failover recorder of its agent) or, with ``--put``, stores
the failover records the peer hands over. Kept apart from ``skutui history`` so that the
step, run over SSH once per call, loads only what it needs."""

from __future__ import annotations

import argparse
import json
import sys
import time

from skutui.cli.common import EXIT_BAD_INPUT, EXIT_OK, CommandError, Once
from skutui.domain import history
from skutui.domain.paths import Paths
from skutui.system.control import KINDS
from skutui.system.history import HistoryError, HistoryStore

ALL_KINDS = tuple(dict.fromkeys((*KINDS, *history.RECORD_KINDS)))
LIMIT_MAX = 100_000


def _since(text: str) -> float:
    try:
        return history.parse_since(text, time.time())
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _limit(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if not 1 <= value <= LIMIT_MAX:
        raise argparse.ArgumentTypeError(f"{text!r} is out of range; give 1 to {LIMIT_MAX}")
    return value


def add_filters(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--since", action=Once, type=_since, metavar="WHEN",
                        help=f"only records from then on: {history.SINCE_HELP}")
    parser.add_argument("--kind", action="append", choices=ALL_KINDS, default=None,
                        help="only records of this kind (repeat the option for more)")




def _node_history(args: argparse.Namespace) -> int:
    store = HistoryStore(Paths.from_env().history_file)
    try:
        if args.put:
            return _put(store)
        records = store.records(since=args.since, kinds=args.kind, limit=args.limit)
    except HistoryError as exc:
        raise CommandError(str(exc)) from None
    json.dump(records, sys.stdout)
    sys.stdout.write("\n")
    return EXIT_OK


def _put(store: HistoryStore) -> int:
    """Records the peer hands over (its failovers): only failovers and drills, checked."""
    try:
        records = json.load(sys.stdin)
        if not isinstance(records, list):
            raise ValueError("not a list")
        for record in records:
            if not isinstance(record, dict) or record.get("kind") not in history.RECORD_KINDS:
                raise ValueError("only failover and drill records are put")
            history.epoch(str(record["time"]))
            str(record["id"])
    except (ValueError, KeyError, TypeError) as exc:
        raise CommandError(f"the records on standard input are not valid: {exc}",
                           EXIT_BAD_INPUT) from None
    store.add(records)
    print(json.dumps([]))
    return EXIT_OK


def register_node_step(steps: argparse._SubParsersAction) -> None:
    step = steps.add_parser("history", help="print this node's history as JSON; with --put, "
                                            "store the failover records read on standard input")
    step.add_argument("--json", action="store_true", help="(the output is always JSON)")
    add_filters(step)
    step.add_argument("--limit", action=Once, type=_limit, metavar="N",
                      help="only the newest N records")
    step.add_argument("--put", action="store_true")
    step.set_defaults(func=_node_history)
