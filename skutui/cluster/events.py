"""Both nodes' events for the console: this node's agent over its control socket, the peer's
over the kept SSH connection. While a stream is down, a bare refresh each check interval
keeps the node table honest (e.g. the peer shown unreachable)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

from skutui.cluster.nodeops import RemoteNodeOps
from skutui.domain.model import DEFAULT_CHECK_INTERVAL, ClusterConfig
from skutui.domain.wire import Event, NodeSide


class EventFollower:
    def __init__(self, control_socket: Path,
                 config: Callable[[], Awaitable[ClusterConfig | None]],
                 remote: Callable[[ClusterConfig], RemoteNodeOps]):
        self.control_socket = control_socket
        self.config = config
        """The configured cluster, or None (also when cluster.toml cannot be read)."""
        self.remote = remote

    async def events(self) -> AsyncIterator[Event]:
        queue: asyncio.Queue[Event] = asyncio.Queue()
        followers = [asyncio.create_task(self._follow_local(queue)),
                     asyncio.create_task(self._follow_peer(queue))]
        try:
            while True:
                yield await queue.get()
        finally:
            for task in followers:
                task.cancel()

    async def _interval(self) -> float:
        config = await self.config()
        return config.check_interval if config else DEFAULT_CHECK_INTERVAL

    async def _follow_local(self, queue: asyncio.Queue[Event]) -> None:
        socket_path = self.control_socket
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
            config = await self.config()
            if config is not None:
                try:
                    async for line in self.remote(config).event_lines():
                        _queue_event(queue, line, "remote")
                except Exception:  # noqa: BLE001 - any failure means: peer stream down
                    pass
                queue.put_nowait(Event("refresh", "remote", ""))
            await asyncio.sleep(await self._interval())


def _queue_event(queue: asyncio.Queue[Event], line: bytes | str, side: NodeSide) -> None:
    try:
        data = json.loads(line)
    except ValueError:
        return
    if isinstance(data, dict) and "kind" in data:
        queue.put_nowait(Event(str(data["kind"]), side, str(data.get("message", ""))))
