"""Nothing lost, nothing doubled, nothing stale, on two real nodes: a slow transition runs
once, newer configuration is never overwritten by older (failback, split brain), commands
of a finished master term are not replayed, a killed create is rolled back by the next
command, two changes never interleave, exec does not wait for an absent backup, and the sync
skips what must not travel while everything else still does.

The killed create starts from two nodes without any cluster (the ``cluster`` fixture); the
other tests share one cluster made on node-a with failback to node-a (``served``), each
leaving it as it found it: node-a master, node-b a green backup. A test that leaves it
otherwise has it made again for the next one. Only generous bounds are asserted on times:
the machines are shared and noisy.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from skutui.system.daemons import is_agent_command
from skutui_lab import Lab
from tests.lab.labcluster import EVENTUALLY, INTERVAL, A, B, CreateRun, EventStream, LabCluster, tree_changes, wait_for
from tests.lab.test_cluster import settle_vip
from tests.lab.test_faults import VRRP_RULES, VRRP_TABLE, healthy

pytestmark = pytest.mark.lab

PEER_AWAY = 10.0
"""Bound on the agent noticing its peer gone or back (probed every 2 s)."""
SYNCED_DIR = "/etc/skutui/conf"
"""Inside the synced /etc/skutui: what the tests edit."""


def agent_log_lines(cluster: LabCluster, node: str, text: str, after: int = 0) -> list[str]:
    """The lines of ``node``'s log with ``text``, past its first ``after`` lines."""
    return [line for line in cluster.agent_log(node).splitlines()[after:] if text in line]


def peer_up(cluster: LabCluster, node: str) -> bool | None:
    return (cluster.agent_state(node).get("peer") or {}).get("up")


def write_in(cluster: LabCluster, node: str, path: str, text: str) -> None:
    """A file written in ``node`` as an operator would (a new inode, closed at once)."""
    cluster.sh(node, f"mkdir -p $(dirname {path}) && printf '%s' '{text}' > {path}.new && "
                     f"mv {path}.new {path}", check=True)


def set_aside_copies(cluster: LabCluster, node: str, path: str) -> list[str]:
    """The contents of every copy of ``path`` kept aside on ``node``."""
    out = cluster.sh(node, "for f in /etc/skutui/local/set-aside/*/" + path.lstrip("/") +
                     "; do [ -f \"$f\" ] && cat \"$f\" && echo; done; true", check=True)
    return [line for line in out.stdout.splitlines() if line]


@contextmanager
def vrrp_blocked(cluster: LabCluster) -> Iterator[None]:
    """Neither node hears the other's adverts (SSH and conntrackd still pass): both master."""
    for node in (A, B):
        cluster.run(node, "nft", "-f", "-", input=VRRP_RULES, check=True)
    try:
        yield
    finally:
        for node in (A, B):
            cluster.run(node, "nft", "delete", "table", "inet", VRRP_TABLE, check=True)


def serving(cluster: LabCluster) -> bool:
    """node-a master with the floating IP, node-b a backup, each agent running and seeing
    its peer, neither in maintenance (the agents' own account: cheaper than both tables)."""
    try:
        if not cluster.file(A, "/etc/skutui/cluster.toml").exists() or cluster.vip_holders() != {A}:
            return False
        for node, role in ((A, "master"), (B, "backup")):
            state = cluster.agent_state(node)
            maintenance = cluster.file(node, "/etc/skutui/local/maintenance")
            if (state["role"] != role or state["sync"] != (role == "master")
                    or not (state.get("peer") or {}).get("up") or state["config_error"]
                    or (maintenance.exists() and maintenance.read_text().strip() != "0")):
                return False
        return True
    except AssertionError:
        return False


@pytest.fixture(scope="module")
def shared(lab: Lab) -> Iterator[LabCluster]:
    handle = LabCluster(lab)
    yield handle
    handle.reset()
    handle.assert_clean()


