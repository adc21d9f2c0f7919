#!/usr/bin/env python3
"""Replication inside one process on the master: queue one command in the journal, as
`skutui exec` does after running it here, wake the agent and wait on its socket for the
backup's acknowledgement. Prints one time in seconds per round (argument: the rounds).

This is replication itself, without the Python start-up each `skutui` command pays."""

from __future__ import annotations

import json
import socket
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from skutui.domain.paths import Paths  # noqa: E402
from skutui.system import control  # noqa: E402
from skutui.system.journal import Journal  # noqa: E402


def main(rounds: int) -> None:
    paths = Paths.from_env()
    journal = Journal(paths.journal_dir)
    origin = socket.gethostname()
    took = []
    for _ in range(rounds):
        started = time.monotonic()
        entry = journal.append(["true"], origin=origin)
        answer = control.request(paths.control_socket, "wake", seq=entry.seq, wait=10,
                                 timeout=15)
        outcome = journal.outcome(entry.seq)
        if not answer.get("acked") or outcome is None or not outcome.ok:
            raise SystemExit(f"#{entry.seq} was not acknowledged: {answer}, {outcome}")
        took.append(time.monotonic() - started)
    print(json.dumps(took))


if __name__ == "__main__":
    main(int(sys.argv[1]))
