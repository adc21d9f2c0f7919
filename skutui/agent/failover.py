"""Failovers as records: each one written once, by the node that took over, on both nodes.

Two halves make a failover, each seen by one node:

- the old master's **release**: the moment it stopped being master and why (keepalived
  died, FAULT for maintenance, a drill or a link, BACKUP for a returning preferred node),
  with what it had not handed over yet (changes not pushed, commands not replayed). It is
  emitted as a ``release`` event, so it is in this node's history before anyone asks;
- the new master's **takeover**: keepalived's MASTER line (it holds the floating IPs then)
  and the outcome of the MASTER steps (the commit of the peer's connections, timed).

The new master asks the old one for its release over the agent's kept connection (``skutui
node history``), writes the failover record and hands the old master a copy (``skutui node
history --put``). An old master that cannot be asked (gone, cut off) is asked again when it
answers again, and both copies are completed then.

A keepalived killed outright says nothing: its processes are watched through pidfds while
this node is master, so its death is timed to the moment, not to the agent's next round.
Nothing here runs on the takeover path: the bus's listener only notes times and starts a task.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from skutui.agent.history import HistoryWriter
from skutui.agent.link import PeerLink
from skutui.agent.pidwatch import ProcessWatch
from skutui.domain import history, trust
from skutui.domain.model import ClusterConfig, Role
from skutui.domain.paths import Paths
from skutui.domain.render import vrrp_priority
from skutui.peer import PeerError
from skutui.system.history import HistoryError, HistoryStore
from skutui.system.node import LocalNode

log = logging.getLogger("skutui.agent")

MASTER_LINE = "keepalived MASTER"
"""The cause keepalived's FIFO line gives a role event (and the MASTER steps' outcome)."""
FIFO_CAUSES = {"keepalived FAULT": "FAULT", "keepalived BACKUP": "BACKUP"}
OUTCOME_WAIT = 30.0
"""Seconds a takeover waits for the outcome of its MASTER steps before it is written."""
DEATH_CONFIRM = 0.2
"""Seconds after a keepalived process exits before this node checks none is left (the
parent restarts a VRRP child that died)."""
PEER_ASK_TIMEOUT = 15.0
RELEASE_RETRIES = 3
"""Times the old master is asked for its release when it answers but has none yet."""
RELEASE_RETRY_DELAY = 1.0
LOOKBACK = 86400.0
"""How far back the old master's roles are read to tell a failover from an election."""
PENDING_DAYS = 7
"""Failovers whose old master's side is still missing are completed when it answers again,
if no older than this."""
PEER_CHECK_INTERVAL = 1.0
PENDING_RETRY = 30.0
"""Seconds between tries to complete or hand over a failover record while the peer answers."""
HISTORY_STEP = (*trust.NODE_COMMAND, "history")


@dataclass
class Takeover:
    held: float
    outcome: dict[str, Any] | None = None
    seen: asyncio.Event = field(default_factory=asyncio.Event)


