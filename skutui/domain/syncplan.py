"""The configuration sync's wire format and its planning, apart from any disk or connection.

What both nodes must agree on lives here: which paths may be synced at all, which names
never are, what an entry is, when two entries are the same, what the peer is asked to do.
The agent's sync (:mod:`skutui.agent.sync`) reads the trees and moves the bytes.

An entry (one path of a manifest) is ``{"kind": "file"|"dir"|"link", "mode", "uid", "gid",
"user", "group", "mtime_ns"}`` plus ``sha256`` and ``size`` for a file (a file larger than
:data:`MAX_FILE_SIZE` has ``"oversized": true`` and no hash), ``target`` for a link. A
manifest is ``{"version": MANIFEST_VERSION, "entries": {path: entry}, "staged": [path],
"generation": {...}, "role": ROLE}``: ``staged`` lists contents a push left staged (a
dropped connection), ``generation`` and ``role`` are the node's own. A request (``skutui
node sync-apply`` reads one a line) is ``{"excluded", "delete": [path], "entries": {path:
entry}, "verify": [path], "generation": {...}, "stage": TOKEN, "place": [path], "sweep":
[path], "commit": bool}``: contents are sent staged in their synced folder (see
:func:`staged_path`) and only put in place by the request, after the receiving node has
checked its role and generation; ``sweep`` names staged leftovers to remove; ``commit`` ends
a reconcile: the receiving node now holds ``generation``. The answer is ``{"deleted",
"settled", "missing", "stale", "set_aside", "refused"}``; ``refused`` names each path the
receiving node would only have reached through a symbolic link, and the link. A request
refused for the receiving node's term is answered with the :class:`TermRefused` document
instead, under a key of its own; one the receiving node cannot read, with ``{"error"}``.

Which folders are synced is never the request's to say: the receiving node takes them from
its own cluster.toml, and its manifest lists those alone.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from skutui.domain.errors import Failed
from skutui.domain.generation import Generation

Entry = dict[str, Any]
"""One path of a manifest (see above), as the wire carries it."""

MANIFEST_VERSION = 4
"""Raised with any change of the sync's steps on the wire, so that two nodes of different
skutui versions stop at the first comparison, with a word, rather than on a step they read
differently."""
MAX_FILE_SIZE = 64 * 1024 * 1024
"""Larger files are not synced (skipped and reported): these are configuration trees."""
STAGED_SUFFIX = ".skutui-sync"
STAGED = re.compile(r"^\..+\.[0-9a-f]{16}" + re.escape(STAGED_SUFFIX) + r"(\.[^./]+\.tmp)?$")
"""A staged content's name, or the name of its write in progress: hidden, so never synced."""

IGNORED_SUFFIXES = ("~", ".tmp", ".swp", ".swx", ".swpx", ".part", ".dpkg-new", ".dpkg-tmp",
                    ".dpkg-old")
IGNORED_NAMES = ("4913",)
"""vim writes and removes a file by this name to probe a directory before saving."""

UNSAFE_ROOTS = {"/", "/bin", "/boot", "/dev", "/etc", "/home", "/lib", "/lib64", "/opt",
                "/proc", "/root", "/run", "/sbin", "/srv", "/sys", "/tmp", "/usr", "/var"}
"""Whole system folders: mirroring one with deletes would wreck the backup."""
VIRTUAL_TREES = ("/proc", "/sys", "/dev", "/run")


class SyncError(Failed):
    """A sync step failed or was refused; the message is for the operator."""


class PeerIsMaster(SyncError):
    """Split brain: both nodes are master. Asked again soon: it ends when keepalived's
    adverts pass again, and the newer files must then travel at once."""


class PeerNewer(SyncError):
    """The peer holds a newer generation than this node: its files are taken first."""

    def __init__(self, generation: Generation, message: str = "") -> None:
        super().__init__(message or f"the peer holds the newer generation {generation.label}")
        self.generation = generation


class TermRefused(SyncError):
    """The backup's refusal of a push for its term, before anything is written: it is the
    master too (``MASTER_TOO``), or it holds a newer generation (``NEWER_HELD``). Its
    ``document`` travels back so the master knows which, whatever step was refused."""

    KEY = "term_refused"
    """Its own key: an answer applied has ``"refused"``, the paths a link kept it from."""
    MASTER_TOO = "master"
    NEWER_HELD = "newer"

    def __init__(self, why: str, held: Generation, message: str) -> None:
        super().__init__(message)
        self.document = {self.KEY: why, "generation": held.to_dict(), "message": message}


