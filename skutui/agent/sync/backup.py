"""The backup's side of the sync: the ``skutui node sync-apply`` requests, applied here.

The master never touches the backup's files itself: it asks, and this side decides. The
synced folders are this node's own (its cluster.toml's, handed in by the caller), never the
request's: a path outside them, or inside a never-synced folder, refuses the whole request
before anything changes. Before that, :func:`check_term` refuses a request from a node that
is not the only master, or whose generation is older than this node's (a
:class:`TermRefused`, whose document tells the master which, so it waits out a split brain
or takes this node's files). File contents arrive staged in their synced folder and are put
in place here, after those checks; files of another generation are kept aside first. The
contents themselves come through :func:`stage_contents` (``skutui node sync-put``), and a
master taking this node's files reads them through :func:`read_synced` (``skutui node
sync-get``): skutui's key does no SFTP.

Inside the folders every path is reached from its folder without following a symbolic link
in any component (:mod:`skutui.system.beneath`): a link planted on the way refuses that one
path, named in the answer, and the rest is applied. The owner is set before the mode, so
setuid and setgid land only on a file that is already its owner's.
"""

from __future__ import annotations

import base64
import contextlib
import errno
import grp
import hashlib
import json
import os
import pwd
import secrets
import shutil
import stat
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path, PurePosixPath

from skutui.agent.sync.tree import local_path
from skutui.domain.errors import SkutuiError
from skutui.domain.generation import Generation, set_aside_name
from skutui.domain.syncplan import (
    SyncError,
    SyncFilter,
    TermRefused,
    checked_path,
    is_staged,
    staged_path,
    within,
)
from skutui.system import generation
from skutui.system.beneath import DIRECTORY, UnsafePath, make_dirs, open_beneath, parent_of

FILE = os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW
"""How an existing entry is opened to read it or set its metadata: never a link, never
blocking on a fifo someone left under the name."""


def answer_line(line: str, what: str, serve: Callable[[dict], dict]) -> dict:
    """The answer to one line of a step the master keeps running (``sync-put``,
    ``sync-apply``, ``sync-get``): ``{}`` to ``{}``, the master asking whether the step is
    ready; ``{"error"}`` to a request that cannot be served, so that the step goes on with
    the next line; a refusal for this node's term as its document, which the master acts
    on."""
    try:
        request = json.loads(line)
    except ValueError as exc:
        return {"error": f"the {what} request is not JSON: {exc}"}
    if not isinstance(request, dict):
        return {"error": f"the {what} request is not a JSON object"}
    if request == {}:
        return {}
    try:
        return serve(request)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        return {"error": f"the {what} request is not valid ({type(exc).__name__}: {exc}); "
                         "are both nodes on the same skutui version?"}
    except TermRefused as exc:
        return exc.document
    except (SkutuiError, OSError) as exc:
        return {"error": str(exc)}


def check_term(request: dict, *, hostname: str, master: bool, held: Generation) -> Generation:
    """Before anything is written: refuse a push while this node is the master too (split
    brain), or one whose generation is older than the one this node holds. Returns the
    pushed generation."""
    if master:
        raise TermRefused(TermRefused.MASTER_TOO, held,
                          f"refusing configuration from the peer: this node ({hostname}) is the "
                          "master too. Two masters means split brain: check keepalived on both "
                          "nodes (`skutui status`)")
    try:
        pushed = Generation.from_dict(request.get("generation"))
    except ValueError as exc:
        raise SyncError(f"refusing configuration from the peer: {exc}") from None
    if pushed.older_than(held):
        raise TermRefused(
            TermRefused.NEWER_HELD, held,
            f"refusing configuration of generation {pushed.label}: this node ({hostname}) "
            f"holds generation {held.label}, which is newer; the master takes this node's "
            "files first")
    return pushed


