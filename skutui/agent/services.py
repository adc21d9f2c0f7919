"""The daemons and services this node needs, checked every few seconds; each one that stops
or starts running is reported once."""

from __future__ import annotations

import asyncio
import logging
import subprocess
from collections.abc import Callable

from skutui.domain.model import ClusterConfig, Role
from skutui.system.node import LocalNode

log = logging.getLogger("skutui.agent")

SERVICE_CHECK_INTERVAL = 5.0
SERVICE_TIMEOUT = 10.0


def service_running(name: str) -> bool:
    try:
        result = subprocess.run(["service", name, "status"], capture_output=True,
                                timeout=SERVICE_TIMEOUT)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return result.returncode == 0


class ServiceChecks:
    def __init__(self, node: LocalNode, report: Callable[..., object],
                 config: Callable[[], ClusterConfig | None], *,
                 service_check: Callable[[str], bool] = service_running) -> None:
        self.node = node
        self.report = report
        self.config = config
        self.service_check = service_check
        self.services: dict[str, bool] = {}
        """What the last check found running, by name."""

    async def check(self) -> None:
        """Report each daemon or service that stops or starts running; on a backup the
        configured services are meant to be stopped, so only the master checks them."""
        config = self.config()
        if config is None:
            self.services = {}
            return
        names = ["keepalived", "conntrackd"]
        master = self.node.effective_role() is Role.MASTER
        if master:
            names += list(config.services)

        def look() -> dict[str, bool]:
            found = {"keepalived": self.node.keepalived.running(),
                     "conntrackd": self.node.conntrackd.running()}
            for name in names[2:]:
                found[name] = self.service_check(name)
            return found

        now = await asyncio.to_thread(look)
        for name, running in now.items():
            before = self.services.get(name)
            if running == before or (before is None and running):
                continue
            where = "the master" if master else "this node"
            if running:
                self.report("service", f"{name} is running again on {where}",
                            service=name, running=True)
            else:
                self.report("service", f"{name} is not running on {where}", level="error",
                            service=name, running=False)
        self.services = now

    async def run(self) -> None:
        while True:
            try:
                await self.check()
            except Exception:  # noqa: BLE001
                log.exception("service check failed")
            await asyncio.sleep(SERVICE_CHECK_INTERVAL)
