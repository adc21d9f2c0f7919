"""Form controls whose state reads in plain ASCII: `( )`/`(*)`, `[ ]`/`[X]`, `*` for secrets.

The stock glyphs (half blocks, bullets) do not exist on a VT100 or a serial line, and a
state shown only by colour is lost on a 16-colour console at 3 a.m.

A text field and a choice draw their own label in their first columns, and the line that
says what is wrong with a field is added under it only while something is: a form is one
widget per field, which is most of what the console's start-up costs.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import TYPE_CHECKING, Generic, TypeVar

from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.app import ComposeResult
from textual.binding import Binding
from textual.color import Color
from textual.content import Content
from textual.geometry import Size
from textual.message import Message
from textual.reactive import reactive
from textual.strip import Strip
from textual.widget import Widget
from textual.widgets import Static

T = TypeVar("T", bound=Hashable)

LABEL_WIDTH = 22
"""Columns taken by a field's label; the control and the error line start after them."""

FOCUSED_LABEL = Style(bold=True, reverse=True)

if TYPE_CHECKING:
    _LabelledBase = Widget
    """A Labelled is always mixed into a Widget: the type checker sees that widget's parts."""
else:
    _LabelledBase = object


class Labelled(_LabelledBase):
    """A control that draws its label in its first LABEL_WIDTH columns (reversed while it has
    the focus, as the cue of where typing goes), and shows an error line under itself."""

    label: str = ""
    _error_line: Static | None = None

    def _label_width(self) -> int:
        return LABEL_WIDTH if self.label else 0

    def _label_text(self, first_line: bool = True) -> tuple[str, str]:
        """The label column of one line, as (label, padding): the label on the first line,
        blank below."""
        width = self._label_width()
        text = self.label[: width - 1] if first_line else ""
        return text, " " * (width - len(text))

    @property
    def error(self) -> str:
        """The message shown under the control, or ''."""
        return str(self._error_line.render()) if self._error_line is not None else ""

    def show_error(self, message: str | None) -> None:
        if message:
            if self._error_line is None:
                self._error_line = Static(message, classes="field-error", markup=False)
                parent = self.parent
                assert isinstance(parent, Widget), "a control shows an error only once it is in a form"
                parent.mount(self._error_line, after=self)
            else:
                self._error_line.update(message)
        elif self._error_line is not None:
            self._error_line.remove()
            self._error_line = None
        self.set_class(bool(message), "-invalid")