@pytest.fixture
def served(shared: LabCluster) -> LabCluster:
    """The cluster this file's tests share (made at first use, and again whenever a test
    left it otherwise than node-a master and node-b a green backup)."""
    if not serving(shared):
        shared.reset()
        shared.assert_clean()
        shared.created("--failback", "local")
        healthy(shared, A)
    return shared


# --- 0. a killed create (from no cluster: first, so the shared cluster is made once) ------


def test_sigkill_of_create_mid_way_is_rolled_back_by_the_next_command(cluster: LabCluster) -> None:
    areas = ("/etc/skutui", "/etc/keepalived", "/etc/conntrackd")
    skip = {"/etc/skutui": ("local",)}
    before = {n: cluster.trees(n, areas, skip) for n in (A, B)}
    create = CreateRun(cluster)
    try:
        create.wait_line("Starting node-b", 30)
        cluster.run(A, "kill", "-KILL", create.pid, check=True)
    finally:
        code, _, _ = create.finish()
    assert code != 0
    assert "keepalived" in cluster.daemons(A), "killed half-way: node-a runs"
    result = cluster.skutui(A, "nodes")
    assert "Traceback" not in result.stdout + result.stderr
    assert "finished rolling back the interrupted cluster create (started " in result.stderr, (
        result.stderr)
    assert "node-a and node-b are as they were before it" in result.stderr
    for node in (A, B):
        assert tree_changes(before[node], cluster.trees(node, areas, skip)) == [], node
        assert cluster.daemons(node) == set(), node
        assert not cluster.file(node, "/etc/skutui/local/change.json").exists(), node
    assert cluster.vip_holders() == set()
    again = cluster.skutui(A, "nodes")
    assert "rolling back" not in again.stderr, "said once"


# --- 1. a slow transition runs once --------------------------------------------------------


def test_a_transition_whose_steps_take_seconds_runs_exactly_once(served: LabCluster) -> None:
    """node-b's conntrackd is stopped (SIGSTOP) for 4 s as it takes over, so its MASTER
    steps take longer than keepalived's hook waits. The hook must leave them to the agent:
    one run of the steps, one role written, no second runner. A mute conntrackd is the
    node's own fault in the table (the node still answers), and makes it unready: node-a's
    maintenance is forced."""
    cluster = served
    seen = len(cluster.agent_log(B).splitlines())
    cluster.sh(B, "pkill -STOP -x conntrackd; (sleep 4; pkill -CONT -x conntrackd) "
                  ">/dev/null 2>&1 &", check=True)
    try:
        row = cluster.nodes(A)[B]
        assert row["status"] != "unreachable" and "conntrackd is mute" in row["message"], row
        on = cluster.skutui(A, "maintenance", "on", "--force")
        assert on.returncode == 0, on.stderr
        settle_vip(cluster, B, EVENTUALLY)
        wait_for(lambda: agent_log_lines(cluster, B, "MASTER steps done", seen), 30,
                 "node-b's agent ran its MASTER steps")
        time.sleep(2.0)  # a second runner would have logged by now
    finally:
        cluster.sh(B, "pkill -CONT -x conntrackd; true")
    runs = agent_log_lines(cluster, B, "notify: transition to master", seen)
    assert len(runs) == 1, cluster.agent_log(B)
    assert agent_log_lines(cluster, B, "MASTER steps done", seen) and not agent_log_lines(
        cluster, B, "handed to the agent", seen), cluster.agent_log(B)
    assert cluster.read(B, "/etc/skutui/local/role").strip() == "master"
    mark = cluster.read(B, "/run/skutui/transition").split()
    assert mark[:2] == ["master", "done"], mark
    assert cluster.skutui(A, "maintenance", "off").returncode == 0
    healthy(cluster, A)


# --- 2. newer configuration is never overwritten ------------------------------------------


