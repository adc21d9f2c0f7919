"""Daemon versions as pre-flight shows them, read from the real binaries and their texts."""

import os
import shutil

import pytest

from skutui.domain.paths import Paths
from skutui.system.daemons import VERSION, Conntrackd, Keepalived, is_agent_command, started_before


@pytest.mark.parametrize(
    ("text", "version"),
    [
        ("Connection tracking userspace daemon v1.4.7. Licensed under GPLv2.\n"
         "(C) 2006-2009 Pablo Neira Ayuso <pablo@netfilter.org>", "1.4.7"),
        ("Keepalived v2.2.7 (01/16,2022)\n\nCopyright(C) 2001-2022 Alexandre Cassen", "2.2.7"),
    ],
)
def test_version_is_the_first_v_number_not_a_licence_or_an_address(text, version):
    assert VERSION.search(text).group(1) == version


@pytest.mark.skipif(not (shutil.which("keepalived", path="/usr/sbin:/sbin:/usr/bin")
                         and shutil.which("conntrackd", path="/usr/sbin:/sbin:/usr/bin")),
                    reason="keepalived and conntrackd are not installed")
def test_installed_daemons_report_dotted_versions():
    for daemon in (Keepalived(Paths()), Conntrackd(Paths())):
        assert VERSION.fullmatch("v" + daemon.version()), daemon


@pytest.mark.parametrize(("args", "agent"), [
    ([b"/opt/skutui/bin/python", b"/usr/sbin/skutui", b"agent", b"run"], True),
    ([b"/root/.venv/bin/python", b"-m", b"skutui", b"agent", b"run"], True),
    ([b"sh", b"-c", b"pkill -f 'skutui agent run'"], False),
    ([b"/usr/sbin/skutui", b"agent", b"notify", b"master"], False),
    ([b"/usr/sbin/skutui", b"exec", b"--", b"agent", b"run"], False),
])
def test_the_agent_is_told_by_its_command_line(args, agent):
    assert is_agent_command(args) is agent


def test_a_daemon_started_before_its_configuration_was_written_runs_an_older_one(tmp_path):
    conf = tmp_path / "daemon.conf"
    conf.write_text("new\n")
    me = os.getpid()
    assert started_before([me], conf), "this test's process began before the file"
    os.utime(conf, (0, 0))
    assert not started_before([me], conf), "a file from 1970 is older than any process"
    assert not started_before([me], tmp_path / "absent.conf")
    assert not started_before([], conf)
