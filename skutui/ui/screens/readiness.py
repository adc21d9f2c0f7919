"""Standby readiness: whether each node could take over now, what it lacks, conntrackd's
counters and the last sync; kept live by both nodes' events. The backup comes first: it is
the one a failover needs."""

from __future__ import annotations

from datetime import datetime

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.widgets import Static
from textual.worker import Worker, WorkerState

from skutui.domain.model import Role, Status
from skutui.domain.readiness import Readiness
from skutui.ui.colours import status_style
from skutui.ui.errors import describe
from skutui.ui.screens.base import ConsoleScreen


class ReadinessRead(Message):
    def __init__(self, nodes: list[Readiness]) -> None:
        super().__init__()
        self.nodes = nodes


class ReadinessStale(Message):
    def can_replace(self, message: Message) -> bool:
        return isinstance(message, ReadinessStale)


def counters_lines(ready: Readiness) -> list[str]:
    """conntrackd's counters (``conntrackd -s``), short enough for 80 columns."""
    c = ready.counters
    if not c:
        return ["  conntrackd: no counters (it does not answer)"]
    return [f"  conntrackd caches: internal {c['internal']}, external {c['external']}",
            f"  conntrackd errors: lost {c['lost']}, malformed {c['malformed']}, send "
            f"{c['send_errors']}, receive {c['recv_errors']}, failed {c['failed']}"]


class ReadinessScreen(ConsoleScreen):
    SUB_TITLE = "Standby readiness"
    BINDINGS = [
        Binding("r", "refresh", "Refresh", id="readiness.refresh"),
        Binding("escape", "back", "Back", id="readiness.back"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.ready = False
        self.reader: Worker | None = None

    def compose_body(self) -> ComposeResult:
        yield Static("", id="readiness")

    def on_mount(self) -> None:
        self.say("Asking both nodes...")
        self.read_readiness()
        self.watch_events()

    @work(exclusive=True, group="read-readiness", exit_on_error=False)
    async def read_readiness(self) -> None:
        await self.app.preloaded()
        self.post_message(ReadinessRead(await self.app.service.readiness()))

    @work(exclusive=True, group="events", exit_on_error=False)
    async def watch_events(self) -> None:
        await self.app.preloaded()
        async for _event in self.app.service.events():
            self.post_message(ReadinessStale())

    def on_readiness_stale(self, message: ReadinessStale) -> None:
        self.read_readiness()

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.state == WorkerState.ERROR and event.worker.group == "read-readiness":
            event.prevent_default()
            self.ready = True
            self.say(f"Could not read the nodes: {describe(event.worker.error)}", kind="error")
        elif event.state == WorkerState.ERROR and event.worker.group == "events":
            event.prevent_default()

    def node_text(self, ready: Readiness) -> Text:
        profile = self.app.profile
        ok_style = status_style(Status.OK, profile.plain)
        bad_style = status_style(Status.FAILURE, profile.plain)
        text = Text()
        if ready.role is Role.MASTER:
            verdict, style = "master, holds the floating IPs", ok_style if ready.ready else bad_style
        elif ready.ready:
            verdict, style = "READY to take over", ok_style
        else:
            verdict, style = "NOT READY to take over", bad_style
        text.append(profile.text(f"{ready.hostname} ({ready.role.value}): "), "bold")
        text.append(verdict + "\n", style)
        passed = [check for check in ready.checks if check.ok]
        if ready.role is Role.MASTER and len(passed) == len(ready.checks):
            text.append("  [ok] ", ok_style)
            text.append("all checks: " + ", ".join(check.name for check in passed) + "\n")
        else:
            for check in ready.checks:
                text.append("  [ok] " if check.ok else "  [!!] ", ok_style if check.ok else bad_style)
                text.append(profile.text(check.detail) + "\n")
        for line in counters_lines(ready):
            text.append(line + "\n")
        if ready.last_sync:
            text.append(f"  last sync: {datetime.fromtimestamp(ready.last_sync):%Y-%m-%d %H:%M:%S}\n")
        text.rstrip()
        return text

    def on_readiness_read(self, message: ReadinessRead) -> None:
        nodes = sorted(message.nodes, key=lambda r: r.role is Role.MASTER)
        shown = (Text("\n\n").join(self.node_text(ready) for ready in nodes) if nodes
                 else Text("No cluster is configured on this node."))
        self.query_one("#readiness", Static).update(shown)
        standby = [r for r in nodes if r.role is not Role.MASTER]
        if len(message.nodes) < 2:
            self.say("The peer did not answer: only this node is shown.", kind="warning")
        elif standby and all(r.ready for r in standby):
            self.say("The backup could take over now. The page follows both nodes' events.",
                     kind="success")
        elif standby:
            self.say("The backup could not take over now: see what it lacks above.", kind="error")
        else:
            self.say("No node stands by.", kind="warning")
        self.ready = True

    def action_refresh(self) -> None:
        self.read_readiness()
        if not any(w.group == "events" and w.is_running for w in self.workers):
            self.watch_events()

    def action_back(self) -> None:
        self.app.pop_screen()
