"""What the cluster did, as records: both nodes' events and their failovers, one timeline.

A record is an event as the agent emits it (``time``, ``node``, ``kind``, ``level``,
``message``, ``data``) with an ``id`` of its own. Each node keeps its own records; a failover
is one record that both nodes hold under the same id (the new master writes it and gives the
old master a copy), so the merged timeline shows it once.

A failover record's ``data``:

    from, to            the old master and the new one (hostnames)
    cause               one of CAUSES
    detail              the cause in a sentence (the link, the service, …)
    released            when the old master stopped being master (its keepalived died, it
                        went to FAULT or BACKUP), ISO 8601; null when it could not say
    held                when the new master held the floating IPs (keepalived's MASTER)
    gap                 held - released in seconds: the floating IPs answered by nobody
    conntrack           {"ok", "seconds", "failed"}: the commit of the peer's connections
    sync_pending        changes the old master had not pushed yet, at takeover
    sync_lag            seconds the oldest of them had waited (0 in step; null unknown)
    replication_queue   commands queued on the old master, never replayed on the new one
    failed_steps        every step of the takeover that failed
    complete            the old master's side is in (false while it cannot be asked)
    drill               the drill's id when a drill made it, else absent

Pure: building, merging and describing records; the store is ``skutui.system.history``.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from skutui.domain.values import format_seconds

Record = dict[str, Any]

FAILOVER = "failover"
DRILL = "drill"
RECORD_KINDS = (FAILOVER, DRILL)
"""Kinds only the history has; the rest are the agent's event kinds."""

CAUSE_KEEPALIVED = "keepalived death"
CAUSE_SERVICE = "service down"
CAUSE_LINK = "link down"
CAUSE_MAINTENANCE = "maintenance"
CAUSE_PEER_LOST = "peer lost"
CAUSE_DRILL = "drill"
CAUSE_FAILBACK = "failback"
CAUSE_STEPPED_DOWN = "stepped down"
CAUSES = (CAUSE_KEEPALIVED, CAUSE_SERVICE, CAUSE_LINK, CAUSE_MAINTENANCE, CAUSE_PEER_LOST,
          CAUSE_DRILL, CAUSE_FAILBACK, CAUSE_STEPPED_DOWN)

_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
SINCE_HELP = ("a duration back from now (90s, 15m, 2h, 3d, 1w) or a date and time "
              "(2026-11-25, 2026-11-25T10:30, 2026-11-25 10:30:00+01:00; local time unless a "
              "zone is given)")


RECORD_TIMES = {FAILOVER: "held", DRILL: "started"}
"""A failover is placed in the timeline when the new master held the floating IPs, a drill
when it began, whenever their record was written."""


def record_of(event: Mapping[str, Any], counter: int) -> Record:
    """The record an event becomes: a failover or a drill keeps the id it carries (both
    nodes hold it under that id), any other event gets one of its own."""
    data = dict(event.get("data") or {})
    identifier = data.pop("id", None) if event["kind"] in RECORD_KINDS else None
    record: Record = {key: event[key] for key in ("time", "node", "kind", "level", "message")}
    record["time"] = data.get(RECORD_TIMES.get(event["kind"], "")) or event["time"]
    record["id"] = identifier or f"{event['node']}-{time.time_ns():x}-{counter}"
    if data:
        record["data"] = data
    if identifier:
        record["updated"] = iso(time.time())
    return record


def iso(moment: float) -> str:
    """A moment (seconds since the epoch) as records write it: ISO 8601 UTC, milliseconds."""
    at = datetime.fromtimestamp(moment, UTC)
    return at.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def epoch(text: str) -> float:
    """A record's ISO 8601 time back to seconds since the epoch."""
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def parse_since(text: str, now: float) -> float:
    """``--since``: a duration back from ``now`` or a date and time, as seconds since the
    epoch; ValueError (with the words to show) when it is neither."""
    given = text.strip()
    duration = _DURATION.fullmatch(given.lower())
    if duration:
        return now - float(duration.group(1)) * _UNITS[duration.group(2)]
    try:
        moment = datetime.fromisoformat(given.replace("Z", "+00:00"))
        if moment.tzinfo is None:
            moment = moment.astimezone()  # local time, as the operator reads the clock
        return moment.timestamp()
    except (ValueError, OverflowError):
        raise ValueError(f"{text!r} is neither a duration nor a date; give {SINCE_HELP}") from None


def record_time(record: Mapping[str, Any]) -> float:
    try:
        return epoch(str(record["time"]))
    except (KeyError, ValueError):
        return 0.0


def merge(*histories: Iterable[Record]) -> list[Record]:
    """Both nodes' records as one timeline, oldest first. A record both hold (a failover) is
    shown once: the complete copy if only one is, else the one changed last."""
    chosen: dict[str, Record] = {}
    for history in histories:
        for record in history:
            key = str(record.get("id") or f"{record.get('node')}:{record.get('time')}")
            known = chosen.get(key)
            if known is None or _better(record, known):
                chosen[key] = record
    return sorted(chosen.values(), key=lambda r: (record_time(r), str(r.get("node", ""))))


def _better(record: Record, known: Record) -> bool:
    new, old = record.get("data") or {}, known.get("data") or {}
    if bool(new.get("complete")) != bool(old.get("complete")):
        return bool(new.get("complete"))
    return str(record.get("updated", "")) > str(known.get("updated", ""))


