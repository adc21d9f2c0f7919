"""The node agent: one asyncio process per node, for as long as the node is in a cluster.

This module only puts the parts together and runs them side by side:

- every check interval, a round: re-read cluster.toml (its peer makes the peer link), tell
  the role supervisor the role file's role, start or stop the sync, guard the floating IPs,
  publish ``agent.json`` (``{"pid", "sync", "role", …}``);
- the peer link (:mod:`.link`): one kept SSH connection to the other node, probed while it
  is away; when it returns, the sync compares whole trees and the journal replays;
- the role supervisor (:mod:`.role_supervisor`): keepalived's notify FIFO read, and each
  transition announced and run the moment keepalived makes it (keepalived's notify hook
  then finds it marked done; without the agent, the hook runs it itself);
- on the master with a configured peer only: the sync (:mod:`.sync_supervisor`) and the
  journal's replay (:mod:`.replication_supervisor`); a backup never pushes, never replays;
- every few seconds, keepalived, conntrackd and (on the master) the configured services
  (:mod:`.services`);
- the control socket (:mod:`.control`): the current state and the event stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import socket
import time
from collections.abc import Callable
from pathlib import Path, PurePosixPath

from skutui.agent.control import ControlServer, EventBus, now_iso
from skutui.agent.link import PeerLink, peer_connection, probe_forever
from skutui.agent.replication_supervisor import ReplicationSupervisor
from skutui.agent.role_supervisor import RoleSupervisor
from skutui.agent.services import ServiceChecks, service_running
from skutui.agent.sync_supervisor import SyncSupervisor
from skutui.agent.transitions import run_transition
from skutui.domain import codec
from skutui.domain.model import DEFAULT_CHECK_INTERVAL, ClusterConfig, Node
from skutui.domain.paths import Paths
from skutui.domain.syncplan import synced_roots
from skutui.system import files
from skutui.system.control import ControlError
from skutui.system.journal import Journal
from skutui.system.node import LocalNode

log = logging.getLogger("skutui.agent")

_UNSET = object()


class Agent:
    def __init__(self, paths: Paths, *, node: LocalNode | None = None,
                 hostname: str | None = None,
                 connect: Callable[[Node, Paths], object] = peer_connection,
                 guard: bool = True, sync_options: dict | None = None,
                 service_check: Callable[[str], bool] = service_running,
                 transition: Callable[[LocalNode, str], list[str]] = run_transition) -> None:
        self.paths = paths
        self.node = node or LocalNode(paths)
        self.hostname = hostname or socket.gethostname()
        self.events = EventBus(self.hostname)
        self.journal = Journal(paths.journal_dir)
        self.connect = connect
        self.guard = guard
        self.started = time.time()
        self.config: ClusterConfig | None = None
        self._config_seen: object = _UNSET
        self.roots: list[PurePosixPath] = []
        self.config_error: str | None = None
        self.link: PeerLink | None = None
        self._round_now = asyncio.Event()
        self._closing: list[asyncio.Task] = []
        report = self.events.emit
        self.roles = RoleSupervisor(self.node, paths, report, transition=transition,
                                    link=lambda: self.link, on_moved=self._round_now.set)
        self.sync = SyncSupervisor(self.node, paths, report, sync_options)
        self.replication = ReplicationSupervisor(self.journal, self.node, report,
                                                 link=lambda: self.link,
                                                 before_each=self.sync.flush)
        self.checks = ServiceChecks(self.node, report, lambda: self.config,
                                    service_check=service_check)

    # --- what others read ----------------------------------------------------------------

    def publish(self) -> None:
        state = {"pid": os.getpid(), "sync": self.sync.running,
                 "role": self.node.effective_role().value,
                 "peer": None if self.link is None else self.link.up,
                 "queued": self.replication.queued}
        files.write_text_atomic(self.paths.agent_state, json.dumps(state) + "\n", mode=0o600)

    def state(self) -> dict:
        return {
            "node": self.hostname, "pid": os.getpid(), "started": now_iso(self.started),
            "role": self.node.effective_role().value, "configured": self.config is not None,
            "config_error": self.config_error, "sync": self.sync.running,
            "sync_status": self.sync.status(),
            "peer": self.link.status() if self.link else None,
            "replication": self.replication.summary(), "services": dict(self.checks.services),
        }

    # --- the every-interval round ----------------------------------------------------------

    def check_interval(self) -> float:
        return self.config.check_interval if self.config else DEFAULT_CHECK_INTERVAL

    def _read_config(self) -> ClusterConfig | None:
        try:
            config = self.node.config()
        except codec.ConfigError as exc:
            if str(exc) != self.config_error:
                self.events.emit("agent", f"cluster.toml cannot be read: {exc}; keeping the "
                                 "last good configuration", level="error")
            self.config_error = str(exc)
            return self.config
        self.config_error = None
        return config

    async def round(self) -> None:
        self._configure(await asyncio.to_thread(self._read_config))
        role = self.node.effective_role()
        self.roles.note(role)
        await self.sync.want(role, self.roots, self.link)
        if self.guard:
            await asyncio.to_thread(self.roles.guard_floating_ips, self.config)
        self.publish()

    def _configure(self, config: ClusterConfig | None) -> None:
        if config == self._config_seen:
            return
        self._config_seen = self.config = config
        self.roots = []
        peer = None
        if config is not None:
            self.roots, refused = synced_roots(config.synced_paths, self.paths.config_root)
            for reason in refused:
                self.events.emit("sync", f"synced path refused: {reason}", level="error")
            try:
                peer = config.peer_of(self.hostname)
                config.node(self.hostname)
            except KeyError:
                self.events.emit("agent", f"this node's hostname {self.hostname} is not in "
                                 "cluster.toml; no peer to sync with", level="error")
                peer = None
        if self.link is not None and (peer is None or self.link.node != peer):
            self._closing.append(asyncio.ensure_future(self.link.close()))
            self.link = None
        if peer is not None and self.link is None:
            self.link = PeerLink(peer, self.connect(peer, self.paths), self.events.emit)
            self.link.on_up.append(self._peer_back)

    def _peer_back(self) -> None:
        self.sync.peer_back()
        self.replication.peer_back()

    async def _rounds(self) -> None:
        while True:
            try:
                await self.round()
            except Exception:  # noqa: BLE001 - the agent must outlive one bad round
                log.exception("agent round failed")
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._round_now.wait(), self.check_interval())
            self._round_now.clear()

    # --- running the parts -------------------------------------------------------------------

    async def run(self) -> None:
        server = ControlServer(self.paths.control_socket, self.events, self.state,
                               on_wake=self.replication.wake, on_post=self.roles.posted,
                               on_wait=self.replication.wait_acked)
        await server.start()
        self.events.emit("agent", f"agent started (pid {os.getpid()})")
        loops = [asyncio.create_task(coro, name=name) for name, coro in (
            ("rounds", self._rounds()),
            ("peer probes", probe_forever(lambda: self.link)),
            ("replication", self.replication.run()),
            ("service checks", self.checks.run()),
            ("notify fifo", self.roles.read_notify_fifo()),
            ("transitions", self.roles.run_transitions()))]
        try:
            await asyncio.gather(*loops)
        finally:
            for task in loops:
                task.cancel()
            await asyncio.gather(*loops, return_exceptions=True)
            await self.sync.stop()
            self.events.emit("agent", "agent stopping")
            if self.link is not None:
                self._closing.append(asyncio.ensure_future(self.link.close()))
            await asyncio.gather(*self._closing, return_exceptions=True)
            await server.close()
            self.paths.agent_state.unlink(missing_ok=True)


def main(argv: list[str]) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger("asyncssh").setLevel(logging.WARNING)
    agent = Agent(Paths(config_root=Path(argv[-1])))

    async def serve() -> None:
        task = asyncio.current_task()
        assert task is not None, "asyncio.run runs serve() in a task"
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, task.cancel)
        with contextlib.suppress(asyncio.CancelledError):
            await agent.run()

    try:
        asyncio.run(serve())
    except ControlError as exc:
        log.error("%s", exc)
        return 1
    return 0
