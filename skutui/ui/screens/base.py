"""The frame every full screen shares: title bar, a scrolling body, one status line, key bar."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import Static
from textual.worker import Worker, WorkerState

from skutui.domain.settings import BY_KEY, SERVICES, SERVICES_ON_BOTH, SYNCED_PATHS, Context
from skutui.ui.errors import describe
from skutui.ui.forms import FormCheck
from skutui.ui.widgets.bars import KeyBar, TitleBar
from skutui.ui.widgets.fields import Field, Labelled, TextField

if TYPE_CHECKING:
    from textual import getters

    from skutui.ui.app import SkutuiApp


class ConsoleScreen(Screen):
    """A screen of the console. Subclasses fill the body; the status line says what happened."""

    if TYPE_CHECKING:
        app = getters.app(SkutuiApp)
        """The console's own app, for the type checker; at run time Textual's ``app`` as is."""

    def compose(self) -> ComposeResult:
        yield TitleBar()
        with VerticalScroll(id="body", can_focus=False):
            yield from self.compose_body()
        yield Static("", id="status", markup=False)
        yield KeyBar()

    def compose_body(self) -> ComposeResult:
        yield from ()

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """Any failure of this screen's work that a subclass did not take care of itself (it
        calls ``prevent_default``) becomes one readable message in a dialog."""
        if event.state == WorkerState.ERROR:
            self.app.show_error(describe(event.worker.error))

    def say(self, text: str, *, kind: str = "info") -> None:
        """Show one line of news: ``info``, ``success``, ``warning`` or ``error``."""
        status = self.query_one("#status", Static)
        status.update(self.app.profile.text(text))
        for name in ("info", "success", "warning", "error"):
            status.set_class(name == kind, f"-{name}")


class FormScreen(ConsoleScreen):
    """A screen with fields: Enter moves to the next field, problems show under their field."""

    def field_value(self, widget_id: str) -> Any:
        control: Any = self.query_one(f"#{widget_id}")  # a TextField, Choice or Checklist: each has a value
        return control.value

    def read_setting(self, check: FormCheck, key: str, context: Context | None = None) -> Any:
        """The value of the setting ``key``'s field (its id is the key), checked."""
        setting, value = BY_KEY[key], self.field_value(key)
        given = value.strip() if isinstance(value, str) else value
        return check(key, lambda: setting.check(given, context or Context()))

    def on_text_field_submitted(self, event: TextField.Submitted) -> None:
        event.stop()
        self.focus_next()

    def fields(self) -> dict[str, Labelled | Field]:
        """Every field of the form by its control's id, in the order they are shown."""
        found: dict[str, Labelled | Field] = {}
        for widget in self.query("#body *"):
            if isinstance(widget, Field):
                found[widget.control.id or ""] = widget
            elif isinstance(widget, Labelled) and widget.id and widget.id not in found:
                found[widget.id] = widget
        return found

    def show_errors(self, errors: dict[str, str]) -> None:
        first: Widget | None = None
        for field_id, field in self.fields().items():
            message = errors.get(field_id)
            field.show_error(self.app.profile.text(message) if message else None)
            if message and first is None:
                first = field.control if isinstance(field, Field) else field
        if first is not None:
            first.focus()
            self.say("Correct the fields that have a message under them, then apply again.", kind="error")
        else:
            self.say("")


SERVICE_KEYS = ("services_on_both", "services", "synced_paths")
"""The load balancer's settings, in the order both forms show them."""


def service_fields(on_both: str, services: str, synced: str) -> ComposeResult:
    """The load balancer's fields, the same on Configure and Edit: its services and the
    folders of their configuration, each comma separated."""
    yield TextField(on_both, placeholder="haproxy, ... (run on both nodes)", label=SERVICES_ON_BOTH.label,
                    id="services_on_both")
    yield TextField(services, placeholder="nginx, ... (run on the master only)", label=SERVICES.label,
                    id="services")
    yield TextField(synced, placeholder="/etc/haproxy, ... (copied to the backup)", label=SYNCED_PATHS.label,
                    id="synced_paths")
