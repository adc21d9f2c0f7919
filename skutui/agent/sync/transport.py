"""The sync's steps on the peer, over the kept SSH connection: ``skutui node manifest`` once
a comparison, and the steps a push takes kept running there, one JSON line a request:
``sync-put`` for the contents, ``sync-apply`` for the requests that put them in place
(``sync-get`` to read the peer's files). No process is started per push or per file, and
no SFTP, since skutui's key runs skutui's steps only."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
from collections.abc import Sequence
from pathlib import PurePosixPath

from skutui.domain import trust
from skutui.domain.generation import Generation
from skutui.domain.syncplan import MANIFEST_VERSION, SyncError, refusal
from skutui.peer import PeerError, PeerProcess, RemoteCommandFailed

PUSH_STEPS = ("sync-put", "sync-apply")
"""The steps a push takes on the peer, started while the trees are compared."""


class SshRemoteTree:
    """The peer's side of the sync protocol, over the kept :class:`PeerConnection`.
    ``warm``: the push's steps on the peer are started while the trees are compared, so the
    first push afterwards does not wait for a Python start-up there (the sync's own tree;
    a drift check, which only compares, starts none)."""

    def __init__(self, peer, command: Sequence[str] = trust.NODE_COMMAND,
                 timeout: float = 120.0, *, warm: bool = False) -> None:
        self.peer = peer
        self.command = tuple(command)
        self.timeout = timeout
        self.warm = warm
        self._kept: dict[str, PeerProcess] = {}
        """The kept steps on the peer, by step."""
        self._warming: asyncio.Future | None = None
        self.generation = Generation()
        """The peer's generation and role, and the staged leftovers under its roots, as its
        last manifest said."""
        self.role = ""
        self.staged: list[str] = []

    async def manifest(self, roots: Sequence[PurePosixPath],
                       excluded: Sequence[PurePosixPath]) -> dict[str, dict]:
        if self.warm and self._warming is None and any(map(self._closed, PUSH_STEPS)):
            self._warming = asyncio.gather(*map(self._ready, PUSH_STEPS))
        argv = [*self.command, "manifest", *(f"--exclude={e}" for e in excluded),
                *map(str, roots)]
        try:
            result = await self.peer.run_checked(argv, timeout=self.timeout)
        except RemoteCommandFailed as exc:
            raise SyncError(f"`manifest` failed on the peer: {_detail(exc)}") from None
        try:
            document = json.loads(result.stdout)
        except ValueError:
            raise SyncError(f"`manifest` on the peer printed no JSON: "
                            f"{result.stdout[:200]!r}") from None
        if document.get("version") != MANIFEST_VERSION:
            raise SyncError(f"the peer answers manifest version {document.get('version')!r}, "
                            f"this node speaks {MANIFEST_VERSION}: install the same skutui "
                            "version on both nodes")
        try:
            self.generation = Generation.from_dict(document.get("generation"))
        except ValueError as exc:
            raise SyncError(f"the peer's manifest names no valid generation: {exc}") from None
        self.role = str(document.get("role", ""))
        self.staged = [str(p) for p in document.get("staged", [])]
        return document["entries"]

    async def put(self, path: str, token: str, data: bytes) -> None:
        """Stage the contents of ``path`` on the peer under ``token``, root's alone, in its
        synced folder (:func:`~skutui.domain.syncplan.staged_path`); a request with the same
        token puts them in place."""
        await self._ask("sync-put", {"path": path, "stage": token,
                                     "data": base64.b64encode(data).decode()})

    async def get(self, path: str) -> bytes:
        """The contents of the peer's synced file ``path``."""
        answer = await self._ask("sync-get", {"path": path})
        if "refused" in answer:
            raise SyncError(f"the peer refused to read {answer['refused']}")
        return base64.b64decode(answer["data"])

    def _closed(self, step: str) -> bool:
        process = self._kept.get(step)
        return process is None or process.closed

    async def _ready(self, step: str) -> PeerProcess:
        """The kept ``step``, started and answering (an empty object is answered ``{}``)."""
        if self._closed(step):
            self._kept[step] = await self.peer.open_process([*self.command, step])
            await self._kept[step].ask("{}", self.timeout)
        return self._kept[step]

    async def _ask(self, step: str, request: dict) -> dict:
        warming, self._warming = self._warming, None
        if warming is not None:  # waited for, so that no step is started twice
            with contextlib.suppress(Exception):  # a failed start is tried again right below
                await warming
        try:
            process = await self._ready(step)
            answer = json.loads(await process.ask(json.dumps(request), self.timeout))
        except RemoteCommandFailed as exc:
            self._close(step)
            raise SyncError(f"`{step}` failed on the peer: {_detail(exc)}") from None
        except ValueError:
            self._close(step)
            raise SyncError(f"`{step}` on the peer answered no JSON; are both nodes on the "
                            "same skutui version?") from None
        except PeerError:
            self._close(step)
            raise
        if not isinstance(answer, dict):
            raise SyncError(f"`{step}` on the peer answered {answer!r}, not an object")
        if "error" in answer:
            of = f" of {request['path']}" if "path" in request else ""
            raise SyncError(f"`{step}`{of} failed on the peer: {answer['error']}")
        return answer

    def _close(self, step: str) -> None:
        process = self._kept.pop(step, None)
        if process is not None:
            process.close()

    def close(self) -> None:
        """End the kept processes on the peer (the next use starts them again)."""
        if self._warming is not None:
            self._warming.cancel()
            self._warming = None
        for step in list(self._kept):
            self._close(step)

    async def apply(self, request: dict) -> dict:
        """One request (:func:`~skutui.domain.syncplan.sync_request`) applied by the kept
        ``sync-apply``; the backup's refusal for its term is raised as the error the master
        acts on (:func:`~skutui.domain.syncplan.refusal`)."""
        answer = await self._ask("sync-apply", request)
        refused = refusal(answer)
        if refused is not None:
            raise refused
        return answer


def _detail(failed: RemoteCommandFailed) -> str:
    """What the step said when it failed, without skutui's prefix."""
    return (failed.stderr or failed.stdout).strip().removeprefix("skutui: ") or str(failed)
