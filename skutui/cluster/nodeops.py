"""Node operations, the same on both sides: in-process for this node, over SSH for the peer.

``LocalOps`` runs :class:`~skutui.system.node.LocalNode` in a thread (its work is blocking: files,
subprocesses); ``RemoteOps`` runs ``skutui node …`` on the peer over the kept connection.
The lifecycle drives both through this one interface, and tests drive it through fakes.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any, Protocol

from skutui.domain import codec, trust
from skutui.domain.errors import Failed
from skutui.domain.history import iso
from skutui.domain.model import ClusterConfig, Role
from skutui.domain.paths import CONFIG_ROOT_ENV
from skutui.domain.syncplan import MANIFEST_VERSION
from skutui.system import drill as drill_steps
from skutui.system.change import Change, ChangeBusy, ChangeGuard, Record, interrupted, unrecorded
from skutui.system.history import HistoryStore
from skutui.system.node import LocalNode, NodeFacts, skutui_command

if TYPE_CHECKING:
    from skutui.peer import PeerProcess

NODE_COMMAND = trust.NODE_COMMAND
PEER_EVENTS_COMMAND = list(trust.EVENTS_COMMAND)
HOLD_BEAT = 5.0
"""Seconds between two signs of life to the peer's ``skutui node change``, which lets its
lock go after :data:`skutui.cli.node.HOLD_SILENCE` without one (this node lost power)."""


class NodeOps(Protocol):
    name: str
    """The node's hostname once known; the peer's address until pre-flight learns it."""

    async def facts(self) -> NodeFacts: ...
    async def inventory(self) -> dict[str, Any]: ...
    async def snapshot(self) -> dict[str, Any]: ...
    async def restore(self, snapshot: dict[str, Any]) -> None: ...
    async def apply(self, config: ClusterConfig) -> None: ...
    async def reload(self) -> None: ...
    async def start(self) -> None: ...
    async def stop(self) -> None: ...
    async def erase(self, keep_keys: bool = False) -> None:
        """Stop and remove the cluster configuration and the peer's key;
        ``keep_keys``: the key stays (create, right after the key exchange)."""
    async def set_maintenance(self, on: bool) -> str: ...
    async def pin_peer_link(self, address: str, link_address: str | None) -> str: ...
    async def hand_over(self, timeout: float) -> float:
        """This master ranks itself below the peer and waits until the peer took over;
        returns the seconds it took."""
    async def commit_connections(self) -> None:
        """conntrackd's copy of the peer's connections committed to this node's kernel."""
    async def close(self) -> None: ...
    async def history(self, since: float | None, kinds: list[str] | None) -> list[dict[str, Any]]: ...
    async def manifest(self, roots: list[str], excluded: list[str]) -> dict[str, dict[str, Any]]:
        """Every synced entry under ``roots`` (``skutui node manifest``), by path."""
    async def put_history(self, records: list[dict[str, Any]]) -> None:
        """Store failover or drill records (the other node's copy)."""
    async def drill_mark(self, drill: str | None) -> None:
        """This node's next hand-over is the drill's (None: no longer)."""
    async def drill_probe(self, address: str, port: int) -> ProbeHandle:
        """Answer and send the drill's probes until the handle is closed."""
    async def begin_change(self, change: Change, *, snapshot: bool = True,
                           recovering: bool = False) -> dict | None:
        """Take this node's change lock (or raise ChangeBusy naming the holder) and, with
        ``snapshot``, write its rollback snapshot to its disk and return it."""
    async def end_change(self, *, clear: bool = True) -> None:
        """Remove the rollback record (``clear``) and give the lock back."""


class ProbeHandle(Protocol):
    async def report(self) -> dict[str, Any]:
        """{"node", "sent", "answered", "runs": [...]} so far (``skutui.domain.drill``)."""
    async def close(self) -> None: ...


class LocalNodeOps(NodeOps, Protocol):
    """What only this node is asked: the console and the checks read its files directly."""

    async def config(self) -> ClusterConfig | None: ...
    async def role(self) -> Role: ...
    async def keep_change(self, record: Record) -> None:
        """This node's rollback record: both nodes' snapshots, durable before the change."""
    async def interrupted_change(self) -> Record | None:
        """The record of a change nobody runs any more, if there is one."""


