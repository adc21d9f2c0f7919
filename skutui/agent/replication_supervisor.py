"""When the journal is replayed: on the master, while the peer answers, as soon as
``skutui exec`` wakes it (and every :data:`JOURNAL_POLL_INTERVAL` in case a wake was
missed). A replay the peer refused is tried again only after a while, and said each time.
Commands queued in another master term than the current one are set aside first, listed
and reported, never replayed: the peer may have run newer commands since.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable

from skutui.agent.link import PeerLink
from skutui.agent.replication import ReplayBlocked, Replayer
from skutui.domain.model import Role
from skutui.peer import CommandTimeout, PeerError, PeerUnreachable
from skutui.system.journal import Journal, JournalError
from skutui.system.node import LocalNode

log = logging.getLogger("skutui.agent")

JOURNAL_POLL_INTERVAL = 1.0
"""``skutui exec`` wakes the replayer through the socket; polling catches a missed wake."""
BLOCKED_RETRY = 60.0
"""Seconds before a replay the peer refused is tried again (each try is reported)."""
ANSWER_RETRY = 10.0
AWAY_CHECK = 0.5
"""Seconds between two looks at the peer link while ``skutui exec`` waits for an answer."""


class ReplicationSupervisor:
    """``before_each`` runs before each entry is sent (the sync's flush: a command never
    reaches the backup ahead of the files it was written against)."""

    def __init__(self, journal: Journal, node: LocalNode, report: Callable[..., object], *,
                 link: Callable[[], PeerLink | None],
                 before_each: Callable[[], Awaitable[object]],
                 term: Callable[[], str | None] = lambda: None) -> None:
        self.journal = journal
        self.node = node
        self.report = report
        self.link = link
        self.before_each = before_each
        self.term = term
        """The master term this node is in (None: not master, or not known)."""
        self.queued = 0
        self.error: str | None = None
        self._wake = asyncio.Event()
        self._acked = asyncio.Event()
        """Set, and replaced by a fresh one, each time the peer answers an entry."""
        self._blocked_until = 0.0

    def wake(self) -> None:
        self._wake.set()

    def peer_back(self) -> None:
        """The peer returned, perhaps mended (skutui installed again): a blocked replay is
        tried at once rather than after its wait."""
        self._blocked_until = 0.0
        self.wake()

    def summary(self) -> dict:
        try:
            replication = self.journal.summary()
        except JournalError as exc:
            replication = {"error": str(exc)}
        replication["error"] = replication.get("error") or self.error
        return replication

    async def replicate_once(self) -> None:
        """Replay what is pending, if this node is the master and the peer answers."""
        link = self.link()
        master = self.node.effective_role() is Role.MASTER
        try:
            if self.journal.head() is not None:
                self._set_aside_stale(master)
            self.queued = len(self.journal.pending())
        except JournalError as exc:
            self._blocked(str(exc), BLOCKED_RETRY)
            return
        if not self.queued or link is None or link.up is not True:
            return
        if not master or time.monotonic() < self._blocked_until:
            return
        replayer = Replayer(self.journal, link.replay_target, self._replayed)
        try:
            await replayer.replay_pending(before_each=self.before_each)
        except PeerUnreachable as exc:
            link.lost(exc)
        except CommandTimeout as exc:
            self._blocked(f"no answer from {link.node.hostname}: {exc}; asking again "
                          f"(it is never run twice)", ANSWER_RETRY, level="warning")
        except (ReplayBlocked, PeerError, JournalError) as exc:
            self._blocked(f"replication to {link.node.hostname} is blocked: {exc}",
                          BLOCKED_RETRY)
        else:
            self.error = None
        with contextlib.suppress(JournalError):
            self.queued = len(self.journal.pending())

    def _set_aside_stale(self, master: bool) -> None:
        term = self.term() if master else None
        if master and term is None:
            return  # the term is not known yet: nothing can be judged stale
        stale = self.journal.set_aside_other_terms(
            term, "queued in an earlier master term of this node; the peer may have run newer "
                  "commands since, so it was not replayed")
        if stale:
            shown = ", ".join(f"#{e.seq} `{e.command}`" for e in stale[:5])
            more = f" and {len(stale) - 5} more" if len(stale) > 5 else ""
            self.report("replication", f"{len(stale)} command(s) queued in an earlier master "
                        f"term set aside, not replayed: {shown}{more}; list them with "
                        "`skutui node journal`", level="warning",
                        set_aside=[e.seq for e in stale])

    def _replayed(self, kind: str, message: str, **data) -> None:
        self.report(kind, message, **data)
        acked, self._acked = self._acked, asyncio.Event()
        acked.set()

    async def wait_acked(self, seq: int, wait: float) -> dict:
        """Whether the peer has answered entry ``seq`` (``acked``), waiting up to ``wait``
        seconds (``skutui exec`` waits here instead of polling the journal); not at all
        when the peer is known to be away (``away``: its name)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        while True:
            try:
                if self.journal.outcome(seq) is not None:
                    return {"acked": True, "away": None}
            except JournalError:
                return {"acked": False, "away": None}
            link = self.link()
            if link is not None and link.up is False:
                return {"acked": False, "away": link.node.hostname}
            remaining = deadline - loop.time()
            if remaining <= 0:
                return {"acked": False, "away": None}
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._acked.wait(), min(remaining, AWAY_CHECK))

    def _blocked(self, message: str, retry: float, level: str = "error") -> None:
        self.error = message
        self._blocked_until = time.monotonic() + retry
        self.report("replication", f"{message}; trying again in {retry:g} s", level=level)

    async def run(self) -> None:
        while True:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), JOURNAL_POLL_INTERVAL)
            self._wake.clear()
            try:
                await self.replicate_once()
            except Exception:  # noqa: BLE001
                log.exception("replication round failed")
