"""Synced files: do both nodes hold the same ones? What differs, which copy is newer, and on
the master a way to send its copy of each."""

from __future__ import annotations

from datetime import datetime

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.widgets import DataTable, Static
from textual.worker import Worker, WorkerState

from skutui.domain.drift import Drift
from skutui.ui.errors import describe
from skutui.ui.screens.base import ConsoleScreen
from skutui.ui.screens.dialogs import ConfirmDialog
from skutui.ui.screens.steps import StepsScreen
from skutui.ui.state import ClusterView

WIDTH = 80
WHAT_WIDTH = 16
NEWER_WIDTH = 10


class DriftRead(Message):
    def __init__(self, drift: Drift) -> None:
        super().__init__()
        self.drift = drift


class FilesScreen(ConsoleScreen):
    SUB_TITLE = "Synced files"
    DEFAULT_CSS = """
    FilesScreen {
        #body {
            padding: 0;
        }
        #summary {
            padding: 0 1;
            margin-bottom: 1;
        }
        #differences {
            height: 1fr;
        }
    }
    """
    BINDINGS = [
        Binding("p", "push", "Push the master's copy", id="files.push"),
        Binding("r", "verify", "Compare again", id="files.verify"),
        Binding("escape", "back", "Back", id="files.back"),
    ]

    def __init__(self, view: ClusterView) -> None:
        super().__init__()
        self.view = view
        self.drift: Drift | None = None
        self.ready = False

    def compose_body(self) -> ComposeResult:
        yield Static("", id="summary", markup=False)
        yield DataTable(id="differences", cursor_type="row", zebra_stripes=False)

    def on_mount(self) -> None:
        self.query_one(DataTable).display = False
        self.action_verify()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "push":
            return self.view.is_master and bool(self.drift and self.drift.differences)
        return True

    @work(exclusive=True, group="verify", exit_on_error=False)
    async def action_verify(self) -> None:
        self.say("Comparing every synced file on both nodes (content, mode, owner)...")
        await self.app.preloaded()
        self.post_message(DriftRead(await self.app.service.verify_sync()))

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.worker.group == "verify" and event.state == WorkerState.ERROR:
            event.prevent_default()
            self.ready = True
            self.say(f"Could not compare the files: {describe(event.worker.error)}", kind="error")

    def on_drift_read(self, message: DriftRead) -> None:
        drift = self.drift = message.drift
        text = self.app.profile.text
        checked = datetime.fromtimestamp(drift.checked).strftime("%H:%M:%S")
        roots = ", ".join(drift.roots)
        table = self.query_one(DataTable)
        table.clear(columns=True)
        table.display = bool(drift.differences)
        summary = self.query_one("#summary", Static)
        if not drift.differences:
            summary.update(text(f"{drift.here} and {drift.there} hold the same files under "
                                f"{roots} (compared at {checked})."))
            self.say("In step: nothing to push. r compares again.", kind="success")
        else:
            summary.update(text(f"{len(drift.differences)} file(s) under {roots} differ between "
                                f"{drift.here} and {drift.there} (compared at {checked}):"))
            path_width = WIDTH - WHAT_WIDTH - NEWER_WIDTH - 7
            table.add_column("Path", key="path", width=path_width)
            table.add_column("What differs", key="what", width=WHAT_WIDTH)
            table.add_column("Newer", key="newer", width=NEWER_WIDTH)
            for index, difference in enumerate(drift.differences):
                path = difference.path
                if len(path) > path_width:
                    path = "..." + path[-(path_width - 3):]
                table.add_row(text(path), text(", ".join(difference.what)),
                              text(difference.newer or "-"), key=str(index))
            if self.view.is_master:
                self.say(f"p sends {drift.here}'s copy of each to {drift.there}; r compares again.",
                         kind="warning")
            else:
                self.say(f"Push the master's copy from the master {drift.master} (its console, or "
                         "`skutui sync push` there).", kind="warning")
        self.ready = True
        self.refresh_bindings()

    @work(exclusive=True, group="push", exit_on_error=False)
    async def action_push(self) -> None:
        drift = self.drift
        if drift is None or not drift.differences or not self.view.is_master:
            return
        confirmed = await self.app.push_screen_wait(ConfirmDialog(
            f"Push {drift.here}'s copy to {drift.there}?",
            f"{len(drift.differences)} file(s) on {drift.there} are replaced by {drift.here}'s "
            f"copy (or removed, where {drift.here} has none). A change made by hand on "
            f"{drift.there} is lost.",
            yes="Push", no="Cancel", danger=True))
        if not confirmed:
            self.say("Cancelled: nothing was pushed.")
            return
        service = self.app.service

        async def push(steps: StepsScreen) -> str:
            after = await service.push_sync(steps.progress)
            if after.differences:
                for difference in after.differences:
                    steps.line(f"  still differs: {difference.describe()}")
                return f"{len(after.differences)} file(s) still differ."
            return f"{after.here} and {after.there} hold the same files."

        await self.app.push_screen(StepsScreen("Pushing the master's copy", push,
                                               on_success=self._pushed))

    def _pushed(self) -> None:
        self.app.pop_screen()
        self.action_verify()

    def action_back(self) -> None:
        self.app.pop_screen()
