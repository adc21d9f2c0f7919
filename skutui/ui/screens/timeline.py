"""Timeline: what both nodes did, oldest first, failovers standing out; Enter shows a record.

It opens on what matters across time (failovers, drills, role changes, masters stepping
down, the peer coming and going); ``a`` shows every event of the last day instead. A new
failover, release, drill or role change read from either node's events reads the history
again.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.widgets import DataTable, Static
from textual.worker import Worker, WorkerState

from skutui.domain import history
from skutui.domain.model import Status
from skutui.domain.wire import Timeline
from skutui.ui.colours import status_style
from skutui.ui.errors import describe
from skutui.ui.screens.base import ConsoleScreen
from skutui.ui.screens.dialogs import NoticeDialog

IMPORTANT = ["failover", "drill", "release", "role", "peer"]
"""The kinds the timeline opens on: what a person looks back for."""
EVERYTHING_SINCE = 86400.0
"""``a`` shows every event of this many seconds back."""
SHOWN_MAX = 1000
"""Records shown at most (the newest): the history keeps many more."""
REREAD_ON = frozenset({"failover", "release", "drill", "role"})
COLUMNS = (("time", "When", 14), ("node", "Node", 0), ("kind", "What", 8), ("message", "Message", 0))
"""Key, heading, width (0: as wide as needed, the message taking what is left)."""
WIDTH = 80


def when(text: str) -> str:
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone()
    except ValueError:
        return text[:14]
    return moment.strftime("%m-%d %H:%M:%S")


class TimelineRead(Message):
    def __init__(self, timeline: Timeline) -> None:
        super().__init__()
        self.timeline = timeline


class TimelineStale(Message):
    """Read the history again; a newer one makes any queued older one obsolete."""

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, TimelineStale)


class TimelineScreen(ConsoleScreen):
    SUB_TITLE = "Timeline"
    DEFAULT_CSS = """
    TimelineScreen {
        #body {
            padding: 0;
        }
        #records {
            height: 1fr;
            min-height: 5;
        }
        #selected {
            height: auto;
            max-height: 4;
            padding: 0 1;
        }
    }
    """
    BINDINGS = [
        Binding("enter", "show", "Details", id="timeline.show"),
        Binding("a", "everything", "All events / important", id="timeline.everything"),
        Binding("r", "refresh", "Refresh", id="timeline.refresh"),
        Binding("escape", "back", "Back", id="timeline.back"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.everything = False
        self.records: list[dict[str, Any]] = []
        self.ready = False

    def compose_body(self) -> ComposeResult:
        yield DataTable(id="records", cursor_type="row", zebra_stripes=False)
        yield Static("", id="selected", markup=False)

    def on_mount(self) -> None:
        self.say("Reading both nodes' history...")
        self.read_history()
        self.watch_events()

    # Reading -----------------------------------------------------------------------------

    @work(exclusive=True, group="read-history", exit_on_error=False)
    async def read_history(self) -> None:
        await self.app.preloaded()
        if self.everything:
            timeline = await self.app.service.history(time.time() - EVERYTHING_SINCE, None)
        else:
            timeline = await self.app.service.history(None, IMPORTANT)
        self.post_message(TimelineRead(timeline))

    @work(exclusive=True, group="events", exit_on_error=False)
    async def watch_events(self) -> None:
        await self.app.preloaded()
        async for event in self.app.service.events():
            if event.kind in REREAD_ON:
                self.post_message(TimelineStale())

    def on_timeline_stale(self, message: TimelineStale) -> None:
        self.read_history()

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.state != WorkerState.ERROR:
            return
        event.prevent_default()
        if event.worker.group == "read-history":
            self.ready = True
            self.say(f"Could not read the history: {describe(event.worker.error)}", kind="error")

    # Showing -----------------------------------------------------------------------------

    def cells(self, record: dict[str, Any]) -> list[str | Text]:
        text = self.app.profile.text
        kind = str(record.get("kind", ""))
        style = ""
        if kind == history.FAILOVER:
            style = status_style(Status.FAILURE, self.app.profile.plain)
        elif record.get("level") in ("warning", "error"):
            style = "bold"
        shown_kind = kind.upper() if kind in history.RECORD_KINDS else kind
        return [when(str(record.get("time", ""))), text(str(record.get("node", ""))),
                Text(shown_kind, style=style), text(str(record.get("message", "")))]

    def on_timeline_read(self, message: TimelineRead) -> None:
        timeline = message.timeline
        self.records = timeline.records[-SHOWN_MAX:]
        table = self.query_one(DataTable)
        table.clear(columns=True)
        nodes = max([len("Node"), *(len(str(r.get("node", ""))) for r in self.records)])
        widths = {"node": nodes}
        fixed = sum(width or widths.get(key, 0) for key, _, width in COLUMNS[:-1])
        width = self.app.size.width or WIDTH
        widths["message"] = max(width - fixed - 2 * len(COLUMNS) - 1, 20)
        for key, label, width in COLUMNS:
            table.add_column(label, key=key, width=width or widths[key])
        for index, record in enumerate(self.records):
            table.add_row(*self.cells(record), key=str(index))
        if self.records:
            table.move_cursor(row=len(self.records) - 1)
        self.ready = True
        what = "every event of the last day" if self.everything else "failovers, drills and role changes"
        missing = "; ".join(f"{node}'s history is not shown: {why}"
                            for node, why in timeline.missing.items())
        if missing:
            self.say(self.app.profile.text(missing), kind="warning")
        elif self.records:
            failovers = sum(1 for r in self.records if r.get("kind") == history.FAILOVER)
            self.say(f"{len(self.records)} records ({what}), {failovers} failover(s). Enter "
                     "shows the highlighted one; a switches to "
                     + ("the important ones." if self.everything else "every event."))
        else:
            self.say("Nothing recorded yet." if not self.everything else
                     "Nothing recorded in the last day.")
        self.show_selected()

    def selected(self) -> dict[str, Any] | None:
        table = self.query_one(DataTable)
        if not self.records or not 0 <= table.cursor_row < len(self.records):
            return None
        return self.records[table.cursor_row]

    def show_selected(self) -> None:
        record = self.selected()
        line = "" if record is None else f"{record.get('node')}: {record.get('message')}"
        self.query_one("#selected", Static).update(self.app.profile.text(line))

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self.show_selected()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        self.action_show()

    # Actions -----------------------------------------------------------------------------

    def action_show(self) -> None:
        record = self.selected()
        if record is None:
            return
        self.app.push_screen(NoticeDialog(*record_lines(record)))

    def action_everything(self) -> None:
        self.everything = not self.everything
        self.say("Reading both nodes' history...")
        self.read_history()

    def action_refresh(self) -> None:
        self.read_history()
        if not any(w.group == "events" and w.is_running for w in self.workers):
            self.watch_events()

    def action_back(self) -> None:
        self.app.pop_screen()


def record_lines(record: dict[str, Any]) -> tuple[str, list[str]]:
    """A record's dialog: its title, and every field a person reads."""
    kind = str(record.get("kind", ""))
    data = record.get("data") or {}
    title = f"{kind.capitalize()} on {record.get('node')} at {when(str(record.get('time', '')))}"
    if kind == history.FAILOVER:
        return title, [f"{label + ':':<19}{value}" for label, value in history.failover_lines(data)]
    lines = [str(record.get("message", ""))]
    details = {key: value for key, value in data.items() if value not in (None, [], {}, "")}
    if details:
        lines.append("")
        lines += [f"{key}: {value}" for key, value in sorted(details.items())]
    return title, lines
