"""Write screenshots/*.svg: each screen of the console as the operator sees it at 80x24.

Run from the top of the checkout: ``.venv/bin/python -m tests.ui.make_screenshots``.
The scenes are the snapshot tests' own, on the fake service, so the pictures match them.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from tests.ui.snapshot_apps import SCENES
from tests.ui.snapshot_apps.common import build

SCREENSHOTS = {
    "configure": "configure",
    "host-key": "host_key",
    "preflight": "preflight_failed",
    "erase": "erase",
    "created": "created",
    "details": "details",
    "details-backup": "details_backup",
    "nodes": "nodes",
    "nodes-split-brain": "nodes_split_brain",
    "maintenance": "maintenance",
    "edit": "edit",
    "edit-applied": "edit_applied",
    "destroy": "destroy",
    "help": "help",
    "timeline": "timeline",
    "timeline-record": "timeline_record",
    "files": "files",
    "readiness": "readiness",
    "readiness-not-ready": "readiness_not_ready",
    "drill": "drilled",
    "edit-timing": "edit_timing",
}
"""File name (without .svg) -> scene."""

OUT = Path(__file__).resolve().parents[2] / "screenshots"


async def shoot(file_name: str, scene_name: str, plain: bool) -> None:
    scene = SCENES[scene_name]
    app = build(scene.service(), plain=plain)
    async with app.run_test(size=(80, 24)) as pilot:
        await scene.reach(pilot)
        await pilot.pause()
        suffix = "-plain" if plain else ""
        app.save_screenshot(f"{file_name}{suffix}.svg", path=str(OUT))


async def main() -> None:
    OUT.mkdir(exist_ok=True)
    for file_name, scene_name in SCREENSHOTS.items():
        for plain in (False, True):
            await shoot(file_name, scene_name, plain)
    print(f"{2 * len(SCREENSHOTS)} screenshots in {OUT}", file=sys.stderr)


if __name__ == "__main__":
    asyncio.run(main())
