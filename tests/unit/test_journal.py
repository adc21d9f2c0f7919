"""The replication journal: durable, ordered, bounded; replayed at most once on the backup."""

from __future__ import annotations

import asyncio
import json
import os
import signal
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

ORIGIN = "node-a"


@pytest.fixture
def journal(tmp_path: Path) -> Journal:
    return Journal(tmp_path / "journal")


def entry(seq: int, *argv: str, journal_id: str = "j1", timeout: float = 5) -> Entry:
    return Entry(seq=seq, journal=journal_id, kind="exec", argv=argv or ("true",),
                 origin=ORIGIN, time=0.0, timeout=timeout)


# --- the master's journal -----------------------------------------------------------------

def test_entries_are_numbered_in_order_and_survive_a_new_reader(journal: Journal):
    first = journal.append(["ipset", "add", "blocked", "192.0.2.7"], origin=ORIGIN)
    second = journal.append(["service", "haproxy", "reload"], origin=ORIGIN)
    assert (first.seq, second.seq) == (1, 2) and first.journal == second.journal
    again = Journal(journal.directory)
    assert [e.argv for e in again.entries()] == [first.argv, second.argv]
    assert [e.seq for e in again.pending()] == [1, 2]
    assert again.outcome(1) is None
    mode = os.stat(journal.path).st_mode & 0o777
    assert mode == 0o600 and (os.stat(journal.directory).st_mode & 0o777) == 0o700


def test_a_torn_last_record_is_ignored_and_cut_off_by_the_next_append(journal: Journal):
    journal.append(["echo", "one"], origin=ORIGIN)
    record = encode_record(entry(2, "echo", "two", journal_id=journal.state().journal))
    with open(journal.path, "ab") as handle:
        handle.write(record[: len(record) // 2])  # the crash: half a line, no newline
    assert [e.seq for e in journal.entries()] == [1]
    third = journal.append(["echo", "three"], origin=ORIGIN)
    assert third.seq == 2
    assert [e.argv[-1] for e in journal.entries()] == ["one", "three"]
    assert journal.path.read_bytes().count(b"\n") == 2


def test_a_complete_last_line_with_a_bad_checksum_is_a_torn_append(journal: Journal):
    journal.append(["echo", "one"], origin=ORIGIN)
    good = encode_record(entry(2, "echo", "two"))
    with open(journal.path, "ab") as handle:
        handle.write(good.replace(b"two", b"tw0"))
    assert [e.seq for e in journal.entries()] == [1]
    assert decode_record(good) == entry(2, "echo", "two")


def test_damage_before_good_records_is_reported_not_guessed(journal: Journal):
    for word in ("one", "two", "three"):
        journal.append(["echo", word], origin=ORIGIN)
    data = journal.path.read_bytes()
    journal.path.write_bytes(data.replace(b"two", b"tw0", 1))
    with pytest.raises(JournalCorrupt, match=r"damaged at byte \d+ \(record 2\).*Move"):
        journal.entries()
    with pytest.raises(JournalCorrupt):
        journal.append(["echo", "four"], origin=ORIGIN)


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
        small.append(["echo", "3"], origin=ORIGIN)
    small.ack(Outcome(1, APPLIED))
    assert small.append(["echo", "3"], origin=ORIGIN).seq == 4
    small.ack(Outcome(2, APPLIED))
    with pytest.raises(JournalError, match="too long"):
        small.append(["x" * 70_000], origin=ORIGIN)
    with pytest.raises(JournalError, match="empty"):
        small.append([], origin=ORIGIN)


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


def test_compaction_keeps_pending_entries_and_the_numbering(journal: Journal, monkeypatch):
    monkeypatch.setattr(journal_module, "COMPACT_AFTER", 5)
    for n in range(8):
        journal.append(["cmd", str(n)], origin=ORIGIN)
    for seq in range(1, 6):
        journal.ack(Outcome(seq, APPLIED))
    assert [e.seq for e in journal.entries()] == [6, 7, 8]
    assert journal.append(["cmd", "8"], origin=ORIGIN).seq == 9
    for seq in range(6, 10):
        journal.ack(Outcome(seq, APPLIED))
    assert journal.pending() == [] and len(journal.entries()) == 4  # under the threshold
    assert journal.discard_pending() == 0 and journal.entries() == []
    assert journal.append(["next"], origin=ORIGIN).seq == 10  # numbering never restarts


def test_discarding_pending_entries(journal: Journal):
    for n in range(3):
        journal.append(["cmd", str(n)], origin=ORIGIN)
    journal.ack(Outcome(1, APPLIED))
    assert journal.discard_pending() == 2
    assert journal.pending() == [] and journal.append(["cmd"], origin=ORIGIN).seq == 4


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
    from skutui.system.daemons import Keepalived

    monkeypatch.setattr(Keepalived, "running", lambda self: True)

    paths = Paths(config_root=tmp_path / "etc" / "skutui", run_dir=tmp_path / "run")
    paths.local_dir.mkdir(parents=True)
    paths.role_file.write_text("master\n")
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

    monkeypatch.setattr(Keepalived, "running", lambda self: False)
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
