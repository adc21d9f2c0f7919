"""Command replication: a durable, ordered journal on the master, replayed on the backup.

Master side (:class:`Journal`, in ``Paths.journal_dir``)::

    journal          one record a line: "<crc32 hex> <json>\\n", appended and fsynced
    replicated.json  the journal's id, the last sequence number the peer acknowledged,
                     and the recent failures (written atomically)
    journal.lock     flock taken by every writer (``skutui exec`` and the agent)

A record is ``{"seq", "journal", "kind", "argv", "origin", "time", "timeout"}``. A crash in
the middle of an append leaves a last line without its newline or with a bad checksum:
readers ignore it and the next writer cuts it off, so the journal stays readable and the
half-written command was never reported as queued. A bad record *before* good ones is
damage, not a crash, and is reported as :class:`JournalCorrupt` instead of being guessed at.

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
import subprocess
import time
import zlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from skutui.domain.errors import Failed
from skutui.system.files import fsync_directory as fsync_dir
from skutui.system.files import write_text_atomic

log = logging.getLogger("skutui.agent")

JOURNAL_FILE = "journal"
STATE_FILE = "replicated.json"
LOCK_FILE = "journal.lock"
APPLIED_FILE = "applied.json"
APPLY_LOCK_FILE = "applied.lock"

DEFAULT_MAX_PENDING = 10_000
"""Commands that may wait for an absent peer; past this, new ones are refused (not lost)."""
MAX_RECORD_BYTES = 64 * 1024
COMPACT_AFTER = 1_000
"""Acknowledged records kept in the file before it is rewritten without them."""
FAILURES_KEPT = 50
DEFAULT_COMMAND_TIMEOUT = 300.0
"""Seconds a replayed command may run on the backup before it is killed."""

REPLAY_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
"""sshd gives commands a short PATH; replayed commands get the one an admin shell has."""

APPLIED = "applied"
FAILED = "failed"
INTERRUPTED = "interrupted"


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

    @property
    def command(self) -> str:
        return shlex.join(self.argv)

    def to_dict(self) -> dict:
        return {"seq": self.seq, "journal": self.journal, "kind": self.kind,
                "argv": list(self.argv), "origin": self.origin, "time": self.time,
                "timeout": self.timeout}

    @classmethod
    def from_dict(cls, data: dict) -> Entry:
        argv = data["argv"]
        if not isinstance(argv, list) or not argv or not all(isinstance(a, str) for a in argv):
            raise ValueError("argv must be a non-empty list of strings")
        return cls(seq=int(data["seq"]), journal=str(data["journal"]), kind=str(data["kind"]),
                   argv=tuple(argv), origin=str(data["origin"]), time=float(data["time"]),
                   timeout=float(data.get("timeout", DEFAULT_COMMAND_TIMEOUT)))


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


# --- record encoding ---------------------------------------------------------------------

def encode_record(entry: Entry) -> bytes:
    payload = json.dumps(entry.to_dict(), separators=(",", ":"), sort_keys=True).encode()
    return b"%08x %s\n" % (zlib.crc32(payload), payload)


def decode_record(line: bytes) -> Entry | None:
    """The entry on one complete line, or None if the line is damaged."""
    crc, sep, payload = line.rstrip(b"\n").partition(b" ")
    if not sep or len(crc) != 8:
        return None
    try:
        if int(crc, 16) != zlib.crc32(payload):
            return None
        return Entry.from_dict(json.loads(payload))
    except (ValueError, KeyError, TypeError):
        return None


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


def private_dir(directory: Path) -> None:
    """The journal sits in the never-synced local folder, beside this node's SSH key: if
    it is created first, it must not create that folder readable by everyone."""
    for folder in (directory.parent, directory):
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)


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


class Journal:
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


def record_action(journal_dir: Path, argv: Sequence[str], *, origin: str,
                  timeout: float = DEFAULT_COMMAND_TIMEOUT) -> Entry:
    """For the master's own actions that the backup must repeat (not typed by the operator)."""
    return Journal(journal_dir).append(argv, kind="action", origin=origin, timeout=timeout)


# --- the backup's side ---------------------------------------------------------------------

def run_command(entry: Entry) -> tuple[int, str]:
    """Run a replayed command as the operator would: no shell, no stdin, from /."""
    env = dict(os.environ, PATH=REPLAY_PATH)
    try:
        result = subprocess.run(list(entry.argv), cwd="/", env=env, stdin=subprocess.DEVNULL,
                                capture_output=True, timeout=entry.timeout)
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


def apply_entry(directory: Path, entry: Entry,
                run: Callable[[Entry], tuple[int, str]] = run_command) -> Outcome:
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
