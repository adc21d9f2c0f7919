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


# --- --json everywhere: one document, the same shape ---------------------------------------

ACTIONS = {
    "cluster edit": ("cluster", "edit", "--json", "--check-interval", "2"),
    "cluster destroy": ("cluster", "destroy", "--json", "--yes"),
    "maintenance on": ("maintenance", "on", "--json"),
    "exec": ("exec", "--json", "--", "true"),
    "sync verify": ("sync", "verify", "--json"),
    "sync push": ("sync", "push", "--json"),
    "drill": ("drill", "--json", "--yes"),
}


def test_an_action_that_fails_prints_one_failure_document(tmp_path):
    for command, argv in ACTIONS.items():
        result = skutui(*argv, env_root=tmp_path)
        assert result.returncode == 1, (argv, result.stderr)
        document = json.loads(result.stdout)
        assert document["ok"] is False and document["exit_code"] == 1, argv
        assert document["command"] == command
        assert "No cluster is configured" in document["error"] or "no cluster is configured" in document["error"]
        assert result.stderr.startswith("skutui: "), "the one line goes to standard error too"
        assert set(document) == {"ok", "command", "steps", "error", "exit_code"}


def test_bad_input_with_json_prints_nothing_on_standard_output(tmp_path):
    result = skutui("cluster", "edit", "--json", "--check-interval", "nope", env_root=tmp_path)
    assert result.returncode == 2 and result.stdout == ""


def test_reading_commands_print_their_document(tmp_path):
    result = skutui("history", "--json", env_root=tmp_path)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"records": [], "missing": {}}
    result = skutui("readiness", "--json", env_root=tmp_path)
    assert json.loads(result.stdout) == {"nodes": []}


def test_metrics_need_the_agent_and_say_so(tmp_path):
    result = skutui("metrics", "--json", env_root=tmp_path)
    assert result.returncode == 1
    assert "agent is not running" in json.loads(result.stdout)["error"]
