"""The appliance package: what ``./run package`` builds, unpacked into a throwaway root and,
as root, seen in place of an installed one (a private mount namespace lays it over the
system), so its entry point, units, manual and completion are run as installed."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from skutui import __version__
from skutui.domain.paths import Paths
from skutui.system.units import AGENT_UNIT, CONNTRACKD_UNIT, KEEPALIVED_UNIT, agent_unit, drop_ins

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "packaging"))
from manual import completion, man_page  # noqa: E402 - packaging/ is no package

CLEAN_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8", "HOME": "/root"}
"""Nothing of the checkout's virtualenv (PYTHONPATH, VIRTUAL_ENV) reaches the package."""
SYSTEM_UNITS = (AGENT_UNIT, KEEPALIVED_UNIT, CONNTRACKD_UNIT)
OVERLAID = ("usr/sbin", "lib/systemd/system", "usr/share/man", "etc/systemd/system",
            "usr/share/bash-completion/completions")


@pytest.fixture(scope="module")
def unpacked(package: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("root")
    subprocess.run(["dpkg", "-x", str(package), str(root)], check=True)
    return root


def contents(package: Path) -> dict[str, str]:
    """Each path the package installs (as dpkg-deb -c lists it) and its link target, if any."""
    listed = subprocess.run(["dpkg-deb", "-c", str(package)], capture_output=True, text=True,
                            check=True).stdout.splitlines()
    found = {}
    for line in listed:
        name = line.split(None, 5)[5]
        path, _, target = name.partition(" -> ")
        found[path.removeprefix(".").rstrip("/") or "/"] = target
    return found


def test_the_package_lists_its_entry_point_units_manual_and_completion(package: Path) -> None:
    listed = contents(package)
    assert listed["/usr/sbin/skutui"] == "/opt/skutui/bin/skutui"
    for path in ("/opt/skutui/bin/skutui", f"/lib/systemd/system/{AGENT_UNIT}",
                 "/usr/share/man/man8/skutui.8.gz", "/usr/share/bash-completion/completions/skutui",
                 "/etc/logrotate.d/skutui"):
        assert path in listed, path
    assert listed["/opt/skutui/bin/python3"] == "/usr/bin/python3.11", "Debian's own Python"
    assert not any("skutui_lab" in path for path in listed), "the lab is not an appliance's"
    fields = subprocess.run(["dpkg-deb", "-f", str(package), "Package", "Version", "Depends"],
                            capture_output=True, text=True, check=True).stdout
    assert f"Version: {__version__}" in fields
    depends = fields.split("Depends: ")[1].split("\n")[0].split(", ")
    assert {"python3.11", "keepalived", "conntrackd", "conntrack", "nftables",
            "openssh-server"} <= set(depends)


def test_the_unit_in_the_package_is_the_one_skutui_renders(unpacked: Path) -> None:
    shipped = (unpacked / "lib/systemd/system" / AGENT_UNIT).read_text()
    assert shipped == agent_unit(Paths())
    assert "ExecStart=/usr/sbin/skutui agent run" in shipped and "Type=notify" in shipped


def test_skutui_runs_from_the_unpacked_package(unpacked: Path) -> None:
    """Its interpreter is Debian's, its libraries its own: --version and --help work with
    nothing of this checkout on the path."""
    python = unpacked / "opt/skutui/bin/python"
    for args, expected in ((["--version"], f"skutui {__version__}\n"),
                           (["--help"], "usage: skutui")):
        result = subprocess.run([str(python), "-m", "skutui", *args], capture_output=True,
                                text=True, env=CLEAN_ENV, cwd="/", timeout=60)
        assert result.returncode == 0, result.stderr
        assert result.stdout.startswith(expected), result.stdout
    where = subprocess.run([str(python), "-c", "import skutui, textual; print(skutui.__file__, "
                            "textual.__file__)"], capture_output=True, text=True, env=CLEAN_ENV,
                           cwd="/")
    assert where.stdout.count(str(unpacked / "opt/skutui/lib/python3.11/site-packages")) == 2
    lab = subprocess.run([str(python), "-m", "skutui", "lab", "status"], capture_output=True,
                         text=True, env=CLEAN_ENV, cwd="/", timeout=60)
    assert lab.returncode == 1 and "not part of this installation" in lab.stderr
    assert "Traceback" not in lab.stderr


@pytest.fixture(scope="module")
def installed_view(unpacked: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[str]]:
    """The command prefix that runs a command as if the package were installed: a private
    mount namespace where /opt is the package's and its files lie over the system's (and
    skutui's drop-ins over Debian's two units), read-only, the host untouched."""
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.skip("laying the package over the system needs root and unshare")
    extra = tmp_path_factory.mktemp("drop-ins")
    for drop_in in drop_ins(Paths()):
        target = drop_in.path(extra / "etc/systemd/system")
        target.parent.mkdir(parents=True)
        target.write_text(drop_in.text)
    layers = {**{rel: [unpacked / rel] for rel in OVERLAID},
              "etc/systemd/system": [extra / "etc/systemd/system"]}
    script = [f"mount --bind {unpacked / 'opt'} /opt"]
    for rel, uppers in layers.items():
        lower = ":".join(str(p) for p in [*uppers, Path("/", rel)] if p.is_dir())
        script.append(f"mount -t overlay overlay -o lowerdir={lower} /{rel}")
    yield ["unshare", "--mount", "--propagation", "private", "sh", "-ec",
           "; ".join(script) + '; cd /; exec "$@"', "sh"]


def in_view(view: list[str], *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*view, *argv], capture_output=True, text=True, env=CLEAN_ENV,
                          timeout=120)


