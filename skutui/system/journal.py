"""Command replication: a durable, ordered journal on the master, replayed on the backup.

Master side (:class:`Journal`, in ``Paths.journal_dir``): one SQLite database,
``journal.db``, in WAL mode with ``synchronous=FULL``, so a command is on disk when the
call that records it returns, and each step costs the same whether one command waits or ten
thousand (one row written, found by its number). The one write that waits for the next
fsync is the peer's successful answer (see :meth:`Journal.ack`). A command moves through
these states:

    running    ``skutui exec`` wrote it before running it here (write-ahead), with its pid
    queued     it ran here with success: the peer must run it too
    answered   the peer answered (its outcome is kept)
    set-aside  never sent: it belongs to a finished master term, or ``skutui exec`` died
               between running it here and saying how it went; listed, never replayed

A command that failed here is removed before it was ever queued; its number is not used
again (numbers only grow, so the backup's "last finished" stays true). A journal of the
older line format (``journal`` + ``replicated.json``) is moved into the database the first
time it is opened, and its files are kept beside it with a ``.migrated`` suffix.

Backup side (:func:`apply_entry`, same directory, file ``applied.json``): per journal id,
the last sequence number started and the last one finished, each fsynced before the next
step. A replayed entry at or below "finished" is answered from the record and never run
again; one that was started but never finished (the backup died while running it) is
reported as ``interrupted`` and not run again either: running it twice could be worse
than not at all, so the operator decides.
"""

from __future__ import annotations

import dataclasses
import fcntl
import json
import logging
import os
import secrets
import shlex
import sqlite3
import subprocess
import threading
import time
import zlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from skutui.domain.errors import Failed
from skutui.system.files import write_text_atomic

log = logging.getLogger("skutui.agent")

DATABASE_FILE = "journal.db"
LEGACY_JOURNAL_FILE = "journal"
LEGACY_STATE_FILE = "replicated.json"
MIGRATED_SUFFIX = ".migrated"
APPLIED_FILE = "applied.json"
APPLY_LOCK_FILE = "applied.lock"
BUSY_TIMEOUT = 30.0
"""Seconds a writer waits for another (``skutui exec`` and the agent share the journal)."""

DEFAULT_MAX_PENDING = 10_000
"""Commands that may wait for an absent peer; past this, new ones are refused (not lost)."""
MAX_RECORD_BYTES = 64 * 1024
COMPACT_AFTER = 1_000
"""Answered commands kept before the oldest successful ones are dropped (their success is
implied by the last answered number)."""
FAILURES_KEPT = 50
DEFAULT_COMMAND_TIMEOUT = 300.0
"""Seconds a replayed command may run on the backup before it is killed."""

REPLAY_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
"""sshd gives commands a short PATH; replayed commands get the one an admin shell has."""

APPLIED = "applied"
FAILED = "failed"
INTERRUPTED = "interrupted"

RUNNING = "running"
QUEUED = "queued"
ANSWERED = "answered"
SET_ASIDE = "set-aside"
IS_WAITING = f"state IN ('{RUNNING}', '{QUEUED}')"
"""Spelt out, not bound: only a literal condition lets SQLite use the partial index."""

SCHEMA = f"""
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS entries (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL, argv TEXT NOT NULL, origin TEXT NOT NULL, time REAL NOT NULL,
    timeout REAL NOT NULL, cwd TEXT NOT NULL, term TEXT,
    state TEXT NOT NULL, runner TEXT, outcome TEXT, note TEXT);
CREATE INDEX IF NOT EXISTS waiting ON entries(seq) WHERE {IS_WAITING};
CREATE INDEX IF NOT EXISTS failures ON entries(seq)
    WHERE state = '{ANSWERED}' AND json_extract(outcome, '$.status') != '{APPLIED}';
"""
COLUMNS = "seq, kind, argv, origin, time, timeout, cwd, term, state, runner, outcome, note"


class JournalError(Failed):
    """The journal refused or could not do something; the message is for the operator."""


class JournalFull(JournalError):
    pass


class JournalCorrupt(JournalError):
    pass


