"""The node agent: one asyncio process per node, for as long as the node is in a cluster.

This module only puts the parts together and runs them side by side:

- every check interval, a round: re-read cluster.toml (its peer makes the peer link), tell
  the role supervisor the role file's role, start or stop the sync, publish ``agent.json``
  (``{"pid", "sync", "role", …}``);
- the peer link (:mod:`.link`): one kept SSH connection to the other node, probed while it
  is away; when it returns, the sync compares whole trees and the journal replays;
- the role supervisor (:mod:`.role_supervisor`): keepalived's notify FIFO read, and each
  transition announced and run the moment keepalived makes it (keepalived's notify hook
  then finds it marked done; without the agent, the hook runs it itself);
- on the master with a configured peer only: the sync (:mod:`.sync_supervisor`) and the
  journal's replay (:mod:`.replication_supervisor`); a backup never pushes, never replays;
- every few seconds, keepalived, conntrackd and the configured services this node should
  run (:mod:`.services`);
- every round, the operator's services started or stopped as the role wants them
  (:mod:`.service_keeper`); a master whose service went down hands over to a healthy peer
  at once (:mod:`.handover`);
- keepalived's processes watched, so that a master whose keepalived dies hands over at
  once, and no floating IP stays without keepalived (:mod:`.takeover`);
- what the cluster link filter drops, and the peer's link-layer address against its pin
  (:mod:`.cluster_link`);
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
import subprocess
import time
from collections.abc import Callable
from pathlib import Path, PurePosixPath

from skutui.agent.cluster_link import ClusterLinkWatch
from skutui.agent.control import ControlServer, EventBus, now_iso
from skutui.agent.handover import Handover
from skutui.agent.link import PeerLink, peer_connection, probe_forever
from skutui.agent.observers import Observers
from skutui.agent.replication_supervisor import ReplicationSupervisor
from skutui.agent.role_supervisor import RoleSupervisor
from skutui.agent.service_keeper import ServiceKeeper
from skutui.agent.services import ServiceChecks, service_running
from skutui.agent.sync_supervisor import Generations, SyncSupervisor
from skutui.agent.takeover import KeepalivedWatch
from skutui.agent.transitions import run_transition
from skutui.domain import codec
from skutui.domain.model import DEFAULT_CHECK_INTERVAL, ClusterConfig, Node
from skutui.domain.paths import Paths
from skutui.domain.syncplan import synced_roots
from skutui.system import files, logs
from skutui.system.change import ChangeBusy, interrupted
from skutui.system.control import ControlError
from skutui.system.journal import Journal
from skutui.system.locks import FileLock, Held
from skutui.system.node import LocalNode, NodeError, skutui_command
from skutui.system.units import booted, notify

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
        self._published = False
        self._closing: list[asyncio.Task] = []
        report = self.events.emit
        self.handover = Handover(self.node, paths, self.hostname, report, lambda: self.config,
                                 lambda: self.link)
        self.roles = RoleSupervisor(self.node, paths, report, transition=transition,
                                    link=lambda: self.link, on_moved=self._round_now.set,
                                    on_priority=self.handover.priority)
        self.keeper = ServiceKeeper(paths, report)
        self.sync = SyncSupervisor(self.node, paths, report, sync_options,
                                   generations=Generations(paths, self.hostname, self.roles.term),
                                   hostname=self.hostname)
        self.replication = ReplicationSupervisor(self.journal, self.node, report,
                                                 link=lambda: self.link,
                                                 before_each=self.sync.flush,
                                                 term=self.roles.term)
        self.checks = ServiceChecks(self.node, report, lambda: self.config,
                                    service_check=service_check)
        self.observers = Observers(self.node, paths, self.hostname, self.events,
                                   config=lambda: self.config, link=lambda: self.link,
                                   roots=lambda: self.roots, sync=self.sync,
                                   replication=self.replication.summary,
                                   services=lambda: dict(self.checks.services),
                                   cluster_link=lambda: self.link_watch.status())
        self.keepalived_watch = KeepalivedWatch(self.node, report, lambda: self.config,
                                                self.hostname)
        self.link_watch = ClusterLinkWatch(self.node, paths, report, lambda: self.config,
                                           self.hostname)

    # --- what others read ----------------------------------------------------------------

    def publish(self) -> None:
        state = {"pid": os.getpid(), "sync": self.sync.running,
                 "role": self.node.effective_role().value,
                 "peer": None if self.link is None else self.link.up,
                 "queued": self.replication.queued, "priority": self.roles.priority,
                 "observed": self.observers.published(), "cluster_link": self.link_watch.status()}
        files.write_text_atomic(self.paths.agent_state, json.dumps(state) + "\n", mode=0o600)
        self._published = True

    def state(self) -> dict:
        return {
            "node": self.hostname, "pid": os.getpid(), "started": now_iso(self.started),
            "role": self.node.effective_role().value, "priority": self.roles.priority,
            "configured": self.config is not None, "config_error": self.config_error,
            "sync": self.sync.running,
            "sync_status": self.sync.status(),
            "peer": self.link.status() if self.link else None,
            "replication": self.replication.summary(), "services": dict(self.checks.services),
            "cluster_link": self.link_watch.status(),
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
        if not self._published:
            # Up before the first round's slow part (services started, the peer dialled): a
            # node just booted must not read as "agent is down" for those seconds.
            self.publish()
        await self.keeper.keep(self.config, await asyncio.to_thread(self.node.services_role, self.config))
        self.handover.clear_if_stale()
        await self.sync.want(role, self.roots, self.link)
        self.publish()

    def _configure(self, config: ClusterConfig | None) -> None:
        if config == self._config_seen:
            return
        self._config_seen = self.config = config
        self.observers.metrics.configured()
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

    def finish_interrupted_change(self) -> None:
        """A change killed before it could roll back (this node lost power in the middle of
        it) left its record: the node that started it rolls both nodes back, in a process of
        its own (the rollback may stop this agent); the other node says whose it is."""
        try:
            record = interrupted(self.paths)
        except ChangeBusy as exc:
            self.events.emit("agent", str(exc), level="error")
            return
        if record is None:
            return
        old = record.change
        if old.node != self.hostname:
            self.events.emit("agent", f"the {old.what} started on {old.node} at {old.started} "
                             f"(pid {old.pid}) did not end; {old.node} rolls it back at its "
                             "next skutui command", level="warning")
            return
        self.events.emit("agent", f"the {old.what} started here at {old.started} (pid "
                         f"{old.pid}) was interrupted; rolling both nodes back "
                         "(`skutui node recover`)", level="warning")
        try:
            argv = [skutui_command(), "node", "recover"]
            if booted():  # a unit of its own: stopping this agent's unit must not stop it
                argv = ["systemd-run", "--quiet", "--collect", "--unit=skutui-recover", *argv]
            subprocess.Popen(argv, stdin=subprocess.DEVNULL, start_new_session=True,
                             close_fds=True)
        except (OSError, NodeError) as exc:
            self.events.emit("agent", f"the rollback could not be started: {exc}; run "
                             "`skutui node recover`", level="error")

    def claim(self) -> FileLock:
        """This node's one agent: the lock is held until this process ends, however it
        ends, and taken before anything else (the control socket, the FIFO) is touched."""
        lock = FileLock(self.paths.agent_lock)
        try:
            lock.acquire({"pid": os.getpid(), "started": now_iso(self.started)})
        except Held as held:
            raise ControlError(f"another skutui agent runs on this node (pid "
                               f"{held.holder.get('pid', '?')}, since "
                               f"{held.holder.get('started', '?')}); stop it first "
                               "(`skutui node stop`)") from None
        return lock

    async def run(self) -> None:
        lock = self.claim()
        try:
            await self._serve()
        finally:
            lock.release()

    async def _serve(self) -> None:
        server = ControlServer(self.paths.control_socket, self.events, self.state,
                               on_wake=self.replication.wake,
                               on_wait=self.replication.wait_acked,
                               on_transition=self.roles.reported,
                               operations=self.observers.operations())
        await server.start()
        self.events.emit("agent", f"agent started (pid {os.getpid()})")
        self.roles.start()
        self.finish_interrupted_change()
        notify("READY=1")  # its unit (Type=notify) is started once the control socket answers
        loops = [asyncio.create_task(coro, name=name) for name, coro in (
            ("rounds", self._rounds()),
            ("peer probes", probe_forever(lambda: self.link)),
            ("replication", self.replication.run()),
            ("service checks", self.checks.run()),
            ("notify fifo", self.roles.read_notify_fifo()),
            ("transitions", self.roles.run_transitions()),
            ("observers", self.observers.run()),
            *((("keepalived watch", self.keepalived_watch.run()),
               ("cluster link", self.link_watch.run())) if self.guard else ()))]
        try:
            await asyncio.gather(*loops)
        finally:
            notify("STOPPING=1")
            for task in loops:
                task.cancel()
            await asyncio.gather(*loops, return_exceptions=True)
            await self.keeper.close()
            await self.handover.close()
            await self.sync.stop()
            self.events.emit("agent", "agent stopping")
            if self.link is not None:
                self._closing.append(asyncio.ensure_future(self.link.close()))
            await asyncio.gather(*self._closing, return_exceptions=True)
            await self.observers.close()
            await server.close()
            self.paths.agent_state.unlink(missing_ok=True)


def main(argv: list[str]) -> int:
    paths = Paths(config_root=Path(argv[-1]))
    logs.setup(paths)
    logging.getLogger("asyncssh").setLevel(logging.WARNING)
    agent = Agent(paths)

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
