"""Drives the real console inside a lab node, as an operator would, and prints a verdict.

Run inside node-a (the console's service acts on the machine it runs on)::

    python tests/lab/console_driver.py < request.json

The request is ``{"local_ip", "remote_ip", "password", "floating_ip", "check_interval",
"host_key"}`` on standard input (the password never appears in an argument). The console
runs headless under Textual's pilot with the real service: fill the Configure form, accept
the host key (after checking it is the expected one), wait for pre-flight, confirm the erase,
wait for the creation, open Nodes and wait until both rows show OK; then put this node in
maintenance from the table and wait until the table and the event log show both agents'
side of it. The last line printed is ``VERDICT {json}``: ``ok``, ``error``, the time each
milestone was reached, the steps log, the node rows, the event log and screens as text.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
import traceback

from skutui.cluster.operations import build_service
from skutui.domain.model import Status
from skutui.domain.paths import Paths
from skutui.ui.app import SkutuiApp
from skutui.ui.profile import ConsoleProfile
from tests.ui.snapshot_apps.common import screen_name, screen_text, tap, until

PREFLIGHT_TIMEOUT = 30.0
CREATE_TIMEOUT = 60.0
NODES_TIMEOUT = 20.0


async def drive(request: dict, verdict: dict) -> None:
    started = time.monotonic()

    def reached(name: str) -> None:
        verdict["milestones"].append([name, round(time.monotonic() - started, 3)])

    app = SkutuiApp(build_service(Paths()), ConsoleProfile(plain=False), cursor_blink=False)
    app.animation_level = "none"
    async with app.run_test(size=(120, 40)) as pilot:

        async def on_screen(name: str, timeout: float) -> None:
            await until(pilot, lambda: screen_name(pilot) == name, name, timeout)

        async def shows(text: str, timeout: float) -> None:
            await until(pilot, lambda: text in screen_text(app), repr(text), timeout)

        await on_screen("ConfigureScreen", 10)
        reached("configure form")
        screen = app.screen
        local = screen.query_one("#local_ip")
        # The form may be drawn before this node's addresses are read.
        await until(pilot, lambda: getattr(screen, "ready", True) and bool(local.options),
                    "this node's addresses in the form", 10)
        reached("addresses offered")
        for _ in local.options:
            if local.value == request["local_ip"]:
                break
            local.focus()
            await tap(pilot, "down")
        verdict["local_ip"] = local.value
        for field, text in (("remote_ip", request["remote_ip"]),
                            ("password", request["password"]),
                            ("confirmation", request["password"]),
                            ("floating_ips", request["floating_ip"]),
                            ("check_interval", request["check_interval"])):
            widget = screen.query_one(f"#{field}")
            widget.focus()
            await tap(pilot, "end", *["backspace"] * len(widget.value), *text)
            assert widget.value == text, f"{field} holds what was typed"
        await tap(pilot, "f2")

        await on_screen("ConfirmDialog", 10)
        shown = screen_text(app)
        verdict["host_key_shown"] = request["host_key"] in shown
        assert verdict["host_key_shown"], "the dialog shows the peer's real host key:\n" + shown
        reached("host key dialog")
        await tap(pilot, "y")

        def steps_log() -> str:
            try:
                return _steps_text(app)
            except Exception:  # noqa: BLE001 - not drawn yet
                return ""

        await until(pilot, lambda: "ERASE the configuration" in screen_text(app)
                    or _outcome(app) != "running", "the erase question", PREFLIGHT_TIMEOUT)
        verdict["preflight_log"] = steps_log()
        assert _outcome(app) == "running", "pre-flight stopped:\n" + steps_log()
        reached("pre-flight passed, erase question")
        await tap(pilot, "y")

        await until(pilot, lambda: _outcome(app) != "running", "the creation to end",
                    CREATE_TIMEOUT)
        verdict["outcome"] = _outcome(app)
        verdict["log"] = steps_log()
        assert verdict["outcome"] == "succeeded", "create did not succeed:\n" + steps_log()
        reached("cluster created")
        await tap(pilot, "enter")
        await on_screen("DetailsScreen", 10)
        verdict["details"] = screen_text(app)
        reached("details screen")
        await tap(pilot, "n")
        await on_screen("NodesScreen", 10)
        nodes = app.screen

        def rows() -> dict:
            return {key: {"role": row.role.value, "hostname": row.hostname, "ip": row.ip,
                          "status": row.status.value, "message": row.message}
                    for key, row in nodes.rows.items()}

        def all_ok() -> bool:
            return (len(nodes.rows) == 2
                    and all(row.status is Status.OK for row in nodes.rows.values())
                    and screen_text(app).count(" OK ") >= 2)

        try:
            await until(pilot, all_ok, "both rows OK", NODES_TIMEOUT)
        finally:
            verdict["rows"] = rows()
            verdict["nodes_screen"] = screen_text(app)
        reached("both nodes OK")

        # Maintenance for this node from the table: the change reaches the screen through
        # the events of both agents (this node's socket, the peer's stream over SSH).
        row = nodes.selected_row()
        assert row is not None and row.node == "local", "the cursor starts on this node"
        await tap(pilot, "m")
        await on_screen("ConfirmDialog", 10)
        verdict["maintenance_question"] = screen_text(app)
        await tap(pilot, "y")
        asked = time.monotonic()

        def swapped() -> bool:
            now = rows()
            return (now.get("local", {}).get("role") == "maintenance"
                    and now.get("remote", {}).get("role") == "master"
                    and now["remote"]["status"] == "ok")

        try:
            await until(pilot, swapped, "node-a in maintenance, node-b master", NODES_TIMEOUT)
        finally:
            verdict["rows_after_maintenance"] = rows()
        verdict["maintenance_shown_after"] = round(time.monotonic() - asked, 3)
        reached("maintenance shown")

        def event_lines() -> str:
            return "\n".join(strip.text for strip in nodes.query_one("#events").lines)

        wanted = ("node-a: keepalived moved this node to FAULT",
                  "node-b: keepalived moved this node to MASTER")
        try:
            await until(pilot, lambda: all(w in " ".join(event_lines().split()) for w in wanted),
                        "both agents' events in the log", NODES_TIMEOUT)
        finally:
            verdict["events_log"] = event_lines()
        reached("both agents' events shown")
        await tap(pilot, "q")


def _outcome(app: SkutuiApp) -> str:
    steps = next((s for s in app.screen_stack if type(s).__name__ == "StepsScreen"), None)
    return getattr(steps, "outcome", "running")


def _steps_text(app: SkutuiApp) -> str:
    steps = next(s for s in app.screen_stack if type(s).__name__ == "StepsScreen")
    return "\n".join(strip.text for strip in steps.query_one("#steps").lines)


def main() -> int:
    request = json.load(sys.stdin)
    verdict: dict = {"ok": False, "error": None, "milestones": []}
    try:
        asyncio.run(drive(request, verdict))
        verdict["ok"] = True
    except BaseException as exc:  # noqa: BLE001 - the verdict says what went wrong
        verdict["error"] = "".join(traceback.format_exception_only(exc)).strip()
        verdict["traceback"] = traceback.format_exc()
    print("VERDICT " + json.dumps(verdict), flush=True)
    return 0 if verdict["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