def apply_checked(request: dict, roots: Sequence[PurePosixPath], *, hostname: str,
                  master: bool, generation_file: Path, set_aside_root: Path,
                  under: Path = Path("/"), own_excluded: Iterable[PurePosixPath] = ()) -> dict:
    """One ``sync-apply`` request as the backup serves it, inside ``roots`` (this node's own
    synced folders): :func:`check_term` first; files of another generation kept aside (in a
    folder of ``set_aside_root`` named for the two generations) as they are replaced; a
    commit makes this node hold the pushed generation."""
    held = generation.read(generation_file)
    pushed = check_term(request, hostname=hostname, master=master, held=held)
    aside = (set_aside_root / set_aside_name(held, pushed)
             if held.number and not held.same_files(pushed) else None)
    answer = apply_request(request, roots, under=under, own_excluded=own_excluded,
                           set_aside=aside)
    if answer["set_aside"]:
        answer["set_aside_in"] = str(aside)
    if request.get("commit"):
        generation.adopt(generation_file, pushed)
    return answer


def apply_request(request: dict, roots: Sequence[PurePosixPath], *, under: Path = Path("/"),
                  own_excluded: Iterable[PurePosixPath] = (),
                  set_aside: Path | None = None) -> dict:
    """Run one ``sync-apply`` request on this node, inside ``roots``, this node's own synced
    folders (whatever the request names). Deletes come first, then staged contents are put
    in place, then directories and links, then metadata, deepest directory last so setting
    a child's metadata never changes a parent's mtime afterwards. ``set_aside``: a folder
    where each file deleted or replaced is kept first."""
    if not roots:
        raise SyncError("no synced path is configured on this node; nothing is synced to it")
    roots = list(roots)
    excluded = tuple(PurePosixPath(e) for e in request.get("excluded", [])) + tuple(own_excluded)
    sync_filter = SyncFilter(excluded)
    deletes = [checked_path(p, roots, sync_filter) for p in request.get("delete", [])]
    entries = {checked_path(p, roots, sync_filter): e
               for p, e in request.get("entries", {}).items()}
    verify = {PurePosixPath(p) for p in request.get("verify", [])}
    place = [checked_path(p, roots, sync_filter) for p in request.get("place", [])]
    sweep = [_checked_staged(p, roots) for p in request.get("sweep", [])]
    token = str(request.get("stage", ""))
    if place and not (len(token) == 16 and all(c in "0123456789abcdef" for c in token)):
        raise SyncError(f"refusing staged contents under the token {token!r}")
    for path in deletes:
        if path in roots:
            raise SyncError(f"refusing to delete {path}: it is a synced path itself")
    for path in [*place, *(p for p, e in entries.items() if e["kind"] != "dir")]:
        if path in roots:
            kind = "file" if path in place else entries[path]["kind"]
            raise SyncError(f"refusing {path}: a synced path itself is a directory, not a {kind}")
    kept: list[str] = []
    missing, stale = [], []
    with SyncedFolders(roots, under, set_aside, kept) as folders:
        for path in sorted(deletes, key=lambda p: len(p.parts)):
            folders.attempt(path, folders.delete)
        for path in sweep:
            folders.attempt(path, folders.remove)
        for path in place:
            staged = PurePosixPath(staged_path(str(path), token, roots))
            if folders.attempt(path, folders.place, staged.name) == "missing":
                missing.append(str(path))
        ordered = sorted(entries.items(), key=lambda item: (item[1]["kind"] == "dir",
                                                             -len(item[0].parts)))
        unplaced = set(missing)
        for path, entry in ordered:
            if str(path) in unplaced or path in folders.refused:
                continue  # its contents never came: the old file keeps its own metadata
            state = folders.attempt(path, folders.settle, entry, path in verify)
            if state == "missing":
                missing.append(str(path))
            elif state == "stale":
                stale.append(str(path))  # changed here behind the master's back
        folders.sync_directories()
    refused = folders.refused
    settled = len([p for p in entries if str(p) not in missing and str(p) not in stale
                   and p not in refused])
    return {"deleted": len([p for p in deletes if p not in refused]), "settled": settled,
            "missing": missing, "stale": stale, "set_aside": kept,
            "refused": [f"{path}: {why}" for path, why in refused.items()]}


