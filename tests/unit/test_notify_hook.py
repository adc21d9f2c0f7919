"""keepalived's notify hook: it reports each transition and leaves it to the agent as soon
as the agent's mark names it, whatever the mark's phase; without one it hands the
transition over through `skutui agent notify STATE`. Times are since boot."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

from skutui.agent.control import ControlServer, EventBus
from skutui.agent.role_supervisor import RoleSupervisor
from skutui.domain.paths import Paths
from skutui.system.hook import HOOK, Mark, Moment, hook_command, read_report, write_mark
from skutui.system.node import LocalNode

ROOT = Path(__file__).parents[2]


def fake_skutui(tmp_path: Path) -> tuple[Path, Path]:
    """A `skutui` that records its arguments."""
    calls = tmp_path / "calls"
    launcher = tmp_path / "skutui"
    launcher.write_text(f'#!/bin/sh\necho "$@" >> {calls}\n')
    launcher.chmod(0o755)
    return launcher, calls


def hook_argv(launcher: Path, paths: Paths, state: str) -> list[str]:
    return hook_command(str(launcher), paths.transition_mark,
                        paths.keepalived_report).split() + [state]


def run_hook(tmp_path: Path, state: str, env: dict | None = None) -> str:
    """The hook run as keepalived runs it; what it asked skutui to do (each call's first
    three words: the moment it passes along is checked apart)."""
    paths = run_paths(tmp_path)
    launcher, calls = fake_skutui(tmp_path)
    result = subprocess.run(hook_argv(launcher, paths, state), capture_output=True, text=True,
                            timeout=30, env=env)
    assert result.returncode == 0 and result.stderr == "", result
    lines = calls.read_text().splitlines() if calls.exists() else []
    return "".join(" ".join(line.split()[:3]) + "\n" for line in lines)


def test_the_hook_hands_over_with_the_moment_it_reported(tmp_path: Path):
    paths = run_paths(tmp_path)
    launcher, calls = fake_skutui(tmp_path)
    subprocess.run(hook_argv(launcher, paths, "master"), check=True, timeout=30)
    report = read_report(paths.keepalived_report)
    words = calls.read_text().split()
    assert words[:3] == ["agent", "notify", "master"] and report is not None
    assert words[3] == report.at.boot
    whole, fraction = words[4].split(".")
    assert int(whole) * 100 + int(fraction) == report.at.since_boot


def run_paths(tmp_path: Path) -> Paths:
    paths = Paths(config_root=tmp_path / "etc" / "skutui", run_dir=tmp_path / "run")
    paths.run_dir.mkdir(parents=True, exist_ok=True)
    return paths


def ago(hundredths: int) -> Moment:
    now = Moment.now()
    return Moment(now.boot, now.since_boot - hundredths)


def test_the_command_runs_the_hook_with_sh_and_no_quotes():
    command = hook_command("/usr/bin/skutui", Path("/run/skutui/transition"),
                           Path("/run/skutui/keepalived.state"))
    assert command == (f"/bin/sh {HOOK} /usr/bin/skutui /run/skutui/transition "
                       "/run/skutui/keepalived.state")
    assert HOOK.is_file()


def test_the_hook_reports_each_transition_with_this_boot_and_its_uptime(tmp_path: Path):
    paths = run_paths(tmp_path)
    before = Moment.now()
    run_hook(tmp_path, "backup")
    report = read_report(paths.keepalived_report)
    assert report is not None and report.state == "backup" and report.at.this_boot()
    assert before.since_boot - 1 <= report.at.since_boot <= Moment.now().since_boot + 1


def test_a_transition_the_agent_took_is_left_to_it_in_every_phase(tmp_path: Path):
    paths = run_paths(tmp_path)
    for phase in ("queued", "running", "done"):
        write_mark(paths.transition_mark, Mark("master", phase, Moment.now()))
        assert run_hook(tmp_path, "master") == "", phase


def test_without_the_agents_mark_for_this_transition_the_hook_hands_it_over(tmp_path: Path):
    paths = run_paths(tmp_path)
    assert run_hook(tmp_path, "backup") == "agent notify backup\n"  # no mark at all
    write_mark(paths.transition_mark, Mark("master", "done", Moment.now()))  # another state
    assert run_hook(tmp_path, "fault").splitlines()[-1] == "agent notify fault"
    write_mark(paths.transition_mark, Mark("fault", "done", ago(500)))  # an older transition
    assert run_hook(tmp_path, "fault").splitlines()[-1] == "agent notify fault"
    write_mark(paths.transition_mark, Mark("fault", "done", Moment("another-boot", 10**9)))
    assert run_hook(tmp_path, "fault").splitlines() == [
        "agent notify backup", "agent notify fault", "agent notify fault", "agent notify fault"]


def test_a_clock_stepped_back_by_an_hour_skips_no_transition(tmp_path: Path):
    """The agent marked a master transition two seconds ago; the wall clock then steps
    back an hour (ntp, an operator) and keepalived reports master again. A mark judged
    by the wall clock would look fresh and the transition would be skipped; judged by
    the time since boot, it is two seconds old, so the hook hands the new one over."""
    paths = run_paths(tmp_path)
    write_mark(paths.transition_mark, Mark("master", "done", ago(200)))
    stepped = tmp_path / "stepped-clock"
    stepped.mkdir()
    fake_date = stepped / "date"
    fake_date.write_text('#!/bin/sh\nexec /bin/date -d "@$(( $(/bin/date +%s) - 3600 ))" "$@"\n')
    fake_date.chmod(0o755)
    env = dict(os.environ, PATH=f"{stepped}:{os.environ['PATH']}")
    assert subprocess.run(["date", "+%s"], env=env, capture_output=True, text=True,
                          check=True).stdout.strip() < str(int(time.time()) - 3500)
    assert run_hook(tmp_path, "master", env=env) == "agent notify master\n"


LAUNCHER = """#!{python}
# `skutui` as keepalived's hook calls it: the real command line, with every transition step
# replaced by one that takes {seconds} s and records that it ran, in whichever process.
import sys, time
sys.path.insert(0, {root!r})
from pathlib import Path
from skutui.agent import transitions
from skutui.domain.paths import Paths