def test_failback_with_an_older_tree_takes_the_newer_one_first(served: LabCluster) -> None:
    """node-a (failback: it is preferred) is away and out of reach while node-b serves as
    master and is edited. node-a returns and takes the floating IP back: it must take
    node-b's files, not push its old ones over them, and say so."""
    cluster = served
    path = f"{SYNCED_DIR}/failback/haproxy.cfg"
    write_in(cluster, A, path, "maxconn 100 (before)")
    wait_for(lambda: cluster.file(B, path).exists(), PEER_AWAY, "the first version on node-b")
    with cluster.unreachable(A):
        assert cluster.skutui(A, "node", "stop").returncode == 0
        settle_vip(cluster, B, EVENTUALLY)
        wait_for(lambda: peer_up(cluster, B) is False, PEER_AWAY, "node-b sees node-a away")
        write_in(cluster, B, path, "maxconn 500 (edited on node-b while node-a was away)")
        time.sleep(1.0)
        # node-a returns (node-b still cannot reach it, so only node-a's own agent acts).
        assert cluster.skutui(A, "node", "start").returncode == 0
        wait_for(lambda: cluster.skutui(A, "events", "--state", "--json").returncode == 0, 10,
                 "node-a's agent answers")
        events = EventStream(cluster, A)
        try:
            settle_vip(cluster, A, EVENTUALLY + PEER_AWAY)
            _, event = events.wait(0, lambda e: "returned with older configuration"
                                   in e["message"], 30, "node-a says it took node-b's files")
        finally:
            events.stop()
    assert event["message"].startswith("node-a returned with older configuration; took "
                                       "node-b's"), event
    newer = "maxconn 500 (edited on node-b while node-a was away)"
    wait_for(lambda: cluster.read(A, path) == newer, 10, "node-a holds node-b's edit")
    time.sleep(1.0)
    assert cluster.read(B, path) == newer, "node-b's edit was not overwritten"
    assert "maxconn 100 (before)" in set_aside_copies(cluster, A, path)
    healthy(cluster, A)


def test_split_brain_with_different_edits_on_each_side_loses_neither(served: LabCluster) -> None:
    """Both nodes master (VRRP blocked both ways; SSH still works), each edited with its
    own version of the same file. When it heals, one version is the cluster's on both
    nodes and the other is kept aside on the node that had it, and said."""
    cluster = served
    path = f"{SYNCED_DIR}/rules.cfg"
    write_in(cluster, A, path, "first")
    wait_for(lambda: cluster.file(B, path).exists(), PEER_AWAY, "the first version on node-b")
    streams = {node: EventStream(cluster, node) for node in (A, B)}
    try:
        started = time.monotonic()
        with vrrp_blocked(cluster):
            wait_for(lambda: cluster.vip_holders() == {A, B}, EVENTUALLY, "both nodes master")
            wait_for(lambda: cluster.read(B, "/etc/skutui/local/role").strip() == "master",
                     5, "node-b's agent took the MASTER transition")
            write_in(cluster, A, path, "edited on node-a")
            write_in(cluster, B, path, "edited on node-b")
            time.sleep(2.0)
            assert cluster.read(A, path) == "edited on node-a", "a master refuses a push"
            assert cluster.read(B, path) == "edited on node-b", "a master refuses a push"
        master = next(iter(wait_for(lambda: h if len(h := cluster.vip_holders()) == 1 else None,
                                    EVENTUALLY, "one master again")))
        wait_for(lambda: cluster.read(A, path) == cluster.read(B, path), EVENTUALLY + PEER_AWAY,
                 "both nodes hold the same version again")
        kept_messages = wait_for(lambda: [e["message"] for node in (A, B)
                                          for _, e in streams[node].since(started, "sync")
                                          if "kept" in e["message"]], 10,
                                 "the operator is told where the other version went")
    finally:
        for stream in streams.values():
            stream.stop()
    final = cluster.read(A, path)
    other = "edited on node-b" if final == "edited on node-a" else "edited on node-a"
    assert final in ("edited on node-a", "edited on node-b")
    kept = set_aside_copies(cluster, A, path) + set_aside_copies(cluster, B, path)
    assert other in kept, (final, kept)
    assert any("generation" in message for message in kept_messages), kept_messages
    healthy(cluster, master)


