"""Whether the sync runs: only on the master, with a peer to push to and paths to sync.

Each round says what the node is now (role, roots, link); the sync is started, or stopped
and started afresh, to match. A watcher that failed is started again only after
:data:`SYNC_RESTART_DELAY`, so a failure that repeats is not retried every round.

:class:`Generations` is this node's configuration generation as the sync uses it: a master
term begins it at the first comparison with the peer (one above both), or alone when the
peer cannot be reached; the peer's newer files are taken before anything is pushed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path, PurePosixPath

from skutui.agent.link import PeerLink
from skutui.agent.sync.master import Pusher, SyncService
from skutui.agent.sync.transport import SshRemoteTree
from skutui.domain import codec
from skutui.domain.generation import Generation, set_aside_name
from skutui.domain.model import Role
from skutui.domain.paths import Paths
from skutui.domain.syncplan import SyncFilter
from skutui.system import generation
from skutui.system.node import LocalNode

SYNC_RESTART_DELAY = 30.0


class Generations:
    """This node's generation (``skutui.system.generation`` keeps it on disk); ``term`` is
    the master term this node is in, None when it is not the master."""

    def __init__(self, paths: Paths, hostname: str, term: Callable[[], str | None]) -> None:
        self.path = paths.generation_file
        self.set_aside_root = paths.set_aside_dir
        self.hostname = hostname
        self.term = term

    def current(self) -> Generation:
        return generation.read(self.path)

    def begun(self) -> bool:
        term = self.term()
        return term is None or self.current().term == term

    def for_push(self, peer: Generation) -> Generation:
        """The generation this master pushes: its term's, begun now if it was not."""
        term = self.term()
        if term is None:
            return self.current()
        return generation.begin_term(self.path, self.hostname, term, peer)

    def begin_alone(self) -> Generation | None:
        """The peer cannot be asked: the term begins one above this node's own."""
        term = self.term()
        if term is None:
            return None
        return generation.begin_term(self.path, self.hostname, term, None)

    def adopt(self, peer: Generation) -> Generation:
        return generation.adopt(self.path, peer)

    def set_aside_folder(self, held: Generation, incoming: Generation) -> Path:
        return self.set_aside_root / set_aside_name(held, incoming)


def cluster_file_check(paths: Paths) -> Callable[[str, bytes], str | None]:
    """A cluster.toml that does not validate is never pushed: the backup keeps its own,
    and its ``node start`` keeps working."""
    cluster_file = str(paths.cluster_file)

    def check(path: str, data: bytes) -> str | None:
        if path != cluster_file:
            return None
        try:
            codec.load_bytes(data, source=path)
        except codec.ConfigError as exc:
            return f"it does not validate ({exc})"
        return None

    return check


class SyncSupervisor:
    """``options`` go to each :class:`SyncService` started (tests shorten its waits)."""

    def __init__(self, node: LocalNode, paths: Paths, report: Callable[..., object],
                 options: dict | None = None, *, generations: Generations | None = None,
                 hostname: str = "this node") -> None:
        self.node = node
        self.paths = paths
        self.report = report
        self.options = options or {}
        self.generations = generations
        self.hostname = hostname
        self.service: SyncService | None = None
        self._task: asyncio.Task | None = None
        self._roots: list[PurePosixPath] = []
        self._link: PeerLink | None = None
        self._retry_at = 0.0

    @property
    def running(self) -> bool:
        return self.service is not None and self.service.running

    def status(self) -> dict | None:
        return self.service.status() if self.service else None

    async def want(self, role: Role, roots: list[PurePosixPath], link: PeerLink | None) -> None:
        want = role is Role.MASTER and link is not None and bool(roots)
        if (role is Role.MASTER and link is not None and link.up is False
                and self.generations is not None and not self.generations.begun()):
            begun = self.generations.begin_alone()
            if begun is not None:
                self.report("sync", f"master term begun alone ({link.node.hostname} cannot be "
                            f"reached): generation {begun.label}", generation=begun.to_dict())
        task = self._task
        if task is not None and (task.done() or not want or roots != self._roots
                                 or link is not self._link):
            await self.stop()
        if want and link is not None and self._task is None and time.monotonic() >= self._retry_at:
            self._start(roots, link)

    def _start(self, roots: list[PurePosixPath], link: PeerLink) -> None:
        pusher = Pusher(roots, SyncFilter((PurePosixPath(self.paths.local_dir),)),
                        SshRemoteTree(link.connection, warm=True),
                        may_push=lambda: self.node.effective_role() is Role.MASTER,
                        terms=self.generations, check_file=cluster_file_check(self.paths))
        self.service = SyncService(pusher, report=self.report, peer_name=link.node.hostname,
                                   peer_ready=lambda: link.up is True, peer_lost=link.lost,
                                   node_name=self.hostname, **self.options)
        self._roots = roots
        self._link = link
        self._task = asyncio.create_task(self.service.run(), name="sync")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is None:
            return
        task.cancel()
        results = await asyncio.gather(task, return_exceptions=True)
        if self.service is not None:
            self.service.pusher.remote.close()  # its kept steps on the peer
        if isinstance(results[0], Exception):
            self._retry_at = time.monotonic() + SYNC_RESTART_DELAY
            self.report("sync", f"the sync watcher failed: {results[0]}; starting it "
                        f"again in {SYNC_RESTART_DELAY:g} s", level="error")
        self.service = None

    async def flush(self) -> None:
        """Push what changed so far; the replication calls this before each command."""
        if self.service is not None and self.service.running:
            await self.service.flush()

    def peer_back(self) -> None:
        """The peer returned: what it missed is found by comparing whole trees."""
        if self.service is not None:
            self.service.request_reconcile()
