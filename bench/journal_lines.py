"""The replication journal as it was before the database (commit d81ef43): one line per
command in a file, acknowledgements in ``replicated.json``; every append and every answer
re-reads and re-parses the whole file. Kept here only as the baseline of
``bench/journal.py``, which times it against the journal skutui uses now, in the same run.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import secrets
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from skutui.system.files import fsync_directory as fsync_dir
from skutui.system.files import write_text_atomic
from skutui.system.journal import (
    APPLIED,
    DEFAULT_COMMAND_TIMEOUT,
    DEFAULT_MAX_PENDING,
    MAX_RECORD_BYTES,
    Entry,
    JournalCorrupt,
    JournalError,
    JournalFull,
    Outcome,
    decode_record,
    encode_record,
    private_dir,
)

log = logging.getLogger("bench")

JOURNAL_FILE = "journal"
STATE_FILE = "replicated.json"
LOCK_FILE = "journal.lock"
COMPACT_AFTER = 1_000
FAILURES_KEPT = 50


def _parse(data: bytes, source: Path) -> tuple[list[Entry], int]:
    """The entries and the length of the valid part; a torn last line is left out."""
    entries: list[Entry] = []
    offset = 0
    while offset < len(data):
        end = data.find(b"\n", offset)
        if end < 0:
            break  # no newline: an append that never finished
        entry = decode_record(data[offset:end + 1])
        if entry is None:
            if data.find(b"\n", end + 1) < 0:
                break  # the last complete line: torn by a crash
            raise JournalCorrupt(
                f"the replication journal {source} is damaged at byte {offset} (record "
                f"{len(entries) + 1}) and has valid records after it; skutui will not guess. "
                f"Move {source} aside to start a new journal (commands in it will not "
                "reach the peer: compare both nodes by hand).")
        if entries and entry.seq <= entries[-1].seq:
            raise JournalCorrupt(
                f"the replication journal {source} is out of order at byte {offset}: "
                f"#{entry.seq} after #{entries[-1].seq}. Move it aside to start a new one.")
        entries.append(entry)
        offset = end + 1
    return entries, offset



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


# --- the master's journal ------------------------------------------------------------------

@dataclass
class ReplicationState:
    journal: str
    acked: int = 0
    failures: list[dict] = field(default_factory=list)
    failed_total: int = 0

    def to_dict(self) -> dict:
        return {"journal": self.journal, "acked": self.acked, "failures": self.failures,
                "failed_total": self.failed_total}


class LineJournal:
    """The master's ordered list of commands for the peer; safe across processes."""

    def __init__(self, directory: Path, *, max_pending: int | None = None) -> None:
        self.directory = Path(directory)
        self.max_pending = DEFAULT_MAX_PENDING if max_pending is None else max_pending
        self.path = self.directory / JOURNAL_FILE
        self.state_path = self.directory / STATE_FILE

    # reading (no lock: a reader at worst misses an append in progress)

    def entries(self) -> list[Entry]:
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return []
        return _parse(data, self.path)[0]

    def state(self) -> ReplicationState:
        data = _read_json(self.state_path)
        if not data:
            return ReplicationState(journal="")
        return ReplicationState(journal=str(data.get("journal", "")),
                                acked=int(data.get("acked", 0)),
                                failures=list(data.get("failures", [])),
                                failed_total=int(data.get("failed_total", 0)))

    def pending(self) -> list[Entry]:
        acked = self.state().acked
        return [entry for entry in self.entries() if entry.seq > acked]

    def outcome(self, seq: int) -> Outcome | None:
        """The peer's answer for ``seq`` if it gave one (failures are kept, successes are
        implied by the acknowledged number); None while it waits."""
        state = self.state()
        if seq > state.acked:
            return None
        for failure in state.failures:
            if failure.get("seq") == seq:
                return Outcome.from_dict(failure)
        return Outcome(seq, APPLIED)

    def summary(self) -> dict:
        state = self.state()
        pending = [e for e in self.entries() if e.seq > state.acked]
        return {"journal": state.journal, "acked": state.acked, "pending": len(pending),
                "oldest_pending": pending[0].time if pending else None,
                "failed_total": state.failed_total,
                "last_failure": state.failures[-1] if state.failures else None}

    # writing (under the lock)

    def check_room(self) -> None:
        """Refuse early, before a command runs on the master, if it could not be queued."""
        with self._lock():
            self._room(self._load_for_write()[0], self._state())

    def append(self, argv: Sequence[str], *, kind: str = "exec", origin: str,
               timeout: float = DEFAULT_COMMAND_TIMEOUT) -> Entry:
        """Queue a command for the peer; durable (fsynced) when this returns."""
        if not argv:
            raise JournalError("nothing to replicate: the command is empty")
        with self._lock():
            entries, valid = self._load_for_write()
            state = self._state()
            self._room(entries, state)
            last = max(entries[-1].seq if entries else 0, state.acked)
            entry = Entry(seq=last + 1, journal=state.journal, kind=kind, argv=tuple(argv),
                          origin=origin, time=time.time(), timeout=timeout)
            record = encode_record(entry)
            if len(record) > MAX_RECORD_BYTES:
                raise JournalError(f"the command is too long to replicate ({len(record)} "
                                   f"bytes, at most {MAX_RECORD_BYTES}); put it in a script "
                                   "under a synced path and replicate the script's name")
            self._write_at(valid, record)
            return entry

    def ack(self, outcome: Outcome) -> None:
        """Record the peer's answer for the oldest pending entry; durable on return."""
        with self._lock():
            state = self._state()
            if outcome.seq <= state.acked:
                return  # answered twice (a replay after a lost answer): nothing new
            state.acked = outcome.seq
            if not outcome.ok:
                state.failed_total += 1
                state.failures = (state.failures + [outcome.to_dict() | {"time": time.time()}]
                                  )[-FAILURES_KEPT:]
            _write_json(self.state_path, state.to_dict())
            entries, _ = self._load_for_write()
            if sum(1 for e in entries if e.seq <= state.acked) >= COMPACT_AFTER:
                self._rewrite([e for e in entries if e.seq > state.acked])

    def discard_pending(self) -> int:
        """Forget what the peer has not acknowledged (a new peer, or a journal the operator
        gave up on); returns how many entries were dropped."""
        with self._lock():
            entries, _ = self._load_for_write()
            state = self._state()
            dropped = [e for e in entries if e.seq > state.acked]
            if dropped:
                state.acked = dropped[-1].seq
                _write_json(self.state_path, state.to_dict())
            self._rewrite([])
            return len(dropped)

    # internals

    @contextmanager
    def _lock(self) -> Iterator[None]:
        private_dir(self.directory)
        with _locked(self.directory / LOCK_FILE):
            yield

    def _state(self) -> ReplicationState:
        state = self.state()
        if not state.journal:
            state.journal = secrets.token_hex(8)
            _write_json(self.state_path, state.to_dict())
        return state

    def _room(self, entries: list[Entry], state: ReplicationState) -> None:
        pending = sum(1 for e in entries if e.seq > state.acked)
        if pending >= self.max_pending:
            raise JournalFull(
                f"the replication journal is full: {pending} commands wait for the peer "
                f"(at most {self.max_pending}). Bring the peer back so they replay, or, if "
                "it is gone for good, discard them with `skutui node journal --discard` and "
                "compare both nodes by hand. Nothing was run.")

    def _load_for_write(self) -> tuple[list[Entry], int]:
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return [], 0
        entries, valid = _parse(data, self.path)
        if valid < len(data):
            log.warning("replication journal %s: cut off %d bytes of an append that never "
                        "finished", self.path, len(data) - valid)
        return entries, valid

    def _write_at(self, offset: int, record: bytes) -> None:
        created = not self.path.exists()
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            os.ftruncate(fd, offset)  # drop a torn tail left by a crash, if any
            os.lseek(fd, offset, os.SEEK_SET)
            view = memoryview(record)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        if created:
            fsync_dir(self.directory)

    def _rewrite(self, entries: list[Entry]) -> None:
        text = b"".join(encode_record(e) for e in entries).decode()
        write_text_atomic(self.path, text, mode=0o600)
