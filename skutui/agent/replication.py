"""The master's side of command replication: the journal's pending entries sent to the
peer in order, each answer recorded before the next is sent."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Sequence

from skutui.peer import PeerError, PeerProcess, RemoteCommandFailed
from skutui.system.journal import Entry, Journal, Outcome


class ReplayBlocked(Exception):
    """The peer could not take the entry at all (skutui missing or refusing): the entry
    stays queued; the message is for the operator."""


class SshReplayTarget:
    """Sends entries to one ``skutui node replay`` kept running on the peer, over the kept
    connection: a line out, a line back, no process started per command."""

    def __init__(self, peer, command: Sequence[str] = ("skutui", "node")) -> None:
        self.peer = peer
        self.command = (*command, "replay")
        self._process: PeerProcess | None = None

    async def replay(self, entry: Entry) -> Outcome:
        if self._process is None or self._process.closed:
            self._process = await self.peer.open_process(self.command)
        try:
            answer = json.loads(await self._process.ask(json.dumps(entry.to_dict()),
                                                        entry.timeout + 30))
            if "refused" in answer:
                raise ReplayBlocked(f"the peer refused #{entry.seq}: {answer['refused']}")
            return Outcome.from_dict(answer)
        except RemoteCommandFailed as exc:
            detail = (exc.stderr or exc.stdout).strip().removeprefix("skutui: ") or str(exc)
            raise ReplayBlocked(f"the peer refused #{entry.seq}: {detail}") from None
        except (ValueError, KeyError, TypeError) as exc:
            self.close()
            raise ReplayBlocked(f"the peer's answer to #{entry.seq} is not understood "
                                f"({exc}); are both nodes on the same skutui version?") from None
        except PeerError:
            self.close()
            raise

    def close(self) -> None:
        if self._process is not None:
            self._process.close()
            self._process = None


class Replayer:
    """Sends pending entries to the peer in order, recording each answer before the next."""

    def __init__(self, journal: Journal, target, report: Callable[..., object]) -> None:
        self.journal = journal
        self.target = target
        self.report = report

    async def replay_pending(self, before_each: Callable[[], Awaitable[object]] | None = None) -> int:
        """Replay until caught up; returns how many were answered. Transport errors
        (PeerUnreachable, CommandTimeout) and ReplayBlocked propagate: the entry stays."""
        done = 0
        for entry in self.journal.pending():
            if before_each is not None:
                await before_each()
            outcome = await self.target.replay(entry)
            if outcome.seq != entry.seq:
                raise ReplayBlocked(f"the peer answered #{outcome.seq} for #{entry.seq}")
            self.journal.ack(outcome)
            done += 1
            data = {"seq": entry.seq, "status": outcome.status, "command": entry.command,
                    "exit_status": outcome.exit_status}
            if outcome.ok:
                self.report("replication", f"#{entry.seq} applied on the peer: {entry.command}",
                            **data)
            else:
                self.report("replication", f"#{entry.seq} FAILED on the peer: {entry.command} "
                            f"({outcome.describe()})", level="error", **data)
        return done