class TextField(Labelled, Widget, can_focus=True):
    """A one-line text input without a frame, so a whole form fits on 24 lines.

    Typing inserts at the cursor; Left/Right, Home/End (Ctrl+A/Ctrl+E), Backspace, Delete
    (Ctrl+D), Ctrl+U/Ctrl+K (delete to the start/end) and Ctrl+W (delete a word) edit; Enter
    submits. Entering the field selects what it holds, so typing replaces it and an arrow
    key keeps it, as in Textual's Input. The cursor is a reversed cell that does not blink:
    a blink is a redraw twice a second, which a 9600-baud line would carry all the time the
    form is open.

    Textual's Input does all this and more (selections, suggestions, validators), at a cost
    per field that a console opening on a form of five pays on every start."""

    COMPONENT_CLASSES = {"textfield--field", "textfield--cursor", "textfield--placeholder", "textfield--selection"}
    DEFAULT_CSS = """
    TextField {
        width: 1fr;
        height: 1;
        pointer: text;
        & > .textfield--field {
            background: $surface;
            color: $foreground;
        }
        & > .textfield--cursor {
            background: $input-cursor-background;
            color: $input-cursor-foreground;
            text-style: $input-cursor-text-style;
        }
        & > .textfield--placeholder {
            color: $text-disabled;
        }
        & > .textfield--selection {
            background: $input-selection-background;
            color: $input-selection-foreground;
        }
        &:ansi {
            & > .textfield--field {
                background: ansi_default;
                color: ansi_default;
            }
            & > .textfield--cursor {
                background: ansi_white;
                color: ansi_black;
            }
            & > .textfield--placeholder {
                text-style: dim;
                color: ansi_default;
            }
            & > .textfield--selection {
                text-style: reverse;
            }
        }
    }
    """

    BINDINGS = [
        Binding("left", "cursor_left", "Move the cursor left", show=False, id="field.left"),
        Binding("right", "cursor_right", "Move the cursor right", show=False, id="field.right"),
        Binding("home,ctrl+a", "home", "Go to the start", show=False, id="field.home"),
        Binding("end,ctrl+e", "end", "Go to the end", show=False, id="field.end"),
        Binding("backspace", "delete_left", "Delete to the left", show=False, id="field.backspace"),
        Binding("delete,ctrl+d", "delete_right", "Delete under the cursor", show=False, id="field.delete"),
        Binding("ctrl+u", "delete_to_start", "Delete to the start", show=False, id="field.kill-start"),
        Binding("ctrl+k", "delete_to_end", "Delete to the end", show=False, id="field.kill-end"),
        Binding("ctrl+w", "delete_word", "Delete a word", show=False, id="field.kill-word"),
        Binding("enter", "submit", "Submit", show=False, id="field.submit"),
    ]

    class Changed(Message):
        def __init__(self, field: TextField, value: str) -> None:
            super().__init__()
            self.field = field
            self.value = value

        @property
        def control(self) -> TextField:
            return self.field

    class Submitted(Changed):
        """Enter in the field."""

    def __init__(self, value: str = "", *, placeholder: str = "", label: str = "", id: str | None = None,
                 password: bool = False):
        """``label``: drawn in the field's first columns. ``password``: one '*' per character,
        which every terminal can draw."""
        super().__init__(id=id)
        self.label = label
        self.placeholder = placeholder
        self.password = password
        self._value = value
        self.cursor = len(value)
        self._offset = 0
        self._selected = False
        """All the text is selected: typing replaces it, Backspace or Delete clears it."""

    @property
    def value(self) -> str:
        return self._value

    @value.setter
    def value(self, value: str) -> None:
        self._edit(value, len(value))

    def _edit(self, value: str, cursor: int) -> None:
        self._selected = False
        changed = value != self._value
        self._value = value
        self.cursor = max(0, min(cursor, len(value)))
        self.refresh()
        if changed:
            self.post_message(self.Changed(self, value))

    def check_consume_key(self, key: str, character: str | None) -> bool:
        """Printable keys are typed, so their bindings elsewhere (q, n, ...) are not offered."""
        return character is not None and character.isprintable()

    def on_key(self, event: events.Key) -> None:
        if event.is_printable and event.character is not None:
            event.stop()
            event.prevent_default()
            self.insert(event.character)

    def on_paste(self, event: events.Paste) -> None:
        event.stop()
        self.insert(event.text.splitlines()[0] if event.text else "")

    def insert(self, text: str) -> None:
        text = "".join(ch for ch in text if ch.isprintable())
        if text and self._selected:
            self._edit(text, len(text))
        elif text:
            value, at = self._value, self.cursor
            self._edit(value[:at] + text + value[at:], at + len(text))

    def action_cursor_left(self) -> None:
        self._edit(self._value, self.cursor - 1)

    def action_cursor_right(self) -> None:
        self._edit(self._value, self.cursor + 1)

    def action_home(self) -> None:
        self._edit(self._value, 0)

    def action_end(self) -> None:
        self._edit(self._value, len(self._value))

    def action_delete_left(self) -> None:
        at = self.cursor
        if self._selected:
            self._edit("", 0)
        elif at:
            self._edit(self._value[: at - 1] + self._value[at:], at - 1)

    def action_delete_right(self) -> None:
        at = self.cursor
        if self._selected:
            self._edit("", 0)
            return
        self._edit(self._value[:at] + self._value[at + 1 :], at)

    def action_delete_to_start(self) -> None:
        self._edit(self._value[self.cursor :], 0)

    def action_delete_to_end(self) -> None:
        self._edit(self._value[: self.cursor], self.cursor)

    def action_delete_word(self) -> None:
        before = self._value[: self.cursor].rstrip()
        start = max(before.rfind(" "), before.rfind(",")) + 1
        self._edit(self._value[:start] + self._value[self.cursor :], start)

    def action_submit(self) -> None:
        self.post_message(self.Submitted(self, self._value))

    def on_focus(self) -> None:
        self._selected = bool(self._value)
        self.cursor = len(self._value)
        self.refresh()

    def on_blur(self) -> None:
        self._selected = False
        self.refresh()

    def on_click(self, event: events.Click) -> None:
        self._edit(self._value, event.x - self._label_width() + self._offset)

    def get_content_height(self, container: Size, viewport: Size, width: int) -> int:
        return 1

    def _field_style(self) -> Style:
        """The field's colours; with the focus, tinted 5% towards the text colour, as
        Textual's Input shows it."""
        field = self.get_component_rich_style("textfield--field")
        if self.has_focus and field.bgcolor is not None and field.bgcolor.triplet and field.color is not None \
                and field.color.triplet:
            tinted = Color.from_rich_color(field.bgcolor).blend(Color.from_rich_color(field.color), 0.05)
            field += Style(bgcolor=tinted.rich_color)
        return field

    def _over_field(self, field: Style, component: str) -> Style:
        """A component's colours (often translucent) over the field's background."""
        styles = self.get_component_styles(component)
        base = Color.from_rich_color(field.bgcolor) if field.bgcolor is not None and field.bgcolor.triplet else None
        style = field
        if styles.has_rule("background") and base is not None:
            style += Style(bgcolor=(base + styles.background).rich_color)
        if styles.has_rule("color"):
            colour = styles.color
            if colour.a < 1 and base is not None:
                colour = base + colour
            style += Style(color=colour.rich_color)
        return style + self.get_component_rich_style(component, partial=True).without_color

    def render_line(self, y: int) -> Strip:
        width = self.size.width
        if y != 0 or width <= 0:
            return Strip.blank(width, self.rich_style)
        text, padding = self._label_text()
        base = self.rich_style
        label = [Segment(text, base + FOCUSED_LABEL if self.has_focus else base), Segment(padding, base)]
        room = max(1, width - self._label_width())
        field = self._field_style()
        shown = "*" * len(self._value) if self.password else self._value
        if not shown and not self.has_focus:
            segments = [Segment(self.placeholder[:room], self._over_field(field, "textfield--placeholder")),
                        Segment(" " * (room - len(self.placeholder[:room])), field)]
            return Strip([*label, *segments], width).simplify()
        # Keep the cursor in view: scroll the text under a fixed window of `room` cells.
        cursor = self.cursor
        if cursor < self._offset:
            self._offset = cursor
        elif cursor >= self._offset + room:
            self._offset = cursor - room + 1
        visible = shown[self._offset : self._offset + room]
        segments = list(label)
        if self.has_focus and self._selected:
            segments.append(Segment(visible, self._over_field(field, "textfield--selection")))
            used = len(visible)
        elif self.has_focus:
            at = cursor - self._offset
            under = visible[at] if at < len(visible) else " "
            segments += [Segment(visible[:at], field),
                         Segment(under, self.get_component_rich_style("textfield--cursor")),
                         Segment(visible[at + 1 :], field)]
            used = max(len(visible), at + 1)
        else:
            segments.append(Segment(visible, field))
            used = len(visible)
        segments.append(Segment(" " * max(0, room - used), field))
        return Strip(segments, width).simplify()


