"""The command line as an operator meets it: exit codes, JSON shape, no tracebacks."""

import json
import subprocess
import sys

from skutui import __version__


def skutui(*argv, env_root=None, stdin=None):
    env = None
    if env_root is not None:
        import os

        env = {**os.environ, "SKUTUI_ROOT": str(env_root)}
    return subprocess.run(
        [sys.executable, "-m", "skutui", *argv],
        capture_output=True,
        text=True,
        env=env,
        input=stdin,
        timeout=60,
    )


def test_version():
    result = skutui("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"skutui {__version__}"


def test_status_json_before_any_cluster(tmp_path):
    result = skutui("status", "--json", env_root=tmp_path)
    assert result.returncode == 0, result.stderr
    status = json.loads(result.stdout)
    assert status["configured"] is False
    assert status["version"] == __version__


def test_status_on_a_broken_cluster_file_names_the_line_without_traceback(tmp_path):
    (tmp_path / "cluster.toml").write_text('schema_version = 1\ninterface = "eth0\n')
    result = skutui("status", "--json", env_root=tmp_path)
    assert result.returncode == 2, "a broken cluster.toml is bad input"
    assert "line 2" in result.stderr
    assert "Traceback" not in result.stderr


def test_unknown_command_is_bad_input():
    result = skutui("no-such-command")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr


def test_interfaces_json_lists_no_loopback():
    result = skutui("interfaces", "--json")
    assert result.returncode == 0, result.stderr
    entries = json.loads(result.stdout)
    assert all(e["address"] not in ("127.0.0.1", "::1") for e in entries)
    assert all(set(e) == {"interface", "address", "prefixlen"} for e in entries)
