"""The replication journal: durable, ordered, bounded, written ahead of the command it
records; replayed at most once on the backup; a journal of the older line format moved in."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from skutui.agent.replication import ReplayBlocked, Replayer, SshReplayTarget
from skutui.domain.paths import Paths
from skutui.system import journal as journal_module
from skutui.system.journal import (
    APPLIED,
    FAILED,
    INTERRUPTED,
    QUEUED,
    RUNNING,
    Entry,
    Journal,
    JournalCorrupt,
    JournalError,
    JournalFull,
    Outcome,
    apply_entry,
    decode_record,
    encode_record,
    run_command,
)
from tests.unit.node_steps import make_master

ORIGIN = "node-a"


@pytest.fixture
def journal(tmp_path: Path) -> Journal:
    return Journal(tmp_path / "journal")


def entry(seq: int, *argv: str, journal_id: str = "j1", timeout: float = 5,
          cwd: str = "/") -> Entry:
    return Entry(seq=seq, journal=journal_id, kind="exec", argv=argv or ("true",),
                 origin=ORIGIN, time=0.0, timeout=timeout, cwd=cwd)


# --- the master's journal -----------------------------------------------------------------

def test_entries_are_numbered_in_order_and_survive_a_new_reader(journal: Journal):
    first = journal.append(["ipset", "add", "blocked", "192.0.2.7"], origin=ORIGIN)
    second = journal.append(["service", "haproxy", "reload"], origin=ORIGIN, cwd="/etc/haproxy")
    assert (first.seq, second.seq) == (1, 2) and first.journal == second.journal
    again = Journal(journal.directory)
    assert [e.argv for e in again.entries()] == [first.argv, second.argv]
    assert [e.seq for e in again.pending()] == [1, 2]
    assert again.pending()[1].cwd == "/etc/haproxy"
    assert again.outcome(1) is None
    mode = os.stat(journal.path).st_mode & 0o777
    assert mode == 0o600 and (os.stat(journal.directory).st_mode & 0o777) == 0o700
    with sqlite3.connect(journal.path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_a_command_is_recorded_before_it_runs_then_queued_or_dropped(journal: Journal):
    """Write-ahead: `skutui exec` records the command (running, with its own process)
    before running it; success queues it for the peer, failure drops it."""
    ok = journal.begin(["true"], origin=ORIGIN, cwd="/srv", term="boot/100")
    head = journal.head()
    assert head is not None and head.entry == ok and head.state == RUNNING and head.runner_alive
    failed = journal.begin(["false"], origin=ORIGIN)
    journal.queue(ok.seq)
    journal.cancel(failed.seq)
    assert [(e.seq, e.cwd, e.term) for e in journal.pending()] == [(1, "/srv", "boot/100")]
    assert journal.state_of(1) == QUEUED and journal.state_of(2) is None
    assert journal.append(["next"], origin=ORIGIN).seq == 3  # a dropped number is not reused


RECORD_THEN_DIE = """
import os, sys
from pathlib import Path
from skutui.system.journal import Journal
Journal(Path(sys.argv[1])).begin(["touch", "/x"], origin="node-a")
os._exit(9)  # killed between recording and saying how it went
"""


async def test_a_command_whose_exec_died_is_set_aside_not_replayed(journal: Journal,
                                                                 tmp_path: Path):
    subprocess.run([sys.executable, "-c", RECORD_THEN_DIE, str(journal.directory)],
                   cwd=Path(__file__).parents[2], check=False)
    journal.append(["after"], origin=ORIGIN)
    head = journal.head()
    assert head is not None and head.state == RUNNING and not head.runner_alive
    target = Target(tmp_path / "backup", Runner())
    events: list[str] = []
    assert await Replayer(journal, target, lambda kind, message, **data: events.append(
        message)).replay_pending() == 1
    assert target.runner.ran == [2]
    [aside] = journal.set_aside_entries()
    assert aside.entry.seq == 1 and "may have run there" in aside.note
    assert events[0].startswith("#1 set aside, not replayed: touch /x")


async def test_replay_waits_behind_a_command_still_running_here(journal: Journal,
                                                              tmp_path: Path):
    running = journal.begin(["sleep", "1"], origin=ORIGIN)
    journal.append(["after"], origin=ORIGIN)
    target = Target(tmp_path / "backup", Runner())
    replayer = Replayer(journal, target, lambda *a, **k: None)
    assert await replayer.replay_pending() == 0 and target.runner.ran == []
    journal.queue(running.seq)
    assert await replayer.replay_pending() == 2 and target.runner.ran == [1, 2]


def test_commands_of_another_master_term_are_set_aside(journal: Journal):
    journal.append(["old", "1"], origin=ORIGIN, term="boot/100")
    journal.append(["legacy"], origin=ORIGIN, term=None)
    journal.append(["new"], origin=ORIGIN, term="boot/900")
    stale = journal.set_aside_other_terms("boot/900", "earlier term")
    assert [e.argv for e in stale] == [("old", "1")]
    assert [e.argv for e in journal.pending()] == [("legacy",), ("new",)]
    assert journal.summary()["set_aside"] == 1
    assert [e.argv for e in journal.set_aside_other_terms(None, "not master")] == [("new",)]
    assert [a.note for a in journal.set_aside_entries()] == ["earlier term", "not master"]
    assert journal.discard_pending() == 3


APPENDER = """
import sys
from pathlib import Path
from skutui.system.journal import Journal
journal = Journal(Path(sys.argv[1]))
print("ready", flush=True)
while True:
    journal.append(["echo", "x" * 3000], origin="node-a")