@dataclass(frozen=True)
class Entry:
    seq: int
    journal: str
    kind: str
    argv: tuple[str, ...]
    origin: str
    time: float
    timeout: float = DEFAULT_COMMAND_TIMEOUT
    cwd: str = "/"
    """The absolute directory it ran from on the master: the backup runs it from there."""
    term: str | None = None
    """The master term it was queued in (see ``skutui.system.hook.Mark.term``); None for
    commands queued before terms were recorded."""

    @property
    def command(self) -> str:
        return shlex.join(self.argv)

    def to_dict(self) -> dict:
        return {"seq": self.seq, "journal": self.journal, "kind": self.kind,
                "argv": list(self.argv), "origin": self.origin, "time": self.time,
                "timeout": self.timeout, "cwd": self.cwd, "term": self.term}

    @classmethod
    def from_dict(cls, data: dict) -> Entry:
        argv = data["argv"]
        if not isinstance(argv, list) or not argv or not all(isinstance(a, str) for a in argv):
            raise ValueError("argv must be a non-empty list of strings")
        cwd = str(data.get("cwd") or "/")
        if not os.path.isabs(cwd):
            raise ValueError(f"the working directory {cwd!r} is not absolute")
        term = data.get("term")
        return cls(seq=int(data["seq"]), journal=str(data["journal"]), kind=str(data["kind"]),
                   argv=tuple(argv), origin=str(data["origin"]), time=float(data["time"]),
                   timeout=float(data.get("timeout", DEFAULT_COMMAND_TIMEOUT)), cwd=cwd,
                   term=None if term is None else str(term))


@dataclass(frozen=True)
class Outcome:
    """What the backup made of one entry."""

    seq: int
    status: str
    """``applied`` (ran, exit 0), ``failed`` (ran, non-zero or could not start) or
    ``interrupted`` (the backup died while running it; not run again)."""
    exit_status: int | None = None
    message: str = ""
    repeat: bool = False
    """The backup had already answered this entry: this is its recorded answer."""

    @property
    def ok(self) -> bool:
        return self.status == APPLIED

    def to_dict(self) -> dict:
        return {"seq": self.seq, "status": self.status, "exit_status": self.exit_status,
                "message": self.message, "repeat": self.repeat}

    @classmethod
    def from_dict(cls, data: dict) -> Outcome:
        if data.get("status") not in (APPLIED, FAILED, INTERRUPTED):
            raise ValueError(f"unknown replay status {data.get('status')!r}")
        return cls(seq=int(data["seq"]), status=data["status"],
                   exit_status=data.get("exit_status"), message=str(data.get("message", "")),
                   repeat=bool(data.get("repeat", False)))

    def describe(self) -> str:
        if self.status == APPLIED:
            return "ok"
        if self.status == INTERRUPTED:
            return self.message
        code = f"exit {self.exit_status}" if self.exit_status is not None else "not run"
        return f"{code}: {self.message}" if self.message else code


@dataclass(frozen=True)
class Waiting:
    """The oldest command not yet sent, and what stands in its way."""

    entry: Entry
    state: str
    runner: str | None
    """``pid:start:boot`` of the ``skutui exec`` running it here, while ``running``."""

    @property
    def runner_alive(self) -> bool:
        return self.state == RUNNING and process_alive(self.runner)


@dataclass(frozen=True)
class SetAside:
    entry: Entry
    note: str


# --- who runs a command here -----------------------------------------------------------------

