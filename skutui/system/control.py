"""The agent's control socket: its protocol, and the clients of it.

The server is the agent's (:mod:`skutui.agent.control`); the clients live here, below both
the agent and the front ends, so that the command line, the console's operations and the
agent share one spelling of the protocol. The blocking clients serve short-lived commands
(``skutui exec``, ``skutui events``, ``skutui agent notify``); :func:`follow_events` serves
an asyncio program.

Protocol (a Unix stream socket at ``Paths.control_socket``, mode 0600, root only; the
server also checks the caller's uid). The client sends one JSON line, the server answers:

    {"op": "state"}                 -> {"ok": true, "state": {...}}            then closes
    {"op": "events", "recent": N}   -> the last N events, then each new one, one a line
    {"op": "post", "event": {...}}  -> {"ok": true}   (kind, message, level, data)
    {"op": "wake"}                  -> {"ok": true}   (replay the journal now)
    {"op": "wake", "seq": N, "wait": S}
                                    -> {"ok": true, "acked": bool, "away": PEER|null}
                                       once the peer answered entry N, after S seconds, or at
                                       once when the agent knows the peer is away (its name)
    {"op": "transition", "state": S, "boot": B, "since_boot": T}
                                    -> {"ok": true, "taken": bool}   keepalived's hook hands
                                       over a transition (false: the agent had taken it)
    anything else                   -> {"ok": false, "error": "..."}

An event is ``{"time", "node", "kind", "level", "message"[, "data"]}``: ``time`` is ISO 8601
UTC, ``kind`` one of :data:`KINDS` (``release``: this node stopped being master, and why;
``failover`` and ``drill``: their records, see ``skutui.domain.history``), ``level``
info, warning or error, ``data`` details for scripts (a role, a sequence number, the paths
pushed). A client too slow to keep up gets one last ``agent`` event saying so and is
disconnected, so it can never stall the agent.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

from skutui.domain.errors import Failed

KINDS = ("role", "sync", "replication", "service", "peer", "agent", "link", "release", "failover",
         "drill")
MAX_REQUEST = 64 * 1024
MAX_ANSWER = MAX_REQUEST * 16
CLIENT_TIMEOUT = 5.0
MAX_EVENT_LINE = 64 * 1024 * 1024
"""A sync event lists every path it pushed: a large reconcile makes one long line."""


class ControlError(Failed):
    """The control socket cannot be served or reached; the message is for the operator."""


def encode(message: dict) -> bytes:
    """Both ends write their lines so: keys sorted, and a value JSON cannot carry (a path)
    sent as its text rather than failing the whole message."""
    return json.dumps(message, sort_keys=True, default=str).encode() + b"\n"


def _unreachable(path: Path, exc: OSError) -> ControlError:
    if isinstance(exc, PermissionError):
        return ControlError(f"{path} is for root only; run this as root")
    return ControlError(f"the skutui agent is not running on this node (nothing answers on "
                        f"{path}); start it with `skutui node start`")


def _event(line: bytes) -> dict:
    message = json.loads(line)
    if message.get("ok") is False:
        raise ControlError(f"the skutui agent refused the event stream: "
                           f"{message.get('error')}")
    return message


# --- blocking clients, for short-lived commands ---------------------------------------------

def _connect(path: Path, timeout: float) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(str(path))
    except (FileNotFoundError, ConnectionRefusedError, PermissionError) as exc:
        sock.close()
        raise _unreachable(path, exc) from exc
    return sock


def request(path: Path, op: str, *, timeout: float = CLIENT_TIMEOUT, **fields) -> dict:
    """One request, one answer; raises ControlError if the agent is absent or refuses."""
    with _connect(path, timeout) as sock:
        sock.sendall(encode({"op": op, **fields}))
        with sock.makefile("rb") as stream:
            line = stream.readline(MAX_ANSWER)
    if not line:
        raise ControlError(f"the skutui agent closed {path} without answering")
    answer = json.loads(line)
    if not answer.get("ok"):
        raise ControlError(f"the skutui agent refused `{op}`: {answer.get('error')}")
    return answer


def stream_events(path: Path, recent: int = 0) -> Iterator[dict]:
    """Events as the agent emits them, until it stops (then the iterator ends)."""
    with _connect(path, CLIENT_TIMEOUT) as sock:
        sock.sendall(encode({"op": "events", "recent": recent}))
        sock.settimeout(None)
        with sock.makefile("rb") as stream:
            for line in stream:
                yield _event(line)


def post_event(path: Path, kind: str, message: str, *, level: str = "info", **data) -> bool:
    """Best effort, for short-lived processes (keepalived's notify hook): False if no agent
    listens, so the caller's own work never depends on it."""
    try:
        request(path, "post", timeout=2.0,
                event={"kind": kind, "message": message, "level": level, "data": data})
    except (ControlError, OSError, ValueError):
        return False
    return True


# --- asyncio clients ---------------------------------------------------------------------------

async def follow_events(path: Path, recent: int = 0) -> AsyncIterator[dict]:
    """Events as the agent emits them, the last ``recent`` first. Raises ControlError when
    no agent answers or it refuses the stream; ends when the agent goes away (it stopped
    and closed the stream, or died, even halfway through a line)."""
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_unix_connection(str(path), limit=MAX_EVENT_LINE), CLIENT_TIMEOUT)
    except (FileNotFoundError, ConnectionRefusedError, PermissionError) as exc:
        raise _unreachable(path, exc) from exc
    except TimeoutError:
        raise ControlError(f"the skutui agent did not answer on {path} within "
                           f"{CLIENT_TIMEOUT:g} s") from None
    try:
        try:
            writer.write(encode({"op": "events", "recent": recent}))
            await writer.drain()
        except (ConnectionResetError, BrokenPipeError):
            return
        while True:
            try:
                line = await reader.readline()
            except ConnectionResetError:
                return
            if not line.endswith(b"\n"):
                return
            yield _event(line)
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()


async def answers(path: Path) -> bool:
    """Whether something serves ``path`` now (an agent still running, not a stale socket)."""
    try:
        _reader, writer = await asyncio.wait_for(asyncio.open_unix_connection(str(path)), 1)
    except (TimeoutError, OSError):
        return False
    writer.close()
    return True
