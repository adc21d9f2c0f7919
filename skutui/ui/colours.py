"""Where the console chooses a colour for a status: the model names it, the profile draws it.

The plain profile has the 16 ANSI colours only, so orange is drawn yellow and grey is
bright black. The label beside the colour always says the same thing in words.
"""

from __future__ import annotations

from skutui.domain.model import Status

FULL_COLOUR = {"green": "green", "red": "red", "grey": "grey50", "orange": "dark_orange"}
SIXTEEN_COLOUR = {"green": "green", "red": "red", "grey": "bright_black", "orange": "yellow"}


def status_style(status: Status, plain: bool) -> str:
    """The Rich style of a status label."""
    palette = SIXTEEN_COLOUR if plain else FULL_COLOUR
    return f"bold {palette[status.colour]}"
