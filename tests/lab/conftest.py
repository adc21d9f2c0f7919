"""The real two-node lab, shared by every lab test of the session."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from skutui.lab import Lab


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
