"""conntrackd's statistics (``conntrackd -s``), read into numbers.

What a standby's readiness and the metrics need: how many connections each cache holds (the
active node's internal cache should be mirrored in the standby's external cache) and the
counters that say the sync channel loses or garbles messages. conntrackd 1.4.7 prints::

    cache internal:
    current active connections:            4
    connections created:                   4    failed:            0
    ...
    cache external:
    current active connections:            0
    ...
    UDP traffic (active device=eth0):
                      64 Bytes sent                   56 Bytes recv
                       0 Error send                    0 Error recv

    message tracking:
                       0 Malformed msgs                    0 Lost msgs
"""

from __future__ import annotations

import re

COUNTERS = ("internal", "external", "failed", "send_errors", "recv_errors", "malformed", "lost")
"""The keys :func:`parse_stats` fills: cache entries (internal, external), cache operations
that failed (both caches), and the sync channel's errors and lost or malformed messages."""

_NUMBER_BEFORE = re.compile(r"(\d+)\s+(Error send|Error recv|Malformed msgs|Lost msgs)")
_KEYS = {"Error send": "send_errors", "Error recv": "recv_errors",
         "Malformed msgs": "malformed", "Lost msgs": "lost"}


def parse_stats(text: str) -> dict[str, int]:
    """The counters of ``conntrackd -s``; ValueError when the text is not its output."""
    found: dict[str, int] = {}
    failed = 0
    cache: str | None = None
    for line in text.splitlines():
        stripped = line.strip()
        if not line[:1].isspace() and stripped.endswith(":"):
            words = stripped[:-1].split()
            cache = words[1] if len(words) == 2 and words[0] == "cache" else None
            continue
        if cache in ("internal", "external") and stripped.startswith("current active connections:"):
            found[cache] = int(stripped.split(":", 1)[1])
        elif cache is not None and "failed:" in stripped:
            failed += int(stripped.rsplit("failed:", 1)[1])
        for number, label in _NUMBER_BEFORE.findall(line):
            found[_KEYS[label]] = int(number)
    if "internal" not in found or "external" not in found:
        raise ValueError("no cache counts in conntrackd's statistics")
    found["failed"] = failed
    return {key: found.get(key, 0) for key in COUNTERS}
