"""The appliance package: its file's name and the one command that installs it, in the words
pre-flight uses when a peer has no skutui (the README gives the same command)."""

from __future__ import annotations

import platform

DEBIAN_ARCHITECTURES = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "armhf",
                        "i686": "i386", "ppc64le": "ppc64el", "s390x": "s390x",
                        "riscv64": "riscv64"}
"""Debian's name for this machine's architecture (what ``dpkg --print-architecture`` says)."""


def package_file(version: str, machine: str | None = None) -> str:
    arch = DEBIAN_ARCHITECTURES.get(machine or platform.machine(), machine or platform.machine())
    return f"skutui_{version}_{arch}.deb"


def install_hint(version: str, machine: str | None = None) -> str:
    """How to put skutui on a Debian 12 node, as one sentence."""
    name = package_file(version, machine)
    return (f"copy {name} there (`./run package` builds it from skutui's source) and run "
            f"`apt install ./{name}`, then run the checks again")
