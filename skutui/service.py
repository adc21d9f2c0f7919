"""The real ClusterService: what the console is handed in production."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

from skutui.cluster import Lifecycle
from skutui.core.api import CreateRequest, EditRequest, Event, NodeRow, NodeSide, Progress, ServiceError
from skutui.core.model import ClusterConfig, InterfaceAddress, Role
from skutui.core.paths import Paths


class RealClusterService:
    def __init__(self, paths: Paths):
        self.lifecycle = Lifecycle(paths)

    async def _guarded(self, awaitable):
        """Expected failures become one ServiceError message; the console shows it as is."""
        from skutui.cli import _expected_errors

        try:
            return await awaitable
        except ServiceError:
            raise
        except Exception as exc:
            bad_input, failed = _expected_errors()
            if isinstance(exc, bad_input + failed):
                raise ServiceError(str(exc)) from None
            raise

    async def local_hostname(self) -> str:
        return socket.gethostname()

    async def cluster_candidates(self) -> list[InterfaceAddress]:
        from skutui.core.validation import cluster_candidates
        from skutui.net import discover_addresses

        return cluster_candidates(await discover_addresses())

    async def link_names(self) -> list[str]:
        from skutui.net import link_names

        return await link_names()

    async def cluster(self) -> ClusterConfig | None:
        return await self._guarded(asyncio.to_thread(self.lifecycle.configured))

    async def is_master(self) -> bool:
        return await asyncio.to_thread(self.lifecycle.local_node.role) is Role.MASTER

    async def fetch_host_key(self, remote_ip: str) -> str:
        return (await self._guarded(self.lifecycle.fetch_host_key(remote_ip))).fingerprint

    async def preflight(self, request: CreateRequest, progress: Progress):
        return await self._guarded(self.lifecycle.preflight(request, progress))

    async def create(self, request: CreateRequest, progress: Progress) -> None:
        await self._guarded(self.lifecycle.create(request, progress))

    async def edit(self, request: EditRequest, progress: Progress) -> list[str]:
        return await self._guarded(self.lifecycle.edit(request, progress))

    async def destroy(self, progress: Progress) -> None:
        for warning in await self._guarded(self.lifecycle.destroy(progress)):
            progress(f"Warning: {warning}")

    async def nodes(self) -> list[NodeRow]:
        return await self._guarded(self.lifecycle.nodes())

    async def set_maintenance(self, node: NodeSide, on: bool) -> str:
        return await self._guarded(self.lifecycle.set_maintenance(node, on))

    async def events(self) -> AsyncIterator[Event]:
        """Until the agent's event stream is subscribed to, a refresh per check interval."""
        while True:
            config = await asyncio.to_thread(self.lifecycle.configured)
            await asyncio.sleep(config.check_interval if config else 1.0)
            yield Event("refresh", "local", "")


def build_service(paths: Paths) -> RealClusterService:
    return RealClusterService(paths)
