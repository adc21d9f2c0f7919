"""Telling the operator's own tools: hooks in ``hooks.d`` and a webhook, never on the takeover path.

Each event goes, as one JSON object (the same as ``skutui events --json`` prints), to

- every executable in ``Paths.hooks_dir`` (synced with the configuration, so both nodes run
  the same hooks), on its standard input, each in a session of its own and killed after
  :data:`HOOK_TIMEOUT`. Events wait on disk (``Paths.hooks_queue``) until every hook has run
  for them, so one a slow hook held back still reaches the hooks after a restart of the
  agent, a crash or a reboot;
- the webhook URL of cluster.toml, POSTed with ``Content-Type: application/json``. While it
  does not answer, events wait on disk (``Paths.webhook_queue``) and are tried again with a
  growing pause; they outlive a restart of the agent.

Both queues on disk are a :class:`Spool`: one file an event, in order, bounded. Both only
queue in memory in the bus's listener, and write the disk in a thread. A transition's steps
come first: from keepalived's line until the steps' outcome (the commit of the peer's
connections), no hook is started and nothing is posted (:class:`StepsGate`), so a hook that
takes its time, or a webhook that hangs, never delays a takeover.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import stat
import threading
import time
import urllib.error
import urllib.request
from collections import deque
from collections.abc import Callable, Container
from pathlib import Path
from typing import Any

from skutui.domain.syncplan import is_ignored_name
from skutui.system.files import write_text_atomic

log = logging.getLogger("skutui.agent")

HOOK_TIMEOUT = 30.0
"""Seconds a hook may run for one event; then it is killed (its whole session)."""
QUEUE_LIMIT = 1000
"""Events waiting for the hooks at most, and in memory on their way to a queue on disk;
beyond, the oldest are dropped (and logged)."""
STEPS_WAIT = 30.0
"""Longest hold for a transition's steps: a lost outcome never stops notifications."""
WEBHOOK_TIMEOUT = 5.0
WEBHOOK_BACKOFF = (1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
"""Pauses between tries of an undelivered event, the last repeated."""
WEBHOOK_QUEUE_LIMIT = 10000
"""Events kept on disk for the webhook at most; beyond, the oldest are dropped (and logged)."""
USER_AGENT = "skutui"


class StepsGate:
    """Closed from keepalived's line (a role event with cause ``keepalived STATE``) until
    the outcome of that state's steps (a service event with the same cause)."""

    def __init__(self, limit: float = STEPS_WAIT) -> None:
        self.limit = limit
        self._open = asyncio.Event()
        self._open.set()
        self._cause: str | None = None
        self._closed_at = 0.0

    def event(self, event: dict[str, Any]) -> None:
        data = event.get("data") or {}
        # "keepalived BACKUP, reported by its notify hook" (an agent that started late):
        # its steps' outcome says "keepalived BACKUP".
        cause = str(data.get("cause", "")).split(",", 1)[0]
        if event["kind"] == "role" and cause.startswith("keepalived "):
            self._cause, self._closed_at = cause, time.monotonic()
            self._open.clear()
        elif event["kind"] == "service" and cause and cause == self._cause:
            self._cause = None
            self._open.set()

    @property
    def closed(self) -> bool:
        return not self._open.is_set()

    async def wait(self) -> None:
        remaining = self._closed_at + self.limit - time.monotonic()
        if self._open.is_set() or remaining <= 0:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._open.wait(), remaining)


def payload(event: dict[str, Any]) -> bytes:
    return json.dumps(event, sort_keys=True, default=str).encode() + b"\n"


class Queue:
    """Events in arrival order, the oldest dropped beyond ``limit``."""

    def __init__(self, limit: int, what: str) -> None:
        self._items: deque[dict[str, Any]] = deque()
        self._ready = asyncio.Event()
        self.limit = limit
        self.what = what
        self.dropped = 0

    def put(self, event: dict[str, Any]) -> None:
        if len(self._items) >= self.limit:
            self._items.popleft()
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 100 == 0:
                log.warning("%s fall behind: %d event(s) dropped so far", self.what, self.dropped)
        self._items.append(event)
        self._ready.set()

    async def get(self) -> dict[str, Any]:
        while not self._items:
            self._ready.clear()
            await self._ready.wait()
        return self._items.popleft()

    def __len__(self) -> int:
        return len(self._items)


