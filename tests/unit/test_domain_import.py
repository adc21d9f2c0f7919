"""The core stays pure: importing any of its modules pulls in no UI, SSH or netlink library."""

import pkgutil
import subprocess
import sys

import pytest

import skutui.domain

FORBIDDEN = ("textual", "asyncssh", "pyroute2", "rich")
MODULES = sorted(info.name for info in pkgutil.iter_modules(skutui.domain.__path__))


def test_the_core_modules_are_found():
    assert {"model", "paths", "validation", "codec", "render", "digest", "wire", "errors"} <= set(MODULES)


@pytest.mark.parametrize("module", MODULES)
def test_core_module_imports_nothing_forbidden(module):
    probe = (
        f"import skutui.domain.{module}, sys; "
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {set(FORBIDDEN)!r}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