class SecretField(TextField):
    """A password field: one '*' per character."""

    def __init__(self, *, placeholder: str = "", label: str = "", id: str | None = None):
        super().__init__(placeholder=placeholder, label=label, id=id, password=True)


class Choice(Labelled, Widget, Generic[T], can_focus=True):
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
        label: str = "",
    ):
        """``placeholder``: shown while there are no options yet. ``label``: drawn in the
        first columns of the first line."""
        super().__init__(id=id, disabled=disabled)
        self.label = label
        self.options = list(options)
        self.vertical = vertical
        self.placeholder = placeholder
        self.set_reactive(type(self).value, value)

    def set_options(self, options: Sequence[tuple[str, T]], value: T | None = None) -> None:
        """Options that were not known when the form was drawn."""
        self.options = list(options)
        self.set_reactive(type(self).value, value)
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

    COMPONENT_CLASSES = {"choice--options"}

    def render(self) -> Content:
        area = self.get_visual_style("choice--options", partial=True)
        if not self.options:
            lines = [Content(self.placeholder)]
        else:
            parts: list[Content] = []
            for label, value in self.options:
                text = self._option_text(label, value)
                parts.append(Content.styled(text, "bold") if value == self.value else Content(text))
            lines = parts if self.vertical else [Content(self.SEPARATOR).join(parts)]
        room = max(0, self.size.width - self._label_width())
        rendered = []
        for number, line in enumerate(lines):
            text, padding = self._label_text(number == 0)
            label_cell = Content.styled(text, "bold reverse") if text and self.has_focus else Content(text)
            rendered.append(label_cell + padding + line.pad_right(max(0, room - line.cell_length)).stylize_before(area))
        return Content("\n").join(rendered)

    def on_focus(self) -> None:
        self.refresh()

    def on_blur(self) -> None:
        self.refresh()

    def on_click(self, event: events.Click) -> None:
        if self.vertical:
            if 0 <= event.y < len(self.options):
                self.value = self.options[event.y][1]
            return
        start = self._label_width()
        for label, value in self.options:
            end = start + len(self._option_text(label, value))
            if start <= event.x < end:
                self.value = value
                return
            start = end + len(self.SEPARATOR)