def refusal(document: object) -> SyncError | None:
    """The master's side of a :class:`TermRefused` read back from the peer; None when
    ``document`` is not one. A refusal this node cannot tell apart is still one: nothing
    was written, and the push is not taken for done."""
    if not isinstance(document, dict) or TermRefused.KEY not in document:
        return None
    message = str(document.get("message", "the peer refused the push"))
    why = document[TermRefused.KEY]
    if why == TermRefused.MASTER_TOO:
        return PeerIsMaster(f"the peer says it is the master too (split brain): nothing is "
                            f"pushed until one of the two is backup ({message})")
    if why == TermRefused.NEWER_HELD:
        with contextlib.suppress(ValueError):
            return PeerNewer(Generation.from_dict(document.get("generation")), message)
    return SyncError(f"the peer refused the push: {message}")


def is_ignored_name(name: str) -> bool:
    """Hidden files (and every temporary name skutui writes), editor backups and swap files."""
    return (name.startswith(".") or name.endswith(IGNORED_SUFFIXES) or name in IGNORED_NAMES
            or (name.startswith("#") and name.endswith("#")))


@dataclass(frozen=True)
class SyncFilter:
    """What is never synced: ignored names and the excluded folders (the local part)."""

    excluded: tuple[PurePosixPath, ...] = ()

    def skips(self, path: PurePosixPath | Path) -> bool:
        path = PurePosixPath(path)
        return is_ignored_name(path.name) or any(
            path == folder or folder in path.parents for folder in self.excluded)


def synced_roots(synced_paths: Sequence[str], default: Path) -> tuple[list[PurePosixPath], list[str]]:
    """The roots to sync and, separately, why any configured path was refused."""
    roots: list[PurePosixPath] = []
    refused: list[str] = []
    for text in synced_paths or (str(default),):
        normal = os.path.normpath(text)
        if normal.startswith("//"):  # POSIX keeps two leading slashes; Linux reads them as one
            normal = "/" + normal.lstrip("/")
        path = PurePosixPath(normal)
        if not path.is_absolute():
            refused.append(f"{text!r}: not an absolute path")
        elif str(path) in UNSAFE_ROOTS:
            refused.append(f"{text!r}: a whole system folder; name the subfolder to sync")
        elif any(str(path).startswith(tree + "/") for tree in VIRTUAL_TREES):
            refused.append(f"{text!r}: a virtual or runtime file system")
        else:
            roots.append(path)
    nested = {r for r in roots for other in roots if other != r and other in r.parents}
    return sorted(set(roots) - nested), refused


def within(path: str, top: str) -> bool:
    return path == top or PurePosixPath(top) in PurePosixPath(path).parents


def checked_path(text: str, roots: list[PurePosixPath], sync_filter: SyncFilter) -> PurePosixPath:
    """A path of a request, if the backup may touch it: the master is trusted with the
    synced paths, never with the rest of the backup's file system."""
    path = PurePosixPath(text)
    if not path.is_absolute() or os.path.normpath(text) != text:
        raise SyncError(f"refusing {text!r}: not a normalised absolute path")
    root = next((r for r in roots if path == r or r in path.parents), None)
    if root is None:
        raise SyncError(f"refusing {text}: outside the synced paths "
                        f"({', '.join(map(str, roots))})")
    if sync_filter.skips(path) or any(is_ignored_name(part)
                                      for part in path.relative_to(root).parts):
        raise SyncError(f"refusing {text}: in a never-synced folder or an ignored name")
    return path


def staged_path(path: str, token: str, roots: Sequence[PurePosixPath]) -> str:
    """Where the contents for ``path`` wait until a request puts them in place: in its synced
    folder itself, never in a folder below it, so that the write passes through nothing the
    synced tree holds. The name keeps
    the file's own for the operator, a digest of its path, and the push's token."""
    root = next((r for r in roots if r in PurePosixPath(path).parents), None)
    if root is None:
        raise SyncError(f"refusing to stage {path}: not inside the synced paths "
                        f"({', '.join(map(str, roots))})")
    digest = hashlib.sha256(os.fsencode(path)).hexdigest()[:12]
    return str(root / f".{PurePosixPath(path).name[:64]}.{digest}.{token}{STAGED_SUFFIX}")


def is_staged(name: str) -> bool:
    return bool(STAGED.match(name))


def sync_request(sync_filter: SyncFilter, *, delete: Sequence[str] = (),
                 entries: dict[str, Entry] | None = None, verify: Sequence[str] = (),
                 generation: dict[str, Any] | None = None, stage: str = "",
                 place: Sequence[str] = (), sweep: Sequence[str] = (),
                 commit: bool = False) -> dict[str, Any]:
    """A request for ``skutui node sync-apply``; its exclusions only narrow what the backup
    takes (its own synced paths and never-synced folder always apply); the generation lets
    it refuse an older one before anything is written."""
    return {"excluded": [str(e) for e in sync_filter.excluded],
            "delete": list(delete), "entries": entries or {}, "verify": list(verify),
            "generation": generation or {}, "stage": stage, "place": list(place),
            "sweep": list(sweep), "commit": commit}


