"""The Textual application. It only draws and dispatches: the work happens in the core."""

from __future__ import annotations

from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.widgets import Footer, Header, Static

from skutui import __version__
from skutui.ui.profile import ConsoleProfile, styles_dir


class SkutuiApp(App[None]):
    TITLE = "skutui"
    SUB_TITLE = "Cluster"
    BINDINGS = [Binding("q", "quit", "Quit", id="quit")]

    def __init__(self, profile: ConsoleProfile, hostname: str, configured: bool):
        self.profile = profile
        self.CSS_PATH = [styles_dir() / "skutui.tcss"] + (
            [styles_dir() / "console.tcss"] if profile.plain else []
        )
        super().__init__()
        self.hostname = hostname
        self.configured = configured
        if profile.plain:
            self.theme = "ansi-dark"
            self.animation_level = "none"

    def compose(self) -> ComposeResult:
        yield Header(show_clock=False, icon="*")
        state = "a cluster is configured" if self.configured else "no cluster is configured yet"
        yield Static(
            f"skutui {__version__} on {self.hostname}: {state}.\n\n"
            "Configure, Details and Nodes screens are not part of this build yet; "
            "use `skutui --help` for the command line.",
            id="placeholder",
        )
        yield Footer()
