"""The real two-node lab, shared by every lab test of the session, and a per-test handle on
the cluster that lives in it."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from skutui_lab import Lab
from tests.lab.labcluster import LabCluster

_last = {"torn_down": "", "reset_by": ""}
"""The test whose teardown ran last, and the test whose teardown last left both nodes
without a cluster."""


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item) -> Iterator[None]:
    try:
        return (yield)
    finally:
        _last["torn_down"] = item.nodeid


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
def cluster(lab: Lab, request: pytest.FixtureRequest) -> Iterator[LabCluster]:
    """Both nodes without any cluster before the test, and again after it. The reset before
    is left out when the test just before, in the same module, ended with one (nothing of
    another module's fixtures ran in between)."""
    handle = LabCluster(lab)
    reset_by, _last["reset_by"] = _last["reset_by"], ""
    if reset_by != _last["torn_down"] or reset_by.split("::")[0] != request.node.nodeid.split("::")[0]:
        handle.reset()
    handle.assert_clean()
    yield handle
    handle.reset()
    handle.assert_clean()
    _last["reset_by"] = request.node.nodeid
