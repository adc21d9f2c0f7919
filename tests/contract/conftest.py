"""The two implementations the contract is checked on: the UI's fake, in this process
(always), and the real operations API inside the lab's node-a (root; where the lab is
shared, which the lock file says, only under its lock:
``flock /tmp/skutui-lab.lock pytest tests/contract``)."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from skutui_lab import PASSWORD as LAB_PASSWORD
from skutui_lab import Lab
from tests import fakes
from tests.contract.journey import journey
from tests.lab.labcluster import LabCluster

LAB_LOCK = Path("/tmp/skutui-lab.lock")
"""Where the lab is shared, whoever uses it holds this lock; without the file nobody does."""
CHECKOUT = Path(__file__).resolve().parents[2]
JOURNEY_TIMEOUT = 300.0


def _ancestors() -> set[int]:
    found, pid = set(), os.getpid()
    while pid > 1 and pid not in found:
        found.add(pid)
        try:
            pid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            break
    return found


def under_lab_lock() -> bool:
    """Whether this process runs under ``flock /tmp/skutui-lab.lock …``: /proc/locks names
    the process that holds each lock, and here it must be one of ours."""
    try:
        lock = LAB_LOCK.stat()
        table = Path("/proc/locks").read_text()
    except OSError:
        return False
    ancestors = _ancestors()
    for line in table.splitlines():
        fields = line.split()
        if len(fields) < 6 or fields[1] != "FLOCK" or "->" in fields:
            continue  # not a flock, or one still waiting
        major, minor, inode = fields[5].split(":")
        if ((int(major, 16), int(minor, 16), int(inode)) == (os.major(lock.st_dev), os.minor(lock.st_dev), lock.st_ino)
                and int(fields[4]) in ancestors):
            return True
    return False


def runs_this_checkout(lab: Lab) -> bool:
    """Whether the lab's nodes run this checkout's skutui: they run the one that brought
    the lab up, which may be another checkout's."""
    try:
        launcher = lab.host_path("node-a", "/usr/local/sbin/skutui").read_text()
    except OSError:
        return False
    return f"PYTHONPATH={CHECKOUT}$" in launcher and f"exec {sys.executable} " in launcher


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    """The lab, up and running this checkout; built afresh (and removed afterwards) unless
    it already was, e.g. by tests/lab in the same run."""
    if os.geteuid() != 0:
        pytest.skip("the lab needs root: it creates network namespaces, mounts and processes")
    if LAB_LOCK.exists() and not under_lab_lock():
        pytest.skip(f"the lab is shared: run under `flock {LAB_LOCK} …` to check the real API")
    lab = Lab()
    made = not (lab.is_up() and runs_this_checkout(lab))
    if made:
        lab.down()
        lab.up()
    try:
        yield lab
    finally:
        if made:
            lab.down()


def _in_the_lab(lab: Lab) -> dict[str, Any]:
    cluster = LabCluster(lab)
    cluster.reset()
    cluster.assert_clean()
    try:
        run = lab.exec("node-a", [sys.executable, "-m", "tests.contract.runner", "journey"],
                       input=LAB_PASSWORD + "\n", capture_output=True, text=True,
                       timeout=JOURNEY_TIMEOUT,
                       env=lab.environment({"PYTHONPATH": str(CHECKOUT)}))
    finally:
        cluster.reset()
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout.splitlines()[-1])


@pytest.fixture(scope="module", params=["fake", pytest.param("lab", marks=pytest.mark.lab)])
def told(request: pytest.FixtureRequest) -> dict[str, Any]:
    """What the journey was told by one implementation."""
    if request.param == "fake":
        return asyncio.run(journey(fakes.FakeClusterService(configured=False), fakes.PASSWORD))
    return _in_the_lab(request.getfixturevalue("lab"))
