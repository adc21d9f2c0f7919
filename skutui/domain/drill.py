"""A drill: the floating IPs handed to the backup and back on purpose, the gap measured.

During a drill both nodes answer small UDP probes on :data:`DRILL_PORT` (each answer names
the node that gave it) and both send one to the floating IP every :data:`PROBE_INTERVAL`.
The node taking over sees the old master answer, then nobody, then itself: that silence is
the gap a client on the cluster's network would have seen. Pure: the runs of answers, the
gaps and the drill's record; ``skutui.system.drill`` probes, ``skutui.cluster.drill`` leads.

A drill record's ``data``: ``id``, ``started``, ``ended`` (ISO 8601), ``from`` (the master
that handed over), ``to``, ``legs`` (each ``{"from", "to", "gap", "probe_gap", "conntrack",
"failover"}``: the failover record's gap, the probes' gap, the commit, the record's id),
``probes`` (sent by both nodes), ``ok``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from skutui.domain.history import seconds_text

DRILL_PORT = 49812
"""UDP port the probes use on both nodes while a drill runs (nothing listens otherwise)."""
PROBE_INTERVAL = 0.01
"""Seconds between two probes: the gap is measured to this."""
PROBE_MAGIC = b"skutui-drill"


@dataclass(frozen=True)
class Run:
    """Consecutive answers from one node."""

    responder: str
    first: float
    last: float
    answers: int

    def to_dict(self) -> dict[str, Any]:
        return {"responder": self.responder, "first": self.first, "last": self.last,
                "answers": self.answers}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Run:
        return cls(str(data["responder"]), float(data["first"]), float(data["last"]),
                   int(data["answers"]))


def runs(answers: Iterable[tuple[float, str]]) -> list[Run]:
    """Answers (time, responder) in time order, grouped into runs of one responder."""
    found: list[Run] = []
    for moment, responder in sorted(answers):
        if found and found[-1].responder == responder:
            last = found[-1]
            found[-1] = Run(responder, last.first, moment, last.answers + 1)
        else:
            found.append(Run(responder, moment, moment, 1))
    return found


def gap(seen: Sequence[Run], old: str, new: str) -> float | None:
    """Seconds between the old master's last answer and the new one's first, at the first
    hand-over from ``old`` to ``new`` these runs saw; None if they saw none."""
    for before, after in zip(seen, seen[1:], strict=False):
        if before.responder == old and after.responder == new:
            return round(max(after.first - before.last, 0.0), 3)
    return None


def message(legs: Sequence[Mapping[str, Any]]) -> str:
    parts = []
    for index, leg in enumerate(legs):
        verb = "handed to" if index == 0 else "back to"
        parts.append(f"{verb} {leg.get('to')}, probes unanswered {seconds_text(leg.get('probe_gap'))}")
    return "drill: floating IPs " + ", ".join(parts) if parts else "drill: nothing handed over"
