#!/usr/bin/env python3
"""Building the appliance package: ``./run package`` as the test suite runs it, with the
wheels already in build/wheelhouse and the virtualenv up to date (warm), against a build
whose wheelhouse is empty, so every wheel of requirements/runtime.lock comes from the index
(cold, needs the network). The figure is what the suite's packaging tests pay per session.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from common import ROOT, Row, fmt_time, median, note, rounds, spread, standalone

NAME = "package"
LAB = False
DEFAULT_ROUNDS = 3
WHEELHOUSE = ROOT / "build" / "wheelhouse"


def build(out: Path) -> float:
    started = time.monotonic()
    subprocess.run([str(ROOT / "run"), "package", str(out)], cwd=ROOT, check=True,
                   capture_output=True, timeout=1200)
    return time.monotonic() - started


def collect(args: argparse.Namespace) -> list[Row]:
    count = rounds(args, DEFAULT_ROUNDS)
    out = Path(tempfile.mkdtemp(prefix="skutui-bench-package-"))
    saved = WHEELHOUSE.with_name("wheelhouse.bench-saved")
    try:
        build(out)  # the wheelhouse filled, the virtualenv up to date
        warm = []
        for round_no in range(count):
            warm.append(build(out))
            note(f"package round {round_no + 1}/{count}: warm {fmt_time(warm[-1])}")
        WHEELHOUSE.rename(saved)
        cold = build(out)
        note(f"package: cold {fmt_time(cold)}")
        size = next(out.glob("skutui_*.deb")).stat().st_size
    finally:
        if saved.exists():
            shutil.rmtree(WHEELHOUSE, ignore_errors=True)
            saved.rename(WHEELHOUSE)
        shutil.rmtree(out, ignore_errors=True)
    return [Row("package build (./run package)", fmt_time(median(warm)),
                f"{fmt_time(cold)} (empty wheelhouse: every wheel from the index)",
                f"{cold / median(warm):.1f}x faster", notes=[
                    f"median of {count} warm builds {spread(warm)}; the .deb is "
                    f"{size / 1e6:.1f} MB"])]


if __name__ == "__main__":
    standalone(collect, description=__doc__)