def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def _start_ticks(pid: int) -> str:
    """When ``pid`` started, in clock ticks since boot: with the pid, it names one process
    even after its number is reused."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return stat.rpartition(")")[2].split()[19]


def this_process() -> str:
    pid = os.getpid()
    return f"{pid}:{_start_ticks(pid)}:{_boot_id()}"


def process_alive(runner: str | None) -> bool:
    """Whether the process ``this_process()`` named still runs (same boot, same start)."""
    try:
        pid, start, boot = (runner or "").split(":")
        return boot == _boot_id() and _start_ticks(int(pid)) == start
    except ValueError:
        return False


# --- the master's journal ------------------------------------------------------------------

def private_dir(directory: Path) -> None:
    """The journal sits in the never-synced local folder, beside this node's SSH key: if
    it is created first, it must not create that folder readable by everyone."""
    for folder in (directory.parent, directory):
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)


def _row_entry(journal: str, row: sqlite3.Row) -> Entry:
    return Entry(seq=row["seq"], journal=journal, kind=row["kind"],
                 argv=tuple(json.loads(row["argv"])), origin=row["origin"], time=row["time"],
                 timeout=row["timeout"], cwd=row["cwd"], term=row["term"])


class Journal:
    """The master's ordered list of commands for the peer; safe across processes."""

    def __init__(self, directory: Path, *, max_pending: int | None = None) -> None:
        self.directory = Path(directory)
        self.max_pending = DEFAULT_MAX_PENDING if max_pending is None else max_pending
        self.path = self.directory / DATABASE_FILE
        self._db: sqlite3.Connection | None = None
        self._id = ""
        self._lock = threading.Lock()

    # --- the database -----------------------------------------------------------------------

    def _open(self) -> sqlite3.Connection:
        if self._db is not None:
            return self._db
        private_dir(self.directory)
        if not self.path.exists():
            os.close(os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600))
        try:
            db = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT, isolation_level=None,
                                 check_same_thread=False)
            db.row_factory = sqlite3.Row
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            db.executescript(SCHEMA)
            with _immediate(db):
                row = db.execute("SELECT value FROM meta WHERE key = 'journal'").fetchone()
                if row is None:
                    db.execute("INSERT INTO meta VALUES ('journal', ?)", (secrets.token_hex(8),))
                    db.execute("INSERT INTO meta VALUES ('acked', '0'), ('failed_total', '0')")
                _migrate(db, self.directory)
                self._id = db.execute("SELECT value FROM meta WHERE key = 'journal'").fetchone()[0]
        except sqlite3.DatabaseError as exc:
            raise self._damaged(exc) from None
        _put_aside_legacy(self.directory)
        self._db = db
        return db

    def _damaged(self, exc: sqlite3.Error) -> JournalError:
        if isinstance(exc, sqlite3.OperationalError) and "full" in str(exc):
            return JournalError(f"the replication journal {self.path} cannot be written: the "
                                "disk is full")
        return JournalCorrupt(
            f"the replication journal {self.path} cannot be used ({exc}); skutui will not "
            f"guess. Move {self.path} aside to start a new journal (commands in it will not "
            "reach the peer: compare both nodes by hand).")

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            db = self._open()
            try:
                yield db
            except sqlite3.DatabaseError as exc:
                raise self._damaged(exc) from None

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One transaction, durable when the block ends (the WAL is fsynced at commit)."""
        with self._read() as db, _immediate(db):
            yield db

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    @property
    def journal_id(self) -> str:
        with self._read():
            return self._id

    # --- reading ----------------------------------------------------------------------------

    def entries(self) -> list[Entry]:
        """Every command still on record, oldest first."""
        with self._read() as db:
            rows = db.execute(f"SELECT {COLUMNS} FROM entries ORDER BY seq").fetchall()
        return [_row_entry(self._id, row) for row in rows]

    def pending(self) -> list[Entry]:
        """Commands the peer has not answered yet (running here or queued), oldest first."""
        with self._read() as db:
            rows = db.execute(f"SELECT {COLUMNS} FROM entries WHERE {IS_WAITING} "
                              "ORDER BY seq").fetchall()
        return [_row_entry(self._id, row) for row in rows]

    def head(self) -> Waiting | None:
        """The oldest command not yet sent: what the replay sends next, or waits for."""
        with self._read() as db:
            row = db.execute(f"SELECT {COLUMNS} FROM entries WHERE {IS_WAITING} "
                             "ORDER BY seq LIMIT 1").fetchone()
        if row is None:
            return None
        return Waiting(_row_entry(self._id, row), row["state"], row["runner"])

    def set_aside_entries(self) -> list[SetAside]:
        with self._read() as db:
            rows = db.execute(f"SELECT {COLUMNS} FROM entries WHERE state = ? ORDER BY seq",
                              (SET_ASIDE,)).fetchall()
        return [SetAside(_row_entry(self._id, row), row["note"] or "") for row in rows]

    def outcome(self, seq: int) -> Outcome | None:
        """The peer's answer for ``seq`` if it gave one (failures are kept, successes are
        implied by the acknowledged number once compacted); None while it waits or was
        set aside."""
        with self._read() as db:
            row = db.execute("SELECT state, outcome FROM entries WHERE seq = ?",
                             (seq,)).fetchone()
            acked = _meta_int(db, "acked")
        if row is None:
            return Outcome(seq, APPLIED) if seq <= acked else None
        if row["state"] != ANSWERED:
            return None
        return Outcome.from_dict(json.loads(row["outcome"]))

    def state_of(self, seq: int) -> str | None:
        """``running``, ``queued``, ``answered``, ``set-aside``, or None (gone: answered
        long ago, or never queued)."""
        with self._read() as db:
            row = db.execute("SELECT state FROM entries WHERE seq = ?", (seq,)).fetchone()
        return None if row is None else row["state"]

    def summary(self) -> dict:
        with self._read() as db:
            waiting = db.execute(f"SELECT COUNT(*), MIN(time) FROM entries WHERE {IS_WAITING}"
                                 ).fetchone()
            aside = db.execute("SELECT COUNT(*) FROM entries WHERE state = ?",
                               (SET_ASIDE,)).fetchone()[0]
            failure = db.execute(
                "SELECT outcome FROM entries WHERE state = ? AND "
                "json_extract(outcome, '$.status') != ? ORDER BY seq DESC LIMIT 1",
                (ANSWERED, APPLIED)).fetchone()
            acked, failed_total = _meta_int(db, "acked"), _meta_int(db, "failed_total")
        return {"journal": self._id, "acked": acked, "pending": waiting[0],
                "oldest_pending": waiting[1], "failed_total": failed_total,
                "last_failure": json.loads(failure[0]) if failure else None,
                "set_aside": aside}

    # --- writing ----------------------------------------------------------------------------

    def begin(self, argv: Sequence[str], *, origin: str, cwd: str = "/",
              timeout: float = DEFAULT_COMMAND_TIMEOUT, term: str | None = None,
              kind: str = "exec") -> Entry:
        """Record a command about to run here, before it runs (write-ahead): a crash
        after this leaves a record that says so. :meth:`queue` or :meth:`cancel` follows."""
        return self._insert(argv, kind, origin, cwd, timeout, term, RUNNING, this_process())

    def append(self, argv: Sequence[str], *, kind: str = "exec", origin: str,
               cwd: str = "/", timeout: float = DEFAULT_COMMAND_TIMEOUT,
               term: str | None = None) -> Entry:
        """Queue a command for the peer; durable (fsynced) when this returns."""
        return self._insert(argv, kind, origin, cwd, timeout, term, QUEUED, None)

    def _insert(self, argv: Sequence[str], kind: str, origin: str, cwd: str, timeout: float,
                term: str | None, state: str, runner: str | None) -> Entry:
        if not argv:
            raise JournalError("nothing to replicate: the command is empty")
        if not os.path.isabs(cwd):
            raise JournalError(f"the working directory {cwd!r} is not absolute")
        entry = Entry(seq=0, journal="", kind=kind, argv=tuple(argv), origin=origin,
                      time=time.time(), timeout=timeout, cwd=cwd, term=term)
        size = len(json.dumps(entry.to_dict()))
        if size > MAX_RECORD_BYTES:
            raise JournalError(f"the command is too long to replicate ({size} bytes, at most "
                               f"{MAX_RECORD_BYTES}); put it in a script under a synced path "
                               "and replicate the script's name")
        with self._write() as db:
            self._room(db)
            seq = db.execute(
                "INSERT INTO entries (kind, argv, origin, time, timeout, cwd, term, state, "
                "runner) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (kind, json.dumps(list(argv)), origin, entry.time, timeout, cwd, term, state,
                 runner)).lastrowid
        assert seq is not None, "an INSERT names its row"
        return dataclasses.replace(entry, seq=seq, journal=self._id)

    def check_room(self) -> None:
        """Refuse early, before a command runs on the master, if it could not be queued."""
        with self._read() as db:
            self._room(db)

    def _room(self, db: sqlite3.Connection) -> None:
        """Two index lookups; the exact count only when the queue may be full."""
        low, high = db.execute(f"SELECT MIN(seq), MAX(seq) FROM entries WHERE {IS_WAITING}"
                               ).fetchone()
        if low is None or high - low + 1 < self.max_pending:
            return
        pending = db.execute(f"SELECT COUNT(*) FROM entries WHERE {IS_WAITING}").fetchone()[0]
        if pending >= self.max_pending:
            raise JournalFull(
                f"the replication journal is full: {pending} commands wait for the peer "
                f"(at most {self.max_pending}). Bring the peer back so they replay, or, if "
                "it is gone for good, discard them with `skutui node journal --discard` and "
                "compare both nodes by hand. Nothing was run.")

    def queue(self, seq: int) -> None:
        """The command ran here with success: it is the peer's turn."""
        with self._write() as db:
            db.execute("UPDATE entries SET state = ?, runner = NULL WHERE seq = ? AND state = ?",
                       (QUEUED, seq, RUNNING))

    def cancel(self, seq: int) -> None:
        """The command failed here (or never started): it never reaches the peer."""
        with self._write() as db:
            db.execute("DELETE FROM entries WHERE seq = ? AND state = ?", (seq, RUNNING))

    def ack(self, outcome: Outcome) -> None:
        """Record the peer's answer for a sent entry. A failure is durable on return; a
        success becomes durable with the next write that is (any append, any failure): a
        power cut before that only makes the replay ask again, and the backup answers a
        command it ran from its own record, never running it twice. So a drain of ten
        thousand successes costs no fsync per command."""
        with self._read() as db:
            if outcome.ok:
                db.execute("PRAGMA synchronous=NORMAL")
            try:
                with _immediate(db):
                    self._answer(db, outcome)
            finally:
                if outcome.ok:
                    db.execute("PRAGMA synchronous=FULL")

    def _answer(self, db: sqlite3.Connection, outcome: Outcome) -> None:
        done = db.execute("UPDATE entries SET state = ?, outcome = ?, runner = NULL "
                          f"WHERE seq = ? AND {IS_WAITING}",
                          (ANSWERED, json.dumps(outcome.to_dict() | {"time": time.time()}),
                           outcome.seq)).rowcount
        if not done:
            return  # answered twice (a replay after a lost answer): nothing new
        db.execute("UPDATE meta SET value = MAX(CAST(value AS INTEGER), ?) WHERE key = 'acked'",
                   (outcome.seq,))
        if not outcome.ok:
            db.execute("UPDATE meta SET value = value + 1 WHERE key = 'failed_total'")
        if outcome.seq % COMPACT_AFTER == 0:
            self._compact(db)

    def _compact(self, db: sqlite3.Connection) -> None:
        """Drop old successes (implied by ``acked``) and all but the last failures."""
        acked = _meta_int(db, "acked")
        db.execute("DELETE FROM entries WHERE state = ? AND seq <= ? AND "
                   "json_extract(outcome, '$.status') = ?", (ANSWERED, acked - COMPACT_AFTER,
                                                             APPLIED))
        db.execute("DELETE FROM entries WHERE seq IN (SELECT seq FROM entries WHERE state = ? "
                   "AND json_extract(outcome, '$.status') != ? ORDER BY seq DESC "
                   "LIMIT -1 OFFSET ?)", (ANSWERED, APPLIED, FAILURES_KEPT))

    def set_aside(self, seq: int, note: str) -> bool:
        """Never send this command; keep it listed with ``note``. False if it was not
        waiting any more."""
        with self._write() as db:
            return bool(db.execute(
                f"UPDATE entries SET state = ?, note = ?, runner = NULL WHERE seq = ? AND "
                f"{IS_WAITING}", (SET_ASIDE, note, seq)).rowcount)

    def set_aside_other_terms(self, term: str | None, note: str) -> list[Entry]:
        """Set aside every queued command from another master term than ``term`` (every
        queued one when ``term`` is None: this node is not the master); commands recorded
        before terms were (term NULL) belong to whichever term replays them."""
        with self._write() as db:
            rows = db.execute(
                f"SELECT {COLUMNS} FROM entries WHERE {IS_WAITING} AND state = ? AND term IS "
                "NOT NULL AND (? IS NULL OR term != ?) ORDER BY seq", (QUEUED, term, term)
            ).fetchall()
            db.executemany("UPDATE entries SET state = ?, note = ? WHERE seq = ?",
                           [(SET_ASIDE, note, row["seq"]) for row in rows])
        return [_row_entry(self._id, row) for row in rows]

    def discard_pending(self) -> int:
        """Forget what the peer has not answered and what was set aside (a new peer, or a
        journal the operator gave up on); returns how many entries were dropped."""
        with self._write() as db:
            return db.execute(f"DELETE FROM entries WHERE {IS_WAITING} OR state = ?",
                              (SET_ASIDE,)).rowcount


