"""The master's side of command replication: the journal's pending entries sent to the
peer in order, each answer recorded before the next is sent. A command ``skutui exec`` is
still running here holds the ones after it back; one whose ``skutui exec`` died before
saying how it went here is set aside, never sent."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Sequence

from skutui.domain import trust
from skutui.peer import PeerError, PeerProcess, RemoteCommandFailed
from skutui.system.journal import RUNNING, Entry, Journal, Outcome


class ReplayBlocked(Exception):
    """The peer could not take the entry at all (skutui missing or refusing): the entry
    stays queued; the message is for the operator."""


class SshReplayTarget:
    """Sends entries to one ``skutui node replay`` kept running on the peer, over the kept
    connection: a line out, a line back, no process started per command."""

    def __init__(self, peer, command: Sequence[str] = trust.NODE_COMMAND) -> None:
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
        """Replay until caught up, or up to a command still running here; returns how many
        were answered. Transport errors (PeerUnreachable, CommandTimeout) and ReplayBlocked
        propagate: the entry stays."""
        done = 0
        while (head := self.journal.head()) is not None:
            entry = head.entry
            if head.state == RUNNING:
                if head.runner_alive:
                    break  # `skutui exec` says how it went here, then wakes the replay
                self._interrupted(entry)
                continue
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

    def _interrupted(self, entry: Entry) -> None:
        note = (f"`skutui exec` on {entry.origin} stopped (killed, or the machine went down) "
                f"after recording #{entry.seq} and before saying how it went there; it may "
                "have run there and was not sent to the peer: check both nodes by hand")
        if self.journal.set_aside(entry.seq, note):
            self.report("replication", f"#{entry.seq} set aside, not replayed: {entry.command}: "
                        f"{note}", level="error", seq=entry.seq, status="set-aside",
                        command=entry.command)
