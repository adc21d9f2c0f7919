"""This node's part in a drill: the mark that makes its hand-over's cause "drill", and the
probe that answers and sends UDP probes through the floating IP (``skutui.domain.drill``).

The probe runs two threads: one answers every probe that reaches this node on the drill's
port (saying which node answered), one sends a probe to the floating IP every
``PROBE_INTERVAL`` and notes each answer with the time it came and who gave it.
"""

from __future__ import annotations

import ipaddress
import select
import socket
import struct
import threading
import time

from skutui.domain.drill import PROBE_INTERVAL, PROBE_MAGIC, runs
from skutui.domain.paths import Paths
from skutui.system.files import write_text_atomic

_HEADER = struct.Struct("!12sQ")
"""The probe: magic, sequence number; the answer adds the answering node's name."""
ANSWER_LIMIT = 512


def mark(paths: Paths, drill: str) -> None:
    paths.run_dir.mkdir(parents=True, exist_ok=True)
    write_text_atomic(paths.drill_mark, drill + "\n")


def unmark(paths: Paths) -> None:
    paths.drill_mark.unlink(missing_ok=True)


class Probe:
    """Answers and sends probes until closed; ``report()`` gives the runs of answers."""

    def __init__(self, hostname: str, address: str, port: int,
                 interval: float = PROBE_INTERVAL) -> None:
        self.hostname = hostname
        self.address = address
        self.port = port
        self.interval = interval
        family = socket.AF_INET6 if ipaddress.ip_address(address).version == 6 else socket.AF_INET
        self._answerer = socket.socket(family, socket.SOCK_DGRAM)
        self._answerer.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._answerer.bind(("::" if family == socket.AF_INET6 else "0.0.0.0", port))
        self._sender = socket.socket(family, socket.SOCK_DGRAM)
        self._sender.setblocking(False)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self.sent = 0
        self._answers: list[tuple[float, str]] = []
        self._threads = [threading.Thread(target=self._answer, name="drill answers", daemon=True),
                         threading.Thread(target=self._send, name="drill probes", daemon=True)]
        for thread in self._threads:
            thread.start()

    def _answer(self) -> None:
        name = self.hostname.encode()
        while not self._stop.is_set():
            ready, _, _ = select.select([self._answerer], [], [], 0.2)
            if not ready:
                continue
            try:
                data, sender = self._answerer.recvfrom(ANSWER_LIMIT)
            except OSError:
                continue
            if len(data) == _HEADER.size and data.startswith(PROBE_MAGIC):
                try:
                    self._answerer.sendto(data + name, sender)
                except OSError:
                    pass

    def _send(self) -> None:
        target = (self.address, self.port)
        next_send = time.monotonic()
        while not self._stop.is_set():
            now = time.monotonic()
            if now >= next_send:
                try:
                    self._sender.sendto(_HEADER.pack(PROBE_MAGIC, self.sent), target)
                except OSError:
                    pass  # no route while the address moves: a probe lost like any other
                self.sent += 1
                next_send = now + self.interval
            ready, _, _ = select.select([self._sender], [], [], max(next_send - time.monotonic(), 0))
            if ready:
                try:
                    data = self._sender.recv(ANSWER_LIMIT)
                except OSError:
                    continue
                if len(data) > _HEADER.size and data.startswith(PROBE_MAGIC):
                    with self._lock:
                        self._answers.append((time.time(), data[_HEADER.size:].decode(errors="replace")))

    def report(self) -> dict:
        with self._lock:
            answers = list(self._answers)
        return {"node": self.hostname, "sent": self.sent, "answered": len(answers),
                "runs": [run.to_dict() for run in runs(answers)]}

    def close(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=2)
        self._answerer.close()
        self._sender.close()
