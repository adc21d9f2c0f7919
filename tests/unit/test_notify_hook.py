"""keepalived's notify hook: it leaves a transition the agent marked done, and runs the
others itself through `skutui agent notify STATE`."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from skutui.system.hook import HOOK, hook_command, mark_done


def fake_skutui(tmp_path: Path) -> tuple[Path, Path]:
    """A `skutui` that records its arguments."""
    calls = tmp_path / "calls"
    launcher = tmp_path / "skutui"
    launcher.write_text(f'#!/bin/sh\necho "$@" >> {calls}\n')
    launcher.chmod(0o755)
    return launcher, calls


def run_hook(tmp_path: Path, state: str) -> str:
    """The hook run as keepalived runs it; what it asked skutui to do."""
    launcher, calls = fake_skutui(tmp_path)
    command = hook_command(str(launcher), tmp_path / "transition").split() + [state]
    result = subprocess.run(command, capture_output=True, text=True, timeout=30)
    assert result.returncode == 0 and result.stderr == "", result
    return calls.read_text() if calls.exists() else ""


def test_the_command_runs_the_hook_with_sh_and_no_quotes():
    command = hook_command("/usr/bin/skutui", Path("/run/skutui/transition"))
    assert command == f"/bin/sh {HOOK} /usr/bin/skutui /run/skutui/transition"
    assert HOOK.is_file()


def test_a_transition_the_agent_marked_done_is_left_to_it(tmp_path: Path):
    mark_done(tmp_path / "transition", "master")
    assert run_hook(tmp_path, "master") == ""


def test_without_a_fresh_mark_for_this_state_the_hook_runs_it(tmp_path: Path):
    assert run_hook(tmp_path, "backup") == "agent notify backup\n"  # no mark at all
    mark_done(tmp_path / "transition", "master")  # a mark for another state
    assert run_hook(tmp_path, "fault").splitlines()[-1] == "agent notify fault"
    (tmp_path / "transition").write_text(f"fault {time.time_ns() - 5 * 10**9}\n")  # stale
    calls = run_hook(tmp_path, "fault")
    assert calls.splitlines() == ["agent notify backup", "agent notify fault",
                                  "agent notify fault"]
