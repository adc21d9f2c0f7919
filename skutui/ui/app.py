"""The Textual application. It only draws and dispatches: the work happens behind the service.

The service is handed in (`SkutuiApp(service, profile)`): production passes the real one,
tests a fake, and nothing here knows which.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
from collections.abc import Sequence
from pathlib import PurePath
from typing import TYPE_CHECKING

from rich.text import Text
from textual import work
from textual.app import App
from textual.binding import Binding
from textual.content import Content
from textual.driver import Driver
from textual.screen import Screen
from textual.worker import Worker, WorkerState

from skutui.ui.errors import LOG_FILE, describe
from skutui.ui.profile import STYLES_DIR, ConsoleProfile
from skutui.ui.state import ClusterView, read_view

if TYPE_CHECKING:
    from skutui.cluster.api import ClusterService

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

HOME_WAIT = 0.5
"""Seconds the first frame waits for the home screen: reading this node's state takes a
few milliseconds, and a "Starting" frame drawn just before it is one more screenful down a
9600-baud line. Slower than that, the start screen says what the console is doing."""

PRELOAD_DELAY = 0.1
"""Seconds after the home screen before the slow imports start: they hold the interpreter
while they run, and the home screen's first frames come first."""


class SkutuiApp(App[None]):
    TITLE = "skutui"
    ENABLE_COMMAND_PALETTE = False
    BINDINGS = [
        Binding("f1", "help", "Help", id="app.help"),
        Binding("q", "quit", "Quit", id="app.quit"),
        Binding("ctrl+l", "redraw", "Redraw the screen", show=False, id="app.redraw"),
    ]

    def __init__(self, service: ClusterService, profile: ConsoleProfile, *, cursor_blink: bool = True,
                 preload: Sequence[str] = ()):
        """``cursor_blink=False`` keeps the screen still (reproducible screenshots); the plain
        profile never blinks, since each blink is a redraw on a 9600-baud line.
        ``preload``: modules the service imports on first use (netlink, SSH) that are slow
        to import; they are imported in a thread once the home screen is up, so neither the
        first frame nor a key waits for them."""
        self.profile = profile
        css: list[str | PurePath] = [STYLES_DIR / "skutui.tcss"]
        if profile.plain:
            css.append(STYLES_DIR / "console.tcss")
        super().__init__(css_path=css)
        self.service = service
        self.cursor_blink = cursor_blink and not profile.plain
        self.view: ClusterView | None = None
        self.busy = False
        """True while a change to the cluster runs; quitting then would leave it half done."""
        self.preload = tuple(preload)
        self._preloaded: asyncio.Future[None] | None = None
        self._drawn: asyncio.Event | None = None
        """Set once the first screen has been drawn: the slow imports wait for it."""
        self._load_error: BaseException | None = None
        if profile.plain:
            self.theme = "ansi-dark"
            self.animation_level = "none"
            # The plain profile's own pieces are read only when it is used.
            from skutui.ui.widgets import scrollbar

            scrollbar.install()

    def get_driver_class(self) -> type[Driver]:
        """On the plain profile, a driver that sends only the cells that changed: a serial
        line carries a status change in a few dozen bytes instead of whole screens."""
        if self.profile.plain and super().get_driver_class().__name__ == "LinuxDriver":
            # The plain profile's own pieces are read only when it is used.
            from skutui.ui.terminal import DiffDriver

            return DiffDriver
        return super().get_driver_class()

    async def on_load(self) -> None:
        """Read this node's state before anything is drawn, so that the first screen is the
        home screen itself: one composition and one frame, no "Starting" frame down a slow
        line for a read of milliseconds. Slower than that, or failing, the start screen
        comes first and says so."""
        self._drawn = asyncio.Event()
        if self.preload:
            self._preloaded = asyncio.ensure_future(self._preload(self._drawn))
        try:
            self.view = await asyncio.wait_for(asyncio.shield(read_view(self.service)), HOME_WAIT)
        except Exception as error:  # noqa: BLE001 - slow or failed: the start screen says which
            self._load_error = error

    def get_default_screen(self) -> Screen:
        if self.view is None:
            # A screen's module (and its styles) is read when the screen is first shown.
            from skutui.ui.screens.start import StartScreen

            return StartScreen()
        return self.home_screen(self.view)

    def home_screen(self, view: ClusterView) -> Screen:
        """Configure (no cluster) or Details."""
        self.title = f"skutui on {self.profile.text(view.hostname)}"
        if view.cluster is None:
            # A screen's module (and its styles) is read when the screen is first shown.
            from skutui.ui.screens.configure import ConfigureScreen

            return ConfigureScreen(view)
        # A screen's module (and its styles) is read when the screen is first shown.
        from skutui.ui.screens.details import DetailsScreen

        return DetailsScreen(view)

    def on_mount(self) -> None:
        if self._drawn is not None:
            self.call_after_refresh(self._drawn.set)
        error, self._load_error = self._load_error, None
        if isinstance(error, asyncio.TimeoutError):
            self.open_home()
        elif error is not None:
            self._show_failure(describe(error))

    async def _preload(self, drawn: asyncio.Event) -> None:
        await drawn.wait()
        await asyncio.sleep(PRELOAD_DELAY)
        await asyncio.to_thread(_import_all, self.preload)

    async def preloaded(self) -> None:
        """Wait for the slow imports that start once the home screen is drawn, so that the
        service, importing the same modules, never holds the event loop doing it."""
        drawn, preloading = self._drawn, self._preloaded
        if drawn is not None and preloading is not None:  # both made by on_load, or neither
            # A screen needs the service: the first frame is out, since a key was read after
            # it. Start now rather than wait for the refresh that would start them, which
            # never comes when that key pushed a screen before it.
            drawn.set()
            await asyncio.shield(preloading)

    @work(exclusive=True, group="home", exit_on_error=False)
    async def open_home(self) -> None:
        """Read this node's state again and show Configure or Details over the first screen,
        which Textual keeps at the bottom of the stack (the start screen, or the home screen
        the console opened with)."""
        view = await read_view(self.service)
        self.view = view
        while len(self.screen_stack) > 1:
            await self.pop_screen()
        await self.push_screen(self.home_screen(view))

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """The app's own work (reading this node's state) failing: on the start screen it
        says so there, with a retry; later it is a dialog over whatever is shown."""
        if event.state == WorkerState.ERROR:
            self._show_failure(describe(event.worker.error))

    def _show_failure(self, message: str) -> None:
        """On the start screen, there, beside its retry; later, a dialog over whatever is shown."""
        # A screen's module (and its styles) is read when the screen is first shown.
        from skutui.ui.screens.start import StartScreen

        if isinstance(self.screen, StartScreen):
            self.screen.show_failure(message)
        else:
            self.show_error(message)

    def show_error(self, message: str) -> None:
        # A screen's module (and its styles) is read when the screen is first shown.
        from skutui.ui.screens.dialogs import NoticeDialog

        self.push_screen(NoticeDialog("Error", message, error=True))

    def format_title(self, title: str, sub_title: str) -> Content:
        return Content(f"{title} - {sub_title}" if sub_title else title)

    def get_key_display(self, binding: Binding) -> str:
        if binding.key_display:
            return binding.key_display
        parts = binding.key.split("+")
        names = [KEY_NAMES.get(part, part.upper() if part[:1] == "f" and part[1:].isdigit() else part)
                 for part in parts]
        if len(names) > 1 and len(names[-1]) == 1:
            names[-1] = names[-1].upper()  # Ctrl+L, as the key is printed
        return "+".join(names)

    def action_redraw(self) -> None:
        """The whole screen again: kernel messages on a serial console write over it."""
        repaint = getattr(self._driver, "repaint", None)
        if repaint is not None:
            repaint()
        else:
            self.screen.refresh(layout=True)

    def action_help(self) -> None:
        # A screen's module (and its styles) is read when the screen is first shown.
        from skutui.ui.screens.help import HelpScreen

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


def _import_all(names: Sequence[str]) -> None:
    for name in names:
        try:
            importlib.import_module(name)
        except Exception:  # noqa: BLE001 - the service reports it when it needs the module
            log.warning("could not preload %s", name, exc_info=True)