# --- 3. exec does not wait for an absent backup; stale commands are not replayed ---------


def journal_of(cluster: LabCluster, node: str) -> dict:
    return json.loads(cluster.skutui(node, "node", "journal", "--json", check=True).stdout)


def test_exec_with_the_backup_away_returns_at_once_and_is_set_aside_after_the_term(
        served: LabCluster) -> None:
    """With node-b away, `skutui exec` does not wait for it: "queued as #N; node-b is
    away". node-a's term then ends (node-b serves) and a new one begins: the commands
    queued in the old term are set aside and listed, never replayed after newer ones."""
    cluster = served
    marker = f"/root/stale-{secrets.token_hex(4)}"
    aside_before = journal_of(cluster, A)["set_aside"]
    with cluster.unreachable(B):
        wait_for(lambda: peer_up(cluster, A) is False, PEER_AWAY, "node-a sees node-b away")
        took, queued = [], []
        for n in (1, 2):
            started = time.monotonic()
            result = cluster.skutui(A, "exec", "--", "sh", "-c", f"echo {n} >> {marker}")
            took.append(time.monotonic() - started)
            assert result.returncode == 0, result.stderr
            said = re.search(r"queued as #(\d+); node-b is away", result.stderr)
            assert said, result.stderr
            queued.append(int(said.group(1)))
        print(f"MEASURED exec with the backup away: {', '.join(f'{t:.2f} s' for t in took)}")
        assert max(took) < 10, took
        assert queued[1] == queued[0] + 1, queued
        # node-a stops being master, node-b serves, then node-a takes over again (failback).
        # node-a cannot ask node-b whether it can take over (SSH is cut; VRRP still passes).
        assert cluster.skutui(A, "maintenance", "on", "--force").returncode == 0
        settle_vip(cluster, B, EVENTUALLY)
        assert cluster.skutui(A, "maintenance", "off").returncode == 0
        settle_vip(cluster, A, EVENTUALLY)
    wait_for(lambda: peer_up(cluster, A) is True, PEER_AWAY, "node-a sees node-b back")
    journal = wait_for(lambda: j if (j := journal_of(cluster, A))["set_aside"] == aside_before + 2
                       else None, 10, "both commands set aside")
    time.sleep(1.5)  # a replay would have run by now
    assert not cluster.file(B, marker).exists(), "never replayed on node-b"
    assert cluster.read(A, marker) == "1\n2\n", "both ran on node-a"
    assert journal["pending"] == 0
    assert [e["argv"][-1] for e in journal["set_aside_entries"][-2:]] == [
        f"echo 1 >> {marker}", f"echo 2 >> {marker}"]
    assert all("earlier master term" in e["note"] for e in journal["set_aside_entries"][-2:])
    listed = cluster.skutui(A, "node", "journal", check=True).stdout
    assert f"{aside_before + 2} set aside" in listed and f"echo 1 >> {marker}" in listed
    healthy(cluster, A)


# --- 4. two changes at once ---------------------------------------------------------------


def test_two_concurrent_changes_one_is_refused_naming_the_other(served: LabCluster) -> None:
    cluster = served
    first = subprocess.Popen(
        cluster.lab.command(A, ["sh", "-c", 'echo $$; exec "$@"', "sh", "skutui", "cluster",
                                "edit", "--check-interval", "0.3"]),
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=cluster.lab.environment())
    pid = first.stdout.readline().strip()
    try:
        assert first.stdout.readline().startswith("Applying on node-b")
        cluster.run(A, "kill", "-STOP", pid, check=True)  # the first change, half-way
        second = cluster.skutui(A, "cluster", "edit", "--check-interval", "0.5")
        assert second.returncode == 1, second.stdout + second.stderr
        refusal = second.stderr.strip()
        assert refusal.startswith("skutui: another change is under way on node-a since "), refusal
        assert f"by pid {pid} (cluster edit)" in refusal, refusal
        other = cluster.skutui(B, "maintenance", "on")
        assert other.returncode == 1 and "another change is under way on node-a" in other.stderr, (
            other.stderr)
    finally:
        cluster.run(A, "kill", "-CONT", pid)
        # nsenter stopped itself when its child did, and waits to be continued too.
        os.kill(first.pid, signal.SIGCONT)
        out, err = first.communicate(timeout=60)
    assert first.returncode == 0, out + err
    for node in (A, B):
        assert "check_interval = 0.3" in cluster.read(node, "/etc/skutui/cluster.toml"), node
    assert cluster.read(B, "/etc/skutui/local/maintenance").strip() == "0"
    assert cluster.skutui(A, "cluster", "edit", "--check-interval", str(INTERVAL)).returncode == 0


