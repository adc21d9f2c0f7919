"""The daemons and services this node needs, checked every few seconds; each one that stops
or starts running is reported once."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from skutui.domain.model import ClusterConfig, Role
from skutui.system import services
from skutui.system.node import LocalNode

log = logging.getLogger("skutui.agent")

SERVICE_CHECK_INTERVAL = 5.0

service_running = services.running


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
        """Report each daemon or service that stops or starts running; only the services
        this node's role runs are checked (a backup stops the master-only ones)."""
        config = self.config()
        if config is None:
            self.services = {}
            return
        names = ["keepalived", "conntrackd"]
        role = self.node.effective_role()
        master = role is Role.MASTER
        names += list(config.services_to_run(role))

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