"""


def test_killing_a_writer_mid_append_leaves_a_readable_gapless_journal(journal: Journal):
    writer = subprocess.Popen([sys.executable, "-c", APPENDER, str(journal.directory)],
                              stdout=subprocess.PIPE, cwd=Path(__file__).parents[2])
    try:
        assert writer.stdout.readline() == b"ready\n"
        time.sleep(0.3)
    finally:
        writer.send_signal(signal.SIGKILL)
        writer.wait()
    seqs = [e.seq for e in journal.entries()]
    assert seqs and seqs == list(range(1, len(seqs) + 1))
    assert journal.append(["echo", "after"], origin=ORIGIN).seq == len(seqs) + 1


def test_the_journal_is_bounded_and_says_what_to_do(tmp_path: Path):
    small = Journal(tmp_path / "j", max_pending=3)
    for n in range(3):
        small.append(["echo", str(n)], origin=ORIGIN)
    with pytest.raises(JournalFull, match=r"full: 3 commands wait.*Bring the peer back.*"
                                          r"skutui node journal --discard"):
        small.check_room()
    with pytest.raises(JournalFull):
        small.begin(["echo", "3"], origin=ORIGIN)
    small.ack(Outcome(1, APPLIED))
    assert small.append(["echo", "3"], origin=ORIGIN).seq == 4
    small.ack(Outcome(2, APPLIED))
    with pytest.raises(JournalError, match="too long"):
        small.append(["x" * 70_000], origin=ORIGIN)
    with pytest.raises(JournalError, match="empty"):
        small.append([], origin=ORIGIN)
    with pytest.raises(JournalError, match="not absolute"):
        small.append(["ls"], origin=ORIGIN, cwd="relative")


def test_acks_are_durable_idempotent_and_keep_failures(journal: Journal):
    for n in range(3):
        journal.append(["cmd", str(n)], origin=ORIGIN)
    journal.ack(Outcome(1, APPLIED))
    journal.ack(Outcome(2, FAILED, 3, "no such set"))
    journal.ack(Outcome(1, APPLIED))  # a late duplicate answer changes nothing
    again = Journal(journal.directory)
    assert [e.seq for e in again.pending()] == [3]
    assert again.outcome(1) == Outcome(1, APPLIED)
    assert again.outcome(2).status == FAILED and again.outcome(2).exit_status == 3
    assert again.outcome(3) is None
    summary = again.summary()
    assert summary["pending"] == 1 and summary["acked"] == 2 and summary["failed_total"] == 1
    assert summary["last_failure"]["message"] == "no such set"


def test_compaction_keeps_pending_entries_failures_and_the_numbering(journal: Journal,
                                                                    monkeypatch):
    monkeypatch.setattr(journal_module, "COMPACT_AFTER", 5)
    for n in range(12):
        journal.append(["cmd", str(n)], origin=ORIGIN)
    journal.ack(Outcome(1, FAILED, 1, "kept"))
    for seq in range(2, 11):
        journal.ack(Outcome(seq, APPLIED))
    assert [e.seq for e in journal.entries()] == [1, 6, 7, 8, 9, 10, 11, 12]
    assert journal.outcome(3) == Outcome(3, APPLIED) and journal.outcome(1).status == FAILED
    assert journal.discard_pending() == 2 and [e.seq for e in journal.pending()] == []
    assert journal.append(["next"], origin=ORIGIN).seq == 13  # numbering never restarts


def test_discarding_pending_entries(journal: Journal):
    for n in range(3):
        journal.append(["cmd", str(n)], origin=ORIGIN)
    journal.ack(Outcome(1, APPLIED))
    assert journal.discard_pending() == 2
    assert journal.pending() == [] and journal.append(["cmd"], origin=ORIGIN).seq == 4


def test_a_damaged_database_is_reported_not_guessed(journal: Journal):
    journal.append(["echo", "one"], origin=ORIGIN)
    journal.close()
    journal.path.write_bytes(b"not a database" * 100)
    for name in ("journal.db-wal", "journal.db-shm"):
        (journal.directory / name).unlink(missing_ok=True)
    with pytest.raises(JournalCorrupt, match=r"cannot be used.*Move .* aside"):
        Journal(journal.directory).pending()


# --- a journal of the line format, moved into the database ---------------------------------

def legacy(directory: Path, entries: list[Entry], state: dict, tail: bytes = b"") -> None:
    directory.mkdir(parents=True, mode=0o700)
    (directory / "journal").write_bytes(b"".join(encode_record(e) for e in entries) + tail)
    (directory / "replicated.json").write_text(json.dumps(state))


def test_a_line_journal_is_moved_into_the_database_on_first_use(tmp_path: Path):
    directory = tmp_path / "journal"
    old = [entry(n, "cmd", str(n), journal_id="old-id") for n in (4, 5, 6)]
    torn = encode_record(entry(7, "cmd", "7", journal_id="old-id"))
    legacy(directory, old, {"journal": "old-id", "acked": 5, "failed_total": 2, "failures": [
        {"seq": 5, "status": "failed", "exit_status": 2, "message": "no", "repeat": False}]},
        tail=torn[: len(torn) // 2])  # a crash mid-append, before the upgrade
    journal = Journal(directory)
    assert [e.seq for e in journal.pending()] == [6]
    assert journal.pending()[0].journal == "old-id", "the backup keeps counting the same journal"
    assert journal.outcome(4) == Outcome(4, APPLIED) and journal.outcome(5).exit_status == 2
    assert journal.summary()["failed_total"] == 2 and journal.summary()["acked"] == 5
    assert journal.append(["next"], origin=ORIGIN).seq == 7
    assert not (directory / "journal").exists()
    assert (directory / "journal.migrated").exists() and (directory / "replicated.json.migrated").exists()
    assert [e.seq for e in Journal(directory).pending()] == [6, 7], "moved once"


def test_a_damaged_line_journal_is_not_guessed_at(tmp_path: Path):
    directory = tmp_path / "journal"
    legacy(directory, [entry(n, "echo", w) for n, w in ((1, "one"), (2, "two"), (3, "three"))],
           {"journal": "j1", "acked": 0})
    data = (directory / "journal").read_bytes()
    (directory / "journal").write_bytes(data.replace(b"two", b"tw0", 1))
    with pytest.raises(JournalCorrupt, match=r"damaged at byte \d+ \(record 2\)"):
        Journal(directory).pending()
    assert (directory / "journal").exists(), "left where it was, for the operator"


def test_line_records_decode_only_with_a_good_checksum():
    good = encode_record(entry(2, "echo", "two"))
    assert decode_record(good) == entry(2, "echo", "two")
    assert decode_record(good.replace(b"two", b"tw0")) is None


# --- the backup's side --------------------------------------------------------------------

class Runner:
    def __init__(self, code: int = 0, detail: str = "") -> None:
        self.code, self.detail, self.ran = code, detail, []

    def __call__(self, e: Entry) -> tuple[int, str]:
        self.ran.append(e.seq)
        return self.code, self.detail


def test_an_entry_runs_once_and_a_repeat_gets_the_recorded_answer(tmp_path: Path):
    runner = Runner()
    first = apply_entry(tmp_path, entry(1), runner)
    assert first == Outcome(1, APPLIED, 0, "")
    assert apply_entry(tmp_path, entry(1), runner) == Outcome(1, APPLIED, 0, "", repeat=True)
    failing = Runner(2, "exists")
    assert apply_entry(tmp_path, entry(2), failing).status == FAILED
    repeat = apply_entry(tmp_path, entry(2), failing)
    assert (repeat.status, repeat.exit_status, repeat.message, repeat.repeat) == (
        FAILED, 2, "exists", True)
    assert runner.ran == [1] and failing.ran == [2]
    assert apply_entry(tmp_path, entry(1), runner).repeat  # older ones too
    assert runner.ran == [1]


def test_a_crash_while_running_is_reported_and_never_run_again(tmp_path: Path):
    def crash(e: Entry) -> tuple[int, str]:
        raise KeyboardInterrupt  # the process dies between "started" and "finished"

    with pytest.raises(KeyboardInterrupt):
        apply_entry(tmp_path, entry(1, "service", "haproxy", "reload"), crash)
    runner = Runner()
    outcome = apply_entry(tmp_path, entry(1, "service", "haproxy", "reload"), runner)
    assert outcome.status == INTERRUPTED and runner.ran == []
    assert "not run again" in outcome.message and "service haproxy reload" in outcome.message
    assert apply_entry(tmp_path, entry(2), runner).status == APPLIED


def test_each_journal_is_counted_on_its_own(tmp_path: Path):
    """A reinstalled master starts again at #1 under a new journal id: not a duplicate."""
    runner = Runner()
    apply_entry(tmp_path, entry(5, journal_id="old"), runner)
    apply_entry(tmp_path, entry(1, journal_id="new"), runner)
    assert runner.ran == [5, 1]
    applied = json.loads((tmp_path / "applied.json").read_text())
    assert applied["old"]["finished"] == 5 and applied["new"]["finished"] == 1