def _meta_int(db: sqlite3.Connection, key: str) -> int:
    row = db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    return int(row[0]) if row else 0


@contextmanager
def _immediate(db: sqlite3.Connection) -> Iterator[None]:
    """A write transaction that takes the write lock first, so two writers queue instead
    of one failing halfway."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def record_action(journal_dir: Path, argv: Sequence[str], *, origin: str,
                  timeout: float = DEFAULT_COMMAND_TIMEOUT) -> Entry:
    """For the master's own actions that the backup must repeat (not typed by the operator)."""
    return Journal(journal_dir).append(argv, kind="action", origin=origin, timeout=timeout)


# --- the journal of the line format, moved into the database ------------------------------

def decode_record(line: bytes) -> Entry | None:
    """The entry on one complete line of the line format, or None if the line is damaged."""
    crc, sep, payload = line.rstrip(b"\n").partition(b" ")
    if not sep or len(crc) != 8:
        return None
    try:
        if int(crc, 16) != zlib.crc32(payload):
            return None
        return Entry.from_dict(json.loads(payload))
    except (ValueError, KeyError, TypeError):
        return None


def encode_record(entry: Entry) -> bytes:
    """A line of the line format (what a journal written before the database holds)."""
    data = {k: v for k, v in entry.to_dict().items() if k not in ("cwd", "term")}
    payload = json.dumps(data, separators=(",", ":"), sort_keys=True).encode()
    return b"%08x %s\n" % (zlib.crc32(payload), payload)


