"""The first screen: what the console is doing while it reads this node's state."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import Static

from skutui.ui.screens.base import ConsoleScreen


class StartScreen(ConsoleScreen):
    SUB_TITLE = "Starting"
    BINDINGS = [Binding("r", "retry", "Try again", id="start.retry")]

    def __init__(self) -> None:
        super().__init__()
        self.failure: str | None = None

    def compose_body(self) -> ComposeResult:
        yield Static("Reading the cluster state of this node...", id="message", markup=False)

    def show_failure(self, message: str) -> None:
        """May be called while the screen is still being put up (the service can fail at
        once), so the message is drawn after the next refresh."""
        self.failure = message
        self.call_after_refresh(self._draw_failure, message)

    def _draw_failure(self, message: str) -> None:
        self.query_one("#message", Static).update(
            self.app.profile.text(f"Could not read the cluster state of this node:\n\n{message}")
        )
        self.say("Press r to try again, or q to quit.", kind="error")
        self.refresh_bindings()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "retry":
            return self.failure is not None
        return True

    def action_retry(self) -> None:
        self.failure = None
        self.query_one("#message", Static).update("Reading the cluster state of this node...")
        self.say("")
        self.refresh_bindings()
        self.app.open_home()
