"""The lab's fixed shape: two nodes on one bridge, in a block reserved for benchmarks.

Everything a test or a demo needs to know about the lab is a constant here, so the
console, the tests and the lab itself agree on it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from skutui.domain.model import DEFAULT_CHECK_INTERVAL

LAB_DIR_ENV = "SKUTUI_LAB_DIR"
DEFAULT_LAB_DIR = Path("/var/lib/skutui-lab")
"""Not under /root: the nodes see /root through an overlay, and the lab folder must stay
visible to them at its own path."""

PASSWORD = "skutui-lab"
"""root's password on both nodes (the host's own password is never touched)."""

PREFIXLEN = 24
NETWORK = "198.18.0.0/24"
BRIDGE = "skutui-br0"
BRIDGE_IP = "198.18.0.254"
FLOATING_IP = f"198.18.0.100/{PREFIXLEN}"
INTERFACE = "eth0"
"""The cluster NIC inside each node: the same name on both, as the cluster requires."""
DEFAULT_ADVERT = DEFAULT_CHECK_INTERVAL

NODE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
"""PATH inside a node; /usr/local/sbin first, where the lab puts ``skutui``."""

NODE_MARKER = Path("/run/skutui-lab-node")
"""Exists only inside a node (its /run is private): the lab refuses to nest."""


@dataclass(frozen=True)
class LabNode:
    name: str
    ip: str
    netns: str
    veth: str
    """The host end of the node's veth pair, enslaved to the bridge."""

    @property
    def hostname(self) -> str:
        return self.name

    @property
    def cidr(self) -> str:
        return f"{self.ip}/{PREFIXLEN}"


NODES: tuple[LabNode, ...] = (
    LabNode("node-a", "198.18.0.1", "skutui-node-a", "skutui-veth-a"),
    LabNode("node-b", "198.18.0.2", "skutui-node-b", "skutui-veth-b"),
)
NODE_NAMES = tuple(node.name for node in NODES)


def node_by_name(name: str) -> LabNode:
    for node in NODES:
        if node.name == name:
            return node
    raise KeyError(name)


def lab_dir_from_env() -> Path:
    return Path(os.environ.get(LAB_DIR_ENV) or DEFAULT_LAB_DIR)
