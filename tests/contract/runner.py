"""Runs a contract scenario on the real operations API, inside a lab node, and prints what
it answered as one JSON document (the last line of standard output).

    skutui lab exec node-a -- python3 -m tests.contract.runner journey < password

The lab's nodes import the checkout that brought the lab up (PYTHONPATH), so this is the
product under test; the password is read from standard input, never from an argument.
"""

from __future__ import annotations

import asyncio
import json
import sys

from skutui.cluster.operations import build_service
from skutui.domain.paths import Paths
from tests.contract.journey import journey

SCENARIOS = {"journey": journey}


def main(argv: list[str]) -> int:
    if len(argv) != 1 or argv[0] not in SCENARIOS:
        print(f"usage: python -m tests.contract.runner {{{','.join(SCENARIOS)}}} < password",
              file=sys.stderr)
        return 2
    password = sys.stdin.readline().rstrip("\n")
    told = asyncio.run(SCENARIOS[argv[0]](build_service(Paths.from_env()), password))
    print(json.dumps(told, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
