"""Dialogs that wait for an answer: a yes/no confirmation and a notice to acknowledge.

Both are typed screens (`ModalScreen[bool]`, `ModalScreen[None]`) that a worker awaits with
`push_screen_wait`, so the flow reads top to bottom in one function.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from skutui.ui.widgets.bars import KeyBar
from skutui.ui.widgets.fields import ActionButton

if TYPE_CHECKING:
    from textual import getters

    from skutui.ui.app import SkutuiApp


def dialog_css(name: str, body_lines: int = 16) -> str:
    """The styles of a dialog screen class: a framed box in the middle of the screen."""
    return f"""
    {name} {{
        align: center middle;
        #dialog {{
            width: 72;
            max-width: 100%;
            height: auto;
            max-height: 100%;
            border: round $primary;
            background: $surface;
            padding: 0 1;
        }}
        &.-danger #dialog, &.-error #dialog {{
            border: round $error;
        }}
        #dialog-title {{
            text-style: bold;
            margin-bottom: 1;
        }}
        #dialog-body {{
            height: auto;
            max-height: {body_lines};
        }}
        #dialog-buttons {{
            height: auto;
            margin-top: 1;
            align-horizontal: right;
        }}
    }}
    """


class ConfirmDialog(ModalScreen[bool]):
    """Asks before something happens; the safe answer has the focus, so Enter never destroys."""

    DEFAULT_CSS = dialog_css("ConfirmDialog")

    if TYPE_CHECKING:
        app = getters.app(SkutuiApp)
        """The console's own app, for the type checker; at run time Textual's ``app`` as is."""

    BINDINGS = [
        Binding("y", "answer(True)", "Yes", id="confirm.yes"),
        Binding("n", "answer(False)", "No", id="confirm.no"),
        Binding("escape", "cancel", "Cancel", id="confirm.cancel"),
        Binding("left", "app.focus_previous", "Previous button", show=False, id="confirm.previous"),
        Binding("right", "app.focus_next", "Next button", show=False, id="confirm.next"),
    ]

    def __init__(self, title: str, body: str, *, yes: str = "Yes", no: str = "No", danger: bool = False):
        super().__init__(classes="-danger" if danger else "")
        self.title_text = title
        self.body = body
        self.yes = yes
        self.no = no

    def compose(self) -> ComposeResult:
        profile = self.app.profile
        with Vertical(id="dialog"):
            yield Static(profile.text(self.title_text), id="dialog-title", markup=False)
            with VerticalScroll(id="dialog-body"):
                yield Static(profile.text(self.body), markup=False)
            with Horizontal(id="dialog-buttons"):
                yield ActionButton(f"y  {self.yes}", id="yes")
                yield ActionButton(f"n  {self.no}", id="no")
        yield KeyBar()

    def on_mount(self) -> None:
        self.query_one("#no", ActionButton).focus()

    def on_action_button_pressed(self, event: ActionButton.Pressed) -> None:
        event.stop()
        self.dismiss(event.button.id == "yes")

    def action_answer(self, answer: bool) -> None:
        self.dismiss(answer)

    def action_cancel(self) -> None:
        """Esc is a "no" with a key of its own in the footer."""
        self.dismiss(False)


class NoticeDialog(ModalScreen[None]):
    """A result or an error the operator reads and acknowledges; it does not vanish by itself."""

    DEFAULT_CSS = dialog_css("NoticeDialog")

    if TYPE_CHECKING:
        app = getters.app(SkutuiApp)
        """The console's own app, for the type checker; at run time Textual's ``app`` as is."""

    BINDINGS = [
        Binding("enter", "close", "OK", id="notice.ok"),
        Binding("escape", "close", "Close", show=False, id="notice.close"),
    ]

    def __init__(self, title: str, lines: list[str] | str, *, error: bool = False):
        super().__init__(classes="-error" if error else "")
        self.title_text = title
        self.lines = [lines] if isinstance(lines, str) else list(lines)

    def compose(self) -> ComposeResult:
        profile = self.app.profile
        with Vertical(id="dialog"):
            yield Static(profile.text(self.title_text), id="dialog-title", markup=False)
            with VerticalScroll(id="dialog-body"):
                yield Static(profile.text("\n".join(self.lines)), markup=False)
            with Horizontal(id="dialog-buttons"):
                yield ActionButton("OK", id="ok")
        yield KeyBar()

    def on_mount(self) -> None:
        self.query_one("#ok", ActionButton).focus()

    def on_action_button_pressed(self, event: ActionButton.Pressed) -> None:
        event.stop()
        self.dismiss(None)

    def action_close(self) -> None:
        self.dismiss(None)
