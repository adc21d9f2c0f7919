"""Configuration sync, master to backup, in real time, over the kept SSH connection.

The master watches the synced paths (inotify) and pushes only what changed; on start, when
the peer returns, after an inotify overflow and every :data:`RECONCILE_EVERY` seconds it
compares both trees by content hash and fixes every difference (drift on the backup
included). The backup never pushes: every push checks this node's role first.

On the wire (see :class:`SshRemoteTree`):

1. ``skutui node manifest [--exclude DIR]… ROOT…`` on the peer prints
   ``{"version": 1, "entries": {path: entry}}``; an entry is ``{"kind": "file"|"dir"|"link",
   "mode", "uid", "gid", "mtime_ns"}`` plus ``sha256`` and ``size`` for a file, ``target``
   for a link.
2. ``skutui node sync-apply`` with ``{"roots", "excluded", "delete": [path], "entries":
   {path: entry}}`` on stdin deletes first, then creates directories and links and sets
   mode, owner and mtime of every entry; it refuses any path outside the roots or inside an
   excluded (never-synced) folder. Run before the file writes (deletes, new directories) and
   after them (metadata).
3. File contents go over SFTP, to a hidden temporary name beside the target, fsynced, then
   renamed over it (``PeerConnection.write_file_atomic``): the backup never sees half a file.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import functools
import grp
import hashlib
import json
import os
import pwd
import shutil
import stat
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from skutui.system.inotify import CREATED, OVERFLOW, TreeWatcher
from skutui.domain.errors import Failed
from skutui.system.files import fsync_directory as fsync_dir

MANIFEST_VERSION = 1
DEBOUNCE = 0.02
"""A burst of changes (an editor's save, a package upgrade) ends when no change came for
this many seconds: one push per burst, without delaying a lone change much."""
GATHER_LIMIT = 0.5
"""A burst that never goes quiet is pushed after this many seconds all the same."""
RECONCILE_EVERY = 300.0
RETRY_AFTER_ERROR = 30.0
MAX_FILE_SIZE = 64 * 1024 * 1024
"""Larger files are not synced (reported): these are configuration trees, not data."""

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


class NotMaster(SyncError):
    pass


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


def local_path(path: PurePosixPath | str, under: Path) -> Path:
    """Where a path of the sync protocol lives on this machine (``under`` is "/" except in
    tests, where a peer keeps its files below a folder)."""
    return under / str(path).lstrip("/")


# --- entries -------------------------------------------------------------------------------

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


def _owner(entry: dict) -> tuple:
    """Owners compare by name, as rsync does: a service user (haproxy) rarely has the same
    number on both nodes. A name unknown on one side falls back to the number."""
    return (entry.get("user") or entry["uid"], entry.get("group") or entry["gid"])


def _local_ids(entry: dict) -> tuple[int, int]:
    uid, gid = entry["uid"], entry["gid"]
    with contextlib.suppress(KeyError, TypeError):
        uid = pwd.getpwnam(entry.get("user")).pw_uid
    with contextlib.suppress(KeyError, TypeError):
        gid = grp.getgrnam(entry.get("group")).gr_gid
    return uid, gid


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
                raise SyncError(f"{path} is {st.st_size} bytes, more than the "
                                f"{MAX_FILE_SIZE >> 20} MiB sync takes; it was not pushed")
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


def scan(roots: Iterable[PurePosixPath], sync_filter: SyncFilter, *, under: Path = Path("/"),
         cache: HashCache | None = None) -> dict[str, dict]:
    """Every syncable entry under the roots, keyed by protocol path; missing roots are left out."""
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
    return {"version": MANIFEST_VERSION,
            "entries": scan([PurePosixPath(r) for r in roots], sync_filter, under=under)}


# --- the backup's side: apply a request --------------------------------------------------

def _checked_path(text: str, roots: list[PurePosixPath], sync_filter: SyncFilter) -> PurePosixPath:
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
    deletes = [_checked_path(p, roots, sync_filter) for p in request.get("delete", [])]
    entries = {_checked_path(p, roots, sync_filter): e
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


def _set_metadata(target: Path, entry: dict) -> None:
    is_link = entry["kind"] == "link"
    os.chown(target, *_local_ids(entry), follow_symlinks=not is_link)
    if not is_link:
        os.chmod(target, entry["mode"])
    os.utime(target, ns=(entry["mtime_ns"], entry["mtime_ns"]), follow_symlinks=not is_link)


# --- the master's side: what differs, and pushing it -------------------------------------

@dataclass
class Plan:
    deletes: list[str] = field(default_factory=list)
    new_dirs: dict[str, dict] = field(default_factory=dict)
    """Created before any file is written into them."""
    files: list[str] = field(default_factory=list)
    """Contents to send."""
    settle: dict[str, dict] = field(default_factory=dict)
    """Metadata (and links, and directories) to set once the contents are in place."""
    in_step: int = 0




def _same(local: dict, remote: dict) -> bool:
    """Directory mtimes move whenever anything inside changes, on both nodes, at different
    moments: comparing them would report drift forever, so directories compare without."""
    kind = local["kind"]
    if kind != remote["kind"] or _owner(local) != _owner(remote):
        return False
    keys = {"file": ("sha256", "mode", "mtime_ns"), "dir": ("mode",),
            "link": ("target", "mtime_ns")}[kind]
    return all(local.get(k) == remote.get(k) for k in keys)


def plan_changes(local: dict[str, dict], remote: dict[str, dict],
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


def _within(path: str, top: str) -> bool:
    return path == top or PurePosixPath(top) in PurePosixPath(path).parents


@dataclass
class PushReport:
    kind: str
    """``push`` (changes the watcher saw) or ``reconcile`` (whole trees compared)."""
    written: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    metadata: list[str] = field(default_factory=list)
    in_step: int = 0
    absent_roots: list[str] = field(default_factory=list)

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

    def to_data(self) -> dict:
        return {"sync": self.kind, "written": self.written, "deleted": self.deleted,
                "metadata": self.metadata, "in_step": self.in_step}


class SshRemoteTree:
    """The peer's side of the sync protocol, over the kept :class:`PeerConnection`."""

    def __init__(self, peer, command: Sequence[str] = ("skutui", "node"),
                 timeout: float = 120.0) -> None:
        self.peer = peer
        self.command = tuple(command)
        self.timeout = timeout

    async def manifest(self, roots: Sequence[PurePosixPath],
                       excluded: Sequence[PurePosixPath]) -> dict[str, dict]:
        argv = [*self.command, "manifest", *(f"--exclude={e}" for e in excluded),
                *map(str, roots)]
        document = await self._json(argv)
        if document.get("version") != MANIFEST_VERSION:
            raise SyncError(f"the peer answers manifest version {document.get('version')!r}, "
                            f"this node speaks {MANIFEST_VERSION}: install the same skutui "
                            "version on both nodes")
        return document["entries"]

    async def put(self, path: str, data: bytes, mode: int) -> None:
        await self.peer.write_file_atomic(path, data, mode)

    async def apply(self, request: dict) -> dict:
        return await self._json([*self.command, "sync-apply"], json.dumps(request))

    async def _json(self, argv: list[str], input: str | None = None) -> dict:
        from skutui.peer import RemoteCommandFailed

        try:
            result = await self.peer.run_checked(argv, input=input, timeout=self.timeout)
        except RemoteCommandFailed as exc:
            detail = (exc.stderr or exc.stdout).strip().removeprefix("skutui: ") or str(exc)
            raise SyncError(f"`{argv[2]}` failed on the peer: {detail}") from None
        try:
            return json.loads(result.stdout)
        except ValueError:
            raise SyncError(f"`{argv[2]}` on the peer printed no JSON: "
                            f"{result.stdout[:200]!r}") from None


class Pusher:
    """Makes the peer's copy of the roots equal to this node's, sending only differences.

    ``known`` is the peer's state as last confirmed; None means unknown (never compared,
    or a push broke off), and the next push then compares whole trees.
    """

    def __init__(self, roots: Sequence[PurePosixPath], sync_filter: SyncFilter, remote, *,
                 may_push: Callable[[], bool]) -> None:
        self.roots = list(roots)
        self.filter = sync_filter
        self.remote = remote
        self.may_push = may_push
        self.known: dict[str, dict] | None = None
        self.cache = HashCache()

    def _check_master(self) -> None:
        if not self.may_push():
            raise NotMaster("this node is not the master: it never pushes configuration")

    async def reconcile(self) -> PushReport:
        self._check_master()
        remote = await self.remote.manifest(self.roots, self.filter.excluded)
        local = await asyncio.to_thread(scan, self.roots, self.filter, cache=self.cache)
        present = [str(r) for r in self.roots if str(r) in local]
        scope = set(local) | {p for p in remote if any(_within(p, r) for r in present)}
        report = await self._apply(plan_changes(local, remote, scope), remote, "reconcile")
        report.absent_roots = [str(r) for r in self.roots if str(r) not in local]
        return report

    async def push(self, paths: Iterable[Path | str]) -> PushReport:
        if self.known is None:
            return await self.reconcile()
        scope: set[str] = set()
        local: dict[str, dict] = {}
        for raw in paths:
            path = PurePosixPath(raw)
            if self.filter.skips(path) or not any(_within(str(path), str(r)) for r in self.roots):
                continue
            scope.add(str(path))
            entry = stat_entry(Path(path), self.cache)
            if entry is None:
                if path in self.roots:
                    scope.discard(str(path))  # a vanished root is never mirrored as a delete
                continue
            local[str(path)] = entry
            if entry["kind"] == "dir" and str(path) not in self.known:
                inside = scan([path], self.filter, cache=self.cache)  # moved in whole
                local.update(inside)
                scope.update(inside)
            for parent in path.parents:  # a directory the peer lacks comes first
                if str(parent) in self.known or not any(_within(str(parent), str(r)) for r in self.roots):
                    break
                parent_entry = stat_entry(Path(parent))
                if parent_entry is not None:
                    local[str(parent)] = parent_entry
                    scope.add(str(parent))
        return await self._apply(plan_changes(local, self.known, scope), self.known, "push")

    async def _apply(self, plan: Plan, base: dict[str, dict], kind: str) -> PushReport:
        self._check_master()
        self.known = None  # until this push completes, the peer's state is not known
        known = dict(base)
        if plan.deletes or plan.new_dirs:
            await self.remote.apply(self._request(delete=plan.deletes, entries=plan.new_dirs))
            for gone in plan.deletes:
                for path in [p for p in known if _within(p, gone)]:
                    del known[path]
        settle = dict(plan.settle)
        written: list[str] = []
        await self._write(plan.files, settle, written)
        if settle:
            # Files whose metadata alone changed: the peer checks it still holds the same
            # contents; one changed there by hand comes back stale and is written again.
            verify = [p for p, e in settle.items() if e["kind"] == "file" and p not in written]
            result = await self.remote.apply(self._request(entries=settle, verify=verify))
            if result.get("stale"):
                again = {p: settle.pop(p) for p in result["stale"]}
                await self._write(list(again), again, written)
                if again:
                    result = await self.remote.apply(self._request(entries=again))
                settle.update(again)
            if result.get("missing"):
                raise SyncError(f"the peer lost files while they were pushed: "
                                f"{', '.join(result['missing'])}")
        known.update(settle)
        self.known = known
        metadata = [p for p in settle if p not in written and p not in plan.new_dirs]
        return PushReport(kind, written=written, deleted=plan.deletes, metadata=metadata,
                          in_step=plan.in_step)

    async def _write(self, paths: Iterable[str], settle: dict, written: list[str]) -> None:
        """Push the contents of ``paths``; their entries go into ``settle``."""
        for path in paths:
            content = await asyncio.to_thread(read_file, Path(path))
            if content is None:
                settle.pop(path, None)  # gone meanwhile: its delete event follows
                continue
            data, entry = content
            self._check_master()
            await self.remote.put(path, data, entry["mode"])
            settle[path] = entry
            written.append(path)

    def _request(self, *, delete: Sequence[str] = (), entries: dict | None = None,
                 verify: Sequence[str] = ()) -> dict:
        return {"roots": [str(r) for r in self.roots],
                "excluded": [str(e) for e in self.filter.excluded],
                "delete": list(delete), "entries": entries or {}, "verify": list(verify)}


Report = Callable[..., object]


class SyncService:
    """The master's sync: the inotify watcher feeding the pusher, as one task.

    ``running`` is what the agent publishes as ``"sync"``: true exactly while the watcher
    is open (the role table's "sync watcher running").
    """

    def __init__(self, pusher: Pusher, *, report: Report, peer_name: str,
                 peer_ready: Callable[[], bool], peer_lost: Callable[[BaseException], None],
                 debounce: float = DEBOUNCE, reconcile_every: float = RECONCILE_EVERY,
                 retry_after: float = RETRY_AFTER_ERROR) -> None:
        self.pusher = pusher
        self.report = report
        self.peer_name = peer_name
        self.peer_ready = peer_ready
        self.peer_lost = peer_lost
        self.debounce = debounce
        self.reconcile_every = reconcile_every
        self.retry_after = retry_after
        self.watcher: TreeWatcher | None = None
        self.last_push: float | None = None
        self.last_reconcile: float | None = None
        self.last_error: str | None = None
        self._dirty: set[Path] = set()
        self._need_reconcile = True
        self._announce = True
        self._retry_at = 0.0
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()

    @property
    def running(self) -> bool:
        return self.watcher is not None and not self.watcher.closed

    def status(self) -> dict:
        return {"running": self.running, "roots": [str(r) for r in self.pusher.roots],
                "last_push": self.last_push, "last_reconcile": self.last_reconcile,
                "pending_changes": len(self._dirty), "needs_reconcile": self._need_reconcile,
                "error": self.last_error}

    def request_reconcile(self, announce: bool = True) -> None:
        """Compare whole trees at the next step (the peer came back, or was just set up)."""
        self._need_reconcile = True
        self._announce = self._announce or announce
        self._retry_at = 0.0
        self._wake.set()

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        self.watcher = TreeWatcher([Path(r) for r in self.pusher.roots], skip=self.filter_skips)
        loop.add_reader(self.watcher.fileno(), self._drain)
        self.report("sync", f"sync watcher started on {', '.join(map(str, self.pusher.roots))}",
                    roots=[str(r) for r in self.pusher.roots])
        next_compare = loop.time() + self.reconcile_every
        self._wake.set()  # compare whole trees first
        try:
            while True:
                wait = min(next_compare, self._retry_at or next_compare) - loop.time()
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), max(wait, 0))
                    await self._gather()
                self._wake.clear()
                if loop.time() >= next_compare:
                    next_compare = loop.time() + self.reconcile_every
                    self._need_reconcile = True
                    for root in self.watcher.watch_missing_roots():
                        self._dirty.add(root)
                await self.flush()
        finally:
            with contextlib.suppress(Exception):
                loop.remove_reader(self.watcher.fileno())
            self.watcher.close()
            self.report("sync", "sync watcher stopped")

    async def _gather(self) -> None:
        """Return once changes have stopped coming for ``debounce`` seconds, or after
        GATHER_LIMIT seconds of changes that never stop."""
        loop = asyncio.get_running_loop()
        end = loop.time() + GATHER_LIMIT
        while (remaining := end - loop.time()) > 0:
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), min(self.debounce, remaining))
            except asyncio.TimeoutError:
                return

    def filter_skips(self, path: Path) -> bool:
        return self.pusher.filter.skips(path)

    async def flush(self) -> None:
        """Push every change seen so far, now; the replayer calls this before each command,
        so a command never reaches the backup ahead of the files it was written against."""
        async with self._lock:
            self._drain()
            await self._step()

    def _drain(self) -> None:
        if not self.running:
            return
        try:
            changes = self.watcher.read()
        except OSError as exc:
            self.report("sync", f"reading inotify failed: {exc}; comparing whole trees",
                        level="error")
            self._need_reconcile = True
            changes = []
        for change in changes:
            if change.what == OVERFLOW:
                self._need_reconcile = True
            elif change.what == CREATED and not change.is_dir and not change.path.is_symlink():
                continue  # a new file is pushed when its writer closes it, not half-written
            else:
                self._dirty.add(change.path)
        if changes:
            self._wake.set()

    async def _step(self) -> None:
        from skutui.peer import PeerError, PeerUnreachable

        if not (self._need_reconcile or self._dirty):
            return
        if not self.peer_ready():
            if self._dirty:  # the whole trees are compared when the peer is back
                self._need_reconcile = True
                self._dirty.clear()
            return
        if self._retry_at and time.monotonic() < self._retry_at:
            return
        dirty, self._dirty = self._dirty, set()
        whole = self._need_reconcile or self.pusher.known is None
        self._need_reconcile = False
        try:
            report = await (self.pusher.reconcile() if whole else self.pusher.push(dirty))
        except PeerUnreachable as exc:
            self._need_reconcile = True
            self.peer_lost(exc)
            return
        except NotMaster as exc:
            self._need_reconcile = True
            self.report("sync", f"push refused: {exc}", level="warning")
            return
        except (PeerError, SyncError, OSError) as exc:
            self._need_reconcile = True
            self._retry_at = time.monotonic() + self.retry_after
            self.last_error = str(exc)
            self.report("sync", f"sync to {self.peer_name} failed: {exc}; comparing whole "
                        f"trees again in {self.retry_after:g} s", level="error")
            return
        self._retry_at = 0.0
        self.last_error = None
        now = time.time()
        self.last_push = now if report.changed else self.last_push
        if report.kind == "reconcile":
            self.last_reconcile = now
        if report.absent_roots:
            self.report("sync", f"synced path missing on this node, left alone on "
                        f"{self.peer_name}: {', '.join(report.absent_roots)}", level="warning")
        if report.changed or (report.kind == "reconcile" and self._announce):
            self.report("sync", report.summary(self.peer_name), **report.to_data())
        if report.kind == "reconcile":
            self._announce = False
