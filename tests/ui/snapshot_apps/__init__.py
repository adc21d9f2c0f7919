"""Every screen and dialog of the console, each reached on the fake the way an operator would."""

import os
import time

from tests.ui.snapshot_apps import configure, details, nodes, visibility

os.environ["TZ"] = "UTC"
time.tzset()
"""Times on screen are local: one zone for every run, so the pictures never move."""

SCENES = {scene.name: scene for module in (configure, details, nodes, visibility) for scene in module.SCENES}