class RemoteNodeOps(NodeOps, Protocol):
    def event_lines(self) -> AsyncIterator[str]:
        """The peer agent's events, one JSON line each, until the stream breaks."""


class LocalOps:
    def __init__(self, node: LocalNode, name: str = "this node"):
        self.node = node
        self.name = name
        self._guard: ChangeGuard | None = None

    async def _call(self, method: str, *args):
        return await asyncio.to_thread(getattr(self.node, method), *args)

    async def facts(self) -> NodeFacts:
        return await self._call("facts")

    async def inventory(self) -> dict[str, Any]:
        return await self._call("inventory")

    async def snapshot(self) -> dict[str, Any]:
        return await self._call("snapshot")

    async def restore(self, snapshot: dict[str, Any]) -> None:
        await self._call("restore", snapshot)

    async def apply(self, config: ClusterConfig) -> None:
        await self._call("apply", config)

    async def reload(self) -> None:
        await self._call("reload")

    async def start(self) -> None:
        await self._call("start")

    async def stop(self) -> None:
        await self._call("stop")

    async def erase(self, keep_keys: bool = False) -> None:
        await self._call("erase", keep_keys)

    async def set_maintenance(self, on: bool) -> str:
        return await self._call("set_maintenance", on)

    async def pin_peer_link(self, address: str, link_address: str | None) -> str:
        return await self._call("pin_peer_link", address, link_address)

    async def hand_over(self, timeout: float) -> float:
        return await self._call("hand_over", timeout)

    async def commit_connections(self) -> None:
        await self._call("commit_connections")

    async def config(self) -> ClusterConfig | None:
        return await self._call("config")

    async def role(self) -> Role:
        return await self._call("role")

    async def history(self, since: float | None, kinds: list[str] | None) -> list[dict[str, Any]]:
        store = HistoryStore(self.node.paths.history_file)
        return await asyncio.to_thread(store.records, since=since, kinds=kinds)

    async def manifest(self, roots: list[str], excluded: list[str]) -> dict[str, dict[str, Any]]:
        """The very step the peer runs, run here: both sides list their files alike."""
        process = await asyncio.create_subprocess_exec(
            skutui_command(), *NODE_COMMAND[1:], *manifest_arguments(roots, excluded),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            env={**os.environ, CONFIG_ROOT_ENV: str(self.node.paths.config_root)})
        out, err = await process.communicate()
        if process.returncode != 0:
            detail = err.decode(errors="replace").strip().removeprefix("skutui: ")
            raise Failed(f"{self.name}: listing the synced files failed: {detail}")
        return _entries(out.decode(), self.name)

    async def put_history(self, records: list[dict[str, Any]]) -> None:
        store = HistoryStore(self.node.paths.history_file)
        await asyncio.to_thread(store.add, records)

    async def drill_mark(self, drill: str | None) -> None:
        if drill is None:
            await asyncio.to_thread(drill_steps.unmark, self.node.paths)
        else:
            await asyncio.to_thread(drill_steps.mark, self.node.paths, drill)

    async def drill_probe(self, address: str, port: int) -> ProbeHandle:
        try:
            probe = await asyncio.to_thread(drill_steps.Probe, socket.gethostname(), address, port)
        except OSError as exc:
            raise Failed(f"{self.name}: the drill's probe cannot use UDP port {port}: "
                         f"{exc.strerror or exc}") from None
        return LocalProbe(probe)
    async def begin_change(self, change: Change, *, snapshot: bool = True,
                           recovering: bool = False) -> dict | None:
        def hold() -> dict | None:
            guard = ChangeGuard(self.node.paths)
            guard.hold(change, recovering=recovering)
            try:
                shot = self.node.snapshot() if snapshot else None
                if shot is not None:
                    guard.keep(Record(change, [shot]))
            except OSError as exc:  # an atomic write that failed left no record
                guard.release()
                raise Failed(unrecorded(self.name, exc)) from None
            except BaseException:
                guard.release()
                raise
            self._guard = guard
            return shot

        return await asyncio.to_thread(hold)

    async def keep_change(self, record: Record) -> None:
        guard = self._guard or ChangeGuard(self.node.paths)
        await asyncio.to_thread(guard.keep, record)

    async def end_change(self, *, clear: bool = True) -> None:
        guard, self._guard = self._guard, None
        if guard is None:
            return
        try:
            if clear:
                await asyncio.to_thread(guard.clear)
        finally:
            guard.release()

    async def interrupted_change(self) -> Record | None:
        return await asyncio.to_thread(interrupted, self.node.paths)

    async def close(self) -> None:
        pass


