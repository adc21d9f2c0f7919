"""The plain profile draws nothing a VT100 or a serial line cannot: every screen, ASCII only.

Snapshots render in full colour whatever TERM says, so this is checked on the text itself.
"""

from __future__ import annotations

import pytest

from tests.ui.snapshot_apps import SCENES
from tests.ui.snapshot_apps.common import build, screen_text


@pytest.mark.parametrize("name", list(SCENES))
async def test_every_screen_is_ascii_in_the_plain_profile(name):
    scene = SCENES[name]
    app = build(scene.service(), plain=True)
    async with app.run_test(size=(80, 24)) as pilot:
        await scene.reach(pilot)
        text = screen_text(app)
    wide = sorted({ch for ch in text if ord(ch) > 127})
    assert not wide, f"{name}: {wide!r} on the plain profile:\n{text}"
