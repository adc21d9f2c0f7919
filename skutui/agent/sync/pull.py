"""A master whose peer holds a newer generation takes the peer's files before it pushes.

This is the only time a master writes what the peer holds: it returned (a failback, a
healed split brain) with files older than those its peer served meanwhile. The files are
read through the peer's ``skutui node sync-get`` (only inside its synced folders, never
through a symbolic link), staged here, and put in place by the backup's own applier running on this
node, which first keeps every file of this node that it replaces or deletes (nothing this
node held is lost in silence).
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from skutui.agent.sync.backup import apply_request
from skutui.agent.sync.tree import local_path, scan
from skutui.domain.generation import Generation
from skutui.domain.syncplan import SyncError, SyncFilter, plan_changes, staged_path, sync_request, within
from skutui.system.files import write_bytes_atomic


@dataclass
class PullReport:
    generation: Generation
    written: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    """This node's own files, kept aside before they were replaced or deleted."""
    kept_in: Path | None = None


async def pull(roots: Sequence[PurePosixPath], sync_filter: SyncFilter, remote,
               set_aside: Path, *, under: Path = Path("/")) -> PullReport:
    """Make this node's roots hold exactly what the peer's hold (its too-large files
    left alone), keeping this node's replaced files in ``set_aside``."""
    theirs = await remote.manifest(roots, sync_filter.excluded)
    generation = remote.generation
    mine = await asyncio.to_thread(scan, roots, sync_filter, under=under)
    oversized = {p for p, e in theirs.items() if e.get("oversized")}
    present = [str(r) for r in roots if str(r) in theirs]
    scope = (set(theirs) | {p for p in mine if any(within(p, r) for r in present)}) - oversized
    plan = plan_changes(theirs, mine, scope)
    report = PullReport(generation, deleted=list(plan.deletes), kept_in=set_aside)
    token = secrets.token_hex(8)
    excluded = tuple(sync_filter.excluded)

    def apply(**parts) -> dict:
        request = sync_request(sync_filter, generation=generation.to_dict(), stage=token, **parts)
        return apply_request(request, roots, under=under, own_excluded=excluded,
                             set_aside=set_aside)

    if plan.deletes or plan.new_dirs:
        report.kept += (await asyncio.to_thread(apply, delete=plan.deletes,
                                                entries=plan.new_dirs))["set_aside"]
    for path in plan.files:
        data = await remote.get(path)
        if hashlib.sha256(data).hexdigest() != theirs[path]["sha256"]:
            raise SyncError(f"{path} changed on the peer while it was read; taking its files "
                            "again")
        await asyncio.to_thread(write_bytes_atomic, local_path(staged_path(path, token, roots), under),
                                data)
        report.written.append(path)
    if plan.settle:
        answer = await asyncio.to_thread(apply, entries=plan.settle, place=plan.files)
        report.kept += answer["set_aside"]
        if answer["missing"]:
            raise SyncError(f"files taken from the peer went missing here: "
                            f"{', '.join(answer['missing'])}")
    return report
