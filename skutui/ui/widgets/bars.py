"""The title bar and the key bar: one widget each, drawn from one line of text.

Textual's Header and Footer build a widget per part (icon, title, clock; one per key) and
the footer builds its keys only after the screen's bindings are first announced, a frame
after the rest. These draw the same line in the same colours, whole from the first frame,
and a change of keys repaints one line instead of composing widgets again.
"""

from __future__ import annotations

from rich.text import Text
from textual import events
from textual.widget import Widget


class TitleBar(Widget):
    """The app's title and the screen's sub-title, centred where Header centres them."""

    DEFAULT_CSS = """
    TitleBar {
        dock: top;
        width: 100%;
        height: 1;
        padding: 0 10 0 8;
        background: $panel;
        color: $foreground;
        content-align: center middle;
        text-wrap: nowrap;
        text-overflow: ellipsis;
    }
    """

    def on_mount(self) -> None:
        self.watch(self.app, "title", self._changed, init=False)
        self.watch(self.screen, "sub_title", self._changed, init=False)

    def _changed(self) -> None:
        self.refresh()

    def render(self):
        screen = self.screen
        title = screen.title if screen.title is not None else self.app.title
        sub_title = screen.sub_title if screen.sub_title is not None else self.app.sub_title
        return self.app.format_title(title, sub_title)


class KeyBar(Widget):
    """The keys usable now, as Textual's Footer shows them: ` F2 ` then `Apply `."""

    ALLOW_SELECT = False
    COMPONENT_CLASSES = {"keybar--key", "keybar--description"}
    DEFAULT_CSS = """
    KeyBar {
        dock: bottom;
        width: 100%;
        height: 1;
        color: $footer-foreground;
        background: $footer-background;
        text-wrap: nowrap;
        text-overflow: clip;
        .keybar--key {
            color: $footer-key-foreground;
            background: $footer-key-background;
            text-style: bold;
        }
        .keybar--description {
            color: $footer-description-foreground;
            background: $footer-description-background;
        }
    }
    """

    def __init__(self) -> None:
        super().__init__()
        self._spans: list[tuple[int, int, str, bool]] = []
        """(start, end, key, enabled) of each key on the line, for clicks."""

    def on_mount(self) -> None:
        self.screen.bindings_updated_signal.subscribe(self, self._bindings_changed)

    def on_unmount(self) -> None:
        self.screen.bindings_updated_signal.unsubscribe(self)

    def _bindings_changed(self, screen) -> None:
        self.refresh()

    def keys(self) -> list[tuple[str, str, str, bool]]:
        """(key, shown as, description, enabled) of each key to show, one per action."""
        shown: dict[str, tuple[str, str, str, bool]] = {}
        for _, binding, enabled, _tooltip in self.screen.active_bindings.values():
            if binding.show and binding.action not in shown:
                shown[binding.action] = (binding.key, self.app.get_key_display(binding),
                                         binding.description, enabled)
        return list(shown.values())

    def render(self) -> Text:
        key_style = self.get_component_rich_style("keybar--key")
        description_style = self.get_component_rich_style("keybar--description")
        line = Text(no_wrap=True, overflow="crop", end="")
        spans = []
        for key, display, description, enabled in self.keys():
            start = len(line)
            line.append(f" {display} ", key_style)
            if description:
                line.append(f"{description} ", description_style)
            if not enabled:
                line.stylize("dim", start)
            spans.append((start, len(line), key, enabled))
        self._spans = spans
        return line

    def on_click(self, event: events.Click) -> None:
        for start, end, key, enabled in self._spans:
            if start <= event.x < end:
                if enabled:
                    self.app.simulate_key(key)
                else:
                    self.app.bell()
                return
