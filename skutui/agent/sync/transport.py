"""The sync's steps on the peer, over the kept SSH connection: its ``skutui node`` commands
for the manifest and the requests, SFTP for the contents."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import PurePosixPath

from skutui.domain.syncplan import MANIFEST_VERSION, SyncError
from skutui.peer import RemoteCommandFailed


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
