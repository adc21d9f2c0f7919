"""skutui under systemd, without systemd: the units' texts, the drop-ins following the
cluster, readiness on $NOTIFY_SOCKET, systemctl's failures, and where the log lines go."""

from __future__ import annotations

import io
import logging
import os
import signal
import socket
import stat
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from skutui.cli import logs as logs_cli
from skutui.domain.model import Role
from skutui.domain.paths import Paths
from skutui.system import logs, units
from skutui.system.daemons import AgentDaemon
from skutui.system.hook import Mark, Moment, write_mark
from skutui.system.node import LocalNode


def unit_sections(text: str) -> dict[str, list[str]]:
    """``Key=value`` lines by section, comments left out, in order."""
    sections: dict[str, list[str]] = {}
    current = ""
    for line in text.splitlines():
        if line.startswith("[") and line.endswith("]"):
            current = line[1:-1]
            sections.setdefault(current, [])
        elif line and not line.startswith("#"):
            sections[current].append(line)
    return sections


# --- the texts -----------------------------------------------------------------------------

def test_the_agent_unit_runs_the_installed_skutui_and_waits_for_its_readiness() -> None:
    text = unit_sections(units.agent_unit(Paths()))
    assert "Type=notify" in text["Service"]
    assert "ExecStart=/usr/sbin/skutui agent run" in text["Service"]
    assert "Restart=always" in text["Service"]
    assert "ConditionPathExists=/etc/skutui/cluster.toml" in text["Unit"]
    assert "After=network-online.target conntrackd.service keepalived.service" in text["Unit"]
    assert "WantedBy=multi-user.target" in text["Install"]


def test_the_keepalived_drop_in_replaces_debians_command_line_and_restarts_it() -> None:
    paths = Paths(run_dir=Path("/run/elsewhere"))
    text = unit_sections(units.keepalived_drop_in(paths))
    service = text["Service"]
    # ExecStart= first empties Debian's own command, then gives skutui's.
    assert service.index("ExecStart=") < service.index(next(
        line for line in service if line.startswith("ExecStart=/usr/sbin/keepalived")))
    assert ("ExecStart=/usr/sbin/keepalived --dont-fork --vrrp --use-file "
            "/etc/keepalived/keepalived.conf --pid /run/elsewhere/keepalived.pid "
            "--vrrp_pid /run/elsewhere/vrrp.pid") in service
    assert "ExecStartPre=/usr/sbin/skutui node prepare" in service
    assert "Environment=TMPDIR=/run/elsewhere" in service
    assert "Restart=always" in service
    assert text["Unit"] == ["Wants=conntrackd.service", "After=conntrackd.service"]


def test_the_conntrackd_drop_in_clears_a_killed_daemons_lock_before_it_starts() -> None:
    text = unit_sections(units.conntrackd_drop_in(Paths()))
    assert "ExecStartPre=-/bin/rm -f /run/skutui/conntrackd.lock" in text["Service"]
    assert "ExecStart=/usr/sbin/conntrackd -C /etc/conntrackd/conntrackd.conf" in text["Service"]
    assert text["Unit"] == ["Before=keepalived.service"]


# --- the drop-ins follow the cluster -------------------------------------------------------------

class RecordingSystemctl(units.Systemctl):
    """systemctl's calls, recorded instead of run."""

    def __init__(self) -> None:
        super().__init__(program="false")
        self.calls: list[tuple[str, ...]] = []

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        self.calls.append(args)
        return subprocess.CompletedProcess(args, 0, "", "")


def test_drop_ins_are_written_once_and_removed_with_their_folders(tmp_path: Path) -> None:
    unit_dir = tmp_path / "etc/systemd/system"
    assert units.install_drop_ins(Paths(), unit_dir) is True
    written = sorted(p.relative_to(unit_dir).as_posix() for p in unit_dir.rglob("*.conf"))
    assert written == ["conntrackd.service.d/skutui.conf", "keepalived.service.d/skutui.conf"]
    assert stat.S_IMODE((unit_dir / written[0]).stat().st_mode) == 0o644
    assert units.install_drop_ins(Paths(), unit_dir) is False, "nothing to write the second time"
    # The administrator's own drop-in stays, and so does its folder.
    own = unit_dir / "keepalived.service.d/local.conf"
    own.write_text("[Service]\nNice=-5\n")
    assert units.remove_drop_ins(Paths(), unit_dir) is True
    assert own.exists() and not (unit_dir / "conntrackd.service.d").exists()
    assert units.remove_drop_ins(Paths(), unit_dir) is False


