"""Messages workers post back to the screens: small, and named for what happened."""

from __future__ import annotations

from dataclasses import dataclass

from textual.message import Message

from skutui.domain.wire import Event, NodeRow


@dataclass
class StepLogged(Message):
    """One line of progress from the service while long work goes on."""

    line: str
    style: str = ""


@dataclass
class ClusterEventArrived(Message):
    """Something happened on a node; the node table is re-read."""

    event: Event


class NodesStale(Message):
    """The node table should be re-read. A newer one makes any queued older one obsolete."""

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, NodesStale)


@dataclass
class NodesRead(Message):
    rows: list[NodeRow]


@dataclass
class EventsStopped(Message):
    """The live event stream ended; the table no longer updates by itself."""

    reason: str