def _legacy_entries(data: bytes, source: Path) -> list[Entry]:
    """The entries of the line format; a torn last line (a crash mid-append) is left out,
    damage before good records is refused."""
    entries: list[Entry] = []
    offset = 0
    while offset < len(data):
        end = data.find(b"\n", offset)
        if end < 0:
            break
        entry = decode_record(data[offset:end + 1])
        if entry is None:
            if data.find(b"\n", end + 1) < 0:
                break
            raise sqlite3.DatabaseError(
                f"the journal {source} of the older format is damaged at byte {offset} "
                f"(record {len(entries) + 1}) and cannot be moved into the database")
        entries.append(entry)
        offset = end + 1
    return entries


def _migrate(db: sqlite3.Connection, directory: Path) -> None:
    """Move a journal of the line format into the database (inside the caller's write
    transaction, so two processes opening it at once migrate it once)."""
    legacy = directory / LEGACY_JOURNAL_FILE
    if not legacy.exists() or db.execute("SELECT 1 FROM meta WHERE key = 'migrated'").fetchone():
        return
    try:
        state = json.loads((directory / LEGACY_STATE_FILE).read_text())
    except FileNotFoundError:
        state = {}
    except (OSError, ValueError) as exc:
        raise sqlite3.DatabaseError(f"{directory / LEGACY_STATE_FILE} cannot be read: {exc}") from None
    entries = _legacy_entries(legacy.read_bytes(), legacy)
    acked = int(state.get("acked", 0))
    failures = {int(f["seq"]): f for f in state.get("failures", []) if "seq" in f}
    for entry in entries:
        failure = failures.pop(entry.seq, None)
        answered = entry.seq <= acked
        outcome = json.dumps(failure or Outcome(entry.seq, APPLIED).to_dict()) if answered else None
        db.execute("INSERT INTO entries (seq, kind, argv, origin, time, timeout, cwd, term, "
                   "state, outcome) VALUES (?, ?, ?, ?, ?, ?, '/', NULL, ?, ?)",
                   (entry.seq, entry.kind, json.dumps(list(entry.argv)), entry.origin,
                    entry.time, entry.timeout, ANSWERED if answered else QUEUED, outcome))
    for failure in failures.values():  # answered, compacted away from the line file
        db.execute("INSERT INTO entries (seq, kind, argv, origin, time, timeout, cwd, state, "
                   "outcome) VALUES (?, 'exec', '[\"?\"]', '', 0, 0, '/', ?, ?)",
                   (int(failure["seq"]), ANSWERED, json.dumps(failure)))
    last = max([acked, *(e.seq for e in entries)])
    db.execute("INSERT OR REPLACE INTO sqlite_sequence (name, seq) VALUES ('entries', ?)", (last,))
    if state.get("journal"):
        db.execute("UPDATE meta SET value = ? WHERE key = 'journal'", (str(state["journal"]),))
    db.execute("UPDATE meta SET value = ? WHERE key = 'acked'", (str(acked),))
    db.execute("UPDATE meta SET value = ? WHERE key = 'failed_total'",
               (str(int(state.get("failed_total", 0))),))
    db.execute("INSERT INTO meta VALUES ('migrated', ?)", (str(len(entries)),))
    log.info("replication journal %s: %d entries moved into %s", legacy, len(entries),
             DATABASE_FILE)


