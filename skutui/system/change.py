"""A cluster change on this node: its lock, and its rollback record on disk.

A change (create, edit, destroy, maintenance) holds this lock on *both* nodes for as long
as it runs, so that two consoles, or a create started on each node, never interleave: the
second is refused with the first one's node, start and pid. The lock is ``flock`` (see
:mod:`skutui.system.locks`): it ends with its holder however the holder ends.

Before its first step a change writes its rollback record (``Paths.change_record``) on
both nodes, fsynced: this node's snapshot, and on the node that started it both nodes'.
The record is removed when the change ends, the peer's first; so a record whose lock
nobody holds is a change that was interrupted (SIGKILL, power loss): the node that started
it rolls both nodes back at its next command (``committed``: the change had finished and
only the peer's record was left to remove).
"""

from __future__ import annotations

import json
import os
import secrets
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from skutui.domain.errors import Failed
from skutui.domain.paths import Paths
from skutui.system.files import write_text_atomic
from skutui.system.locks import FileLock, Held


class ChangeBusy(Failed):
    """Another change holds this node, or an interrupted one must be finished first."""


def unrecorded(node: str, exc: OSError) -> str:
    """Why a change did not start: a node could not keep its rollback record (a full disk).
    Nothing was changed yet, on either node."""
    return (f"{node} cannot keep the change's rollback record ({exc.strerror or exc}); "
            "nothing was changed")


@dataclass(frozen=True)
class Change:
    what: str
    """In the operator's words: ``cluster create``, ``cluster edit``, ``rollback of …``."""
    node: str
    """The node it was started on."""
    pid: int = field(default_factory=os.getpid)
    since: float = field(default_factory=time.time)
    id: str = field(default_factory=lambda: secrets.token_hex(6))
    peer: str = ""
    peer_ip: str = ""

    @property
    def started(self) -> str:
        return time.strftime("%H:%M", time.localtime(self.since))

    def under_way(self) -> str:
        return (f"another change is under way on {self.node} since {self.started}, by pid "
                f"{self.pid} ({self.what})")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: object) -> Change:
        if not isinstance(data, dict):
            raise ValueError("not a change")
        return cls(what=str(data["what"]), node=str(data["node"]), pid=int(data["pid"]),
                   since=float(data["since"]), id=str(data["id"]),
                   peer=str(data.get("peer", "")), peer_ip=str(data.get("peer_ip", "")))


@dataclass
class Record:
    change: Change
    snapshots: list[dict]
    """``LocalNode.snapshot`` of this node, then (on the node that started the change) of
    the peer."""
    stop_first: bool = True
    committed: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"change": self.change.to_dict(), "snapshots": self.snapshots,
                "stop_first": self.stop_first, "committed": self.committed}

    @classmethod
    def from_dict(cls, data: dict) -> Record:
        return cls(Change.from_dict(data["change"]), list(data["snapshots"]),
                   bool(data.get("stop_first", True)), bool(data.get("committed", False)))


class ChangeGuard:
    """This node's change lock and record, held by one process."""

    def __init__(self, paths: Paths) -> None:
        self.paths = paths
        self.lock = FileLock(paths.change_lock)

    def hold(self, change: Change, *, recovering: bool = False) -> None:
        """Take this node for ``change``, or say who has it. A record left by an
        interrupted change must be finished (``recovering``) before any other starts."""
        try:
            self.lock.acquire(change.to_dict())
        except Held as held:
            try:
                raise ChangeBusy(Change.from_dict(held.holder).under_way()) from None
            except (KeyError, TypeError, ValueError):
                raise ChangeBusy("another change is under way on this node") from None
        left = read_record(self.paths)
        if left is not None and not recovering:
            self.lock.release()
            raise ChangeBusy(
                f"an interrupted {left.change.what} (started {left.change.started} on "
                f"{left.change.node} by pid {left.change.pid}) has not been rolled back yet; "
                f"run any skutui command on {left.change.node} to finish it")

    def keep(self, record: Record) -> None:
        """The rollback record, durable before the change's first step."""
        self.paths.change_record.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(self.paths.change_record, json.dumps(record.to_dict()) + "\n")

    def clear(self) -> None:
        self.paths.change_record.unlink(missing_ok=True)

    def release(self) -> None:
        self.lock.release()


def read_record(paths: Paths) -> Record | None:
    try:
        return Record.from_dict(json.loads(paths.change_record.read_text()))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ChangeBusy(f"the rollback record {paths.change_record} cannot be read ({exc}); "
                         "compare both nodes by hand, then remove it") from None


def interrupted(paths: Paths) -> Record | None:
    """The record of a change nobody runs any more (its lock is free), if there is one."""
    if not paths.change_record.exists() or not FileLock(paths.change_lock).free():
        return None
    return read_record(paths)
