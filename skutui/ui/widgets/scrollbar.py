"""Scrollbars the plain profile can draw: whole cells only, no eighth-block glyphs.

Textual draws the ends of a scrollbar thumb with partial block characters for smoothness;
a VT100 has none of them. The renderer is chosen per running app, so a plain console and
a full-colour one can share a process (as the tests do).
"""

from __future__ import annotations

from textual._context import active_app
from textual.scrollbar import ScrollBar, ScrollBarRender


class WholeCellScrollBarRender(ScrollBarRender):
    VERTICAL_BARS = [" "] * 8
    HORIZONTAL_BARS = [" "] * 8


def _plain_app() -> bool:
    try:
        app = active_app.get()
    except LookupError:
        return False
    profile = getattr(app, "profile", None)
    return bool(getattr(profile, "plain", False))


class ProfileScrollBarRender(ScrollBarRender):
    @classmethod
    def render_bar(cls, *args, **kwargs):
        if _plain_app():
            return WholeCellScrollBarRender.render_bar(*args, **kwargs)
        return super().render_bar(*args, **kwargs)


def install() -> None:
    """Make every scrollbar pick its glyphs from the running app's profile."""
    ScrollBar.renderer = ProfileScrollBarRender