def test_run_command_reports_status_output_and_time_limits():
    assert run_command(entry(1, "sh", "-c", "echo fine")) == (0, "fine")
    assert run_command(entry(1, "sh", "-c", "echo bad >&2; exit 4")) == (4, "bad")
    assert run_command(entry(1, "no-such-command-skutui")) == (
        127, "no-such-command-skutui: command not found")
    code, detail = run_command(entry(1, "sleep", "5", timeout=0.2))
    assert code == -1 and "killed" in detail


def test_a_replayed_command_runs_from_the_masters_working_directory(tmp_path: Path):
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "blocked.txt").write_text("192.0.2.7\n")
    assert run_command(entry(1, "cat", "blocked.txt", cwd=str(tmp_path / "conf"))) == (
        0, "192.0.2.7")
    code, detail = run_command(entry(1, "true", cwd=str(tmp_path / "missing")))
    assert code is None and f"{tmp_path / 'missing'} does not exist on this node" in detail
    assert Outcome(1, FAILED, code, detail).describe().startswith("not run: the working")


# --- the master's replayer ----------------------------------------------------------------

class Target:
    """The peer, in memory: answers from apply_entry; can drop the link once."""

    def __init__(self, directory: Path, runner: Runner) -> None:
        self.directory, self.runner = directory, runner
        self.drop_at: int | None = None

    async def replay(self, e: Entry) -> Outcome:
        from skutui.peer import PeerUnreachable

        if e.seq == self.drop_at:
            self.drop_at = None
            raise PeerUnreachable("peer", "lost the SSH connection")
        return apply_entry(self.directory, e, self.runner)


