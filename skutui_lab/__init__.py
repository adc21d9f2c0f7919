"""The two-node lab: real keepalived/conntrackd/sshd nodes on one machine, for demos and tests.

``from skutui_lab import Lab`` is the entry point. Names load on first use, so a node's
PID 1 (``python -m skutui_lab.init``) starts without importing the rest of the lab.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from skutui_lab.lab import Lab, LabStatus, NodeStatus
    from skutui_lab.system import LabError
    from skutui_lab.topology import (
        BRIDGE,
        FLOATING_IP,
        INTERFACE,
        NODE_NAMES,
        NODES,
        PASSWORD,
        LabNode,
    )

_EXPORTS = {
    "Lab": "skutui_lab.lab",
    "LabStatus": "skutui_lab.lab",
    "NodeStatus": "skutui_lab.lab",
    "LabError": "skutui_lab.system",
    "BRIDGE": "skutui_lab.topology",
    "FLOATING_IP": "skutui_lab.topology",
    "INTERFACE": "skutui_lab.topology",
    "NODE_NAMES": "skutui_lab.topology",
    "NODES": "skutui_lab.topology",
    "PASSWORD": "skutui_lab.topology",
    "LabNode": "skutui_lab.topology",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'skutui_lab' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
