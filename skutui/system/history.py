"""This node's history on disk: every event and failover, kept across restarts and reboots.

One SQLite file (``Paths.history_file``, root's only, in a root-only folder), written in WAL
mode with full sync, so a record committed is a record kept through a power cut, and readers
(``skutui history``, the peer asking over SSH) never wait for the writer. It is bounded: the
oldest events go first beyond :data:`KEEP_EVENTS`, failovers and drills beyond
:data:`KEEP_FAILOVERS`.

The agent is the writer of its events; a failover record is written by the node that took
over, and a copy put here by it over SSH (the same id replaces the copy).
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import closing, contextmanager
from pathlib import Path

from skutui.domain.errors import Failed
from skutui.domain.history import RECORD_KINDS, Record, epoch
from skutui.system.files import fsync_directory

SCHEMA_VERSION = 1
KEEP_EVENTS = 20000
"""Events kept (a busy sync makes many); the oldest go first."""
KEEP_FAILOVERS = 2000
"""Failovers and drills kept: rare, and what the history is for."""
TRIM_EVERY = 200
"""Inserts between two trims of the oldest records."""
BUSY_TIMEOUT = 10.0
"""Seconds a writer waits for another (the agent and a copy put over SSH) before failing."""
DIR_MODE = 0o700
FILE_MODE = 0o600

_SCHEMA = """
CREATE TABLE IF NOT EXISTS records (
    id TEXT PRIMARY KEY,
    at REAL NOT NULL,
    time TEXT NOT NULL,
    node TEXT NOT NULL,
    kind TEXT NOT NULL,
    level TEXT NOT NULL,
    message TEXT NOT NULL,
    data TEXT,
    updated TEXT
);
CREATE INDEX IF NOT EXISTS records_at ON records (at);
CREATE INDEX IF NOT EXISTS records_kind ON records (kind, at);
"""
_FIELDS = "id, time, node, kind, level, message, data, updated"
_KINDS = ", ".join(f"'{kind}'" for kind in RECORD_KINDS)


class HistoryError(Failed):
    """The history cannot be read or written; the message names the file and why."""


def _columns(record: Record) -> tuple:
    data = record.get("data")
    return (str(record["id"]), epoch(str(record["time"])), str(record["time"]),
            str(record.get("node", "")),
            str(record["kind"]), str(record.get("level", "info")),
            str(record.get("message", "")),
            None if data is None else json.dumps(data, sort_keys=True, default=str),
            record.get("updated"))


def _record(row: tuple) -> Record:
    identifier, time_text, node, kind, level, message, data, updated = row
    record: Record = {"id": identifier, "time": time_text, "node": node, "kind": kind,
                      "level": level, "message": message}
    if data is not None:
        record["data"] = json.loads(data)
    if updated:
        record["updated"] = updated
    return record


class HistoryStore:
    """Opens the file for each piece of work: a store is cheap to make in any thread."""

    def __init__(self, path: Path, *, keep_events: int = KEEP_EVENTS,
                 keep_failovers: int = KEEP_FAILOVERS) -> None:
        self.path = Path(path)
        self.keep_events = keep_events
        self.keep_failovers = keep_failovers
        self._inserted = 0

    # --- the file ---------------------------------------------------------------------------

    def _problem(self, exc: BaseException) -> HistoryError:
        if isinstance(exc, PermissionError) or "readonly" in str(exc) or "unable to open" in str(exc):
            if os.geteuid() != 0:
                return HistoryError(f"the history {self.path} is for root only; run this as root")
        return HistoryError(f"the history {self.path} cannot be used: {exc}")

    def _create(self) -> None:
        """The file made whole under a temporary name, then linked into place: a reader
        never opens it half made. Root's only before SQLite writes a byte (its WAL and
        shared-memory files take the file's mode)."""
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)
        os.chmod(self.path.parent, DIR_MODE)
        temp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        temp.unlink(missing_ok=True)
        os.close(os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE))
        try:
            with closing(sqlite3.connect(temp)) as db:
                db.execute("PRAGMA journal_mode=WAL")
                db.executescript(_SCHEMA)
                db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            os.link(temp, self.path)  # another writer made it first: theirs stays
        except FileExistsError:
            pass
        finally:
            temp.unlink(missing_ok=True)
        fsync_directory(self.path.parent)

    @contextmanager
    def _connection(self, *, write: bool) -> Iterator[sqlite3.Connection]:
        try:
            if write and not self.path.exists():
                self._create()
            uri = f"file:{self.path}?mode={'rwc' if write else 'ro'}"
            with closing(sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT)) as db:
                if write:
                    db.execute("PRAGMA journal_mode=WAL")
                    db.execute("PRAGMA synchronous=FULL")
                    if db.execute("PRAGMA user_version").fetchone()[0] != SCHEMA_VERSION:
                        db.executescript(_SCHEMA)
                        db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
                yield db
        except (sqlite3.Error, OSError) as exc:
            raise self._problem(exc) from None

    # --- writing ----------------------------------------------------------------------------

    def add(self, records: Iterable[Record]) -> int:
        """Store records (one with a known id replaces it); returns how many."""
        rows = [_columns(record) for record in records]
        if not rows:
            return 0
        with self._connection(write=True) as db, db:
            db.executemany("INSERT OR REPLACE INTO records VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
            self._inserted += len(rows)
            if self._inserted >= TRIM_EVERY:
                self._inserted = 0
                self._trim(db)
        return len(rows)

    def _trim(self, db: sqlite3.Connection) -> None:
        for condition, keep in ((f"kind NOT IN ({_KINDS})", self.keep_events),
                                (f"kind IN ({_KINDS})", self.keep_failovers)):
            db.execute(f"DELETE FROM records WHERE {condition} AND at < (SELECT at FROM records "
                       f"WHERE {condition} ORDER BY at DESC LIMIT 1 OFFSET ?)", (keep - 1,))

    def trim(self) -> None:
        with self._connection(write=True) as db, db:
            self._trim(db)

    # --- reading ----------------------------------------------------------------------------

    def records(self, *, since: float | None = None, kinds: Iterable[str] | None = None,
                node: str | None = None, limit: int | None = None) -> list[Record]:
        """Oldest first; ``limit`` keeps the newest ones. No file yet: no history."""
        if not self.path.exists():
            return []
        clauses: list[str] = []
        values: list[float | str] = []
        if since is not None:
            clauses.append("at >= ?")
            values.append(since)
        chosen = list(kinds or ())
        if chosen:
            clauses.append(f"kind IN ({', '.join('?' for _ in chosen)})")
            values += chosen
        if node is not None:
            clauses.append("node = ?")
            values.append(node)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        query = f"SELECT {_FIELDS} FROM records {where} ORDER BY at DESC, rowid DESC"
        if limit is not None:
            query += f" LIMIT {int(limit)}"
        with self._connection(write=False) as db:
            rows = db.execute(query, values).fetchall()
        return [_record(row) for row in reversed(rows)]

    def get(self, identifier: str) -> Record | None:
        if not self.path.exists():
            return None
        with self._connection(write=False) as db:
            row = db.execute(f"SELECT {_FIELDS} FROM records WHERE id = ?",
                             (identifier,)).fetchone()
        return None if row is None else _record(row)

    def count(self, kind: str) -> int:
        if not self.path.exists():
            return 0
        with self._connection(write=False) as db:
            return int(db.execute("SELECT count(*) FROM records WHERE kind = ?",
                                  (kind,)).fetchone()[0])
