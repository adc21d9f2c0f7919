"""The node agent: one asyncio process per node, for as long as the node is in a cluster.

What it runs, side by side:

- every check interval: re-read cluster.toml, notice role changes, start or stop the sync,
  guard the floating IPs, publish ``agent.json`` (``{"pid", "sync", "role", …}``);
- the peer link: one kept SSH connection to the other node, probed while it is away;
  when it returns, the sync compares whole trees and the journal replays;
- on the master with a configured peer only: the sync watcher and pusher, and the journal
  replayer (a backup never pushes and never replays);
- every few seconds: keepalived, conntrackd and (on the master) the configured services;
- the control socket: the current state and the event stream (``skutui events``);
- keepalived's notify FIFO: a transition is announced and run the moment keepalived makes
  it (keepalived's notify hook then finds it marked done; without the agent, the hook runs
  it itself).
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

from skutui.agent.control import ControlError, ControlServer, EventBus, now_iso
from skutui.agent.replication import ReplayBlocked, Replayer, SshReplayTarget
from skutui.system.hook import mark_done
from skutui.system.journal import Journal, JournalError
from skutui.agent.sync import Pusher, SshRemoteTree, SyncFilter, SyncService, synced_roots
from skutui.agent.transitions import STATE_ROLES, outcome_event, run_transition
from skutui.domain import codec
from skutui.system import files
from skutui.domain.model import DEFAULT_CHECK_INTERVAL, ClusterConfig, Node, Role
from skutui.domain.paths import Paths
from skutui.system.node import LocalNode

log = logging.getLogger("skutui.agent")

PEER_PROBE_INTERVAL = 2.0
SERVICE_CHECK_INTERVAL = 5.0
JOURNAL_POLL_INTERVAL = 1.0
"""``skutui exec`` wakes the replayer through the socket; polling catches a missed wake."""
BLOCKED_RETRY = 60.0
"""Seconds before a replay the peer refused is tried again (each try is reported)."""
ANSWER_RETRY = 10.0
FIFO_CHECK_INTERVAL = 1.0
"""Seconds between checks that keepalived's notify FIFO is still the one being read."""
ROLE_ANNOUNCE_GRACE = 2.0
"""Seconds a role change seen in the role file waits to be announced with its cause, by
keepalived's FIFO line or by its notify hook when that ran the transition (it writes the
file before it reports): waiting makes one change one event. A change neither announces
(keepalived died) is announced by a round after this."""
SYNC_RESTART_DELAY = 30.0
SERVICE_TIMEOUT = 10.0


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

    @property
    def name(self) -> str:
        return f"{self.node.hostname} ({self.node.ip})"

    async def probe(self) -> bool:
        from skutui.peer import PeerError

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
        from skutui.peer import HostKeyError

        message = str(exc)
        if self.up is not False or message != self.error:
            level = "error" if isinstance(exc, HostKeyError) else "warning"
            self.report("peer", f"{self.name} is unreachable: {message}", level=level,
                        peer=self.node.hostname, up=False)
        if self.up is not False:
            self.since = time.time()
        self.up, self.error = False, message
        self.replay_target.close()

    def status(self) -> dict:
        return {"name": self.node.hostname, "host": self.node.ip, "up": self.up,
                "since": self.since, "error": self.error}

    async def close(self) -> None:
        self.replay_target.close()
        await self.connection.close()


_UNSET = object()


def _open_fifo(path: Path) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        os.mkfifo(path, 0o600)
    return os.open(path, os.O_RDWR | os.O_NONBLOCK)


def _names(path: Path, fd: int) -> bool:
    """Whether ``path`` still names the file open as ``fd``."""
    try:
        named, opened = os.stat(path), os.fstat(fd)
    except OSError:
        return False
    return (named.st_dev, named.st_ino) == (opened.st_dev, opened.st_ino)


def _default_connection(node: Node, paths: Paths):
    from skutui.peer import PeerConnection

    return PeerConnection(node.ip, paths=paths)


def service_running(name: str) -> bool:
    try:
        result = subprocess.run(["service", name, "status"], capture_output=True,
                                timeout=SERVICE_TIMEOUT)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return result.returncode == 0