class FailoverRecorder:
    def __init__(self, node: LocalNode, paths: Paths, hostname: str,
                 report: Callable[..., Any], writer: HistoryWriter, store: HistoryStore, *,
                 config: Callable[[], ClusterConfig | None],
                 link: Callable[[], PeerLink | None],
                 sync_status: Callable[[], dict | None],
                 replication_queue: Callable[[], int | None]) -> None:
        self.node = node
        self.paths = paths
        self.hostname = hostname
        self.report = report
        self.writer = writer
        self.store = store
        self.config = config
        self.link = link
        self.sync_status = sync_status
        self.replication_queue = replication_queue
        self.role: str | None = None
        """The role this node's events last announced."""
        self._released = True
        """This node's last time as master has its release already (or it never was)."""
        self._died_at: float | None = None
        self._sync_at_release: dict | None = None
        """The sync's state the moment this node stopped being master (it stops soon after)."""
        self._takeover: Takeover | None = None
        self._pending: set[str] = set()
        """Failovers this node took over whose old master's side is still missing, or whose
        copy the old master has not received."""
        self._tasks: set[asyncio.Task] = set()
        self.watch = ProcessWatch(lambda: self.node.keepalived.pids(), self._keepalived_died)

    # --- what the event bus says -----------------------------------------------------------

    def event(self, event: dict[str, Any]) -> None:
        """The bus's listener: only notes and starts tasks, never waits."""
        data = event.get("data") or {}
        if event["kind"] == "role" and data.get("role"):
            # "keepalived MASTER, reported by its notify hook": the same line, heard late.
            self._role(str(data["role"]), str(data.get("cause", "")).split(",", 1)[0])
        elif (event["kind"] == "service" and data.get("cause") == MASTER_LINE
              and self._takeover is not None and self._takeover.outcome is None):
            self._takeover.outcome = dict(data)
            self._takeover.seen.set()

    def _role(self, role: str, cause: str) -> None:
        previous, self.role = self.role, role
        now = time.time()
        if role == Role.MASTER.value:
            self._released = False
            self._died_at = None
            self._spawn(self.watch.arm())
            if previous is not None and previous != role and cause == MASTER_LINE:
                self._takeover = Takeover(now)
                self._spawn(self._record_takeover(self._takeover))
            return
        self.watch.disarm()
        if previous == Role.MASTER.value and not self._released:
            self._released = True
            if self._died_at is None:
                self._sync_at_release = self.sync_status()
            self._spawn(self._release(FIFO_CAUSES.get(cause), now))

    def _keepalived_died(self, moment: float) -> None:
        if self._died_at is None:
            self._died_at = moment
            self._sync_at_release = self.sync_status()
        self._spawn(self._confirm_death(moment))

    async def _confirm_death(self, moment: float) -> None:
        await asyncio.sleep(DEATH_CONFIRM)
        running = await asyncio.to_thread(self.node.keepalived.running)
        if running:
            await self.watch.arm()  # a restarted VRRP child: keepalived's own lines tell the rest
        elif self.role == Role.MASTER.value and not self._released:
            self._released = True
            await self._release(None, moment)

    # --- the old master's half ---------------------------------------------------------------

    async def _release(self, fifo_state: str | None, now: float) -> None:
        died = self._died_at
        config = self.config()
        peer = self._peer_name(config)

        def look() -> tuple[str | None, list[str], bool]:
            down = [] if died is not None or config is None else [
                name for name in config.all_tracked_interfaces if not self.node.interface_up(name)]
            return self._drill(), down, self.node.in_maintenance()

        drill, links_down, maintenance = await asyncio.to_thread(look)
        cause, detail = history.release_cause(
            fifo_state=fifo_state, keepalived_died=died is not None, maintenance=maintenance,
            drill=drill, links_down=links_down,
            failback_to_peer=bool(config and peer and config.failback == peer),
            hostname=self.hostname)
        released = died if died is not None else now
        sync = self._sync_at_release or {}
        since = sync.get("pending_since")
        pending = sync.get("pending_changes")
        data: dict[str, Any] = {
            "released": history.iso(released), "cause": cause, "detail": detail,
            "sync_pending": pending, "sync_lag": None if pending is None else (
                round(released - since, 3) if pending and since else 0.0),
            "replication_queue": await asyncio.to_thread(self.replication_queue)}
        if drill:
            data["drill"] = drill
        self.report("release", history.release_message(self.hostname, cause, detail),
                    level="warning", **data)

    def _drill(self) -> str | None:
        try:
            return self.paths.drill_mark.read_text().strip() or None
        except OSError:
            return None

    def _peer_name(self, config: ClusterConfig | None) -> str | None:
        if config is None:
            return None
        try:
            return config.peer_of(self.hostname).hostname
        except KeyError:
            return None

    # --- the new master's half ---------------------------------------------------------------

    def _master_down(self, config: ClusterConfig | None) -> float:
        if config is None:
            return 3.0
        return (3 + (256 - vrrp_priority(config, self.hostname)) / 256) * config.check_interval

    async def _record_takeover(self, takeover: Takeover) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(takeover.seen.wait(), OUTCOME_WAIT)
        config = self.config()
        peer = self._peer_name(config)
        if peer is None:
            return
        outcome = takeover.outcome or {}
        failed = list(outcome.get("failed") or [])
        conntrack = None
        if takeover.outcome is not None:
            conntrack = {"ok": not any(step.startswith("conntrackd -c") for step in failed),
                         "seconds": outcome.get("seconds"),
                         "failed": [step for step in failed if step.startswith("conntrackd")]}
        side = await self._peer_side(takeover.held, self._master_down(config), retries=True)
        if side == "election":
            return
        base = {"old": peer, "new": self.hostname, "held": takeover.held,
                "conntrack": conntrack, "failed_steps": failed}
        data = self._with_release(base, side)
        identifier = history.failover_id(self.hostname, takeover.held)
        record = self._write(identifier, data)
        if not data["complete"] or not await self._hand_copy(record):
            self._pending.add(identifier)

    def _with_release(self, base: dict[str, Any], side: Any) -> dict[str, Any]:
        """The failover's data from the takeover and what the old master said (``side``: its
        release, "silent" when it was master and said nothing, "unreachable")."""
        if isinstance(side, dict):
            return history.failover_data(
                **base, cause=side["cause"], detail=side.get("detail", ""),
                released=history.epoch(side["released"]), sync_pending=side.get("sync_pending"),
                sync_lag=side.get("sync_lag"), replication_queue=side.get("replication_queue"),
                complete=True, drill=side.get("drill"))
        if side == "silent":
            detail = f"{base['old']} was master and stopped without a word (its agent was not running)"
        else:
            detail = f"{base['old']} did not answer; its side is added when it answers again"
        return history.failover_data(**base, cause=history.CAUSE_PEER_LOST, detail=detail,
                                     released=None, complete=side == "silent")

    def _write(self, identifier: str, data: dict[str, Any]) -> dict[str, Any]:
        event = self.report("failover", history.failover_message(data),
                            level="warning" if data.get("gap") is None or data["failed_steps"]
                            else "info", id=identifier, **data)
        return history.record_of(event, 0) if isinstance(event, dict) else {}

    async def _peer_side(self, held: float, master_down: float, *, retries: bool
                         ) -> dict[str, Any] | str:
        """The old master's release around ``held``; "silent" when it was master but has
        none, "election" when it was not master (no failover), "unreachable"."""
        start, end = history.window(held, master_down)
        for attempt in range(RELEASE_RETRIES if retries else 1):
            try:
                records = await self._ask_peer(["--json", "--kind", "release", "--kind", "role",
                                                "--since", history.iso(held - LOOKBACK),
                                                "--limit", "500"])
            except (TimeoutError, PeerError, ValueError) as exc:
                log.info("the old master's side of the failover at %s: %s", history.iso(held), exc)
                return "unreachable"
            releases = [r for r in records if r.get("kind") == "release"
                        and start <= history.epoch((r.get("data") or {}).get("released") or r["time"])
                        <= end]
            if releases:
                return dict(releases[-1]["data"])
            if attempt + 1 < RELEASE_RETRIES and retries:
                await asyncio.sleep(RELEASE_RETRY_DELAY)
        roles = [r for r in records if r.get("kind") == "role" and history.record_time(r) <= held]
        if roles and (roles[-1].get("data") or {}).get("role") == Role.MASTER.value:
            return "silent"
        return "election"

    async def _ask_peer(self, arguments: list[str], input: str | None = None) -> list[dict]:
        link = self.link()
        if link is None:
            raise PeerError("?", "no peer is configured")
        result = await asyncio.wait_for(
            link.connection.run_checked([*HISTORY_STEP, *arguments], input=input,
                                        timeout=PEER_ASK_TIMEOUT), PEER_ASK_TIMEOUT + 1)
        answer = json.loads(result.stdout or "[]")
        if not isinstance(answer, list):
            raise ValueError("the peer's history is not a list")
        return answer

    async def _hand_copy(self, record: dict[str, Any]) -> bool:
        try:
            await self._ask_peer(["--put"], input=json.dumps([record]))
        except (TimeoutError, PeerError, ValueError) as exc:
            log.info("the failover record %s is handed to the peer later: %s", record.get("id"), exc)
            return False
        return True

    # --- completing what the old master could not say at the time -----------------------------

    async def _complete(self) -> None:
        """The old master answers again: add its side to the failovers that lack it, and
        hand it the copies it has not received."""
        await self.writer.flush()
        for identifier in sorted(self._pending):
            try:
                record = await asyncio.to_thread(self.store.get, identifier)
            except HistoryError as exc:
                log.error("%s", exc)
                return
            if record is None:
                self._pending.discard(identifier)
                continue
            data = dict(record.get("data") or {})
            if not data.get("complete"):
                held = history.epoch(data["held"])
                side = await self._peer_side(held, self._master_down(self.config()), retries=False)
                if side == "unreachable":
                    return
                base = {"old": data.get("from"), "new": data.get("to"), "held": held,
                        "conntrack": data.get("conntrack"), "failed_steps": data.get("failed_steps", [])}
                data = self._with_release(base, "silent" if side == "election" else side)
                record = self._write(identifier, data)
            if await self._hand_copy(record):
                self._pending.discard(identifier)

    async def _load_pending(self) -> None:
        since = time.time() - PENDING_DAYS * 86400
        try:
            records = await asyncio.to_thread(self.store.records, since=since,
                                              kinds=[history.FAILOVER])
        except HistoryError as exc:
            log.error("%s", exc)
            return
        for record in records:
            data = record.get("data") or {}
            if data.get("to") == self.hostname and not data.get("complete"):
                self._pending.add(record["id"])

    # --- running -------------------------------------------------------------------------------

    def _spawn(self, work) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("failover record failed", exc_info=task.exception())

    async def run(self) -> None:
        await self._load_pending()
        was_up = False
        next_try = 0.0
        try:
            while True:
                link = self.link()
                up = link is not None and link.up is True
                now = time.monotonic()
                if up and self._pending and (not was_up or now >= next_try):
                    next_try = now + PENDING_RETRY
                    await self._complete()
                was_up = up
                if self.role == Role.MASTER.value and not self.watch.armed and not self._released:
                    await self.watch.arm()
                await asyncio.sleep(PEER_CHECK_INTERVAL)
        finally:
            self.watch.disarm()
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
