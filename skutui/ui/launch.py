"""Start the console: pick the profile, send logs to a file, run the App on the terminal."""

from __future__ import annotations

import logging
from typing import Any

from skutui.domain.errors import Failed
from skutui.domain.paths import Paths
from skutui.system import logs
from skutui.ui.app import SkutuiApp
from skutui.ui.errors import LOG_FILE
from skutui.ui.profile import detect_profile

PRELOAD = ("skutui.peer",)
"""What the real service imports on first use, slow to import (SSH): the console
imports them in a thread once its home screen is up."""


class UnavailableService:
    """Stands in when the real service cannot be built, so the console still opens and says
    why on its start screen (with Retry and Quit) instead of dying on the login console."""

    def __init__(self, reason: str):
        self.reason = reason

    def __getattr__(self, name: str) -> Any:
        async def unavailable(*args: Any, **kwargs: Any) -> Any:
            raise Failed(self.reason)

        return unavailable


def build(paths: Paths) -> Any:
    """The real cluster service, or a stand-in that explains why there is none."""
    try:
        # Imported here so that an installation missing a piece still opens the console.
        from skutui.cluster.operations import build_service
    except ImportError as error:
        logging.getLogger("skutui.ui").error("cluster service unavailable", exc_info=error)
        return UnavailableService(
            f"The cluster service is missing from this installation ({error}); "
            "reinstall skutui. The command line (skutui --help) still works."
        )
    try:
        return build_service(paths)
    except Failed as error:
        return UnavailableService(str(error))
    except Exception as error:
        logging.getLogger("skutui.ui").error("could not build the cluster service", exc_info=error)
        return UnavailableService(
            f"The cluster service could not start ({type(error).__name__}: {error}); "
            f"the details are in {LOG_FILE}."
        )


def launch_console(ascii_profile: bool, paths: Paths) -> int:
    try:
        # Textual draws on stderr: the console logs to the journal, or to skutui's log file.
        logs.setup(paths)
    except OSError:
        pass
    profile = detect_profile(ascii_requested=ascii_profile)
    app = SkutuiApp(build(paths), profile, preload=PRELOAD)
    app.run(mouse=profile.mouse)
    return app.return_code or 0