class Field(Widget):
    """A label beside a control that does not draw its own (the interface checklist), with
    a line under the control that says what is wrong, when something is."""

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


class ActionButton(Widget, can_focus=True):
    """A one-line button: Enter or a click presses it. On the plain profile its label is
    bracketed, `[ Apply ]`, since a 16-colour console may draw no background that sets it
    apart from text.

    Drawn like Textual's compact Button, without its styles for every variant and border,
    which a console that opens on a form pays for on every start."""

    DEFAULT_CSS = """
    ActionButton {
        width: auto;
        min-width: 16;
        height: 1;
        padding: 0 1;
        content-align: center middle;
        text-wrap: nowrap;
        text-style: bold;
        color: $button-foreground;
        background: $surface;
        pointer: pointer;
        &:focus {
            text-style: $button-focus-text-style;
            background-tint: $foreground 5%;
        }
        &:hover {
            background: $surface-darken-1;
        }
        &:disabled {
            text-opacity: 0.6;
            pointer: not-allowed;
        }
    }
    """

    BINDINGS = [Binding("enter", "press", "Press button", show=False, id="button.press")]

    class Pressed(Message):
        """The button was pressed, and it has no action of its own."""

        def __init__(self, button: ActionButton) -> None:
            super().__init__()
            self.button = button

        @property
        def control(self) -> ActionButton:
            return self.button

    def __init__(self, label: str, *, id: str | None = None, classes: str | None = None,
                 disabled: bool = False, action: str | None = None):
        """``action``: run (in the parent's namespace, e.g. ``screen.apply``) when pressed,
        instead of posting Pressed."""
        super().__init__(id=id, classes=classes, disabled=disabled)
        self.label = label
        self.action = action

    def render(self) -> Content:
        if getattr(getattr(self.app, "profile", None), "plain", False):
            return Content(f"[ {self.label} ]")
        return Content(self.label)

    def press(self) -> None:
        if self.disabled or not self.display:
            return
        if self.action is None:
            self.post_message(self.Pressed(self))
        else:
            self.call_later(self.app.run_action, self.action, default_namespace=self._parent)

    def action_press(self) -> None:
        self.press()

    def on_click(self, event: events.Click) -> None:
        event.stop()
        self.press()
