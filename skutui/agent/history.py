"""The agent's events into this node's history, written in a thread of their own.

An event can be emitted on the takeover path (keepalived's MASTER line, before the commit of
the peer's connections): the bus's listener only queues it, and a thread writes batches to
the history file, each synced to disk.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import queue
import threading
from typing import Any

from skutui.domain.history import Record, record_of
from skutui.system.history import HistoryError, HistoryStore

log = logging.getLogger("skutui.agent")

BATCH = 200
"""Records written in one transaction, at most."""
FLUSH_TIMEOUT = 10.0


class HistoryWriter:
    def __init__(self, store: HistoryStore) -> None:
        self.store = store
        self._queue: queue.SimpleQueue[Record | threading.Event | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._counter = itertools.count()
        self._failing: str | None = None

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._write, name="history", daemon=True)
            self._thread.start()

    def event(self, event: dict[str, Any]) -> None:
        """The event bus's listener."""
        self.put(record_of(event, next(self._counter)))

    def put(self, record: Record) -> None:
        self._queue.put(record)

    async def flush(self) -> None:
        """Return once everything queued before has been written (or failed)."""
        if self._thread is None:
            return
        done = threading.Event()
        self._queue.put(done)
        await asyncio.to_thread(done.wait, FLUSH_TIMEOUT)

    async def stop(self) -> None:
        thread, self._thread = self._thread, None
        if thread is not None:
            self._queue.put(None)
            await asyncio.to_thread(thread.join, FLUSH_TIMEOUT)

    def _write(self) -> None:
        while True:
            item = self._queue.get()
            batch: list[Record] = []
            waiting: list[threading.Event] = []
            stopping = False
            while True:
                if item is None:
                    stopping = True
                elif isinstance(item, threading.Event):
                    waiting.append(item)
                else:
                    batch.append(item)
                if stopping or len(batch) >= BATCH:
                    break
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
            self._store(batch)
            for done in waiting:
                done.set()
            if stopping:
                return

    def _store(self, batch: list[Record]) -> None:
        try:
            self.store.add(batch)
        except HistoryError as exc:
            if str(exc) != self._failing:
                log.error("%s; %d record(s) not kept", exc, len(batch))
            self._failing = str(exc)
        else:
            if self._failing:
                log.info("the history is written again")
            self._failing = None