def slow(node):
    with open({record!r}, "a") as out:
        out.write("hook\\n")
    time.sleep({seconds})
    return []

for state in list(transitions.TRANSITIONS):
    transitions.TRANSITIONS[state] = slow
with open({handed!r}, "a") as out:
    out.write(" ".join(sys.argv[1:]) + "\\n")
paths = Paths(config_root=Path({root_dir!r}), run_dir=Path({run_dir!r}))
Paths.from_env = classmethod(lambda cls: paths)
from skutui.cli.main import run
sys.exit(run(sys.argv[1:]))
"""


async def test_a_transition_whose_steps_take_two_seconds_runs_exactly_once(tmp_path: Path):
    """keepalived writes the FIFO line and runs its hook at the same moment; the agent's
    steps take 2 s, more than the hook waits. The hook must leave them to the agent,
    and `skutui agent notify` (were it called) must not run them a second time."""
    paths = run_paths(tmp_path)
    paths.local_dir.mkdir(parents=True)
    record = tmp_path / "ran"
    launcher = tmp_path / "skutui"
    handed = tmp_path / "handed"
    launcher.write_text(LAUNCHER.format(python=sys.executable, root=str(ROOT), seconds=2,
                                        record=str(record), root_dir=str(paths.config_root),
                                        run_dir=str(paths.run_dir), handed=str(handed)))
    launcher.chmod(0o755)

    def slow_in_agent(node, state: str) -> list[str]:
        with open(record, "a") as out:
            out.write("agent\n")
        time.sleep(2)
        return []

    events = EventBus("node-a")
    roles = RoleSupervisor(LocalNode(paths), paths, events.emit, transition=slow_in_agent)
    server = ControlServer(paths.control_socket, events, dict, on_transition=roles.reported)
    await server.start()
    steps = asyncio.create_task(roles.run_transitions())
    try:
        hook = await asyncio.create_subprocess_exec(*hook_argv(launcher, paths, "master"))
        roles.fifo_line('INSTANCE "SKUTUI" MASTER 120')
        assert await asyncio.wait_for(hook.wait(), 30) == 0
        await asyncio.sleep(3.5)  # the agent's steps are over, and a second run would show
    finally:
        steps.cancel()
        await asyncio.gather(steps, return_exceptions=True)
        await server.close()
    assert record.read_text().splitlines() == ["agent"]
    assert not handed.exists(), "the hook found the agent's mark: it handed nothing over"
    assert paths.role_file.read_text() == "master\n"


async def test_a_transition_handed_over_late_is_still_run_once(tmp_path: Path):
    """No FIFO line reached the agent (keepalived could not write it): the hook's
    `skutui agent notify` hands the transition over, and a FIFO line arriving after all
    for the same transition does not run it again."""
    paths = run_paths(tmp_path)
    paths.local_dir.mkdir(parents=True)
    ran: list[str] = []
    roles = RoleSupervisor(LocalNode(paths), paths, EventBus("node-a").emit,
                           transition=lambda node, state: ran.append(state) or [])
    assert roles.reported("backup", Moment.now())
    roles.fifo_line('INSTANCE "SKUTUI" BACKUP 100')
    while not roles.transitions.empty():
        await roles.run_transition(roles.transitions.get_nowait())
    assert ran == ["backup"] and paths.role_file.read_text() == "backup\n"


def test_a_hand_over_older_than_the_last_transition_taken_is_stale(tmp_path: Path):
    """keepalived reported BACKUP as it started, before the agent ran; the agent then took
    MASTER from the FIFO; the hook's hand-over of BACKUP, a second late, must not undo it."""
    paths = run_paths(tmp_path)
    paths.local_dir.mkdir(parents=True)
    roles = RoleSupervisor(LocalNode(paths), paths, EventBus("node-a").emit,
                           transition=lambda node, state: [])
    backup_at = ago(80)
    roles.fifo_line('INSTANCE "SKUTUI" MASTER 120')
    assert not roles.reported("backup", backup_at)
    assert paths.role_file.read_text() == "master\n" and roles.transitions.qsize() == 1