class Spool:
    """Events kept on disk until they are done with, so that they outlive the agent: one file
    each, written whole and durably, the oldest dropped beyond ``limit``. The names sort in
    arrival order even when the clock was set back (a reboot before the time is synced): a
    new event never goes ahead of one left waiting."""

    def __init__(self, folder: Path, limit: int, what: str) -> None:
        self.folder = folder
        self.limit = limit
        self.what = what
        self._last = 0
        self._counter = 0
        self._lock = threading.Lock()  # a write its cancelled caller left running, and the next

    def waiting(self) -> list[Path]:
        try:
            return sorted(p for p in self.folder.iterdir() if p.suffix == ".json"
                          and not p.name.startswith("."))
        except FileNotFoundError:
            return []

    def oldest(self, skip: Container[str] = ()) -> tuple[Path, bytes] | None:
        for path in self.waiting():
            if path.name in skip:
                continue
            try:
                return path, path.read_bytes()
            except FileNotFoundError:  # done with, or dropped, since it was listed
                continue
        return None

    def keep(self, event: dict[str, Any]) -> None:
        """On disk when it returns (it runs in a thread: never on the event loop)."""
        with self._lock:
            # The state folder too, when this is the first to write there: root's only.
            self.folder.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            self.folder.mkdir(exist_ok=True, mode=0o700)
            waiting = self.waiting()
            newest = [int(p.name[:20]) for p in waiting[-1:] if p.name[:20].isdigit()]
            self._last = max(time.time_ns(), self._last + 1, *(n + 1 for n in newest))
            self._counter += 1
            path = self.folder / f"{self._last:020d}-{os.getpid()}-{self._counter:06d}.json"
            write_text_atomic(path, payload(event).decode())
            waiting.append(path)
            for old in waiting[:max(len(waiting) - self.limit, 0)]:
                try:
                    old.unlink()
                except FileNotFoundError:  # done with since it was listed
                    continue
                log.warning("%s is full: dropped %s", self.what, old.name)


# --- hooks ----------------------------------------------------------------------------------


def hook_problem(path: Path, info: os.stat_result) -> str | None:
    """Why an executable in hooks.d is not run: the agent runs hooks as root, so one that
    another user could change would hand that user root."""
    if info.st_uid != 0:
        return f"{path} is not owned by root"
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return f"{path} is writable by other users than root"
    return None


class Hooks:
    """Each event reaches every hook at least once, in order, across restarts of the agent:
    it is on disk before it counts as queued, and leaves the disk once the hooks ran for it
    (a hook that failed or was stopped has run: it is logged, never tried again)."""

    def __init__(self, directory: Path, spool: Path, gate: StepsGate, *,
                 timeout: float = HOOK_TIMEOUT, limit: int = QUEUE_LIMIT,
                 owner_check: Callable[[Path, os.stat_result], str | None] = hook_problem) -> None:
        self.directory = directory
        self.gate = gate
        self.timeout = timeout
        self.owner_check = owner_check
        self.queue = Queue(QUEUE_LIMIT, "hooks")
        self.spool = Spool(spool, limit, "the hooks' queue")
        self._unkept = Queue(QUEUE_LIMIT, "hooks without their queue on disk")
        self._kept = asyncio.Event()
        self._stuck: set[str] = set()
        self._refused: set[str] = set()

    def event(self, event: dict[str, Any]) -> None:
        self.queue.put(event)

    def found(self) -> list[Path]:
        """The hooks to run, by name: executable regular files, no hidden or backup names."""
        try:
            names = sorted(os.listdir(self.directory))
        except (FileNotFoundError, NotADirectoryError):
            return []
        hooks = []
        for name in names:
            if is_ignored_name(name):
                continue
            path = self.directory / name
            try:
                info = path.stat()
            except OSError:
                continue
            if not stat.S_ISREG(info.st_mode) or not info.st_mode & 0o111:
                continue
            problem = self.owner_check(path, info)
            if problem:
                if problem not in self._refused:
                    log.warning("hook not run: %s", problem)
                    self._refused.add(problem)
                continue
            hooks.append(path)
        return hooks

    def _keep(self, event: dict[str, Any]) -> None:
        """No hooks, nothing to keep: a node without hooks never writes for them."""
        if self.found():
            self.spool.keep(event)

    async def run(self) -> None:
        await asyncio.gather(self._keep_all(), self._run_all())

    async def close(self) -> None:
        """What the agent's last events left in memory goes to disk, for its next start."""
        while len(self.queue):
            if not await self._try_keep(await self.queue.get()):
                return

    async def _try_keep(self, event: dict[str, Any]) -> bool:
        try:
            await asyncio.to_thread(self._keep, event)
        except OSError as exc:
            log.warning("hook events cannot wait in %s (%s); they wait in memory, lost if the "
                        "agent stops", self.spool.folder, exc)
            return False
        return True

    async def _keep_all(self) -> None:
        """Each event to disk as it comes, while hooks run: one a slow hook holds back is
        already safe. A disk that cannot take it (full, read-only) does not stop the hooks:
        the event waits in memory, and newer ones behind it."""
        while True:
            event = await self.queue.get()
            if len(self._unkept) or not await self._try_keep(event):
                self._unkept.put(event)
            self._kept.set()

    async def _run_all(self) -> None:
        while True:
            self._kept.clear()
            # Before reading: what the bound drops while a transition's steps run is not run.
            await self.gate.wait()
            try:
                oldest = await asyncio.to_thread(self.spool.oldest, self._stuck)
            except OSError:  # what waits in memory still runs
                oldest = None
            if oldest:
                path, data = oldest
                await self._run_hooks(data)
                try:
                    await asyncio.to_thread(path.unlink, missing_ok=True)
                except OSError as exc:
                    log.warning("hook event %s ran but cannot leave the disk (%s); it is not "
                                "run again until the agent restarts", path, exc)
                    self._stuck.add(path.name)
            elif len(self._unkept):
                await self._run_hooks(payload(await self._unkept.get()))
            else:
                await self._kept.wait()

    async def _run_hooks(self, data: bytes) -> None:
        hooks = await asyncio.to_thread(self.found)
        if hooks:
            await asyncio.gather(*(self.run_one(hook, data) for hook in hooks))

    async def run_one(self, hook: Path, data: bytes) -> None:
        try:
            process = await asyncio.create_subprocess_exec(
                str(hook), stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE, start_new_session=True, cwd="/")
        except OSError as exc:
            log.warning("hook %s cannot be started: %s", hook, exc)
            return
        try:
            _, errors = await asyncio.wait_for(process.communicate(data), self.timeout)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            await process.wait()
            log.warning("hook %s ran longer than %g s and was stopped", hook, self.timeout)
            return
        except asyncio.CancelledError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            raise
        if process.returncode:
            detail = errors.decode("utf-8", "replace").strip().splitlines()[-1:] if errors else []
            log.warning("hook %s exited with %d%s", hook, process.returncode,
                        f": {detail[0]}" if detail else "")