def test_installed_skutui_is_on_roots_path(installed_view: list[str]) -> None:
    found = in_view(installed_view, "sh", "-c", "command -v skutui; skutui --version; "
                                                "skutui --help")
    assert found.returncode == 0, found.stderr
    lines = found.stdout.splitlines()
    assert lines[:2] == ["/usr/sbin/skutui", f"skutui {__version__}"]
    assert "logs" in found.stdout and "cluster" in found.stdout


def test_systemd_analyze_verifies_every_shipped_unit(installed_view: list[str]) -> None:
    """The agent's unit as installed, and Debian's keepalived and conntrackd units with
    skutui's drop-ins: no error and no warning (systemd only warns about a value it ignores)."""
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed")
    verified = in_view(installed_view, "systemd-analyze", "verify", *SYSTEM_UNITS)
    assert (verified.returncode, verified.stdout + verified.stderr) == (0, "")
    shown = in_view(installed_view, "systemd-analyze", "cat-config",
                    f"systemd/system/{KEEPALIVED_UNIT}")
    assert "skutui.conf" in shown.stdout and "Restart=always" in shown.stdout


def test_a_broken_unit_would_not_pass(installed_view: list[str], tmp_path: Path) -> None:
    """The check above can fail: a value systemd cannot parse makes it speak."""
    broken = tmp_path / "skutui-broken.service"
    broken.write_text(agent_unit(Paths()).replace("Restart=always", "Restart=sometimes"))
    verified = in_view(installed_view, "systemd-analyze", "verify", str(broken))
    assert "sometimes" in verified.stdout + verified.stderr


def test_the_manual_is_the_installed_one_and_groff_reads_it_without_a_warning(
        installed_view: list[str], tmp_path: Path) -> None:
    where = in_view(installed_view, "man", "-w", "skutui")
    assert where.stdout.strip() == "/usr/share/man/man8/skutui.8.gz", where.stderr
    if shutil.which("groff") is None:
        pytest.skip("groff is not installed")
    page = tmp_path / "skutui.8"
    page.write_text(man_page(__version__))
    checked = subprocess.run(["groff", "-man", "-Tutf8", "-ww", "-z", str(page)],
                             capture_output=True, text=True)
    assert (checked.returncode, checked.stderr) == (0, "")


# --- the generators, without the package -------------------------------------------------------

def test_the_manual_names_every_operator_command_and_option_but_not_the_plumbing() -> None:
    page = man_page("9.9.9")
    for command in ("cluster create", "cluster destroy", "maintenance", "exec", "events", "logs"):
        assert f'.SS "skutui {command}' in page, command
    for option in ("\\-\\-local\\-ip", "\\-\\-floating\\-ip", "\\-\\-follow", "\\-\\-ascii"):
        assert option in page, option
    assert ".SS \"skutui node " not in page and ".SS \"skutui agent " not in page
    assert "skutui 9.9.9" in page


def complete(line: str, script: str) -> list[str]:
    """What bash offers for ``line`` (the cursor at its end) with the completion loaded."""
    program = ('source "$1"; read -ra COMP_WORDS <<< "$2"; '
               '[[ "$2" == *" " ]] && COMP_WORDS+=(""); COMP_CWORD=$((${#COMP_WORDS[@]} - 1)); '
               '_skutui; printf "%s\\n" "${COMPREPLY[@]}"')
    result = subprocess.run(["bash", "-c", program, "bash", script, line], capture_output=True,
                            text=True, check=True)
    assert result.stderr == ""
    return [word for word in result.stdout.splitlines() if word]


def test_bash_completes_commands_subcommands_options_and_their_values(tmp_path: Path) -> None:
    script = tmp_path / "skutui"
    script.write_text(completion())
    assert complete("skutui clu", str(script)) == ["cluster"]
    assert complete("skutui cluster ", str(script)) == ["--help", "check", "create", "destroy",
                                                       "edit", "rekey", "show"]
    assert complete("skutui cluster create --failback ", str(script)) == [
        "disabled", "local", "remote"]
    assert complete("skutui --ascii maintenance o", str(script)) == ["off", "on"]
    assert complete("skutui logs --l", str(script)) == ["--lines"]
    assert complete("skutui cluster create --local-ip ", str(script)) == []
    assert complete("skutui n", str(script)) == ["nodes"], "plumbing is not offered"
