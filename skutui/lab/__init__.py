"""The two-node lab: real keepalived/conntrackd/sshd nodes on one machine, for demos and tests.

``from skutui.lab import Lab`` is the entry point. Names load on first use, so a node's
PID 1 (``python -m skutui.lab.init``) starts without importing the rest of the lab.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from skutui.lab.lab import Lab, LabStatus, NodeStatus
    from skutui.lab.system import LabError
    from skutui.lab.topology import (
        BRIDGE,
        FLOATING_IP,
        INTERFACE,
        NODE_NAMES,
        NODES,
        PASSWORD,
        LabNode,
    )

_EXPORTS = {
    "Lab": "skutui.lab.lab",
    "LabStatus": "skutui.lab.lab",
    "NodeStatus": "skutui.lab.lab",
    "LabError": "skutui.lab.system",
    "BRIDGE": "skutui.lab.topology",
    "FLOATING_IP": "skutui.lab.topology",
    "INTERFACE": "skutui.lab.topology",
    "NODE_NAMES": "skutui.lab.topology",
    "NODES": "skutui.lab.topology",
    "PASSWORD": "skutui.lab.topology",
    "LabNode": "skutui.lab.topology",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'skutui.lab' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
