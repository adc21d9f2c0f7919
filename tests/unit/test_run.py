"""./run leaves the machine as it found it: the policy-rc.d it puts in place so that apt
starts no daemon on the host is gone again before ./run hands over to pytest (an exec, which
would keep an exit trap from ever running)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

FAKE_DPKG_QUERY = "#!/bin/sh\nexit 1\n"
"""Every Debian package reads as missing, so ./run calls apt-get."""
FAKE_APT_GET = """#!/bin/sh
if [ "$1" = install ]; then
    if [ -x "$SKUTUI_POLICY_RC_D" ]; then echo present; else echo absent; fi >> "$APT_SAW"
fi
exit 0
"""


@pytest.fixture
def fake_apt(tmp_path: Path) -> dict[str, str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, text in (("dpkg-query", FAKE_DPKG_QUERY), ("apt-get", FAKE_APT_GET)):
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    return {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}",
            "SKUTUI_POLICY_RC_D": str(tmp_path / "policy-rc.d"),
            "APT_SAW": str(tmp_path / "apt-saw")}


def run_test_command(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """``./run test`` down to its exec of pytest, which only collects one small file."""
    return subprocess.run([str(ROOT / "run"), "test", "--collect-only", "-q", "-p",
                           "no:cacheprovider", "tests/unit/test_net.py"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)


@pytest.mark.skipif(os.geteuid() != 0, reason="./run test runs as root")
def test_the_policy_is_there_while_apt_runs_and_gone_before_pytest(fake_apt, tmp_path) -> None:
    result = run_test_command(fake_apt)
    assert result.returncode == 0, result.stdout + result.stderr
    assert Path(fake_apt["APT_SAW"]).read_text() == "present\n", "apt started no daemon"
    assert not Path(fake_apt["SKUTUI_POLICY_RC_D"]).exists(), "and the policy is gone"


@pytest.mark.skipif(os.geteuid() != 0, reason="./run test runs as root")
def test_a_policy_the_machine_already_had_stays(fake_apt, tmp_path) -> None:
    policy = Path(fake_apt["SKUTUI_POLICY_RC_D"])
    policy.write_text("#!/bin/sh\n# the machine's own\nexit 101\n")
    policy.chmod(0o755)
    result = run_test_command(fake_apt)
    assert result.returncode == 0, result.stdout + result.stderr
    assert policy.read_text() == "#!/bin/sh\n# the machine's own\nexit 101\n"
