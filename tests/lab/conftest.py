"""The real two-node lab, shared by every lab test of the session, and a per-test handle on
the cluster that lives in it."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from skutui_lab import Lab
from tests.lab.labcluster import LabCluster


@pytest.fixture(scope="session")
def lab() -> Iterator[Lab]:
    """A fresh lab for the session, removed at the end even when tests fail."""
    if os.geteuid() != 0:
        pytest.skip("the lab needs root: it creates network namespaces, mounts and processes")
    lab = Lab()
    lab.down()
    try:
        lab.up()
        yield lab
    finally:
        lab.down()


@pytest.fixture
def cluster(lab: Lab) -> Iterator[LabCluster]:
    """Both nodes without any cluster before the test, and again after it."""
    handle = LabCluster(lab)
    handle.reset()
    handle.assert_clean()
    yield handle
    handle.reset()
    handle.assert_clean()
