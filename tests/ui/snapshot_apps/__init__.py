"""Every screen and dialog of the console, each reached on the fake the way an operator would."""

from tests.ui.snapshot_apps import configure, details, nodes

SCENES = {scene.name: scene for module in (configure, details, nodes) for scene in module.SCENES}