class RemoteOps:
    def __init__(self, peer, name: str):
        self.peer = peer
        self.name = name
        self._facts: PeerProcess | None = None
        """``skutui node facts --stream`` on the peer, kept between reads of the node table."""
        self._change: PeerProcess | None = None
        """``skutui node change`` on the peer: it holds the peer's change lock while it runs."""
        self._beat: asyncio.Task | None = None

    async def _node(self, *operation: str, input: str | None = None, timeout: float | None = None) -> str:
        from skutui.peer import RemoteCommandFailed  # asyncssh: slow to import, peer only

        try:
            result = await self.peer.run_checked([*NODE_COMMAND, *operation], input=input, timeout=timeout)
        except RemoteCommandFailed as exc:
            if exc.exit_status == -1 and not self.peer.connected:
                # No exit status because the connection dropped, not because the step failed.
                raise RemoteNodeError(
                    f"{self.name}: lost the SSH connection to {self.peer.host} while "
                    f"`{exc.command}` ran there; the step may have stopped half-way") from None
            if exc.exit_status == 127:
                # The shell found no skutui there at all (it is not on root's PATH).
                raise SkutuiNotInstalled(self.peer.host) from None
            # The peer's skutui already printed an operator message; pass it on as it is.
            detail = (exc.stderr or "").strip().removeprefix("skutui: ")
            raise RemoteNodeError(f"{self.name}: {detail or exc}") from None
        return result.stdout

    async def facts(self) -> NodeFacts:
        from skutui.peer import RemoteCommandFailed  # asyncssh: slow to import, peer only

        if self._facts is None or self._facts.closed:
            self._facts = await self.peer.open_process([*NODE_COMMAND, "facts", "--stream"])
        facts = self._facts
        try:
            answer = await facts.ask("", self.peer.command_timeout)
        except RemoteCommandFailed as exc:
            detail = (exc.stderr or "").strip().removeprefix("skutui: ")
            raise RemoteNodeError(f"{self.name}: {detail or exc}") from None
        return NodeFacts.from_dict(json.loads(answer))

    async def inventory(self) -> dict[str, Any]:
        return json.loads(await self._node("inventory"))

    async def snapshot(self) -> dict[str, Any]:
        return json.loads(await self._node("snapshot"))

    async def restore(self, snapshot: dict[str, Any]) -> None:
        await self._node("restore", input=json.dumps(snapshot))

    async def apply(self, config: ClusterConfig) -> None:
        await self._node("apply", input=codec.dumps(config))

    async def reload(self) -> None:
        await self._node("reload")

    async def start(self) -> None:
        await self._node("start")

    async def stop(self) -> None:
        await self._node("stop")

    async def erase(self, keep_keys: bool = False) -> None:
        await self._node("erase", *(["--keep-keys"] if keep_keys else []))

    async def set_maintenance(self, on: bool) -> str:
        return (await self._node("maintenance", "on" if on else "off")).strip()

    async def history(self, since: float | None, kinds: list[str] | None) -> list[dict[str, Any]]:
        arguments = ["history", "--json"]
        if since is not None:
            arguments += ["--since", iso(since)]
        for kind in kinds or ():
            arguments += ["--kind", kind]
        answer = json.loads(await self._node(*arguments))
        if not isinstance(answer, list):
            raise RemoteNodeError(f"{self.name}: its history is not a list of records")
        return answer

    async def manifest(self, roots: list[str], excluded: list[str]) -> dict[str, dict[str, Any]]:
        return _entries(await self._node(*manifest_arguments(roots, excluded)), self.name)

    async def put_history(self, records: list[dict[str, Any]]) -> None:
        await self._node("history", "--put", input=json.dumps(records))

    async def drill_mark(self, drill: str | None) -> None:
        await self._node("drill", *(("mark", drill) if drill else ("unmark",)))

    async def drill_probe(self, address: str, port: int) -> ProbeHandle:
        process = await self.peer.open_process(
            [*NODE_COMMAND, "drill", "probe", "--address", address, "--port", str(port)])
        return RemoteProbe(process, self.name, self.peer.command_timeout)
    async def pin_peer_link(self, address: str, link_address: str | None) -> str:
        request = {"address": address, "link_address": link_address}
        return (await self._node("pin-peer-link", input=json.dumps(request))).strip()

    async def begin_change(self, change: Change, *, snapshot: bool = True,
                           recovering: bool = False) -> dict | None:
        process = await self.peer.open_process([*NODE_COMMAND, "change"])
        request = {"op": "begin", "change": change.to_dict(), "snapshot": snapshot,
                   "recovering": recovering}
        try:
            answer = json.loads(await process.ask(json.dumps(request), self.peer.command_timeout))
        except BaseException:
            process.close()
            raise
        if "busy" in answer:
            process.close()
            raise ChangeBusy(str(answer["busy"]))
        if "failed" in answer:
            process.close()
            raise Failed(str(answer["failed"]))
        self._change = process
        self._beat = asyncio.ensure_future(self._beating(process))
        return answer.get("snapshot")

    async def _beating(self, process: PeerProcess) -> None:
        while not process.closed:
            await asyncio.sleep(HOLD_BEAT)
            process.send(json.dumps({"op": "alive"}))

    async def end_change(self, *, clear: bool = True) -> None:
        process, self._change = self._change, None
        beat, self._beat = self._beat, None
        if beat is not None:
            beat.cancel()
        if process is None:
            return
        try:
            await process.ask(json.dumps({"op": "end", "clear": clear}),
                              self.peer.command_timeout)
        finally:
            process.close()

    async def hand_over(self, timeout: float) -> float:
        return float(await self._node("hand-over", "--timeout", f"{timeout:.2f}",
                                      timeout=timeout + self.peer.command_timeout))

    async def commit_connections(self) -> None:
        await self._node("commit")

    async def event_lines(self) -> AsyncIterator[str]:
        async for line in self.peer.stream_lines(PEER_EVENTS_COMMAND):
            yield line

    async def close(self) -> None:
        """Ends the kept facts command and the connection; the next request opens both again."""
        if self._facts is not None:
            self._facts.close()
            self._facts = None
        if self._change is not None:
            self._change.close()
            self._change = None
        await self.peer.close()