def stage_contents(request: dict, roots: Sequence[PurePosixPath], *, under: Path = Path("/"),
                   own_excluded: Iterable[PurePosixPath] = ()) -> dict:
    """One file's contents (``{"path", "stage", "data"}``, the data in base64) staged where a
    ``sync-apply`` request with the same token puts them in place: in the path's own synced
    folder (this node's, whatever the master's are), root's alone, written to a temporary
    name, fsynced and renamed, so no half file is ever staged. Nothing else is written; the
    staged name has no folder on the way to follow."""
    path = checked_path(str(request["path"]), list(roots), SyncFilter(tuple(own_excluded)))
    token = str(request["stage"])
    if not (len(token) == 16 and all(c in "0123456789abcdef" for c in token)):
        raise SyncError(f"refusing staged contents under the token {token!r}")
    data = base64.b64decode(request["data"], validate=True)
    staged = PurePosixPath(staged_path(str(path), token, roots))
    folder = local_path(staged.parent, under)
    folder.mkdir(mode=0o755, parents=True, exist_ok=True)
    fd = os.open(folder, DIRECTORY)
    try:
        _write_whole(fd, staged.name, [data])
    finally:
        os.close(fd)
    return {"staged": str(staged)}


def _write_whole(folder: int, name: str, chunks: Iterable[bytes]) -> None:
    """``chunks`` as the file ``name`` in ``folder``, root's alone: written to a temporary
    name beside it, fsynced and renamed over it, so no half file is ever seen there."""
    temp = f".{name}.{secrets.token_hex(4)}.tmp"
    try:
        out = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                      0o600, dir_fd=folder)
        try:
            for chunk in chunks:
                view = memoryview(chunk)
                while view:
                    view = view[os.write(out, view):]
            os.fsync(out)
        finally:
            os.close(out)
        os.rename(temp, name, src_dir_fd=folder, dst_dir_fd=folder)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp, dir_fd=folder)
        raise


def read_synced(request: dict, roots: Sequence[PurePosixPath], *, under: Path = Path("/"),
                own_excluded: Iterable[PurePosixPath] = ()) -> dict:
    """One synced file's contents (``{"path"}``), for a master that takes this node's files:
    only a file inside this node's own synced folders and outside its never-synced one,
    reached without following a symbolic link. ``{"data"}`` in base64, or ``{"refused"}``."""
    roots = list(roots)
    path = checked_path(str(request["path"]), roots, SyncFilter(tuple(own_excluded)))
    root = next(r for r in roots if path == r or r in path.parents)
    folder = os.open(local_path(root, under), DIRECTORY)
    try:
        fd = open_beneath(folder, str(path.relative_to(root)), FILE)
    except UnsafePath as exc:
        return {"refused": f"{path}: {root / exc.where} is {exc.what}"}
    finally:
        os.close(folder)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return {"refused": f"{path}: not a file"}
        with open(fd, "rb", closefd=False) as reading:
            data = reading.read()
    finally:
        os.close(fd)
    return {"data": base64.b64encode(data).decode()}


def _checked_staged(text: str, roots: list[PurePosixPath]) -> PurePosixPath:
    """A staged leftover to remove: named as only a staged content is, inside a root."""
    path = PurePosixPath(text)
    if (not path.is_absolute() or os.path.normpath(text) != text or not is_staged(path.name)
            or not any(within(str(path.parent), str(r)) for r in roots)):
        raise SyncError(f"refusing to remove {text}: not a staged content inside the synced paths")
    return path


