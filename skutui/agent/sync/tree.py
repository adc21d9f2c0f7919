"""This node's synced files as the sync sees them: entries read from disk, whole trees
scanned, file contents read for a push. Both sides use it: the master to compare and push,
the backup to answer ``skutui node manifest`` and check what it holds."""

from __future__ import annotations

import errno
import functools
import grp
import hashlib
import os
import pwd
import stat
from collections.abc import Iterable
from pathlib import Path, PurePosixPath

from skutui.domain.syncplan import MANIFEST_VERSION, MAX_FILE_SIZE, SyncError, SyncFilter, is_staged


class TooLarge(SyncError):
    """A file larger than the sync takes: skipped and reported, the others still sync."""


def local_path(path: PurePosixPath | str, under: Path) -> Path:
    """Where a path of the sync protocol lives on this machine (``under`` is "/" except in
    tests, where a peer keeps its files below a folder)."""
    return under / str(path).lstrip("/")


def _base(st: os.stat_result) -> dict:
    return {"mode": stat.S_IMODE(st.st_mode), "uid": st.st_uid, "gid": st.st_gid,
            "user": _user_name(st.st_uid), "group": _group_name(st.st_gid),
            "mtime_ns": st.st_mtime_ns}


@functools.lru_cache(maxsize=256)
def _user_name(uid: int) -> str | None:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return None


@functools.lru_cache(maxsize=256)
def _group_name(gid: int) -> str | None:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return None


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


class HashCache:
    """File hashes by (inode, size, mtime, ctime): a reconcile re-reads only what changed."""

    def __init__(self) -> None:
        self._known: dict[str, tuple[tuple, str]] = {}

    def sha256(self, path: Path, st: os.stat_result) -> str:
        key = (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
        known = self._known.get(str(path))
        if known and known[0] == key:
            return known[1]
        digest = file_sha256(path)
        self._known[str(path)] = (key, digest)
        return digest

    def retain(self, paths: Iterable[Path]) -> None:
        """Forget files that are gone, so the cache never outgrows the tree."""
        keep = {str(p) for p in paths}
        self._known = {k: v for k, v in self._known.items() if k in keep}


def stat_entry(path: Path, cache: HashCache | None = None) -> dict | None:
    """The entry for one path, or None if it is gone or not syncable (socket, fifo, device)."""
    try:
        st = os.lstat(path)
        if stat.S_ISDIR(st.st_mode):
            return {"kind": "dir", **_base(st)}
        if stat.S_ISLNK(st.st_mode):
            return {"kind": "link", "target": os.readlink(path), **_base(st)}
        if stat.S_ISREG(st.st_mode):
            if st.st_size > MAX_FILE_SIZE:  # never read whole: it is not synced anyway
                return {"kind": "file", "sha256": "", "size": st.st_size, "oversized": True,
                        **_base(st)}
            sha = (cache or HashCache()).sha256(path, st)
            return {"kind": "file", "sha256": sha, "size": st.st_size, **_base(st)}
    except (FileNotFoundError, NotADirectoryError):
        return None
    return None


def read_file(path: Path) -> tuple[bytes, dict] | None:
    """Contents and the entry describing exactly those bytes (the file may change later)."""
    try:
        with open(path, "rb", opener=lambda p, f: os.open(p, f | os.O_NOFOLLOW)) as handle:
            st = os.fstat(handle.fileno())
            if not stat.S_ISREG(st.st_mode):
                return None
            if st.st_size > MAX_FILE_SIZE:
                raise TooLarge(too_large(st.st_size))
            data = handle.read()
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # it became a symlink meanwhile
            return None
        raise
    entry = {"kind": "file", "sha256": hashlib.sha256(data).hexdigest(), "size": len(data),
             **_base(st)}
    return data, entry


def too_large(size: int) -> str:
    return (f"{size / (1 << 20):.1f} MiB, more than the {MAX_FILE_SIZE >> 20} MiB the sync "
            "takes (it is for configuration, not data)")


def scan(roots: Iterable[PurePosixPath], sync_filter: SyncFilter, *, under: Path = Path("/"),
         cache: HashCache | None = None, staged: list[str] | None = None) -> dict[str, dict]:
    """Every syncable entry under the roots, keyed by protocol path; missing roots are left
    out. ``staged``, if given, receives the staged contents a push left behind."""
    entries: dict[str, dict] = {}
    _user_name.cache_clear()  # users and groups may have been added since the last scan
    _group_name.cache_clear()

    def walk(path: PurePosixPath) -> None:
        entry = stat_entry(local_path(path, under), cache)
        if entry is None:
            return
        entries[str(path)] = entry
        if entry["kind"] != "dir":
            return
        try:
            names = sorted(os.listdir(local_path(path, under)))
        except OSError:
            return
        for name in names:
            child = path / name
            if not sync_filter.skips(child):
                walk(child)
            elif staged is not None and is_staged(name):
                staged.append(str(child))

    for root in roots:
        if not sync_filter.skips(root):
            walk(PurePosixPath(root))
    if cache is not None:
        cache.retain(local_path(p, under) for p in entries)
    return entries


def manifest_document(roots: Iterable[str], excluded: Iterable[str], *,
                      under: Path = Path("/")) -> dict:
    """What ``skutui node manifest`` prints."""
    sync_filter = SyncFilter(tuple(PurePosixPath(e) for e in excluded))
    staged: list[str] = []
    entries = scan([PurePosixPath(r) for r in roots], sync_filter, under=under, staged=staged)
    return {"version": MANIFEST_VERSION, "entries": entries, "staged": staged}
