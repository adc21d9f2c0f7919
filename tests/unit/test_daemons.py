"""Daemon versions as pre-flight shows them, read from the real binaries and their texts."""

import shutil

import pytest

from skutui.domain.paths import Paths
from skutui.system.daemons import VERSION, Conntrackd, Keepalived


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