async def test_replay_in_order_reports_failures_and_resumes_after_a_drop(journal: Journal,
                                                                         tmp_path: Path):
    from skutui.peer import PeerUnreachable

    for n in range(4):
        journal.append(["cmd", str(n)], origin=ORIGIN)
    runner = Runner()
    target = Target(tmp_path / "backup", runner)
    target.drop_at = 3
    events = []
    replayer = Replayer(journal, target, lambda kind, message, **data: events.append(
        (kind, data.get("level", "info"), message)))
    with pytest.raises(PeerUnreachable):
        await replayer.replay_pending()
    assert runner.ran == [1, 2] and [e.seq for e in journal.pending()] == [3, 4]
    runner.code, runner.detail = 1, "boom"
    assert await replayer.replay_pending() == 2
    assert runner.ran == [1, 2, 3, 4] and journal.pending() == []
    assert journal.outcome(3).status == FAILED
    assert events[-1] == ("replication", "error", "#4 FAILED on the peer: cmd 3 (exit 1: boom)")
    assert events[0] == ("replication", "info", "#1 applied on the peer: cmd 0")


async def test_replay_over_ssh_runs_once_even_when_sent_twice(tmp_path: Path):
    from tests.unit.test_sync import connection_to, start_skutui_peer

    master = Paths(config_root=tmp_path / "master" / "etc" / "skutui")
    master.local_dir.mkdir(parents=True)
    peer = await start_skutui_peer(tmp_path / "backup", master)
    connection = connection_to(peer, master)
    try:
        journal = Journal(master.journal_dir)
        journal.append(["ipset", "add", "blocked", "192.0.2.7"], origin=ORIGIN)
        journal.append(["fail", "3", "set", "missing"], origin=ORIGIN)
        target = SshReplayTarget(connection)
        replayer = Replayer(journal, target, lambda *a, **k: None)
        assert await replayer.replay_pending() == 2
        assert peer.replayed == [["ipset", "add", "blocked", "192.0.2.7"],
                                 ["fail", "3", "set", "missing"]]
        assert journal.outcome(2) == Outcome(2, FAILED, 3, "set missing")
        again = await target.replay(journal.entries()[0])  # an answer that got lost
        assert again.repeat and again.status == APPLIED and len(peer.replayed) == 2

        peer.role = "master"
        journal.append(["true"], origin=ORIGIN)
        with pytest.raises(ReplayBlocked, match="refused #3: refusing"):
            await replayer.replay_pending()
        assert [e.seq for e in journal.pending()] == [3]
    finally:
        await connection.close()
        await peer.stop()


