"""The console on the fake cluster service, for the serial-line benchmark.

Started like the real console (profile from TERM, mouse only in the full profile); on
SIGUSR1 the fake reports one status change, as the real agent would when the backup's
conntrackd stops: one "service" event, then node-b's row reads FAILURE.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from skutui.ui.app import SkutuiApp  # noqa: E402
from skutui.ui.profile import detect_profile  # noqa: E402
from tests.fakes import FakeClusterService  # noqa: E402

EVENT_MESSAGE = "conntrackd is not running on this node"
"""What the agent's service check says when a daemon stops (skutui.agent.services)."""
CHANGED_MESSAGE = "Not ready: conntrackd"
"""The start of what the node table says for a backup without conntrackd (skutui.cluster.rows,
from skutui.domain.readiness; the fake's rows are the product's): the rest is cut at 80
columns."""


class OneChangeService(FakeClusterService):
    def break_conntrackd(self) -> None:
        self.backup_conntrackd = False
        self.emit("service", "remote", EVENT_MESSAGE)


class SerialBenchApp(SkutuiApp):
    def on_mount(self) -> None:
        """Besides SkutuiApp.on_mount (Textual calls both): SIGUSR1 means one status change."""
        asyncio.get_running_loop().add_signal_handler(signal.SIGUSR1, self.service.break_conntrackd)


def main() -> int:
    profile = detect_profile()
    app = SerialBenchApp(OneChangeService(), profile)
    app.run(mouse=profile.mouse)
    return 0


if __name__ == "__main__":
    sys.exit(main())
