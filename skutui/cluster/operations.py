"""The real ClusterService: what the console is handed in production."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator

from skutui.cluster.lifecycle import Lifecycle
from skutui.domain.wire import CreateRequest, EditRequest, Event, NodeRow, NodeSide, Progress
from skutui.domain.model import DEFAULT_CHECK_INTERVAL, ClusterConfig, InterfaceAddress, Role
from skutui.domain.paths import Paths


class RealClusterService:
    def __init__(self, paths: Paths):
        self.lifecycle = Lifecycle(paths)

    async def local_hostname(self) -> str:
        return socket.gethostname()

    async def cluster_candidates(self) -> list[InterfaceAddress]:
        from skutui.domain.validation import cluster_candidates
        from skutui.system.net import discover_addresses

        return cluster_candidates(await discover_addresses())

    async def link_names(self) -> list[str]:
        from skutui.system.net import link_names

        return await link_names()

    async def cluster(self) -> ClusterConfig | None:
        return await asyncio.to_thread(self.lifecycle.configured)

    async def is_master(self) -> bool:
        return await asyncio.to_thread(self.lifecycle.local_node.role) is Role.MASTER

    async def fetch_host_key(self, remote_ip: str) -> str:
        return (await self.lifecycle.fetch_host_key(remote_ip)).fingerprint

    async def preflight(self, request: CreateRequest, progress: Progress):
        return await self.lifecycle.preflight(request, progress)

    async def create(self, request: CreateRequest, progress: Progress) -> None:
        await self.lifecycle.create(request, progress)

    async def edit(self, request: EditRequest, progress: Progress) -> list[str]:
        return await self.lifecycle.edit(request, progress)

    async def destroy(self, progress: Progress) -> None:
        for warning in await self.lifecycle.destroy(progress):
            progress(f"Warning: {warning}")

    async def nodes(self) -> list[NodeRow]:
        return await self.lifecycle.nodes()

    async def set_maintenance(self, node: NodeSide, on: bool) -> str:
        return await self.lifecycle.set_maintenance(node, on)

    async def events(self) -> AsyncIterator[Event]:
        """Both agents' events as they happen: this node's over its control socket, the
        peer's over the kept SSH connection. While a stream is down, a bare refresh each
        check interval keeps the node table honest (e.g. the peer shown unreachable)."""
        queue: asyncio.Queue[Event] = asyncio.Queue()
        followers = [asyncio.create_task(self._follow_local(queue)),
                     asyncio.create_task(self._follow_peer(queue))]
        try:
            while True:
                yield await queue.get()
        finally:
            for task in followers:
                task.cancel()

    async def _config_or_none(self) -> ClusterConfig | None:
        try:
            return await asyncio.to_thread(self.lifecycle.configured)
        except Exception:  # noqa: BLE001 - a broken cluster.toml is shown by cluster()
            return None

    async def _interval(self) -> float:
        config = await self._config_or_none()
        return config.check_interval if config else DEFAULT_CHECK_INTERVAL

    async def _follow_local(self, queue: asyncio.Queue[Event]) -> None:
        socket_path = self.lifecycle.paths.control_socket
        while True:
            try:
                reader, writer = await asyncio.open_unix_connection(str(socket_path))
                try:
                    writer.write(json.dumps({"op": "events", "recent": 0}).encode() + b"\n")
                    await writer.drain()
                    async for line in reader:
                        _queue_event(queue, line, "local")
                finally:
                    writer.close()
            except (OSError, ValueError):
                pass
            queue.put_nowait(Event("refresh", "local", ""))
            await asyncio.sleep(await self._interval())

    async def _follow_peer(self, queue: asyncio.Queue[Event]) -> None:
        while True:
            config = await self._config_or_none()
            if config is not None:
                peer = self.lifecycle.peer(config.peer_of(socket.gethostname()).ip)
                try:
                    async for line in peer.stream_lines(PEER_EVENTS_COMMAND):
                        _queue_event(queue, line, "remote")
                except Exception:  # noqa: BLE001 - any failure means: peer stream down
                    pass
                queue.put_nowait(Event("refresh", "remote", ""))
            await asyncio.sleep(await self._interval())


PEER_EVENTS_COMMAND = ["skutui", "events", "--json", "--recent", "0"]


def _queue_event(queue: asyncio.Queue[Event], line: bytes | str, side: NodeSide) -> None:
    try:
        data = json.loads(line)
    except ValueError:
        return
    if isinstance(data, dict) and "kind" in data:
        queue.put_nowait(Event(str(data["kind"]), side, str(data.get("message", ""))))


def build_service(paths: Paths) -> RealClusterService:
    return RealClusterService(paths)