# --- 5. what the sync never pushes -------------------------------------------------------


def test_an_80_mib_file_is_skipped_while_haproxy_cfg_arrives(served: LabCluster) -> None:
    cluster = served
    events = EventStream(cluster, A)
    try:
        started = time.monotonic()
        big = cluster.file(A, f"{SYNCED_DIR}/captures/trace.pcap")
        big.parent.mkdir(parents=True, exist_ok=True)
        with open(big, "wb") as out:
            out.truncate(80 * 1024 * 1024)
        write_in(cluster, A, f"{SYNCED_DIR}/haproxy.cfg", "global\n  maxconn 100\n")
        wait_for(lambda: cluster.file(B, f"{SYNCED_DIR}/haproxy.cfg").exists(), PEER_AWAY,
                 "haproxy.cfg arrives on node-b")
        _, said = events.wait(started, lambda e: e["message"].startswith("not pushed"), 10,
                              "the skipped file is said")
    finally:
        events.stop()
    assert f"{SYNCED_DIR}/captures/trace.pcap: 80.0 MiB" in said["message"], said
    assert not cluster.file(B, f"{SYNCED_DIR}/captures/trace.pcap").exists()
    assert cluster.agent_state(A)["sync_status"]["error"] is None
    big.unlink()


def test_a_corrupt_cluster_toml_on_the_master_stays_on_the_master(served: LabCluster) -> None:
    cluster = served
    good = cluster.read(A, "/etc/skutui/cluster.toml")
    events = EventStream(cluster, A)
    try:
        started = time.monotonic()
        cluster.file(A, "/etc/skutui/cluster.toml").write_text(good + "check_interval = [oops\n")
        write_in(cluster, A, f"{SYNCED_DIR}/after.cfg", "pushed all the same")
        wait_for(lambda: cluster.file(B, f"{SYNCED_DIR}/after.cfg").exists(), PEER_AWAY,
                 "the other file arrives on node-b")
        _, said = events.wait(started, lambda e: e["message"].startswith("not pushed"), 10,
                              "the refusal is said")
    finally:
        events.stop()
    assert "/etc/skutui/cluster.toml: it does not validate" in said["message"], said
    time.sleep(1.0)
    assert cluster.read(B, "/etc/skutui/cluster.toml") == good
    assert cluster.skutui(B, "cluster", "show").returncode == 0, "node-b keeps working"
    cluster.file(A, "/etc/skutui/cluster.toml").write_text(good)
    settle_vip(cluster, A, EVENTUALLY)


def test_exactly_one_agent_per_node(served: LabCluster) -> None:
    cluster = served
    first = cluster.agent_state(A)["pid"]
    cluster.run(A, "rm", "-f", "/run/skutui/control.sock", check=True)  # its socket, gone
    seen = len(cluster.agent_log(A).splitlines())
    second = cluster.skutui(A, "agent", "run", timeout=30)
    assert second.returncode == 1, second.stdout + second.stderr
    assert agent_log_lines(cluster, A, f"another skutui agent runs on this node (pid {first}",
                           seen), cluster.agent_log(A)
    agents = [args for args in cluster.processes(A)
              if is_agent_command([word.encode() for word in args.split()])]
    assert len(agents) == 1, agents
