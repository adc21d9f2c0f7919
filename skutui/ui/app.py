"""The Textual application. It only draws and dispatches: the work happens behind the service.

The service is handed in (`SkutuiApp(service, profile)`): production passes the real one,
tests a fake, and nothing here knows which.
"""

from __future__ import annotations

import logging

from rich.text import Text
from textual import work
from textual.app import App
from textual.binding import Binding
from textual.content import Content
from textual.screen import Screen
from textual.worker import Worker, WorkerState

from skutui.core.api import ClusterService
from skutui.ui.errors import LOG_FILE, describe
from skutui.ui.profile import ConsoleProfile, styles_dir
from skutui.ui.screens.configure import ConfigureScreen
from skutui.ui.screens.details import DetailsScreen
from skutui.ui.screens.dialogs import NoticeDialog
from skutui.ui.screens.help import HelpScreen
from skutui.ui.screens.start import StartScreen
from skutui.ui.state import ClusterView, read_view
from skutui.ui.widgets import scrollbar

log = logging.getLogger("skutui.ui")

KEY_NAMES = {
    "escape": "Esc",
    "enter": "Enter",
    "tab": "Tab",
    "space": "Space",
    "up": "Up",
    "down": "Down",
    "left": "Left",
    "right": "Right",
    "pageup": "PgUp",
    "pagedown": "PgDn",
    "home": "Home",
    "end": "End",
    "delete": "Del",
    "backspace": "Backspace",
    "ctrl": "Ctrl",
    "shift": "Shift",
}
"""Key names as a keyboard prints them; the same in both profiles, ASCII in both."""

scrollbar.install()


class SkutuiApp(App[None]):
    TITLE = "skutui"
    ENABLE_COMMAND_PALETTE = False
    BINDINGS = [
        Binding("f1", "help", "Help", id="app.help"),
        Binding("q", "quit", "Quit", id="app.quit"),
    ]

    def __init__(self, service: ClusterService, profile: ConsoleProfile, *, cursor_blink: bool = True):
        """``cursor_blink=False`` keeps the screen still (reproducible screenshots); the plain
        profile never blinks, since each blink is a redraw on a 9600-baud line."""
        self.profile = profile
        self.CSS_PATH = [styles_dir() / "skutui.tcss"] + (
            [styles_dir() / "console.tcss"] if profile.plain else []
        )
        super().__init__()
        self.service = service
        self.cursor_blink = cursor_blink and not profile.plain
        self.view: ClusterView | None = None
        self.busy = False
        """True while a change to the cluster runs; quitting then would leave it half done."""
        if profile.plain:
            self.theme = "ansi-dark"
            self.animation_level = "none"

    def get_default_screen(self) -> Screen:
        return StartScreen()

    def on_mount(self) -> None:
        self.open_home()

    @work(exclusive=True, group="home", exit_on_error=False)
    async def open_home(self) -> None:
        """Read this node's state and show Configure (no cluster) or Details, on a fresh stack."""
        view = await read_view(self.service)
        if view.cluster is None:
            home: Screen = ConfigureScreen(view, await self.service.cluster_candidates())
        else:
            home = DetailsScreen(view)
        self.view = view
        self.title = f"skutui on {self.profile.text(view.hostname)}"
        while len(self.screen_stack) > 1:
            await self.pop_screen()
        await self.push_screen(home)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """The app's own work (reading this node's state) failing: on the start screen it
        says so there, with a retry; later it is a dialog over whatever is shown."""
        if event.state != WorkerState.ERROR:
            return
        message = describe(event.worker.error)
        start = self.screen_stack[0]
        if len(self.screen_stack) == 1 and isinstance(start, StartScreen):
            start.show_failure(message)
        else:
            self.show_error(message)

    def show_error(self, message: str) -> None:
        self.push_screen(NoticeDialog("Error", message, error=True))

    def format_title(self, title: str, sub_title: str) -> Content:
        return Content(f"{title} - {sub_title}" if sub_title else title)

    def get_key_display(self, binding: Binding) -> str:
        if binding.key_display:
            return binding.key_display
        parts = binding.key.split("+")
        names = [KEY_NAMES.get(part, part.upper() if part[:1] == "f" and part[1:].isdigit() else part) for part in parts]
        return "+".join(names)

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen(self.screen))

    async def action_quit(self) -> None:
        if self.busy:
            self.show_error("A change to the cluster is in progress; wait for it to finish, then quit.")
            return
        self.exit()

    def _fatal_error(self) -> None:
        """A bug must not paint a traceback on the operator's console: one line here, the
        traceback in the log."""
        log.error("the console stopped on an unexpected error", exc_info=True)
        self.bell()
        self._exit_renderables.append(
            Text(f"skutui stopped on an unexpected error; the details are in {LOG_FILE}.")
        )
        self._close_messages_no_wait()
