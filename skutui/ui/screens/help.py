"""Help: the keys of the screen underneath, written from the same bindings as the footer."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.dom import DOMNode
from textual.screen import ModalScreen, Screen
from textual.widgets import Static

from skutui.ui.screens.dialogs import dialog_css
from skutui.ui.widgets.bars import KeyBar

MOVING_AROUND = [
    ("Tab / Shift+Tab", "next / previous field or button"),
    ("Up / Down", "move in a list or a table; change a ( ) choice"),
    ("Left / Right", "change a ( ) choice"),
    ("Space", "tick or untick a [ ] box"),
    ("Enter", "press the highlighted button; next field in a form"),
]


def key_names(app, binding: Binding) -> str:
    keys = [Binding(key, binding.action, key_display=binding.key_display) for key in binding.key.split(",")]
    return " / ".join(dict.fromkeys(app.get_key_display(key) for key in keys))


def binding_lines(app, screen: Screen) -> list[tuple[str, str, bool]]:
    """(keys, description, available now) for each described binding of the screen and the app."""
    lines: list[tuple[str, str, bool]] = []
    owners: list[DOMNode] = [screen, app]
    for owner in owners:
        for binding in type(owner).BINDINGS:
            if not isinstance(binding, Binding) or not binding.id or not binding.description:
                continue
            action = binding.action.split("(", 1)[0]
            available = bool(owner.check_action(action, ()))
            lines.append((key_names(app, binding), binding.description, available))
    return lines


class HelpScreen(ModalScreen[None]):
    DEFAULT_CSS = dialog_css("HelpScreen", body_lines=19)
    BINDINGS = [Binding("escape,f1", "close", "Close help", id="help.close")]

    def __init__(self, screen: Screen):
        super().__init__()
        self.about = screen

    def compose(self) -> ComposeResult:
        width = 18
        lines = [f"Keys on this screen ({self.about.sub_title or self.app.title})", ""]
        for keys, description, available in binding_lines(self.app, self.about):
            note = "" if available else "  (not available now)"
            lines.append(f"  {keys:<{width}}{description}{note}")
        lines += ["", "Moving around", ""]
        lines += [f"  {keys:<{width}}{description}" for keys, description in MOVING_AROUND]
        with Vertical(id="dialog"):
            yield Static("Help", id="dialog-title")
            with VerticalScroll(id="dialog-body"):
                yield Static("\n".join(lines), markup=False)
        yield KeyBar()

    def action_close(self) -> None:
        self.dismiss(None)