class LocalProbe:
    def __init__(self, probe: drill_steps.Probe) -> None:
        self.probe = probe

    async def report(self) -> dict[str, Any]:
        return self.probe.report()

    async def close(self) -> None:
        await asyncio.to_thread(self.probe.close)


class RemoteProbe:
    """``skutui node drill probe`` kept running on the peer: a line asks for its report."""

    def __init__(self, process: PeerProcess, name: str, timeout: float) -> None:
        self.process = process
        self.name = name
        self.timeout = timeout

    async def report(self) -> dict[str, Any]:
        from skutui.peer import RemoteCommandFailed  # asyncssh: slow to import, peer only

        try:
            return json.loads(await self.process.ask("report", self.timeout))
        except RemoteCommandFailed as exc:
            detail = (exc.stderr or "").strip().removeprefix("skutui: ")
            raise RemoteNodeError(f"{self.name}: {detail or exc}") from None

    async def close(self) -> None:
        self.process.close()


def manifest_arguments(roots: list[str], excluded: list[str]) -> list[str]:
    return ["manifest", *(f"--exclude={folder}" for folder in excluded), *roots]


def _entries(text: str, name: str) -> dict[str, dict[str, Any]]:
    try:
        document = json.loads(text)
        entries = document["entries"]
    except (ValueError, KeyError, TypeError):
        raise Failed(f"{name}: the list of synced files is not valid JSON; are both nodes on "
                     "the same skutui version?") from None
    if document.get("version") != MANIFEST_VERSION:
        raise Failed(f"{name} lists its files in version {document.get('version')!r}, this "
                     f"node reads {MANIFEST_VERSION}: install the same skutui on both nodes")
    return dict(entries)


class RemoteNodeError(Failed):
    """The peer refused or failed an operation; the message is the peer's own."""


class SkutuiNotInstalled(RemoteNodeError):
    """The peer has no ``skutui`` command: the package is not installed there."""

    def __init__(self, host: str) -> None:
        self.host = host
        super().__init__(f"skutui is not installed on {host} (no skutui command on root's PATH)")
