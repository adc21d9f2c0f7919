"""The configuration generation: which master term a node's synced files come from.

Each master term gets a number one higher than any it knows of, and the name of the node
that began it. A backup holds the generation of the master whose files it took; a master
holds its own term's. Comparing two nodes' generations says whose files are newer without
asking any clock:

- a higher number is newer: a master whose peer holds a higher one takes the peer's files
  first (it returned with older configuration), and a backup refuses a push of a lower one;
- the same number from another node means both ran as master alone from the same files
  (a double failover): neither is older, so the master's win and the backup keeps its own
  aside;
- a node that replaces its files with another generation's keeps the ones replaced
  aside first, so that a split brain with edits on both sides loses neither in silence.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Generation:
    number: int = 0
    """0: no master term yet (a node just configured)."""
    node: str = ""
    """The node whose master term this is."""
    term: str | None = None
    """For this node's own terms: the MASTER transition that began it (``BOOT/SINCE_BOOT``),
    so that an agent started again in the same term does not begin another."""

    @property
    def label(self) -> str:
        return f"{self.number} ({self.node})" if self.node else str(self.number)

    def older_than(self, other: Generation) -> bool:
        return self.number < other.number

    def same_files(self, other: Generation) -> bool:
        """Whether both name the same master term's files."""
        return (self.number, self.node) == (other.number, other.node)

    def to_dict(self) -> dict[str, Any]:
        return {"number": self.number, "node": self.node, "term": self.term}

    @classmethod
    def from_dict(cls, data: object) -> Generation:
        """A generation from the wire or the file; anything else is generation 0."""
        if not isinstance(data, dict):
            return cls()
        number, node, term = data.get("number", 0), data.get("node", ""), data.get("term")
        if type(number) is not int or number < 0 or not isinstance(node, str):
            raise ValueError(f"not a generation: {data!r}")
        return cls(number, node, term if isinstance(term, str) else None)


def set_aside_name(held: Generation, incoming: Generation) -> str:
    """The folder, under the never-synced local part, for files of ``held`` replaced by
    ``incoming``'s: one per change of generation, whatever the number of requests."""
    def part(g: Generation) -> str:
        return f"generation-{g.number}" + (f"-{g.node}" if g.node else "")

    return f"{part(held)}.replaced-by.{part(incoming)}"