def test_a_fault_hook_of_the_same_hundredth_as_the_backup_after_it_is_stale(tmp_path: Path,
                                                                             monkeypatch):
    """A handover clears at once: keepalived announces FAULT, then BACKUP, within one
    hundredth. The FAULT hook, its mark overwritten by BACKUP's, hands FAULT over late with
    the moment keepalived started it; taking it would leave the node in FAULT."""
    paths = run_paths(tmp_path)
    paths.local_dir.mkdir(parents=True)
    roles = RoleSupervisor(LocalNode(paths), paths, EventBus("node-a").emit,
                           transition=lambda node, state: [])
    moment = Moment.now()
    monkeypatch.setattr(Moment, "now", classmethod(lambda cls: moment))
    roles.fifo_line('INSTANCE "SKUTUI" FAULT 1')
    roles.fifo_line('INSTANCE "SKUTUI" BACKUP 1')
    assert not roles.reported("fault", moment)
    assert paths.role_file.read_text() == "backup\n" and roles.transitions.qsize() == 2


def test_the_hooks_moment_is_when_keepalived_started_it_not_when_it_got_to_run(tmp_path: Path):
    """On a loaded machine the hook's shell may run long after keepalived forked it, by
    which time keepalived may have announced the next state."""
    paths = run_paths(tmp_path)
    launcher, _ = fake_skutui(tmp_path)
    forked = Moment.now()
    late = ["/bin/sh", "-c", 'sleep 0.5; exec "$@"', "sh", *hook_argv(launcher, paths, "fault")]
    subprocess.run(late, check=True, timeout=30)
    report = read_report(paths.keepalived_report)
    assert report is not None and report.state == "fault"
    assert forked.since_boot - 1 <= report.at.since_boot < forked.since_boot + 30, (forked, report)
