#!/usr/bin/env python3
"""Replication: one replicated command acknowledged by the backup, against one `ssh` per
command. Needs root and the lab (brought up here).

On node-a, the master of a cluster created with the README's command, each round runs
(alternating which goes first):

- skutui: `skutui exec -- true`, whole wall time until it exits having reported the
  backup's acknowledgement ("#N replicated to node-b");
- baseline: `ssh root@198.18.0.2 true` with a fresh connection, using the key and pinned host
  key skutui installed (what replicating by hand, or the original tool, costs per command).

Both are started from the host in the node; the time to enter the node (nsenter, measured
with `true`) is taken off both. `skutui --version` is timed too: the Python start-up every
`skutui` command pays, for scale.

A second row times replication without that start-up (bench/replication_probe.py, one
process in node-a): queue `true` in the journal, wake the agent, wait on its socket for the
backup's acknowledgement; against the same ssh figure.
"""

from __future__ import annotations

import argparse
import json

from common import BENCH_DIR, PYTHON, BenchError, Row, failed_row, fmt_time, median, note, rounds, spread, standalone
from labkit import IPS, A, B, LabBench, wait_for

NAME = "replication"
LAB = True
DEFAULT_ROUNDS = 10
TARGET = 10.0
INTERVAL = 1.0


def peer_link_up(lab: LabBench) -> bool:
    result = lab.skutui(A, "events", "--state", "--json", check=False)
    if result.returncode != 0:
        return False
    state = json.loads(result.stdout)
    return bool((state.get("peer") or {}).get("up"))


def collect(args: argparse.Namespace) -> list[Row]:
    count = rounds(args, DEFAULT_ROUNDS)
    name = "replication (exec -> ack)"
    agent_name = "replication (queued -> ack, agent)"
    with LabBench() as lab:
        try:
            lab.create(INTERVAL)
            wait_for(lambda: peer_link_up(lab), 30.0, "node-a's agent connected to node-b", poll=0.5)
            ssh = ["ssh", *lab.ssh_options(A), f"root@{IPS[B]}", "true"]
            skutui = ["skutui", "exec", "--", "true"]

            def run_skutui() -> float:
                took, result = lab.timed(A, *skutui)
                if result.returncode != 0 or "replicated to" not in result.stderr:
                    raise BenchError(f"`skutui exec -- true` was not acknowledged: "
                                     f"{result.stderr.strip() or result.returncode}")
                return took

            def run_ssh() -> float:
                took, result = lab.timed(A, *ssh)
                if result.returncode != 0:
                    raise BenchError(f"ssh failed: {result.stderr.strip()}")
                return took

            run_skutui()  # warm-up
            run_ssh()
            overhead = lab.spawn_overhead(A)
            mine, theirs, version = [], [], []
            for round_no in range(count):
                pair = (run_skutui, run_ssh) if round_no % 2 == 0 else (run_ssh, run_skutui)
                for job in pair:
                    (mine if job is run_skutui else theirs).append(job() - overhead)
                version.append(lab.timed(A, "skutui", "--version")[0] - overhead)
                note(f"replication round {round_no + 1}/{count}: skutui {fmt_time(mine[-1])}, "
                     f"ssh {fmt_time(theirs[-1])}")
            probe = lab.run(A, PYTHON, str(BENCH_DIR / "replication_probe.py"), str(count))
            queued = json.loads(probe.stdout)
        except BenchError as exc:
            return [failed_row(name, f">= {TARGET:g}x faster", exc)]
    value, base = median(mine), median(theirs)
    speedup = base / value
    in_agent = median(queued)
    return [Row(agent_name, fmt_time(in_agent), f"{fmt_time(base)} (ssh per command, fresh "
                f"connection)", f"{base / in_agent:.1f}x faster", f">= {TARGET:g}x faster",
                base / in_agent >= TARGET,
                [f"{count} rounds in one process on node-a: journal append, wake, wait on the "
                 f"agent's socket for the acknowledgement; {spread(queued)}"]),
            Row(name, fmt_time(value), f"{fmt_time(base)} (ssh per command, fresh connection)",
                f"{speedup:.1f}x faster", f">= {TARGET:g}x faster", speedup >= TARGET,
                [f"{count} rounds; skutui {spread(mine)}; ssh {spread(theirs)}; less "
                 f"{fmt_time(overhead)} for entering the node on both sides",
                 f"`skutui --version` alone takes {fmt_time(median(version))} (Python start-up "
                 f"of any skutui command)"])]


if __name__ == "__main__":
    standalone(collect, description=__doc__)