class Agent:
    def __init__(self, paths: Paths, *, node: LocalNode | None = None,
                 hostname: str | None = None,
                 connect: Callable[[Node, Paths], object] = _default_connection,
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
        self.sync_options = sync_options or {}
        self.service_check = service_check
        self.transition = transition
        self._transitions: asyncio.Queue[str] = asyncio.Queue()
        """keepalived's states from the FIFO, run in the order they came."""
        self.started = time.time()
        self.config: ClusterConfig | None = None
        self._config_seen: object = _UNSET
        self.roots: list[PurePosixPath] = []
        self.config_error: str | None = None
        self.link: PeerLink | None = None
        self.sync: SyncService | None = None
        self.replication_error: str | None = None
        self.queued = 0
        self.services: dict[str, bool] = {}
        self._sync_task: asyncio.Task | None = None
        self._sync_roots: list[PurePosixPath] = []
        self._sync_link: PeerLink | None = None
        self._round_now = asyncio.Event()
        self._role: Role | None = None
        self._role_seen: tuple[Role, float] | None = None
        """A change the rounds see but nobody announced yet, and when it was first seen."""
        self._replay_wake = asyncio.Event()
        self._acked = asyncio.Event()
        """Set, and replaced by a fresh one, each time the peer answers an entry."""
        self._blocked_until = 0.0
        self._sync_retry_at = 0.0
        self._closing: list[asyncio.Task] = []

    # --- what others read ----------------------------------------------------------------

    @property
    def sync_running(self) -> bool:
        return self.sync is not None and self.sync.running

    def publish(self) -> None:
        state = {"pid": os.getpid(), "sync": self.sync_running,
                 "role": self.node.effective_role().value,
                 "peer": None if self.link is None else self.link.up, "queued": self.queued}
        files.write_text_atomic(self.paths.agent_state, json.dumps(state) + "\n", mode=0o600)

    def state(self) -> dict:
        try:
            replication = self.journal.summary()
        except JournalError as exc:
            replication = {"error": str(exc)}
        replication["error"] = replication.get("error") or self.replication_error
        return {
            "node": self.hostname, "pid": os.getpid(), "started": now_iso(self.started),
            "role": self.node.effective_role().value, "configured": self.config is not None,
            "config_error": self.config_error, "sync": self.sync_running,
            "sync_status": self.sync.status() if self.sync else None,
            "peer": self.link.status() if self.link else None,
            "replication": replication, "services": dict(self.services),
        }

    # --- the every-interval round ----------------------------------------------------------

    def guard_floating_ips(self) -> None:
        """A killed or hung keepalived never releases its floating IPs, and the peer takes
        them too: drop them here so that only one node answers for them."""
        config = self.config
        if config is None or self.node.keepalived.running():
            return
        released = self.node.release_floating_ips(config)
        if released:
            self.events.emit("service", "keepalived is not running: released floating IPs "
                             + ", ".join(released), level="warning", released=released)

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
        self._note_role(role)
        await self._want_sync(role)
        if self.guard:
            await asyncio.to_thread(self.guard_floating_ips)
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
        if self.sync is not None:
            self.sync.request_reconcile()
        self._blocked_until = 0.0
        self.wake_replay()

    def _note_role(self, role: Role, cause: str | None = None) -> None:
        previous = self._role
        if role == previous:
            self._role_seen = None
            return
        if previous is None:
            self._role = role
            self.events.emit("role", f"agent started; this node is {role.value}",
                             role=role.value, cause="agent start")
            return
        now = time.monotonic()
        if self._role_seen is None or self._role_seen[0] is not role:
            self._role_seen = (role, now)
        if now - self._role_seen[1] < ROLE_ANNOUNCE_GRACE:
            return  # keepalived's notify hook announces it, with the outcome of its steps
        self._role, self._role_seen = role, None
        cause = cause or self._role_cause(role, previous)
        self.events.emit("role", f"{previous.value} -> {role.value}: {cause}",
                         level="warning" if role is Role.MAINTENANCE else "info",
                         role=role.value, previous=previous.value, cause=cause)

    def _role_cause(self, role: Role, previous: Role) -> str:
        away = self.link is not None and self.link.up is False
        if role is Role.MAINTENANCE:
            return ("maintenance was switched on" if self.node.in_maintenance()
                    else "keepalived reported FAULT (a tracked interface is down)")
        if role is Role.MASTER:
            return "keepalived made this node master" + (
                f" ({self.link.node.hostname} is unreachable)" if away else "")
        if role is Role.BACKUP and previous is Role.MASTER and not self.node.keepalived.running():
            return "keepalived is not running, so this node no longer acts as master"
        if role is Role.BACKUP and previous is Role.MAINTENANCE:
            return "left maintenance; keepalived made this node backup"
        return f"keepalived made this node {role.value}"

    def posted(self, kind: str, message: str, level: str, data: dict) -> None:
        """An event from another process. keepalived's notify hook reports the outcome of
        its steps, with the role: if the FIFO line did not announce that role (the agent
        started after it), it is announced first."""
        if data.get("role") in {r.value for r in Role} and "cause" in data:
            self.keepalived_moved(Role(data["role"]), data["cause"])
        self.events.emit(kind, message, level=level, **data)

    def keepalived_moved(self, role: Role, cause: str) -> None:
        """keepalived made this transition: announce it once, and start or stop the sync."""
        if role is self._role:
            return
        self._role, self._role_seen = role, None
        state = cause.removeprefix("keepalived ")
        self.events.emit("role", f"keepalived moved this node to {state}",
                         level="warning" if role is Role.MAINTENANCE else "info",
                         role=role.value, cause=cause)
        self._round_now.set()  # start or stop the sync now, not at the next interval

    def fifo_line(self, line: str) -> None:
        """One line of keepalived's notify FIFO, e.g. ``INSTANCE "SKUTUI" MASTER 120``. The
        role file is written here, before the event: a reader of the node table that the
        event sends looking must find the new role already."""
        words = line.replace('"', " ").split()
        if len(words) < 3 or words[0] != "INSTANCE" or words[2].lower() not in STATE_ROLES:
            return
        state = words[2].lower()
        role = STATE_ROLES[state]
        try:
            self.node.write_role(role)
        except OSError as exc:
            log.error("cannot write the role file: %s", exc)
        self.keepalived_moved(role, f"keepalived {words[2]}")
        self._transitions.put_nowait(state)

    async def run_transition(self, state: str) -> None:
        """Run the steps of keepalived's ``state``, mark them done for keepalived's hook,
        and report how they went."""
        failed = await asyncio.to_thread(self.transition, self.node, state)
        try:
            mark_done(self.paths.transition_mark, state)
        except OSError as exc:  # the hook then runs the steps again: harmless, only slower
            log.error("cannot mark the transition done: %s", exc)
        log.info("notify: transition to %s%s", state,
                 f"; failed: {'; '.join(failed)}" if failed else "")
        message, level, data = outcome_event(state, failed)
        self.events.emit("service", message, level=level, **data)

    # --- the sync ---------------------------------------------------------------------------

    async def _want_sync(self, role: Role) -> None:
        roots = self.roots
        want = role is Role.MASTER and self.link is not None and bool(roots)
        task = self._sync_task
        if task is not None and (task.done() or not want or roots != self._sync_roots
                                 or self.link is not self._sync_link):
            await self._stop_sync()
        if want and self._sync_task is None and time.monotonic() >= self._sync_retry_at:
            self._start_sync(roots)

    def _start_sync(self, roots: list[PurePosixPath]) -> None:
        link = self.link
        pusher = Pusher(roots, SyncFilter((PurePosixPath(self.paths.local_dir),)),
                        SshRemoteTree(link.connection),
                        may_push=lambda: self.node.effective_role() is Role.MASTER)
        self.sync = SyncService(pusher, report=self.events.emit, peer_name=link.node.hostname,
                                peer_ready=lambda: link.up is True, peer_lost=link.lost,
                                **self.sync_options)
        self._sync_roots = roots
        self._sync_link = link
        self._sync_task = asyncio.create_task(self.sync.run(), name="sync")

    async def _stop_sync(self) -> None:
        task, self._sync_task = self._sync_task, None
        if task is None:
            return
        task.cancel()
        results = await asyncio.gather(task, return_exceptions=True)
        if isinstance(results[0], Exception):
            self._sync_retry_at = time.monotonic() + SYNC_RESTART_DELAY
            self.events.emit("sync", f"the sync watcher failed: {results[0]}; starting it "
                             f"again in {SYNC_RESTART_DELAY:g} s", level="error")
        self.sync = None

    async def _flush_sync(self) -> None:
        if self.sync is not None and self.sync.running:
            await self.sync.flush()

    # --- replication ------------------------------------------------------------------------

    def wake_replay(self) -> None:
        self._replay_wake.set()

    async def replicate_once(self) -> None:
        """Replay what is pending, if this node is the master and the peer answers."""
        from skutui.peer import CommandTimeout, PeerError, PeerUnreachable

        link = self.link
        try:
            self.queued = len(self.journal.pending())
        except JournalError as exc:
            self._blocked(str(exc), BLOCKED_RETRY)
            return
        if not self.queued or link is None or link.up is not True:
            return
        if (self.node.effective_role() is not Role.MASTER
                or time.monotonic() < self._blocked_until):
            return
        replayer = Replayer(self.journal, link.replay_target, self._replayed)
        try:
            await replayer.replay_pending(before_each=self._flush_sync)
        except PeerUnreachable as exc:
            link.lost(exc)
        except CommandTimeout as exc:
            self._blocked(f"no answer from {link.node.hostname}: {exc}; asking again "
                          f"(it is never run twice)", ANSWER_RETRY, level="warning")
        except (ReplayBlocked, PeerError, JournalError) as exc:
            self._blocked(f"replication to {link.node.hostname} is blocked: {exc}",
                          BLOCKED_RETRY)
        else:
            self.replication_error = None
        with contextlib.suppress(JournalError):
            self.queued = len(self.journal.pending())

    def _replayed(self, kind: str, message: str, **data) -> None:
        self.events.emit(kind, message, **data)
        acked, self._acked = self._acked, asyncio.Event()
        acked.set()

    async def wait_acked(self, seq: int, wait: float) -> bool:
        """Whether the peer has answered entry ``seq``, waiting up to ``wait`` seconds
        (``skutui exec`` waits here instead of polling the journal)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        while True:
            try:
                if self.journal.outcome(seq) is not None:
                    return True
            except JournalError:
                return False
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._acked.wait(), remaining)

    def _blocked(self, message: str, retry: float, level: str = "error") -> None:
        self.replication_error = message
        self._blocked_until = time.monotonic() + retry
        self.events.emit("replication", f"{message}; trying again in {retry:g} s", level=level)

    # --- the loops --------------------------------------------------------------------------

    async def _rounds(self) -> None:
        while True:
            try:
                await self.round()
            except Exception:  # noqa: BLE001 - the agent must outlive one bad round
                log.exception("agent round failed")
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._round_now.wait(), self.check_interval())
            self._round_now.clear()

    async def _peer_probes(self) -> None:
        while True:
            if self.link is not None:
                try:
                    await self.link.probe()
                except Exception:  # noqa: BLE001
                    log.exception("peer probe failed")
            await asyncio.sleep(PEER_PROBE_INTERVAL)

    async def _keepalived_fifo(self) -> None:
        """Read keepalived's notify FIFO, made here if keepalived has not made it yet. It is
        opened for writing too, so that keepalived restarting never reads as end of file,
        and opened again when the path names another FIFO: keepalived removes the one it
        made when it stops, and makes a new one when it starts."""
        loop = asyncio.get_running_loop()
        fd: int | None = None
        pending = bytearray()

        def readable() -> None:
            try:
                pending.extend(os.read(fd, 4096))
            except BlockingIOError:
                return
            while b"\n" in pending:
                line, _, rest = bytes(pending).partition(b"\n")
                pending[:] = rest
                try:
                    self.fifo_line(line.decode("utf-8", "replace"))
                except Exception:  # noqa: BLE001 - one bad line must not stop the reader
                    log.exception("notify FIFO line failed: %r", line)

        try:
            while True:
                if fd is None or not _names(self.paths.notify_fifo, fd):
                    if fd is not None:
                        loop.remove_reader(fd)
                        os.close(fd)
                    fd = _open_fifo(self.paths.notify_fifo)
                    pending.clear()
                    loop.add_reader(fd, readable)
                await asyncio.sleep(FIFO_CHECK_INTERVAL)
        finally:
            if fd is not None:
                loop.remove_reader(fd)
                os.close(fd)

    async def _run_transitions(self) -> None:
        while True:
            state = await self._transitions.get()
            try:
                await self.run_transition(state)
            except Exception:  # noqa: BLE001 - the next transition must still run
                log.exception("transition to %s failed", state)

    async def _replication(self) -> None:
        while True:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._replay_wake.wait(), JOURNAL_POLL_INTERVAL)
            self._replay_wake.clear()
            try:
                await self.replicate_once()
            except Exception:  # noqa: BLE001
                log.exception("replication round failed")

    async def _service_checks(self) -> None:
        while True:
            try:
                await self.check_services()
            except Exception:  # noqa: BLE001
                log.exception("service check failed")
            await asyncio.sleep(SERVICE_CHECK_INTERVAL)

    async def check_services(self) -> None:
        """Report each daemon or service that stops or starts running; on a backup the
        configured services are meant to be stopped, so only the master checks them."""
        if self.config is None:
            self.services = {}
            return
        names = ["keepalived", "conntrackd"]
        master = self.node.effective_role() is Role.MASTER
        if master:
            names += list(self.config.services)

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
                self.events.emit("service", f"{name} is running again on {where}",
                                 service=name, running=True)
            else:
                self.events.emit("service", f"{name} is not running on {where}", level="error",
                                 service=name, running=False)
        self.services = now

    async def run(self) -> None:
        server = ControlServer(self.paths.control_socket, self.events, self.state,
                               on_wake=self.wake_replay, on_post=self.posted,
                               on_wait=self.wait_acked)
        await server.start()
        self.events.emit("agent", f"agent started (pid {os.getpid()})")
        loops = [asyncio.create_task(coro, name=coro.__name__) for coro in (
            self._rounds(), self._peer_probes(), self._replication(), self._service_checks(),
            self._keepalived_fifo(), self._run_transitions())]
        try:
            await asyncio.gather(*loops)
        finally:
            for task in loops:
                task.cancel()
            await asyncio.gather(*loops, return_exceptions=True)
            await self._stop_sync()
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

