"""Start the console: pick the profile, send logs to a file, run the App on the terminal."""

from __future__ import annotations

import logging
import socket

from skutui.core.paths import Paths

LOG_FILE = "/var/log/skutui.log"


def launch_console(ascii_profile: bool, paths: Paths) -> int:
    from skutui.ui.app import SkutuiApp
    from skutui.ui.profile import detect_profile

    try:
        logging.basicConfig(filename=LOG_FILE, level=logging.INFO)
    except OSError:
        pass
    profile = detect_profile(ascii_requested=ascii_profile)
    app = SkutuiApp(
        profile=profile,
        hostname=socket.gethostname(),
        configured=paths.cluster_file.exists(),
    )
    app.run(mouse=profile.mouse)
    return app.return_code or 0
