"""The agent's kept connection to the other node, and whether it answers.

The sync and the replication both ride on it; neither probes the peer itself, so the peer
coming and going is reported once, here, and both hear of its return.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable

from skutui.agent.replication import SshReplayTarget
from skutui.domain import trust
from skutui.domain.model import Node
from skutui.domain.paths import Paths
from skutui.peer import HostKeyError, PeerConnection, PeerError, PeerProcess

log = logging.getLogger("skutui.agent")

PEER_PROBE_INTERVAL = 2.0


class PeerLink:
    """The kept connection to the other node, and whether it answers.

    Up/down changes are reported once each; ``on_up`` callbacks run when the peer returns.
    """

    def __init__(self, node: Node, connection, report: Callable[..., object]) -> None:
        self.node = node
        self.connection = connection
        self.report = report
        self.up: bool | None = None
        self.error: str | None = None
        self.since: float | None = None
        self.on_up: list[Callable[[], object]] = []
        self.replay_target = SshReplayTarget(connection)
        """The peer's replayer, kept running over the connection between commands."""
        self.agent_state = PeerAgentState(connection)
        """The peer agent's account of itself, for the hand-over."""
        self.on_up.append(self.agent_state.warm)

    @property
    def name(self) -> str:
        return f"{self.node.hostname} ({self.node.ip})"

    async def probe(self) -> bool:
        if not self.connection.connected:
            try:
                await self.connection.connect()
            except PeerError as exc:
                self.lost(exc)
                return False
        if self.up is not True:
            self.up, self.error, self.since = True, None, time.time()
            self.report("peer", f"{self.name} is reachable", peer=self.node.hostname, up=True)
            for callback in self.on_up:
                callback()
        return True

    def lost(self, exc: BaseException) -> None:
        message = str(exc)
        if self.up is not False or message != self.error:
            level = "error" if isinstance(exc, HostKeyError) else "warning"
            self.report("peer", f"{self.name} is unreachable: {message}", level=level,
                        peer=self.node.hostname, up=False)
        if self.up is not False:
            self.since = time.time()
        self.up, self.error = False, message
        self.replay_target.close()
        self.agent_state.close()

    def status(self) -> dict:
        return {"name": self.node.hostname, "host": self.node.ip, "up": self.up,
                "since": self.since, "error": self.error}

    async def close(self) -> None:
        self.replay_target.close()
        self.agent_state.close()
        await self.connection.close()


class PeerAgentState:
    """The peer agent's own account of itself (role, priority), from one ``skutui node
    agent-state --stream`` kept running on the peer: a line out, a line back. Started as soon
    as the peer answers, so a hand-over never waits for a process to start there."""

    WARM_TIMEOUT = 30.0

    def __init__(self, peer) -> None:
        self.peer = peer
        self._process: PeerProcess | None = None
        self._lock = asyncio.Lock()
        self._warming: asyncio.Future | None = None

    async def read(self, timeout: float) -> dict:
        async with self._lock:
            if self._process is None or self._process.closed:
                self._process = await self.peer.open_process(
                    [*trust.NODE_COMMAND, "agent-state", "--stream"])
            try:
                answer = json.loads(await self._process.ask("", timeout))
            except BaseException:
                self.close()
                raise
        if not isinstance(answer, dict):
            raise ValueError(f"the peer's agent state is not an object: {answer!r}")
        return answer

    def warm(self) -> None:
        """Start the process now and read once, in the background."""
        if self._warming is None or self._warming.done():
            self._warming = asyncio.ensure_future(self._warm())

    async def _warm(self) -> None:
        with contextlib.suppress(Exception):
            await self.read(self.WARM_TIMEOUT)

    def close(self) -> None:
        if self._process is not None:
            self._process.close()
            self._process = None


def peer_connection(node: Node, paths: Paths) -> PeerConnection:
    return PeerConnection(node.ip, paths=paths)


async def probe_forever(current: Callable[[], PeerLink | None]) -> None:
    """Probe whichever link the configuration names at the time (it may change or go)."""
    while True:
        link = current()
        if link is not None:
            try:
                await link.probe()
            except Exception:  # noqa: BLE001
                log.exception("peer probe failed")
        await asyncio.sleep(PEER_PROBE_INTERVAL)