class SyncedFolders:
    """This node's synced folders, each opened once per request; every path of the request
    is reached from its folder's descriptor, never through a symbolic link. A link on the
    way refuses that path alone (``refused``: path -> why)."""

    def __init__(self, roots: Sequence[PurePosixPath], under: Path, set_aside: Path | None,
                 kept: list[str]) -> None:
        self.roots = list(roots)
        self.under = under
        self.set_aside = set_aside
        self.kept = kept
        self.refused: dict[PurePosixPath, str] = {}
        self._fds: dict[PurePosixPath, int] = {}
        self._touched: set[tuple[int, str]] = set()

    def __enter__(self) -> SyncedFolders:
        return self

    def __exit__(self, *exc: object) -> None:
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()

    def attempt(self, path: PurePosixPath, action: Callable[..., object], *args: object) -> object:
        """Run ``action`` on ``path`` (its folder's descriptor, the path relative to it, the
        path itself); a link on the way refuses this path alone."""
        root = next(r for r in self.roots if path == r or r in path.parents)
        if root not in self._fds:
            folder = local_path(root, self.under)
            folder.mkdir(mode=0o755, parents=True, exist_ok=True)
            self._fds[root] = os.open(folder, DIRECTORY)
        relative = str(path.relative_to(root)).removeprefix(".")
        try:
            return action(self._fds[root], relative, path, *args)
        except UnsafePath as exc:
            self.refused[path] = f"{root / exc.where} is {exc.what}"
            return "refused"

    def _touch(self, fd: int, relative: str) -> None:
        self._touched.add((fd, str(PurePosixPath(relative).parent)))

    def sync_directories(self) -> None:
        """Make the renames and removals durable: each directory they touched, fsynced."""
        for folder, relative in self._touched:
            with contextlib.suppress(OSError):
                fd = open_beneath(folder, relative, DIRECTORY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
        self._touched.clear()

    # --- what a request does --------------------------------------------------------------

    def delete(self, fd: int, relative: str, path: PurePosixPath) -> None:
        try:
            with parent_of(fd, relative) as (parent, name):
                info = os.stat(name, dir_fd=parent, follow_symlinks=False)
                self._keep(parent, name, info, path)
                if stat.S_ISDIR(info.st_mode):
                    shutil.rmtree(name, dir_fd=parent)
                else:
                    os.unlink(name, dir_fd=parent)
        except FileNotFoundError:
            return
        self._touch(fd, relative)

    def remove(self, fd: int, relative: str, path: PurePosixPath) -> None:
        """A staged leftover, by its own name (a link by that name is removed, not followed)."""
        with contextlib.suppress(FileNotFoundError), parent_of(fd, relative) as (parent, name):
            os.unlink(name, dir_fd=parent)

    def place(self, fd: int, relative: str, path: PurePosixPath, staged: str) -> str:
        """Put the contents staged as ``staged`` (in the synced folder itself) in place of
        ``relative``: "missing" if they never arrived."""
        try:
            info = os.stat(staged, dir_fd=fd, follow_symlinks=False)
        except FileNotFoundError:
            return "missing"
        if not stat.S_ISREG(info.st_mode):
            return "missing"
        try:
            with parent_of(fd, relative) as (parent, name):
                with contextlib.suppress(FileNotFoundError):
                    self._keep(parent, name,
                               os.stat(name, dir_fd=parent, follow_symlinks=False), path)
                try:
                    os.rename(staged, name, src_dir_fd=fd, dst_dir_fd=parent)
                except OSError as exc:
                    if exc.errno != errno.EXDEV:
                        raise
                    _copy_across(fd, staged, parent, name)  # a mount inside the synced folder
        except UnsafePath:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(staged, dir_fd=fd)  # never put in place under this token
            raise
        self._touch(fd, relative)
        return "placed"

    def settle(self, fd: int, relative: str, path: PurePosixPath, entry: dict,
               verify: bool) -> str:
        """Make the entry at ``relative`` what ``entry`` says (a directory or link is made if
        missing); "missing" when a file is not there as a file, "stale" when ``verify``
        finds other contents."""
        kind = entry["kind"]
        if kind == "link":
            return self._settle_link(fd, relative, entry)
        if kind == "dir":
            make_dirs(fd, relative)
        try:
            target = open_beneath(fd, relative, FILE | (os.O_DIRECTORY if kind == "dir" else 0))
        except FileNotFoundError:
            return "missing"
        except UnsafePath as exc:
            if exc.where == relative and kind == "file":
                return "missing"  # a link where the file should be is not the file
            raise
        try:
            info = os.fstat(target)
            wanted = stat.S_ISDIR if kind == "dir" else stat.S_ISREG
            if not wanted(info.st_mode):
                return "missing"
            if verify and not _has_contents(target, info, entry):
                return "stale"
            _set_metadata(target, entry)
        finally:
            os.close(target)
        self._touch(fd, relative)
        return "settled"

    def _settle_link(self, fd: int, relative: str, entry: dict) -> str:
        with parent_of(fd, relative) as (parent, name):
            temp = f".{name}.{os.getpid()}.link"
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp, dir_fd=parent)
            os.symlink(entry["target"], temp, dir_fd=parent)
            os.rename(temp, name, src_dir_fd=parent, dst_dir_fd=parent)
            os.chown(name, *_local_ids(entry), dir_fd=parent, follow_symlinks=False)
            os.utime(name, ns=(entry["mtime_ns"], entry["mtime_ns"]), dir_fd=parent,
                     follow_symlinks=False)
        self._touch(fd, relative)
        return "settled"

    def _keep(self, parent: int, name: str, info: os.stat_result, path: PurePosixPath) -> None:
        """Copy what is at ``name`` into the set-aside folder (at its own path) before it
        goes; a link is kept as the link, never followed."""
        if self.set_aside is None:
            return
        copy = self.set_aside / str(path).lstrip("/")
        copy.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        if stat.S_ISLNK(info.st_mode):
            copy.unlink(missing_ok=True)
            os.symlink(os.readlink(name, dir_fd=parent), copy)
        elif stat.S_ISDIR(info.st_mode):
            folder = os.open(name, DIRECTORY | os.O_NOFOLLOW, dir_fd=parent)
            try:  # the folder as opened: what is inside is copied, links as links
                shutil.copytree(f"/proc/self/fd/{folder}", copy, symlinks=True,
                                dirs_exist_ok=True)
            finally:
                os.close(folder)
        elif stat.S_ISREG(info.st_mode):
            source = os.open(name, FILE, dir_fd=parent)
            with open(source, "rb") as reading, open(copy, "wb") as writing:
                shutil.copyfileobj(reading, writing)
            os.chmod(copy, stat.S_IMODE(info.st_mode) & 0o777)
            os.utime(copy, ns=(info.st_atime_ns, info.st_mtime_ns))
        else:
            return
        self.kept.append(str(path))