# --- skutui exec --------------------------------------------------------------------------

@pytest.fixture
def exec_node(tmp_path: Path, monkeypatch) -> Paths:
    """A configured master (no agent running) as ``skutui exec`` finds it: its keepalived
    runs."""
    import socket as socket_module

    from skutui.domain.model import ClusterConfig, Node
    from skutui.system import store

    paths = Paths(config_root=tmp_path / "etc" / "skutui", run_dir=tmp_path / "run")
    paths.local_dir.mkdir(parents=True)
    make_master(paths, monkeypatch)
    store.save(ClusterConfig(interface="eth0", nodes=(
        Node(socket_module.gethostname(), "198.18.0.1"), Node("node-b", "198.18.0.2"))),
        paths.cluster_file)
    monkeypatch.setattr(Paths, "from_env", classmethod(lambda cls: paths))
    return paths


def skutui_exec(*argv: str) -> int:
    from skutui.cli.main import build_parser

    parser = build_parser(["exec"])
    args = parser.parse_args(["exec", *argv])
    return args.func(args)


def test_exec_runs_here_then_queues_for_the_backup(exec_node: Paths, tmp_path: Path, capsys):
    marker = tmp_path / "ran"
    code = skutui_exec("--", "sh", "-c", f"echo here >> {marker}")
    assert code == 0 and marker.read_text() == "here\n"
    assert "queued as #1 for node-b; the agent is not running" in capsys.readouterr().err
    [queued] = Journal(exec_node.journal_dir).pending()
    assert queued.argv == ("sh", "-c", f"echo here >> {marker}") and queued.kind == "exec"


def test_exec_failing_here_is_not_replicated(exec_node: Paths, capsys):
    assert skutui_exec("--", "sh", "-c", "exit 3") == 3
    assert "failed here with exit status 3; it was not replicated" in capsys.readouterr().err
    assert Journal(exec_node.journal_dir).entries() == []


def test_exec_is_refused_on_a_backup_and_when_the_journal_is_full(exec_node: Paths,
                                                                  tmp_path: Path, monkeypatch):
    from skutui.cli.common import CommandError

    marker = tmp_path / "ran"
    exec_node.role_file.write_text("backup\n")
    with pytest.raises(CommandError, match=r"runs on the master: this node .* is backup\. "
                                           r"Run it on node-b \(198\.18\.0\.2\)"):
        skutui_exec("--", "touch", str(marker))
    exec_node.role_file.write_text("master\n")
    monkeypatch.setattr(journal_module, "DEFAULT_MAX_PENDING", 1)
    Journal(exec_node.journal_dir).append(["true"], origin=ORIGIN)
    with pytest.raises(CommandError, match="journal is full.*Nothing was run"):
        skutui_exec("--", "touch", str(marker))
    assert not marker.exists()
    with pytest.raises(CommandError, match="nothing to run"):
        skutui_exec("--")


