"""The agent's control socket, served: its current state and a live stream of events.

The protocol, and its clients, are :mod:`skutui.system.control`'s: the command line and
the console's operations reach the agent through them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import struct
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path

from skutui.system.control import (
    CLIENT_TIMEOUT,
    KINDS,
    MAX_REQUEST,
    ControlError,
    answers,
    encode,
)
from skutui.system.hook import Moment

log = logging.getLogger("skutui.agent")

LEVELS = {"info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}
RECENT_KEPT = 200
SUBSCRIBER_QUEUE = 1000
MAX_WAIT = 3600.0
"""Longest a client may wait on the socket for a replayed entry's answer, in seconds."""


def now_iso(at: float | None = None) -> str:
    moment = datetime.now(UTC) if at is None else datetime.fromtimestamp(at, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class EventBus:
    """Fans events out to subscribers and the log; keeps the last few for late readers."""

    def __init__(self, node: str, *, keep: int = RECENT_KEPT) -> None:
        self.node = node
        self._recent: deque[dict] = deque(maxlen=keep)
        self._subscribers: set[asyncio.Queue] = set()
        self.listeners: list[Callable[[dict], object]] = []
        """Called with each event as it is emitted (the history, notifications, metrics):
        each only queues it, since an event may be emitted on the takeover path."""

    def emit(self, kind: str, message: str, *, level: str = "info", **data) -> dict:
        if kind not in KINDS:
            raise ValueError(f"unknown event kind {kind!r}")
        level = level if level in LEVELS else "info"
        event: dict[str, object] = {"time": now_iso(), "node": self.node, "kind": kind,
                                    "level": level, "message": message}
        if data:
            event["data"] = data
        self._recent.append(event)
        log.log(LEVELS[level], "%s: %s", kind, message)
        for listener in self.listeners:
            try:
                listener(event)
            except Exception:  # noqa: BLE001 - a listener must never stop an event
                log.exception("an event listener failed")
        for queue in list(self._subscribers):
            try:
                queue.put_nowait(event)
            except asyncio.QueueFull:
                self._subscribers.discard(queue)
                queue.get_nowait()
                queue.put_nowait(None)  # tells the writer to say so and hang up
        return event

    def recent(self, count: int) -> list[dict]:
        return list(self._recent)[-count:] if count > 0 else []

    def subscribe(self) -> asyncio.Queue:
        queue: asyncio.Queue = asyncio.Queue(maxsize=SUBSCRIBER_QUEUE)
        self._subscribers.add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue) -> None:
        self._subscribers.discard(queue)


def peer_uid(sock: socket.socket) -> int:
    creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    return struct.unpack("3i", creds)[1]


