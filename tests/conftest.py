"""What tests of several folders share: the appliance package, built once per session."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE_TIMEOUT = 600


@pytest.fixture(scope="session")
def package(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The .deb ``./run package`` builds from this checkout, as the README says."""
    out = tmp_path_factory.mktemp("dist")
    built = subprocess.run([str(ROOT / "run"), "package", str(out)], capture_output=True,
                           text=True, timeout=PACKAGE_TIMEOUT, cwd=ROOT)
    assert built.returncode == 0, built.stdout + built.stderr
    debs = list(out.glob("skutui_*.deb"))
    assert len(debs) == 1, (debs, built.stdout)
    yield debs[0]


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """With ``-n 2 --dist loadgroup`` (as ``./run test`` runs): the tests on the one lab, and
    those on the package they share, run one after another on one worker; the others, on
    their own, run beside them on the other worker."""
    for item in items:
        fixtures = getattr(item, "fixturenames", ())
        shared = "lab" in fixtures or "package" in fixtures or item.get_closest_marker("lab")
        item.add_marker(pytest.mark.xdist_group("lab" if shared else "alone"))
