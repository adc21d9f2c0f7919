"""Long work on the cluster, shown as it happens: one plain line per step, never a spinner.

A spinner redraws many times a second, too much for a 9600-baud line, and says nothing;
a line per step costs a few bytes and tells the operator where things stand.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import ModalScreen
from textual.widgets import RichLog
from textual.worker import Worker, WorkerState

from skutui.domain.model import Status
from skutui.domain.wire import CheckResult
from skutui.ui.colours import status_style
from skutui.ui.errors import describe
from skutui.ui.messages import StepLogged
from skutui.ui.screens.base import ConsoleScreen

Job = Callable[["StepsScreen"], Awaitable["str | None"]]
"""Does the work, writing lines as it goes; returns the summary on success, None when it
stopped on purpose (the operator declined, a check failed) after saying why."""

RUNNING, SUCCEEDED, STOPPED, FAILED = "running", "succeeded", "stopped", "failed"


class StepsScreen(ConsoleScreen):
    DEFAULT_CSS = """
    StepsScreen #steps {
        height: 1fr;
        overflow-y: auto;
    }
    """
    BINDINGS = [
        Binding("enter", "finish", "Continue", id="steps.continue"),
        Binding("escape", "back", "Back", id="steps.back"),
    ]

    def __init__(self, title: str, job: Job, *, on_success: Callable[[], Any], back_hint: str = "go back"):
        super().__init__()
        self.sub_title = title
        self.job = job
        self.on_success = on_success
        self.back_hint = back_hint
        self.outcome = RUNNING

    def compose_body(self) -> ComposeResult:
        yield RichLog(id="steps", wrap=True, min_width=20, markup=False, highlight=False)

    def on_mount(self) -> None:
        # Kept on its last line as lines come, whatever a dialog on top did meanwhile,
        # until the operator scrolls up.
        self.query_one("#steps", RichLog).anchor()
        self.say("Working: each step appears above as it happens; please wait.")
        self.run_job()

    @property
    def plain(self) -> bool:
        return self.app.profile.plain

    # What a job calls ------------------------------------------------------------------

    def line(self, text: str, style: str = "") -> None:
        """Write one step. Safe from the service's own threads: it only posts a message."""
        self.post_message(StepLogged(text, style))

    def progress(self, text: str) -> None:
        self.line(text)

    def check(self, result: CheckResult) -> None:
        mark = "PASS" if result.passed else "FAIL"
        style = status_style(Status.OK if result.passed else Status.FAILURE, self.plain)
        self.post_message(StepLogged(f"{mark}  {result.name}: {result.detail}", style))
        if not result.passed and result.hint:
            self.line(f"      {result.hint}")

    async def confirm(self, dialog: ModalScreen[bool]) -> bool:
        answer = await self.app.push_screen_wait(dialog)
        return bool(answer)

    # The screen ------------------------------------------------------------------------

    def on_step_logged(self, message: StepLogged) -> None:
        text = Text(self.app.profile.text(message.line), style=message.style)
        self.query_one("#steps", RichLog).write(text)

    @work(exclusive=True, group="change", exit_on_error=False)
    async def run_job(self) -> str | None:
        self.app.busy = True
        try:
            await self.app.preloaded()
            return await self.job(self)
        finally:
            self.app.busy = False

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.worker.group != "change":
            return
        event.prevent_default()
        if event.state == WorkerState.SUCCESS:
            summary = event.worker.result
            if summary:
                self.outcome = SUCCEEDED
                self.line(summary, status_style(Status.OK, self.plain))
                self.say(f"{summary} Press Enter to continue.", kind="success")
            else:
                self.outcome = STOPPED
                self.say(f"Nothing was changed. Press Esc to {self.back_hint}.", kind="warning")
        elif event.state == WorkerState.ERROR:
            self.outcome = FAILED
            message = describe(event.worker.error)
            self.line(f"Failed: {message}", status_style(Status.FAILURE, self.plain))
            self.say(f"Failed: {message} Press Esc to {self.back_hint}.", kind="error")
        elif event.state == WorkerState.CANCELLED:
            self.outcome = FAILED
        self.refresh_bindings()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Keys that cannot be used now are left out of the footer: a dimmed key does not
        show on every console."""
        if action == "finish":
            return self.outcome == SUCCEEDED
        if action == "back":
            return self.outcome != RUNNING
        return True

    def action_finish(self) -> None:
        self.on_success()

    def action_back(self) -> None:
        if self.outcome == SUCCEEDED:
            self.on_success()
        else:
            self.app.pop_screen()
