"""Config drift: the synced files that differ between the two nodes, and which copy is newer.

Compares two manifests (``skutui.domain.syncplan``'s entries: kind, sha256, mode, owner,
mtime, link target) path by path. Directories compare by kind, mode and owner only: their
modification times move whenever anything inside changes, at different moments on each node.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from skutui.domain.syncplan import Entry

CONTENT, MODE, OWNER, KIND, TARGET = "content", "mode", "owner", "kind", "link target"


@dataclass(frozen=True)
class Difference:
    path: str
    what: tuple[str, ...]
    """What differs: content, mode, owner, kind, link target; or "only on NODE"."""
    newer: str | None
    """The node whose copy was changed last; None when only one has it or both equal."""
    here: Entry | None = None
    there: Entry | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "what": list(self.what), "newer": self.newer,
                "here": _summary(self.here), "there": _summary(self.there)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Difference:
        return cls(str(data["path"]), tuple(data.get("what") or ()), data.get("newer"),
                   data.get("here"), data.get("there"))

    def describe(self) -> str:
        newer = f"; newer on {self.newer}" if self.newer else ""
        return f"{self.path}: {', '.join(self.what)}{newer}"


def _summary(entry: Entry | None) -> dict[str, Any] | None:
    if entry is None:
        return None
    keys = ("kind", "sha256", "size", "mode", "user", "group", "uid", "gid", "mtime_ns", "target")
    return {key: entry[key] for key in keys if key in entry}


def _owner(entry: Entry) -> tuple[object, object]:
    return (entry.get("user") or entry.get("uid"), entry.get("group") or entry.get("gid"))


def _what(here: Entry, there: Entry) -> list[str]:
    if here["kind"] != there["kind"]:
        return [KIND]
    what = []
    if here["kind"] == "file" and here.get("sha256") != there.get("sha256"):
        what.append(CONTENT)
    if here["kind"] == "link" and here.get("target") != there.get("target"):
        what.append(TARGET)
    if here["kind"] != "link" and here.get("mode") != there.get("mode"):
        what.append(MODE)
    if _owner(here) != _owner(there):
        what.append(OWNER)
    return what


def compare(here: Mapping[str, Entry], there: Mapping[str, Entry], here_name: str,
            there_name: str) -> list[Difference]:
    """Every path that differs between this node's manifest and the other's, sorted."""
    found = []
    for path in sorted(set(here) | set(there)):
        mine, theirs = here.get(path), there.get(path)
        if mine is None or theirs is None:
            holder = here_name if theirs is None else there_name
            found.append(Difference(path, (f"only on {holder}",), None, mine, theirs))
            continue
        what = _what(mine, theirs)
        if not what:
            continue
        newer = None
        if mine["kind"] != "dir" and mine.get("mtime_ns") != theirs.get("mtime_ns"):
            newer = here_name if (mine.get("mtime_ns") or 0) > (theirs.get("mtime_ns") or 0) else there_name
        found.append(Difference(path, tuple(what), newer, mine, theirs))
    return found


@dataclass(frozen=True)
class Drift:
    """What ``skutui sync verify`` reports: the nodes compared, when, and what differs."""

    here: str
    there: str
    master: str | None
    roots: tuple[str, ...]
    checked: float
    differences: tuple[Difference, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"nodes": [self.here, self.there], "master": self.master, "roots": list(self.roots),
                "checked": self.checked, "in_step": not self.differences,
                "differences": [d.to_dict() for d in self.differences]}
