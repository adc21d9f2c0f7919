#!/usr/bin/env python3
"""All the benchmarks, one table. Started by bench/run; see bench/README.md.

Without the lab: start-up, serial cost, the journal drain, interfaces and package. With it
(root; each lab benchmark brings the lab up and down itself, and refuses to touch a lab
that already exists): failover, takeover, L7 outage, service failover, event -> screen,
config sync, replication and idle cost.
"""

from __future__ import annotations

import argparse
import sys
import time

import events
import failover
import idle
import interfaces
import journal
import l7_failover
import package
import replication
import serial
import service_failover
import startup
import sync
import takeover
from common import add_common_arguments, environment_line, failed_row, render_table

BENCHES = (startup, serial, journal, interfaces, package, failover, takeover, l7_failover,
           service_failover, events, sync, replication, idle)
TARGETS = {
    "start-up": "<= 1.25x", "serial": "see targets", "failover": "<= 0.35x",
    "takeover": "<= 300 ms, 0 lost", "l7": "<= 1.15x", "service": "<= checks + advert + skew",
    "events": "<= 100 ms median", "sync": ">= 5x faster", "replication": ">= 10x faster",
    "idle": "<= 1 % of a core", "journal": "<= 10 s", "interfaces": "faster than pyroute2",
    "package": "—",
}


def main() -> int:
    parser = argparse.ArgumentParser(prog="bench/run", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_arguments(parser)
    parser.add_argument("--no-lab", action="store_true",
                        help="only the benchmarks that need no lab (start-up, serial, "
                             "interfaces, package)")
    parser.add_argument("--only", metavar="NAME,NAME",
                        help="run these only: " + ", ".join(b.NAME for b in BENCHES))
    for bench in BENCHES:
        if hasattr(bench, "add_arguments"):
            bench.add_arguments(parser)
    args = parser.parse_args()

    chosen = list(BENCHES)
    if args.only:
        names = set(args.only.split(","))
        unknown = names - {b.NAME for b in BENCHES}
        if unknown:
            parser.error(f"unknown bench: {', '.join(sorted(unknown))}")
        chosen = [b for b in chosen if b.NAME in names]
    if args.no_lab:
        chosen = [b for b in chosen if not b.LAB]

    print(environment_line(), flush=True)
    started = time.monotonic()
    rows = []
    for bench in chosen:
        print(f"running {bench.NAME}...", file=sys.stderr, flush=True)
        try:
            rows += bench.collect(args)
        except KeyboardInterrupt:
            raise
        except Exception as exc:  # noqa: BLE001 - one broken bench must not hide the others
            rows.append(failed_row(bench.NAME, TARGETS.get(bench.NAME, "—"), exc))
    print(render_table(rows, markdown=args.markdown))
    print(f"\n{len(chosen)} benchmarks in {time.monotonic() - started:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
