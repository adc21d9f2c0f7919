"""The console on the fake cluster service, for the serial-line benchmark.

Started like the real console (profile from TERM, mouse only in the full profile); on
SIGUSR1 the fake reports one status change, as the real agent would when the backup's
conntrackd stops: one "service" event, then node-b's row reads FAILURE.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from skutui.domain.model import Status  # noqa: E402
from skutui.ui.app import SkutuiApp  # noqa: E402
from skutui.ui.profile import detect_profile  # noqa: E402
from tests.fakes import FakeClusterService  # noqa: E402

EVENT_MESSAGE = "conntrackd is not running on this node"
"""What the agent's service check says when a daemon stops (skutui.agent.services)."""
CHANGED_MESSAGE = "Failed services: conntrackd"
"""What the status digest says for a backup without conntrackd (skutui.domain.digest)."""


class OneChangeService(FakeClusterService):
    conntrackd_down: bool = False

    async def nodes(self):
        rows = await super().nodes()
        if not self.conntrackd_down:
            return rows
        return [replace(row, status=Status.FAILURE, message=CHANGED_MESSAGE)
                if row.node == "remote" else row for row in rows]

    def break_conntrackd(self) -> None:
        self.conntrackd_down = True
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