def test_exec_is_refused_on_a_master_whose_keepalived_died(exec_node: Paths, tmp_path: Path,
                                                           monkeypatch):
    """The role file still says master (no transition ran), but the peer has taken over."""
    from skutui.cli.common import CommandError
    from skutui.system.daemons import Keepalived

    monkeypatch.setattr(Keepalived, "running_since", lambda self: None)
    marker = tmp_path / "ran"
    with pytest.raises(CommandError, match=r"runs on the master: this node .* is backup"):
        skutui_exec("--", "touch", str(marker))
    assert not marker.exists() and Journal(exec_node.journal_dir).entries() == []


@pytest.mark.parametrize("answer, code, said", [
    (Outcome(1, APPLIED, 0), 0, "#1 replicated to node-b"),
    (Outcome(1, FAILED, 2, "no such set"), 1, "#1 FAILED on node-b: exit 2: no such set"),
])
async def test_exec_waits_for_the_backups_answer(exec_node: Paths, capsys, answer, code, said):
    from skutui.agent.control import ControlServer, EventBus

    journal = Journal(exec_node.journal_dir)
    agent = ControlServer(exec_node.control_socket, EventBus("node-a"), dict,
                          on_wake=lambda: journal.ack(answer))  # the agent, at once
    await agent.start()
    try:
        assert await asyncio.to_thread(skutui_exec, "--wait", "5", "--", "true") == code
    finally:
        await agent.close()
    assert said in capsys.readouterr().err


def test_exec_records_the_command_before_running_it_with_its_directory(
        exec_node: Paths, tmp_path: Path, monkeypatch, capsys):
    """While the command runs here, the journal already holds it (running): a crash now
    leaves a record that says so, never a silent difference between the nodes."""
    seen = tmp_path / "seen"
    probe = ("import json, sys; from pathlib import Path; from skutui.system.journal import "
             "Journal; head = Journal(Path(sys.argv[1])).head(); "
             "Path(sys.argv[2]).write_text(json.dumps([head.state, head.entry.cwd]))")
    monkeypatch.chdir(tmp_path)
    code = skutui_exec("--", sys.executable, "-c", probe, str(exec_node.journal_dir), str(seen))
    assert code == 0
    assert json.loads(seen.read_text()) == [RUNNING, str(tmp_path)]
    [queued] = Journal(exec_node.journal_dir).pending()
    assert queued.cwd == str(tmp_path) and Journal(exec_node.journal_dir).state_of(1) == QUEUED


def test_exec_says_exactly_what_ran_where_when_the_journal_fails_after_the_run(
        exec_node: Paths, tmp_path: Path, monkeypatch):
    from skutui.cli.common import CommandError

    def full(self, seq):
        raise JournalError("the replication journal cannot be written: the disk is full")

    monkeypatch.setattr(Journal, "queue", full)
    marker = tmp_path / "ran"
    with pytest.raises(CommandError, match=r"`touch .*ran` ran here \(exit 0\) but was NOT "
                                           r"queued for node-b: .*disk is full.*run it there "
                                           r"by hand \(from /.*set[s]? record #1 aside"):
        skutui_exec("--", "touch", str(marker))
    assert marker.exists()


def test_exec_is_not_run_when_it_cannot_be_recorded(exec_node: Paths, tmp_path: Path,
                                                    monkeypatch):
    from skutui.cli.common import CommandError

    def full(self, *args, **kwargs):
        raise JournalError("the replication journal cannot be written: the disk is full")

    monkeypatch.setattr(Journal, "begin", full)
    marker = tmp_path / "ran"
    with pytest.raises(CommandError, match=r"was not run: it cannot be recorded for node-b"):
        skutui_exec("--", "touch", str(marker))
    assert not marker.exists()


async def test_exec_returns_at_once_when_the_agent_knows_the_backup_is_away(
        exec_node: Paths, capsys):
    """The agent answers without waiting: exec does not sit out its 30 s per command."""
    from skutui.agent.control import ControlServer, EventBus

    async def away(seq: int, wait: float) -> dict:
        return {"acked": False, "away": "node-b"}

    agent = ControlServer(exec_node.control_socket, EventBus("node-a"), dict, on_wait=away)
    await agent.start()
    try:
        started = time.monotonic()
        assert await asyncio.to_thread(skutui_exec, "--", "true") == 0
        took = time.monotonic() - started
    finally:
        await agent.close()
    assert "queued as #1; node-b is away" in capsys.readouterr().err
    assert took < 20, f"exec waited {took:.1f} s although the backup is known to be away"