def _put_aside_legacy(directory: Path) -> None:
    """The line files once their entries are in the database (kept, for a look by hand)."""
    for name in (LEGACY_JOURNAL_FILE, LEGACY_STATE_FILE, "journal.lock"):
        path = directory / name
        if path.exists():
            os.replace(path, path.with_name(name + MIGRATED_SUFFIX))


# --- the backup's side ---------------------------------------------------------------------

def run_command(entry: Entry) -> tuple[int | None, str]:
    """Run a replayed command as the operator did: no shell, no stdin, from the directory
    it ran from on the master. None for the status: it could not start."""
    env = dict(os.environ, PATH=REPLAY_PATH)
    if not os.path.isdir(entry.cwd):
        return None, (f"the working directory {entry.cwd} does not exist on this node; "
                      "create it, or run the command from a directory both nodes have")
    try:
        result = subprocess.run(list(entry.argv), cwd=entry.cwd, env=env,
                                stdin=subprocess.DEVNULL, capture_output=True,
                                timeout=entry.timeout)
    except FileNotFoundError:
        return 127, f"{entry.argv[0]}: command not found"
    except PermissionError:
        return 126, f"{entry.argv[0]}: permission denied"
    except subprocess.TimeoutExpired:
        return -1, f"still running after {entry.timeout:g} s; killed"
    detail = (result.stderr or result.stdout).decode("utf-8", "replace").strip()
    return result.returncode, _tail(detail)


