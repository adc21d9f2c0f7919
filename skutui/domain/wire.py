"""What crosses a boundary: between the front ends and the operations API, and between nodes.

Small frozen dataclasses only; the operations API (``skutui.cluster.api``) takes and returns
these and ``model``'s types.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from skutui.domain.model import Role, Status

NodeSide = Literal["local", "remote"]
Progress = Callable[[str], None]
"""Receives one plain line per step as long work goes on."""


@dataclass(frozen=True)
class CreateRequest:
    local_ip: str
    remote_ip: str
    password: str = field(repr=False)
    """Used once to install keys; never stored, logged or shown."""
    settings: dict[str, Any] = field(default_factory=dict)
    """Setting key -> the operator's value, for the settings ``cluster create`` takes (see
    ``settings.creatable``); one not given takes its default."""
    host_key_fingerprint: str | None = None
    """The peer key the operator accepted (``SHA256:…``); None only with trust_new_host_key."""
    trust_new_host_key: bool = False


@dataclass(frozen=True)
class CheckResult:
    name: str
    passed: bool
    detail: str
    """What was found, e.g. "skutui 0.1.0 on both"."""
    hint: str = ""
    """One line on how to fix it, when it failed."""


@dataclass(frozen=True)
class EditRequest:
    changes: dict[str, Any] = field(default_factory=dict)
    """Setting key -> the operator's new value; a setting not named stays as it is."""


@dataclass(frozen=True)
class RekeyRequest:
    """``skutui cluster rekey``: new keys both ways; with a fingerprint (or trust_new), the
    peer's legitimately new host key is re-pinned first; with ``link_address``, both nodes'
    link-layer addresses on the cluster NIC are learnt and pinned again."""

    host_key_fingerprint: str | None = None
    trust_new_host_key: bool = False
    link_address: bool = False

    @property
    def repins_host_key(self) -> bool:
        return self.host_key_fingerprint is not None or self.trust_new_host_key


@dataclass(frozen=True)
class NodeRow:
    node: NodeSide
    role: Role
    ip: str
    hostname: str
    status: Status
    message: str

    @property
    def colour(self) -> str:
        return self.status.colour


@dataclass(frozen=True)
class Event:
    """Something that happened on a node: a role change, a sync push, a peer going away…"""

    kind: str
    node: NodeSide
    message: str


@dataclass(frozen=True)
class Timeline:
    """Both nodes' history merged (``skutui history``, the console's Timeline)."""

    records: list[dict[str, Any]] = field(default_factory=list)
    """Oldest first; a failover both nodes hold is in once."""
    missing: dict[str, str] = field(default_factory=dict)
    """Node -> why its history is not in (it did not answer)."""

    def to_dict(self) -> dict[str, Any]:
        return {"records": self.records, "missing": dict(self.missing)}
