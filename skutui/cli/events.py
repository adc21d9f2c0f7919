"""``skutui events``: this node's agent, live: transitions, sync, replication, services."""

from __future__ import annotations

import argparse
import json
from datetime import datetime

from skutui.cli.common import EXIT_OK, CommandError, Once, print_json
from skutui.domain.paths import Paths
from skutui.system import control

# --- skutui events -------------------------------------------------------------------------

def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is negative; give 0 or more")
    return value


LEVEL_MARKS = {"info": "", "warning": "WARNING ", "error": "ERROR "}


def format_event(event: dict) -> str:
    """One line for a person: local time, node, kind, level (when not info), message."""
    try:
        moment = datetime.fromisoformat(event["time"].replace("Z", "+00:00")).astimezone()
        when = moment.strftime("%H:%M:%S")
    except (KeyError, ValueError):
        when = "--:--:--"
    mark = LEVEL_MARKS.get(event.get("level", "info"), "")
    return (f"{when} {event.get('node', '?'):<12} {event.get('kind', '?'):<11} "
            f"{mark}{event.get('message', '')}")


def format_state(state: dict) -> list[str]:
    peer = state.get("peer") or {}
    replication = state.get("replication") or {}
    sync = state.get("sync_status") or {}
    up = {True: "reachable", False: "unreachable", None: "not probed yet"}[peer.get("up")]
    lines = [f"node         {state.get('node')} ({state.get('role')}), agent pid "
             f"{state.get('pid')} since {state.get('started')}"]
    if peer:
        lines.append(f"peer         {peer.get('name')} ({peer.get('host')}) {up}"
                     + (f": {peer['error']}" if peer.get("error") else ""))
    lines.append("sync         " + ("watching " + ", ".join(sync.get("roots", []))
                                    if state.get("sync") else "not running (only the master "
                                    "syncs)"))
    if sync.get("error"):
        lines.append(f"sync error   {sync['error']}")
    lines.append(f"replication  {replication.get('pending', 0)} queued, last acknowledged "
                 f"#{replication.get('acked', 0)}, {replication.get('failed_total', 0)} failed")
    if replication.get("error"):
        lines.append(f"replication  {replication['error']}")
    for name, running in sorted((state.get("services") or {}).items()):
        lines.append(f"service      {name}: {'running' if running else 'NOT running'}")
    return lines


def _events(args: argparse.Namespace) -> int:
    path = Paths.from_env().control_socket
    try:
        if args.state:
            state = control.request(path, "state")["state"]
            if args.json:
                print_json(state)
            else:
                print("\n".join(format_state(state)))
            return EXIT_OK
        for event in control.stream_events(path, recent=args.recent):
            if args.json:
                print(json.dumps(event, sort_keys=True), flush=True)
            else:
                print(format_event(event), flush=True)
    except control.ControlError as exc:
        raise CommandError(str(exc)) from None
    except BrokenPipeError:
        return EXIT_OK
    raise CommandError("the skutui agent stopped; the event stream ended")




def register(commands: argparse._SubParsersAction, name: str, help: str) -> None:
    events = commands.add_parser(
        name, help=help,
        description="Print the agent's events as they happen (Ctrl-C to stop). With --json, "
                    "one JSON object a line with keys time, node, kind, level, message and "
                    "optionally data.")
    events.add_argument("--json", action="store_true", help="one JSON object per line")
    events.add_argument("--recent", action=Once, type=_count, default=10, metavar="N",
                        help="start with the last N events (default 10; 0 for only new ones)")
    events.add_argument("--state", action="store_true",
                        help="print the agent's current state and exit")
    events.set_defaults(func=_events)