def failover_id(to: str, held: float) -> str:
    """One id for one failover, the same on both nodes: who took over, and when."""
    return f"{FAILOVER}-{to}-{int(held * 1000)}"


def gap(released: float | None, held: float) -> float | None:
    """Seconds the floating IPs had no master; None when the release is not known."""
    if released is None:
        return None
    return max(round(held - released, 3), 0.0)


def failover_data(*, old: str, new: str, cause: str, detail: str, released: float | None,
                  held: float, conntrack: Mapping[str, Any] | None,
                  sync_pending: int | None = None, sync_lag: float | None = None,
                  replication_queue: int | None = None, failed_steps: Iterable[str] = (),
                  complete: bool, drill: str | None = None) -> Record:
    data: Record = {
        "from": old, "to": new, "cause": cause, "detail": detail,
        "released": None if released is None else iso(released), "held": iso(held),
        "gap": gap(released, held), "conntrack": dict(conntrack) if conntrack else None,
        "sync_pending": sync_pending, "sync_lag": sync_lag,
        "replication_queue": replication_queue, "failed_steps": list(failed_steps),
        "complete": complete,
    }
    if drill:
        data["drill"] = drill
    return data


def seconds_text(value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return "unknown"
    if value < 1:
        return f"{value * 1000:.0f} ms"
    return f"{format_seconds(value)} s"


def failover_message(data: Mapping[str, Any]) -> str:
    """The one line a person reads: who to whom, why, how long nobody answered."""
    parts = [f"{data.get('from') or '?'} -> {data.get('to') or '?'}: {data.get('cause')}"]
    if data.get("gap") is not None:
        parts.append(f"floating IPs answered again after {seconds_text(data['gap'])}")
    else:
        parts.append("gap unknown (the old master did not say when it stopped)")
    conntrack = data.get("conntrack") or {}
    if conntrack:
        verdict = "committed" if conntrack.get("ok") else "commit FAILED"
        parts.append(f"connections {verdict} in {seconds_text(conntrack.get('seconds'))}")
    if data.get("replication_queue"):
        parts.append(f"{data['replication_queue']} command(s) never replayed")
    if data.get("failed_steps"):
        parts.append(f"{len(data['failed_steps'])} step(s) failed")
    return "; ".join(parts)


def failover_lines(data: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Every field of a failover as (label, value) lines, for a detail view."""

    def moment(text: object) -> str:
        if not text:
            return "unknown"
        at = datetime.fromisoformat(str(text).replace("Z", "+00:00")).astimezone()
        return at.strftime("%Y-%m-%d %H:%M:%S.") + f"{at.microsecond // 1000:03d}"

    conntrack = data.get("conntrack") or {}
    if conntrack:
        committed = ("ok" if conntrack.get("ok") else "FAILED") + \
            f", {seconds_text(conntrack.get('seconds'))}"
    else:
        committed = "not reported"
    lag = data.get("sync_lag")
    pending = data.get("sync_pending")
    sync = ("unknown" if pending is None else
            "in step" if not pending else f"{pending} change(s) waiting {seconds_text(lag)}")
    queue = data.get("replication_queue")
    return [
        ("From", str(data.get("from") or "unknown")),
        ("To", str(data.get("to") or "unknown")),
        ("Cause", f"{data.get('cause')}: {data.get('detail')}" if data.get("detail")
         else str(data.get("cause"))),
        ("Released", moment(data.get("released"))),
        ("Held", moment(data.get("held"))),
        ("Gap", seconds_text(data.get("gap"))),
        ("Conntrack commit", committed),
        ("Sync at takeover", sync),
        ("Replication queue", "unknown" if queue is None else str(queue)),
        ("Failed steps", "; ".join(data.get("failed_steps") or []) or "none"),
        ("Old master's side", "in" if data.get("complete") else "not yet (it could not be asked)"),
    ]


def window(held: float, master_down: float) -> tuple[float, float]:
    """Where the old master's release is looked for around a takeover at ``held``: a silent
    master is taken over ``master_down`` seconds after it stopped, a clean hand-over at once;
    a margin covers clocks a little apart."""
    return held - 2 * master_down - 5.0, held + 5.0



def release_cause(*, fifo_state: str | None, keepalived_died: bool, maintenance: bool,
                  drill: str | None, links_down: Iterable[str], failback_to_peer: bool,
                  hostname: str) -> tuple[str, str]:
    """Why this node stopped being master, as (cause, detail): from what keepalived said
    (``fifo_state`` FAULT or BACKUP; None when it said nothing) and what the node finds."""
    down = list(links_down)
    if keepalived_died:
        return CAUSE_KEEPALIVED, f"keepalived stopped on {hostname} (killed, crashed or stopped)"
    if drill:
        return CAUSE_DRILL, f"a drill handed the floating IPs over ({drill})"
    if maintenance:
        return CAUSE_MAINTENANCE, f"{hostname} was put in maintenance"
    if down:
        return CAUSE_LINK, f"{', '.join(down)} {'is' if len(down) == 1 else 'are'} down on {hostname}"
    if fifo_state == "BACKUP" and failback_to_peer:
        return CAUSE_FAILBACK, "the preferred node returned and took the floating IPs back"
    if fifo_state == "FAULT":
        return CAUSE_STEPPED_DOWN, f"keepalived put {hostname} in FAULT"
    return CAUSE_STEPPED_DOWN, f"keepalived made {hostname} backup (another master was heard)"


def release_message(hostname: str, cause: str, detail: str) -> str:
    return f"{hostname} stopped being master: {cause} ({detail})"
