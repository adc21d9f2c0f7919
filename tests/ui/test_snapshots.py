"""Every screen and dialog as the operator sees it: 80x24 in both profiles, 120x40 in colour.

Baselines live in __snapshots__/; after a deliberate change, look at the report and run
``pytest tests/ui/test_snapshots.py --snapshot-update``.
"""

from __future__ import annotations

import pytest

from tests.ui.snapshot_apps import SCENES
from tests.ui.snapshot_apps.common import build

SMALL, LARGE = (80, 24), (120, 40)

SHOWN = {name: scene for name, scene in SCENES.items() if scene.snapshot}
CASES = [(name, plain, SMALL) for name in SHOWN for plain in (False, True)] + [
    (name, False, LARGE) for name, scene in SHOWN.items() if scene.wide
]


@pytest.mark.parametrize(
    "name,plain,size",
    CASES,
    ids=[f"{name}-{'plain' if plain else 'colour'}-{w}x{h}" for name, plain, (w, h) in CASES],
)
def test_screen(snap_compare, name, plain, size):
    scene = SCENES[name]
    assert snap_compare(build(scene.service(), plain), terminal_size=size, run_before=scene.reach)