class ControlServer:
    """Serves :class:`EventBus` events and ``state()`` on a root-only Unix socket."""

    def __init__(self, path: Path, bus: EventBus, state: Callable[[], dict], *,
                 on_wake: Callable[[], None] = lambda: None,
                 on_post: Callable[[str, str, str, dict], object] | None = None,
                 on_wait: Callable[[int, float], Awaitable[dict]] | None = None,
                 on_transition: Callable[[str, Moment], bool] | None = None,
                 operations: Mapping[str, Callable[[dict], Awaitable[dict]]] | None = None) -> None:
        self.path = Path(path)
        self.bus = bus
        self.state = state
        self.on_wake = on_wake
        self.on_post = on_post or (lambda kind, message, level, data:
                                   bus.emit(kind, message, level=level, **data))
        self.on_wait = on_wait
        self.on_transition = on_transition
        self.operations = dict(operations or {})
        """More requests by name (``metrics``, ``drift``…): each answers a dict with ``ok``."""
        self._server: asyncio.AbstractServer | None = None
        self._clients: set[asyncio.Task] = set()

    async def start(self) -> None:
        """Bind under a temporary name, restrict it to 0600, then rename it into place, so
        the socket is never reachable with wider permissions."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.exists() and await answers(self.path):
            raise ControlError(f"another skutui agent already serves {self.path}; stop it "
                               "first (`skutui node stop`)")
        temp = self.path.with_name(f".{self.path.name}.{os.getpid()}")
        temp.unlink(missing_ok=True)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.bind(str(temp))
            os.chmod(temp, 0o600)
            sock.listen(16)
            os.replace(temp, self.path)
        except BaseException:
            sock.close()
            temp.unlink(missing_ok=True)
            raise
        self._server = await asyncio.start_unix_server(self._serve, sock=sock,
                                                       limit=MAX_REQUEST)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for task in list(self._clients):
            task.cancel()
        if self._clients:
            await asyncio.gather(*self._clients, return_exceptions=True)
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None, "the server runs each client's callback in a task of its own"
        self._clients.add(task)
        try:
            await self._conversation(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        except asyncio.CancelledError:
            pass  # the agent is stopping: end this client quietly, its socket closes below
        except Exception:  # noqa: BLE001 - one bad client must not disturb the agent
            log.exception("control socket client failed")
        finally:
            self._clients.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _conversation(self, reader, writer) -> None:
        try:
            line = await asyncio.wait_for(reader.readline(), CLIENT_TIMEOUT)
            if peer_uid(writer.get_extra_info("socket")) not in (0, os.geteuid()):
                await _send(writer, {"ok": False, "error": "the control socket is for root only"})
                return
            request = json.loads(line)
            op = request["op"]
        except (ValueError, KeyError, TypeError, asyncio.LimitOverrunError):
            await _send(writer, {"ok": False, "error": 'send one JSON line like {"op": "state"}'})
            return
        if op == "state":
            await _send(writer, {"ok": True, "state": self.state()})
        elif op == "wake":
            self.on_wake()
            await _send(writer, await self._wait(request))
        elif op == "post":
            await _send(writer, self._post(request.get("event")))
        elif op == "transition":
            await _send(writer, self._transition(request))
        elif op == "events":
            await self._stream(writer, int(request.get("recent", 0) or 0), reader)
        elif op in self.operations:
            await _send(writer, await self.operations[op](request))
        else:
            known = ", ".join(["state", "events", "post", "wake", "transition", *self.operations])
            await _send(writer, {"ok": False, "error": f"unknown request {op!r}; known: {known}"})

    async def _wait(self, request: dict) -> dict:
        if "seq" not in request or self.on_wait is None:
            return {"ok": True}
        try:
            seq, wait = int(request["seq"]), min(float(request.get("wait", 0)), MAX_WAIT)
        except (TypeError, ValueError):
            return {"ok": False, "error": "seq is a whole number and wait a number of seconds"}
        return {"ok": True, **await self.on_wait(seq, max(wait, 0.0))}

    def _transition(self, request: dict) -> dict:
        if self.on_transition is None:
            return {"ok": False, "error": "this agent takes no transitions"}
        try:
            at = Moment(str(request["boot"]), int(request["since_boot"]))
            taken = self.on_transition(str(request["state"]), at)
        except (KeyError, TypeError, ValueError) as exc:
            return {"ok": False, "error": f"a transition needs state, boot and since_boot ({exc})"}
        return {"ok": True, "taken": taken}

    def _post(self, event) -> dict:
        if not isinstance(event, dict) or event.get("kind") not in KINDS:
            return {"ok": False, "error": f"an event needs a kind among {', '.join(KINDS)}"}
        data = event.get("data")
        if not isinstance(data, dict):
            data = {}
        self.on_post(event["kind"], str(event.get("message", "")),
                     str(event.get("level", "info")), data)
        return {"ok": True}

    async def _stream(self, writer, recent: int, reader) -> None:
        queue = self.bus.subscribe()
        try:
            for event in self.bus.recent(recent):
                await _send(writer, event)
            hangup = asyncio.ensure_future(reader.read())  # ends when the client leaves
            try:
                while True:
                    getter = asyncio.ensure_future(queue.get())
                    done, _ = await asyncio.wait({getter, hangup},
                                                 return_when=asyncio.FIRST_COMPLETED)
                    if getter not in done:
                        getter.cancel()
                        return
                    event = getter.result()
                    if event is None:
                        await _send(writer, {"time": now_iso(), "node": self.bus.node,
                                             "kind": "agent", "level": "warning",
                                             "message": "this reader fell behind by "
                                             f"{SUBSCRIBER_QUEUE} events and was disconnected"})
                        return
                    await _send(writer, event)
            finally:
                hangup.cancel()
        finally:
            self.bus.unsubscribe(queue)


async def _send(writer: asyncio.StreamWriter, message: dict) -> None:
    writer.write(encode(message))
    await writer.drain()