def test_a_node_has_drop_ins_exactly_while_it_has_a_cluster(tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    unit_dir = tmp_path / "systemd"
    monkeypatch.setattr("skutui.system.node.install_drop_ins",
                        lambda paths: units.install_drop_ins(paths, unit_dir))
    monkeypatch.setattr("skutui.system.node.remove_drop_ins",
                        lambda paths: units.remove_drop_ins(paths, unit_dir))
    systemctl = RecordingSystemctl()
    node = LocalNode(Paths(config_root=tmp_path / "skutui"), systemctl)
    node.units_follow_cluster()
    assert not unit_dir.exists() and systemctl.calls == []
    node.paths.config_root.mkdir()
    node.paths.cluster_file.write_text("")
    node.units_follow_cluster()
    assert (unit_dir / "keepalived.service.d/skutui.conf").exists()
    assert systemctl.calls == [("daemon-reload",)]
    node.units_follow_cluster()
    assert systemctl.calls == [("daemon-reload",)], "unchanged: systemd is left alone"
    node.paths.cluster_file.unlink()
    node.units_follow_cluster()
    assert not (unit_dir / "keepalived.service.d").exists()
    assert systemctl.calls == [("daemon-reload",)] * 2


def test_a_role_file_left_saying_master_counts_only_once_this_keepalived_made_it_master(
        tmp_path: Path, monkeypatch) -> None:
    """The role file is the agent's alone: nothing resets it before keepalived starts.
    Left saying master by a reboot, a crash or a keepalived restarted under the agent, it
    counts as backup until the agent marks a MASTER transition of the keepalived running."""
    node = LocalNode(Paths(config_root=tmp_path, run_dir=tmp_path / "run"), RecordingSystemctl())
    node.paths.local_dir.mkdir()
    node.paths.run_dir.mkdir()
    node.paths.role_file.write_text("master\n")
    now = Moment.now()
    monkeypatch.setattr(node.keepalived, "running_since", lambda: now.since_boot / 100)
    node.prepare()
    assert node.paths.role_file.read_text() == "master\n", "prepare writes no role"
    assert node.effective_role() is Role.BACKUP, "no mark at all"
    write_mark(node.paths.transition_mark, Mark("master", "done", Moment(now.boot, now.since_boot - 500)))
    assert node.effective_role() is Role.BACKUP, "the mark of an older keepalived"
    write_mark(node.paths.transition_mark, Mark("master", "queued", now))
    assert node.effective_role() is Role.MASTER
    monkeypatch.setattr(node.keepalived, "running_since", lambda: None)
    assert node.effective_role() is Role.BACKUP, "keepalived died without a transition"


# --- systemctl --------------------------------------------------------------------------------

def test_without_systemd_skutui_says_it_needs_it(tmp_path: Path) -> None:
    systemctl = units.Systemctl(mark=tmp_path / "no-such-folder")
    with pytest.raises(units.UnitError, match="systemd is not running on this machine"):
        systemctl.start(units.KEEPALIVED_UNIT)


def test_a_failed_systemctl_names_the_unit_and_its_journal(tmp_path: Path) -> None:
    fake = tmp_path / "systemctl"
    fake.write_text("#!/bin/sh\necho 'Job for keepalived.service failed.' >&2\nexit 1\n")
    fake.chmod(0o755)
    systemctl = units.Systemctl(program=str(fake), mark=tmp_path)
    with pytest.raises(units.UnitError) as failed:
        systemctl.start(units.KEEPALIVED_UNIT)
    message = str(failed.value)
    assert "`systemctl start keepalived.service` failed: Job for keepalived.service failed." \
        in message and "journalctl -u keepalived.service" in message


def test_the_agents_start_is_queued_not_waited_for_to_readiness(tmp_path: Path) -> None:
    """The agent reports ready a Python start-up after its process exists; ``node start``
    returns once the process is there, so that create reads the peer's first role while
    keepalived has only just started. This systemctl refuses to wait for readiness; the one
    it queues starts a process that reads as the agent."""
    calls, started = tmp_path / "calls", tmp_path / "started"
    fake = tmp_path / "systemctl"
    fake.write_text(f"""#!/bin/sh
echo "$@" >> {calls}
case " $* " in
    *" --no-block "*) setsid sh -c 'sleep 30; :' skutui agent run >/dev/null 2>&1 &
                      echo $! > {started}; exit 0 ;;
    *" start "*) echo "waited for the agent to be ready" >&2; exit 1 ;;
esac
""")
    fake.chmod(0o755)
    agent = AgentDaemon(Paths(tmp_path / "etc"), units.Systemctl(program=str(fake), mark=tmp_path))
    try:
        agent.start()
        assert calls.read_text() == f"start --no-block {units.AGENT_UNIT}\n"
        assert agent.running()
    finally:
        if started.exists():
            os.killpg(int(started.read_text()), signal.SIGTERM)


# --- readiness ----------------------------------------------------------------------------------

@pytest.mark.parametrize("abstract", [False, True], ids=["path", "abstract"])
def test_notify_sends_sd_notify_datagrams(tmp_path: Path, abstract: bool) -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as listener:
        if abstract:
            name = f"skutui-test-{os.getpid()}"
            listener.bind("\0" + name)
            address = "@" + name
        else:
            address = str(tmp_path / "notify")
            listener.bind(address)
        assert units.notify("READY=1", {"NOTIFY_SOCKET": address}) is True
        assert listener.recv(64) == b"READY=1"
    assert units.notify("READY=1", {}) is False, "not started by systemd: nothing to tell"
    assert units.notify("READY=1", {"NOTIFY_SOCKET": str(tmp_path / "gone")}) is False


# --- where the log goes -----------------------------------------------------------------------

def test_priorities_follow_syslog() -> None:
    assert [logs.priority(level) for level in (logging.CRITICAL, logging.ERROR, logging.WARNING,
                                               logging.INFO, logging.DEBUG)] == [2, 3, 4, 6, 7]


def test_a_journal_entry_carries_a_multiline_value_by_its_length() -> None:
    entry = logs.journal_entry({"MESSAGE": "two\nlines", "PRIORITY": "3"})
    assert entry == b"MESSAGE\n" + struct.pack("<Q", 9) + b"two\nlines\nPRIORITY=3\n"


def test_the_journal_handler_sends_priority_and_identifier(tmp_path: Path) -> None:
    address = tmp_path / "journal"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as journal:
        journal.bind(str(address))
        handler = logs.JournalHandler(address)
        record = logging.LogRecord("skutui.agent", logging.WARNING, __file__, 1,
                                   "role: %s", ("maintenance",), None)
        handler.emit(record)
        handler.close()
        fields = dict(line.split("=", 1) for line in journal.recv(4096).decode().splitlines())
    assert fields["MESSAGE"] == "role: maintenance"
    assert (fields["PRIORITY"], fields["SYSLOG_IDENTIFIER"]) == ("4", "skutui")


def test_on_the_journal_stream_each_line_starts_with_its_priority() -> None:
    formatter = logs.JournalStreamFormatter("%(message)s")
    record = logging.LogRecord("x", logging.ERROR, __file__, 1, "a\nb", (), None)
    assert formatter.format(record) == "<3>a | b"


def test_stderr_is_the_journal_only_when_journal_stream_names_it(tmp_path: Path) -> None:
    info = os.fstat(sys.stderr.fileno())
    assert logs.stderr_is_journal({"JOURNAL_STREAM": f"{info.st_dev}:{info.st_ino}"})
    assert not logs.stderr_is_journal({"JOURNAL_STREAM": f"{info.st_dev}:{info.st_ino + 1}"})
    assert not logs.stderr_is_journal({})


def test_without_systemd_the_log_is_a_root_only_file_reopened_after_rotation(
        tmp_path: Path) -> None:
    paths = Paths(log_dir=tmp_path / "log")
    handler = logs.handler(paths, mark=tmp_path / "not-booted")
    logger = logging.getLogger("skutui.test-file-log")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("first")
        assert stat.S_IMODE(paths.log_file.stat().st_mode) == 0o600
        assert stat.S_IMODE(paths.log_dir.stat().st_mode) == 0o700
        paths.log_file.rename(paths.log_file.with_suffix(".log.1"))  # what logrotate does
        logger.warning("second")
    finally:
        logger.removeHandler(handler)
        handler.close()
    assert "WARNING first" in paths.log_file.with_suffix(".log.1").read_text()
    assert "WARNING second" in paths.log_file.read_text()


# --- skutui logs ---------------------------------------------------------------------------

def test_skutui_logs_asks_the_journal_for_skutui_and_its_daemons() -> None:
    command = logs.journal_command(None, follow=True)
    assert command[:2] == ["journalctl", "--output=short-iso"]
    assert "--lines=all" in command and "--follow" in command
    matches = command[command.index("SYSLOG_IDENTIFIER=skutui"):]
    assert matches[1::2] == ["+"] * (len(matches) // 2)
    assert {"_SYSTEMD_UNIT=keepalived.service", "UNIT=conntrackd.service",
            "UNIT=skutui-agent.service"} <= set(matches)
    assert "--lines=20" in logs.journal_command(20, follow=False)


def test_skutui_logs_reads_the_last_lines_of_the_file(tmp_path: Path) -> None:
    log = tmp_path / "skutui.log"
    log.write_text("".join(f"line {n}\n" for n in range(10)))
    assert logs_cli.tail(log, 3) == ["line 7\n", "line 8\n", "line 9\n"]
    assert len(logs_cli.tail(log, None)) == 10


def test_skutui_logs_follows_the_file_across_a_rotation(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    log = tmp_path / "skutui.log"
    log.write_text("old\n")
    out = io.StringIO()
    steps = iter([
        lambda: log.open("a").write("one\n"),
        lambda: (log.rename(tmp_path / "skutui.log.1"), log.write_text("two\n")),
    ])

    def tick(_seconds: float) -> None:
        try:
            next(steps)()
        except StopIteration:
            raise KeyboardInterrupt from None

    monkeypatch.setattr(logs_cli.time, "sleep", tick)
    with pytest.raises(KeyboardInterrupt):
        logs_cli.follow(log, out, poll=0)
    assert out.getvalue() == "one\ntwo\n"
