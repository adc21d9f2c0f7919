"""The operator's services follow the node's role: master-only services run on the master
alone, those on both nodes run everywhere but in maintenance.

Each round says what the node is now (its role and the configuration); the keeper acts only
when that changed (a takeover, a node that stops acting as master for any reason, a service
added or removed by ``cluster edit``), and on a start that failed, again after
:data:`RETRY_DELAY`. A service that dies is not started again here: keepalived sees it down
and ranks this node below a healthy peer, which takes over; the operator restarts it.

Starts and stops run in the background, one task per service, each with its own time limit
and its own report: a slow service never delays a transition, the commit of the connection
state, or another service.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from skutui.domain.model import ClusterConfig, Role
from skutui.domain.paths import Paths
from skutui.system import services

log = logging.getLogger("skutui.agent")

RETRY_DELAY = 5.0
"""Seconds before a start that failed is tried again: its configuration may arrive late
(a new backup's first sync)."""


class ServiceKeeper:
    def __init__(self, paths: Paths, report: Callable[..., object], *,
                 running: Callable[[str], bool] = services.running,
                 act: Callable[[str, str], str | None] = services.act) -> None:
        self.paths = paths
        self.report = report
        self.running = running
        self.act = act
        self._wanted: dict[str, bool] = {}
        """Service -> whether the node's role and configuration want it running, as last acted on."""
        self._tasks: dict[str, asyncio.Task] = {}
        self._retry: dict[str, float] = {}
        """Service -> when a failed start is tried again."""

    def wanted(self, config: ClusterConfig | None, role: Role) -> dict[str, bool]:
        """Every service this node must start (True) or stop (False) now. In maintenance the
        services on both nodes are the operator's: neither started nor stopped."""
        if config is None:
            return {}
        run = config.services_to_run(role)
        wanted = {name: name in run for name in config.services}
        if role is not Role.MAINTENANCE:
            wanted.update({name: True for name in config.services_on_both})
        return wanted

    async def keep(self, config: ClusterConfig | None, role: Role) -> None:
        """Start or stop what changed since the last round (and retry failed starts). A
        service still being started or stopped is left to a later round, which sees the
        change then."""
        wanted = self.wanted(config, role)
        now = time.monotonic()
        for name, run in wanted.items():
            changed = self._wanted.get(name) != run
            retry = run and name in self._retry and now >= self._retry[name]
            if (changed or retry) and not self._busy(name):
                self._wanted[name] = run
                self._retry.pop(name, None)
                self._tasks[name] = asyncio.create_task(self._bring(name, run),
                                                        name=f"service {name}")
        for name in set(self._wanted) - set(wanted):
            # Removed from the configuration: left as it is, and forgotten.
            del self._wanted[name]
            self._retry.pop(name, None)

    def _busy(self, name: str) -> bool:
        task = self._tasks.get(name)
        return task is not None and not task.done()

    async def _bring(self, name: str, run: bool) -> None:
        """Start (``run``) or stop ``name`` unless it already is so; report what was done."""
        if await asyncio.to_thread(self.running, name) == run:
            return
        action = "start" if run else "stop"
        if run:
            services.starting(self.paths.service_state_dir, name, True)
        try:
            problem = await asyncio.to_thread(self.act, name, action)
        finally:
            if run:
                services.starting(self.paths.service_state_dir, name, False)
        if problem:
            if run:
                self._retry[name] = time.monotonic() + RETRY_DELAY
            self.report("service", f"{problem}; trying again in {RETRY_DELAY:g} s" if run
                        else problem, level="error", service=name, running=not run)
            return
        self.report("service", f"{name} {'started' if run else 'stopped'} on this node",
                    service=name, running=run)

    async def close(self) -> None:
        tasks = [task for task in self._tasks.values() if not task.done()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
