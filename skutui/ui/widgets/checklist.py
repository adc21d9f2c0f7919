"""A checklist whose state reads in plain ASCII: `[ ]`/`[X]`. Only Edit uses it, so the
console does not load Textual's selection list until then."""

from __future__ import annotations

from collections.abc import Hashable
from typing import TypeVar

from rich.segment import Segment
from textual.strip import Strip
from textual.widgets import SelectionList
from textual.widgets.option_list import OptionDoesNotExist

T = TypeVar("T", bound=Hashable)


class Checklist(SelectionList[T]):
    """Several options, each shown `[X]` chosen or `[ ]` not; Space or Enter changes one."""

    DEFAULT_CSS = """
    Checklist {
        height: auto;
        max-height: 6;
        border: none;
        padding: 0;
        &:focus {
            border: none;
            background-tint: $foreground 10%;
        }
    }
    """

    MARK_WIDTH = 4

    @property
    def value(self) -> list[T]:
        """What is chosen, as a form reads every field's value."""
        return list(self.selected)

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