def within_roots(requested: Sequence[str], own: Sequence[PurePosixPath]) -> list[str]:
    """Why each of the ``requested`` roots is refused: a peer may list only folders this node
    syncs itself (one of its own synced paths, or a folder inside one)."""
    refused = []
    for text in requested:
        path = PurePosixPath(os.path.normpath(text))
        if not any(path == root or root in path.parents for root in own):
            refused.append(f"{text!r}: not one of this node's synced paths "
                           f"({', '.join(map(str, own)) or 'none'})")
    return refused


# --- what differs ----------------------------------------------------------------------------

def _owner(entry: Entry) -> tuple[object, object]:
    """Owners compare by name, as rsync does: a service user (haproxy) rarely has the same
    number on both nodes. A name unknown on one side falls back to the number."""
    return (entry.get("user") or entry["uid"], entry.get("group") or entry["gid"])


def _same(local: Entry, remote: Entry) -> bool:
    """Directory mtimes move whenever anything inside changes, on both nodes, at different
    moments: comparing them would report drift forever, so directories compare without."""
    kind = local["kind"]
    if kind != remote["kind"] or _owner(local) != _owner(remote):
        return False
    keys = {"file": ("sha256", "mode", "mtime_ns"), "dir": ("mode",),
            "link": ("target", "mtime_ns")}[kind]
    return all(local.get(k) == remote.get(k) for k in keys)


@dataclass
class Plan:
    deletes: list[str] = field(default_factory=list)
    new_dirs: dict[str, Entry] = field(default_factory=dict)
    """Created before any file is written into them."""
    files: list[str] = field(default_factory=list)
    """Contents to send."""
    settle: dict[str, Entry] = field(default_factory=dict)
    """Metadata (and links, and directories) to set once the contents are in place."""
    in_step: int = 0


def plan_changes(local: dict[str, Entry], remote: dict[str, Entry],
                 scope: Iterable[str]) -> Plan:
    """What to do on the peer so that, within ``scope``, it holds exactly ``local``."""
    plan = Plan()
    for path in sorted(set(scope), key=lambda p: PurePosixPath(p).parts):
        mine, theirs = local.get(path), remote.get(path)
        if mine is None:
            if theirs is not None:
                plan.deletes.append(path)
            continue
        if theirs is not None and theirs["kind"] != mine["kind"]:
            plan.deletes.append(path)
            theirs = None
        if theirs is not None and _same(mine, theirs):
            plan.in_step += 1
            continue
        if mine["kind"] == "dir" and theirs is None:
            plan.new_dirs[path] = mine
        if mine["kind"] == "file" and (theirs is None or theirs.get("sha256") != mine["sha256"]):
            plan.files.append(path)
        plan.settle[path] = mine
    plan.deletes = _topmost(plan.deletes)
    return plan


def _topmost(paths: Iterable[str]) -> list[str]:
    """Deleting a directory deletes what is in it: send the directory alone."""
    chosen: list[str] = []
    for path in sorted(paths, key=lambda p: PurePosixPath(p).parts):
        if not any(PurePosixPath(c) in PurePosixPath(path).parents for c in chosen):
            chosen.append(path)
    return chosen


@dataclass
class PushReport:
    kind: str
    """``push`` (changes the watcher saw) or ``reconcile`` (whole trees compared)."""
    written: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    metadata: list[str] = field(default_factory=list)
    in_step: int = 0
    absent_roots: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    """Paths not pushed, and why (too large; a cluster.toml that does not validate)."""
    set_aside: list[str] = field(default_factory=list)
    """The peer's own files it kept aside before taking these (another generation's)."""
    set_aside_in: str = ""

    @property
    def changed(self) -> bool:
        return bool(self.written or self.deleted or self.metadata)

    def summary(self, peer: str) -> str:
        if not self.changed:
            return f"{peer} is in step ({self.in_step} entries compared)"
        parts = []
        for label, paths in (("written", self.written), ("deleted", self.deleted),
                             ("metadata", self.metadata)):
            if paths:
                shown = ", ".join(paths[:5]) + (f" +{len(paths) - 5} more" if len(paths) > 5 else "")
                parts.append(f"{len(paths)} {label} ({shown})")
        verb = "reconciled with" if self.kind == "reconcile" else "pushed to"
        return f"{verb} {peer}: " + "; ".join(parts)

    def to_data(self) -> dict[str, Any]:
        return {"sync": self.kind, "written": self.written, "deleted": self.deleted,
                "metadata": self.metadata, "in_step": self.in_step, "skipped": self.skipped,
                "set_aside": self.set_aside}
