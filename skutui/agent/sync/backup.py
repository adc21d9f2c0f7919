"""The backup's side of the sync: one ``skutui node sync-apply`` request, applied here.

The master never touches the backup's files itself: it asks, and this side refuses any path
outside the synced roots or inside a never-synced folder before it changes anything.
"""

from __future__ import annotations

import contextlib
import grp
import os
import pwd
import shutil
from collections.abc import Iterable
from pathlib import Path, PurePosixPath

from skutui.agent.sync.tree import file_sha256, local_path
from skutui.domain.syncplan import SyncError, SyncFilter, checked_path, synced_roots
from skutui.system.files import fsync_directory as fsync_dir


def apply_request(request: dict, *, under: Path = Path("/"),
                  own_excluded: Iterable[PurePosixPath] = ()) -> dict:
    """Run one ``sync-apply`` request on this node (the backup). Deletes come first, then
    directories and links, then metadata, deepest directory last so setting a child's
    metadata never changes a parent's mtime afterwards."""
    roots = [PurePosixPath(r) for r in request.get("roots", [])]
    if not roots:
        raise SyncError("a sync request without synced paths")
    _, refused = synced_roots([str(r) for r in roots], Path("/"))
    if refused:
        raise SyncError("refusing to sync " + "; ".join(refused))
    excluded = tuple(PurePosixPath(e) for e in request.get("excluded", [])) + tuple(own_excluded)
    sync_filter = SyncFilter(excluded)
    deletes = [checked_path(p, roots, sync_filter) for p in request.get("delete", [])]
    entries = {checked_path(p, roots, sync_filter): e
               for p, e in request.get("entries", {}).items()}
    verify = {PurePosixPath(p) for p in request.get("verify", [])}
    touched: set[Path] = set()
    for path in sorted(deletes, key=lambda p: len(p.parts)):
        if path in roots:
            raise SyncError(f"refusing to delete {path}: it is a synced path itself")
        target = local_path(path, under)
        with contextlib.suppress(FileNotFoundError):
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
            else:
                target.unlink()
            touched.add(target.parent)
    missing, stale = [], []
    ordered = sorted(entries.items(), key=lambda item: (item[1]["kind"] == "dir",
                                                         -len(item[0].parts)))
    for path, entry in ordered:
        target = local_path(path, under)
        if entry["kind"] == "dir":
            target.mkdir(parents=True, exist_ok=True)
        elif entry["kind"] == "link":
            _place_link(target, entry["target"])
        elif not target.is_file() or target.is_symlink():
            missing.append(str(path))
            continue
        elif path in verify and not _has_contents(target, entry):
            stale.append(str(path))  # changed here behind the master's back
            continue
        _set_metadata(target, entry)
        touched.add(target.parent)
    for directory in touched:
        with contextlib.suppress(OSError):
            fsync_dir(directory)
    return {"deleted": len(deletes), "settled": len(entries) - len(missing) - len(stale),
            "missing": missing, "stale": stale}


def _has_contents(target: Path, entry: dict) -> bool:
    """Whether ``target`` has exactly the contents ``entry`` describes."""
    return target.stat().st_size == entry["size"] and file_sha256(target) == entry["sha256"]


def _place_link(target: Path, destination: str) -> None:
    temp = target.with_name(f".{target.name}.{os.getpid()}.link")
    temp.unlink(missing_ok=True)
    os.symlink(destination, temp)
    os.replace(temp, target)


def _local_ids(entry: dict) -> tuple[int, int]:
    uid, gid = entry["uid"], entry["gid"]
    with contextlib.suppress(KeyError, TypeError):
        uid = pwd.getpwnam(entry["user"]).pw_uid
    with contextlib.suppress(KeyError, TypeError):
        gid = grp.getgrnam(entry["group"]).gr_gid
    return uid, gid


def _set_metadata(target: Path, entry: dict) -> None:
    is_link = entry["kind"] == "link"
    os.chown(target, *_local_ids(entry), follow_symlinks=not is_link)
    if not is_link:
        os.chmod(target, entry["mode"])
    os.utime(target, ns=(entry["mtime_ns"], entry["mtime_ns"]), follow_symlinks=not is_link)
