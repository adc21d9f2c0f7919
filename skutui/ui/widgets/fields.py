"""Form controls whose state reads in plain ASCII: `( )`/`(*)`, `[ ]`/`[X]`, `*` for secrets.

The stock glyphs (half blocks, bullets) do not exist on a VT100 or a serial line, and a
state shown only by colour is lost on a 16-colour console at 3 a.m.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Generic, TypeVar

from rich.segment import Segment
from rich.text import Text
from textual import events
from textual.app import ComposeResult
from textual.binding import Binding
from textual.content import Content
from textual.message import Message
from textual.reactive import reactive
from textual.strip import Strip
from textual.widget import Widget
from textual.widgets import Button, Input, SelectionList, Static
from textual.widgets.option_list import OptionDoesNotExist

T = TypeVar("T", bound=Hashable)

LABEL_WIDTH = 20
"""Columns taken by a field's label; the error line is indented by the same amount."""


class TextField(Input):
    """A one-line input without a frame, so a whole form fits on 24 lines."""

    def __init__(self, value: str = "", *, placeholder: str = "", id: str | None = None, **kwargs):
        super().__init__(value, placeholder=placeholder, id=id, compact=True, **kwargs)

    def on_mount(self) -> None:
        self.cursor_blink = getattr(self.app, "cursor_blink", True)


class SecretField(TextField):
    """A password input that shows one '*' per character, which every terminal can draw."""

    def __init__(self, *, placeholder: str = "", id: str | None = None):
        super().__init__(placeholder=placeholder, id=id, password=True)

    @property
    def _value(self) -> Text:
        return Text("*" * len(self.value), no_wrap=True, overflow="ignore", end="")


class Choice(Widget, Generic[T], can_focus=True):
    """One of a few options, each shown `(*)` chosen or `( )` not.

    The arrows change the choice directly, so what the operator sees highlighted is what
    will be applied; there is no separate "press to select" step to forget.
    """

    BINDINGS = [
        Binding("left,up", "previous", "Previous option", show=False, id="choice.previous"),
        Binding("right,down", "next", "Next option", show=False, id="choice.next"),
    ]

    value: reactive[T | None] = reactive(None, init=False)

    class Changed(Message):
        def __init__(self, choice: Choice, value: Hashable | None) -> None:
            super().__init__()
            self.choice = choice
            self.value = value

        @property
        def control(self) -> Choice:
            return self.choice

    SEPARATOR = "   "

    def __init__(
        self,
        options: Sequence[tuple[str, T]],
        value: T | None = None,
        *,
        vertical: bool = False,
        id: str | None = None,
        disabled: bool = False,
        placeholder: str = "",
    ):
        """``placeholder``: shown while there are no options yet."""
        super().__init__(id=id, disabled=disabled)
        self.options = list(options)
        self.vertical = vertical
        self.placeholder = placeholder
        self.set_reactive(Choice.value, value)

    def set_options(self, options: Sequence[tuple[str, T]], value: T | None = None) -> None:
        """Options that were not known when the form was drawn."""
        self.options = list(options)
        self.set_reactive(Choice.value, value)
        self.refresh(layout=True)

    def _index(self) -> int | None:
        for index, (_, value) in enumerate(self.options):
            if value == self.value:
                return index
        return None

    def _move(self, step: int) -> None:
        if not self.options:
            return
        index = self._index()
        if index is None:
            index = 0 if step > 0 else len(self.options) - 1
        else:
            index = (index + step) % len(self.options)
        self.value = self.options[index][1]

    def action_previous(self) -> None:
        self._move(-1)

    def action_next(self) -> None:
        self._move(1)

    def watch_value(self, value: T | None) -> None:
        self.post_message(self.Changed(self, value))

    def _option_text(self, label: str, value: T) -> str:
        return f"{'(*)' if value == self.value else '( )'} {label}"

    def render(self) -> Content:
        if not self.options:
            return Content(self.placeholder)
        parts: list[Content] = []
        for label, value in self.options:
            text = self._option_text(label, value)
            parts.append(Content.styled(text, "bold") if value == self.value else Content(text))
        joiner = Content("\n" if self.vertical else self.SEPARATOR)
        return joiner.join(parts)

    def on_click(self, event: events.Click) -> None:
        if self.vertical:
            if 0 <= event.y < len(self.options):
                self.value = self.options[event.y][1]
            return
        start = 0
        for label, value in self.options:
            end = start + len(self._option_text(label, value))
            if start <= event.x < end:
                self.value = value
                return
            start = end + len(self.SEPARATOR)


class Checklist(SelectionList[T]):
    """Several options, each shown `[X]` chosen or `[ ]` not; Space or Enter changes one."""

    MARK_WIDTH = 4

    def _get_left_gutter_width(self) -> int:
        return self.MARK_WIDTH

    def render_line(self, y: int) -> Strip:
        line = super(SelectionList, self).render_line(y)
        _, scroll_y = self.scroll_offset
        try:
            selection = self.get_option_at_index(scroll_y + y)
        except OptionDoesNotExist:
            return Strip([Segment(" " * self.MARK_WIDTH, self.rich_style), *line])
        style = next(iter(line)).style or self.rich_style
        mark = "[X] " if selection.value in self.selected else "[ ] "
        return Strip([Segment(mark, style), *line])


class Field(Widget):
    """A labelled control, with a line under it that says what is wrong, when something is.

    The label is the field's own text, drawn beside the control (the control and its error
    line are indented past it), and the error line exists only while there is an error:
    two widgets per field instead of five, which the console's start-up time notices."""

    def __init__(self, label: str, control: Widget, *, id: str | None = None):
        super().__init__(id=id, classes="field")
        self.label = label
        self.control = control

    def compose(self) -> ComposeResult:
        yield self.control

    def render(self) -> Content:
        if self.has_focus_within:
            return Content.styled(self.label, "bold reverse")
        return Content(self.label)

    def on_descendant_focus(self) -> None:
        self.refresh()

    def on_descendant_blur(self) -> None:
        self.refresh()

    @property
    def error(self) -> str:
        """The message shown under the field, or ''."""
        shown = self.query(".field-error")
        return str(shown.first(Static).render()) if shown else ""

    def show_error(self, message: str | None) -> None:
        shown = self.query(".field-error")
        if message:
            if shown:
                shown.first(Static).update(message)
            else:
                self.mount(Static(message, classes="field-error", markup=False))
        else:
            shown.remove()
        self.set_class(bool(message), "-invalid")


class ActionButton(Button):
    """A one-line button; on the plain profile its label is bracketed, `[ Apply ]`, since a
    16-colour console may draw no background that sets it apart from text."""

    def __init__(self, label: str, **kwargs):
        super().__init__(label, compact=True, **kwargs)
        self.plain_label = label

    def on_mount(self) -> None:
        if getattr(getattr(self.app, "profile", None), "plain", False):
            self.label = Content(f"[ {self.plain_label} ]")