# --- the webhook ----------------------------------------------------------------------------


class Undelivered(Exception):
    """The webhook did not take the event; ``retry`` False when trying again cannot help."""

    def __init__(self, message: str, *, retry: bool = True) -> None:
        super().__init__(message)
        self.retry = retry


def post_json(url: str, data: bytes, timeout: float = WEBHOOK_TIMEOUT) -> None:
    """One POST; raises Undelivered unless the server answered 2xx."""
    request = urllib.request.Request(url, data=data, method="POST", headers={
        "Content-Type": "application/json", "User-Agent": USER_AGENT})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:  # noqa: S310 - the operator's URL
            answer.read(65536)
    except urllib.error.HTTPError as exc:
        # A refusal the sender can fix (400, 404, 413) is not cured by waiting.
        retry = exc.code >= 500 or exc.code in (408, 425, 429)
        raise Undelivered(f"HTTP {exc.code} {exc.reason}", retry=retry) from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise Undelivered(str(reason)) from None


class Webhook:
    def __init__(self, spool: Path, url: Callable[[], str], gate: StepsGate, *,
                 post: Callable[[str, bytes], None] = post_json,
                 backoff: tuple[float, ...] = WEBHOOK_BACKOFF,
                 limit: int = WEBHOOK_QUEUE_LIMIT) -> None:
        self.url = url
        self.gate = gate
        self.post = post
        self.backoff = backoff
        self.queue = Queue(QUEUE_LIMIT, "the webhook")
        self.spool = Spool(spool, limit, "the webhook's queue")
        self.failures = 0
        self.last_error: str | None = None

    def event(self, event: dict[str, Any]) -> None:
        if self.url():
            self.queue.put(event)

    # --- delivering ------------------------------------------------------------------------

    async def _deliver(self, data: bytes) -> bool:
        """True when delivered (or refused for good: dropped); False to try again later."""
        url = self.url()
        if not url:
            return True
        try:
            await asyncio.to_thread(self.post, url, data)
        except Undelivered as exc:
            self.last_error = str(exc)
            if not exc.retry:
                log.warning("the webhook refused an event (%s); it is dropped", exc)
                return True
            if self.failures == 0:
                log.warning("the webhook at %s does not take events (%s); they wait in %s",
                            url.split("?")[0], exc, self.spool.folder)
            return False
        if self.failures:
            log.info("the webhook takes events again")
        self.failures = 0
        self.last_error = None
        return True

    async def _pause(self) -> None:
        """Wait before the next try, the longer the more tries failed; what comes meanwhile
        goes to disk at once, behind what waits there."""
        self.failures += 1
        delay = self.backoff[min(self.failures - 1, len(self.backoff) - 1)]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + delay
        while (remaining := deadline - loop.time()) > 0:
            try:
                event = await asyncio.wait_for(self.queue.get(), remaining)
            except TimeoutError:
                return
            await asyncio.to_thread(self.spool.keep, event)

    async def run(self) -> None:
        while True:
            oldest = await asyncio.to_thread(self.spool.oldest)
            if oldest:
                while len(self.queue):  # the disk holds older ones: newer ones go behind them
                    await asyncio.to_thread(self.spool.keep, await self.queue.get())
                path, data = oldest
                await self.gate.wait()
                if await self._deliver(data):
                    path.unlink(missing_ok=True)
                else:
                    await self._pause()
                continue
            event = await self.queue.get()
            await self.gate.wait()
            if not await self._deliver(payload(event)):
                await asyncio.to_thread(self.spool.keep, event)
                await self._pause()
