"""Node operations, the same on both sides: in-process for this node, over SSH for the peer.

``LocalOps`` runs :class:`~skutui.system.node.LocalNode` in a thread (its work is blocking: files,
subprocesses); ``RemoteOps`` runs ``skutui node …`` on the peer over the kept connection.
The lifecycle drives both through this one interface, and tests drive it through fakes.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any, Protocol

from skutui.domain import codec
from skutui.domain.errors import Failed
from skutui.domain.model import ClusterConfig, Role
from skutui.system.node import LocalNode, NodeFacts

if TYPE_CHECKING:
    from skutui.peer import PeerProcess

NODE_COMMAND = ("skutui", "node")
PEER_EVENTS_COMMAND = ["skutui", "events", "--json", "--recent", "0"]


class NodeOps(Protocol):
    name: str
    """The node's hostname once known; the peer's address until pre-flight learns it."""

    async def facts(self) -> NodeFacts: ...
    async def inventory(self) -> dict[str, Any]: ...
    async def snapshot(self) -> dict[str, Any]: ...
    async def restore(self, snapshot: dict[str, Any]) -> None: ...
    async def apply(self, config: ClusterConfig) -> None: ...
    async def reload(self) -> None: ...
    async def start(self) -> None: ...
    async def stop(self) -> None: ...
    async def erase(self) -> None: ...
    async def set_maintenance(self, on: bool) -> str: ...
    async def close(self) -> None: ...


class LocalNodeOps(NodeOps, Protocol):
    """What only this node is asked: the console and the checks read its files directly."""

    async def config(self) -> ClusterConfig | None: ...
    async def role(self) -> Role: ...


class RemoteNodeOps(NodeOps, Protocol):
    def event_lines(self) -> AsyncIterator[str]:
        """The peer agent's events, one JSON line each, until the stream breaks."""


class LocalOps:
    def __init__(self, node: LocalNode, name: str = "this node"):
        self.node = node
        self.name = name

    async def _call(self, method: str, *args):
        return await asyncio.to_thread(getattr(self.node, method), *args)

    async def facts(self) -> NodeFacts:
        return await self._call("facts")

    async def inventory(self) -> dict[str, Any]:
        return await self._call("inventory")

    async def snapshot(self) -> dict[str, Any]:
        return await self._call("snapshot")

    async def restore(self, snapshot: dict[str, Any]) -> None:
        await self._call("restore", snapshot)

    async def apply(self, config: ClusterConfig) -> None:
        await self._call("apply", config)

    async def reload(self) -> None:
        await self._call("reload")

    async def start(self) -> None:
        await self._call("start")

    async def stop(self) -> None:
        await self._call("stop")

    async def erase(self) -> None:
        await self._call("erase")

    async def set_maintenance(self, on: bool) -> str:
        return await self._call("set_maintenance", on)

    async def config(self) -> ClusterConfig | None:
        return await self._call("config")

    async def role(self) -> Role:
        return await self._call("role")

    async def close(self) -> None:
        pass


class RemoteOps:
    def __init__(self, peer, name: str):
        self.peer = peer
        self.name = name
        self._facts: PeerProcess | None = None
        """``skutui node facts --stream`` on the peer, kept between reads of the node table."""

    async def _node(self, *operation: str, input: str | None = None, timeout: float | None = None) -> str:
        from skutui.peer import RemoteCommandFailed  # asyncssh: slow to import, peer only

        try:
            result = await self.peer.run_checked([*NODE_COMMAND, *operation], input=input, timeout=timeout)
        except RemoteCommandFailed as exc:
            if exc.exit_status == -1 and not self.peer.connected:
                # No exit status because the connection dropped, not because the step failed.
                raise RemoteNodeError(
                    f"{self.name}: lost the SSH connection to {self.peer.host} while "
                    f"`{exc.command}` ran there; the step may have stopped half-way") from None
            # The peer's skutui already printed an operator message; pass it on as it is.
            detail = (exc.stderr or "").strip().removeprefix("skutui: ")
            raise RemoteNodeError(f"{self.name}: {detail or exc}") from None
        return result.stdout

    async def facts(self) -> NodeFacts:
        from skutui.peer import RemoteCommandFailed  # asyncssh: slow to import, peer only

        if self._facts is None or self._facts.closed:
            self._facts = await self.peer.open_process([*NODE_COMMAND, "facts", "--stream"])
        facts = self._facts
        try:
            answer = await facts.ask("", self.peer.command_timeout)
        except RemoteCommandFailed as exc:
            detail = (exc.stderr or "").strip().removeprefix("skutui: ")
            raise RemoteNodeError(f"{self.name}: {detail or exc}") from None
        return NodeFacts.from_dict(json.loads(answer))

    async def inventory(self) -> dict[str, Any]:
        return json.loads(await self._node("inventory"))

    async def snapshot(self) -> dict[str, Any]:
        return json.loads(await self._node("snapshot"))

    async def restore(self, snapshot: dict[str, Any]) -> None:
        await self._node("restore", input=json.dumps(snapshot))

    async def apply(self, config: ClusterConfig) -> None:
        await self._node("apply", input=codec.dumps(config))

    async def reload(self) -> None:
        await self._node("reload")

    async def start(self) -> None:
        await self._node("start")

    async def stop(self) -> None:
        await self._node("stop")

    async def erase(self) -> None:
        await self._node("erase")

    async def set_maintenance(self, on: bool) -> str:
        return (await self._node("maintenance", "on" if on else "off")).strip()

    async def event_lines(self) -> AsyncIterator[str]:
        async for line in self.peer.stream_lines(PEER_EVENTS_COMMAND):
            yield line

    async def close(self) -> None:
        """Ends the kept facts command and the connection; the next request opens both again."""
        if self._facts is not None:
            self._facts.close()
            self._facts = None
        await self.peer.close()


class RemoteNodeError(Failed):
    """The peer refused or failed an operation; the message is the peer's own."""