def _copy_across(source_dir: int, staged: str, parent: int, name: str) -> None:
    """Staged contents put in place across file systems: copied beside the target, fsynced,
    renamed over it; the staged copy removed."""
    source = os.open(staged, FILE, dir_fd=source_dir)
    try:
        _write_whole(parent, name, iter(lambda: os.read(source, 1 << 20), b""))
    finally:
        os.close(source)
    os.unlink(staged, dir_fd=source_dir)


def _has_contents(fd: int, info: os.stat_result, entry: dict) -> bool:
    """Whether the open file has exactly the contents ``entry`` describes."""
    if info.st_size != entry["size"]:
        return False
    digest = hashlib.sha256()
    for chunk in iter(lambda: os.read(fd, 1 << 20), b""):
        digest.update(chunk)
    return digest.hexdigest() == entry["sha256"]


def _local_ids(entry: dict) -> tuple[int, int]:
    uid, gid = entry["uid"], entry["gid"]
    with contextlib.suppress(KeyError, TypeError):
        uid = pwd.getpwnam(entry["user"]).pw_uid
    with contextlib.suppress(KeyError, TypeError):
        gid = grp.getgrnam(entry["group"]).gr_gid
    return uid, gid


def _set_metadata(fd: int, entry: dict) -> None:
    """Owner first, then the mode: setuid and setgid are set only on a file that is already
    its owner's (and chown would clear them anyway)."""
    os.fchown(fd, *_local_ids(entry))
    os.fchmod(fd, entry["mode"])
    os.utime(fd, ns=(entry["mtime_ns"], entry["mtime_ns"]))