def _tail(text: str, limit: int = 500) -> str:
    lines = "\n".join(text.splitlines()[-5:])
    return lines if len(lines) <= limit else "…" + lines[-limit:]


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise JournalError(f"cannot read {path}: {exc}; it is written atomically, so this "
                           "is damage: move it aside") from None
    if not isinstance(data, dict):
        raise JournalError(f"{path} does not hold a JSON object; move it aside")
    return data


def _write_json(path: Path, data: dict) -> None:
    write_text_atomic(path, json.dumps(data, sort_keys=True) + "\n", mode=0o600)


def apply_entry(directory: Path, entry: Entry,
                run: Callable[[Entry], tuple[int | None, str]] = run_command) -> Outcome:
    """Run one replayed entry on this node at most once (idempotent by sequence number)."""
    private_dir(directory)
    path = directory / APPLIED_FILE
    with _locked(directory / APPLY_LOCK_FILE):
        applied = _read_json(path)
        record = dict(applied.get(entry.journal, {"started": 0, "finished": 0}))
        if entry.seq <= record["finished"]:
            last = record.get("last")
            if last and last.get("seq") == entry.seq:
                return dataclasses.replace(Outcome.from_dict(last), repeat=True)
            return Outcome(entry.seq, APPLIED, repeat=True)
        if record["started"] >= entry.seq:
            outcome = Outcome(entry.seq, INTERRUPTED, message=(
                f"this node stopped while running #{entry.seq} (`{entry.command}`); it was "
                "not run again, to avoid running it twice: check its effect by hand"))
        else:
            record["started"] = entry.seq
            applied[entry.journal] = record
            _write_json(path, applied)
            code, detail = run(entry)
            outcome = Outcome(entry.seq, APPLIED if code == 0 else FAILED, code,
                              "" if code == 0 else detail)
        record.update(started=entry.seq, finished=entry.seq, last=outcome.to_dict())
        applied[entry.journal] = record
        _write_json(path, applied)
        return outcome
