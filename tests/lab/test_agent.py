"""The node agent on two real nodes: connection state kept across a takeover, the
configuration sync, command replication, the event stream and the node table it feeds.

Each test starts from two nodes without any cluster (the ``cluster`` fixture) and checks
both what the operator reads (``skutui events``, ``skutui nodes``, messages) and what is
really there (files byte for byte with mode and mtime, the lines replayed commands wrote,
kernel connection-tracking entries, packet counters). Measured times are printed
(``pytest -s`` or ``-rP`` shows them); only generous bounds are asserted.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import stat
import time
from collections.abc import Iterator

import pytest

from tests.lab.backend import Backend, EchoClient, LoadBalancer, Traffic, wait_vip_moved
from tests.lab.labcluster import EVENTUALLY, VIP, A, B, EventStream, LabCluster, wait_for

pytestmark = pytest.mark.lab

PEER_RETURN = 10.0
"""Bound on noticing a returned peer (probed every 2 s) and catching it up."""


def measured(what: str, seconds: float) -> None:
    print(f"MEASURED {what}: {seconds * 1000:.0f} ms")


def kill_keepalived(cluster: LabCluster, node: str) -> None:
    """keepalived dies without a word, and stays dead until `skutui node start` (systemd
    would start it again a second later). Both of its processes are stopped first: killed one
    after the other, the VRRP child may outlive its parent long enough to be told to stop,
    and then it says goodbye (a priority-0 advert) and the peer takes over at once."""
    cluster.hold_restarts(node)
    cluster.run(node, "pkill", "-STOP", "-x", "keepalived", check=True)
    cluster.run(node, "pkill", "-KILL", "-x", "keepalived", check=True)


# --- 1. takeover keeps a live TCP connection ------------------------------------------------


@pytest.fixture
def balanced(cluster: LabCluster) -> Iterator[tuple[LabCluster, LoadBalancer]]:
    """A backend behind the floating IP and the load balancer's rules on both nodes, set
    up before the cluster is created, so that connection tracking runs from the first
    packet (an SSH connection picked up mid-stream would count as unknown and be dropped)."""
    backend, balancer = Backend(), LoadBalancer(cluster)
    try:
        backend.start()
        for node in (A, B):
            balancer.install(node)
        yield cluster, balancer
    finally:
        balancer.remove()
        backend.stop()


def test_takeover_and_failback_keep_a_live_tcp_connection(balanced) -> None:
    """keepalived killed on node-a: node-b commits the connection state node-a sent it and
    carries the connection on; node-a back (failback to node-a): it carries it again."""
    cluster, balancer = balanced
    cluster.created("--failback", "local")
    client = EchoClient()
    traffic = Traffic(client)
    try:
        assert client.echo(timeout=2) < 1
        assert balancer.tracked(A, client.port), "node-a tracks the connection"
        # node-a's conntrackd sent the connection to node-b, which keeps it aside.
        wait_for(lambda: f"sport={client.port}" in cluster.run(
            B, "conntrackd", "-C", "/etc/conntrackd/conntrackd.conf", "-e").stdout,
            5, "node-b's conntrackd holds node-a's connection in its external cache")
        assert balancer.tracked(B, client.port) == [], "not in node-b's kernel yet"

        traffic.start()
        assert cluster.vip_holders() == {A}
        kill_keepalived(cluster, A)
        killed = time.monotonic()
        wait_vip_moved(cluster, B, EVENTUALLY)
        moved = time.monotonic()
        # Only node-b can carry the connection from here on: keep talking for a while.
        traffic.wait_echoes(moved, 10, 15, "echoes after node-b took over")
        assert traffic.failure is None, f"the connection broke: {traffic.failure!r}"
        takeover_gap = traffic.longest_gap(killed)
        entries = balancer.tracked(B, client.port)
        # The data: node-b's kernel holds the connection (committed from conntrackd), with
        # node-a's NAT, and node-b forwarded the echoes as a known connection.
        assert len(entries) == 1 and "ESTABLISHED" in entries[0], entries
        assert f"src=198.18.0.10 dst={VIP} sport=7777 dport={client.port}" in entries[0]
        assert balancer.counter(B, "known") > 0
        assert balancer.counter(B, "opened") == 0, "node-b never saw a new connection"
        # What the operator sees: node-b master and healthy, its takeover logged.
        rows = cluster.nodes(B)
        assert (rows[B]["role"], rows[B]["status"]) == ("master", "ok"), rows[B]
        notes = [n for n in cluster.agent_log(B).splitlines() if "transition to master" in n]
        assert notes and "failed" not in notes[-1], notes

        known_on_a = balancer.counter(A, "known")
        restarted = time.monotonic()
        result = cluster.skutui(A, "node", "start")
        assert result.returncode == 0, result.stderr
        wait_vip_moved(cluster, A, EVENTUALLY)
        back = time.monotonic()
        traffic.wait_echoes(back, 10, 15, "echoes after node-a took the floating IP back")
        assert traffic.failure is None, f"the connection broke: {traffic.failure!r}"
        failback_gap = traffic.longest_gap(restarted)
        assert balancer.counter(A, "known") > known_on_a, "node-a carries it again"
        assert len(balancer.tracked(A, client.port)) == 1
    finally:
        traffic.stop()
        client.close()
    measured("takeover (keepalived killed until node-b holds the floating IP)", moved - killed)
    measured("longest gap between two echoes during the takeover", takeover_gap)
    measured("failback (node-a started until it holds the floating IP)", back - restarted)
    measured("longest gap between two echoes during the failback", failback_gap)
    assert max(takeover_gap, failback_gap) < 10
    rows = cluster.nodes(A)
    assert {n: (r["role"], r["status"]) for n, r in rows.items()} == {
        A: ("master", "ok"), B: ("backup", "ok")}, rows


def test_without_the_connection_state_the_connection_dies(balanced) -> None:
    """The same takeover with node-b's conntrackd stopped: node-b's firewall does not know
    the connection and drops it. This is what the test above would see without the sync."""
    cluster, balancer = balanced
    cluster.created()
    cluster.hold_restarts(B)
    cluster.run(B, "pkill", "-x", "conntrackd", check=True)
    wait_for(lambda: "conntrackd" not in cluster.daemons(B), 5, "node-b's conntrackd stops")
    client = EchoClient()
    try:
        assert client.echo(timeout=2) < 1
        kill_keepalived(cluster, A)
        wait_vip_moved(cluster, B, EVENTUALLY)
        with pytest.raises(TimeoutError):
            client.echo(timeout=3)
    finally:
        client.close()
    assert balancer.tracked(B, client.port) == []
    assert balancer.counter(B, "unknown") > 0, "node-b dropped the connection's packets"
    assert balancer.counter(B, "known") == 0
    notes = [line for line in cluster.agent_log(B).splitlines() if "transition to master" in line]
    assert notes and "conntrackd -c" in notes[-1], "the failed commit is logged"


# --- 3. configuration sync ------------------------------------------------------------------


HAPROXY = "/etc/skutui/haproxy/haproxy.cfg"
LEGACY = os.fsdecode(b"/etc/skutui/haproxy/l\xe9gacy.cfg")
"""Named in Latin-1: the kernel takes any bytes, Python shows them as surrogate escapes."""
MTIME_NS = 1_614_834_367_123_456_789
"""2021-03-04 05:06:07.123456789 UTC: nothing a fresh write would give by chance."""


def entry(cluster: LabCluster, node: str, path: str) -> tuple | None:
    """Content hash, mode, owner and mtime of a file in ``node``; None when it is absent."""
    target = cluster.file(node, path)
    try:
        info = target.lstat()
        content = target.read_bytes()
    except FileNotFoundError:
        return None
    return (hashlib.sha256(content).hexdigest(), stat.S_IMODE(info.st_mode), info.st_uid,
            info.st_gid, info.st_mtime_ns)


def write(cluster: LabCluster, node: str, path: str, data: bytes, mode: int = 0o644,
          mtime_ns: int | None = None) -> None:
    """Write a file in a node as an editor would: in place, then its mode and mtime."""
    target = cluster.file(node, path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)
    target.chmod(mode)
    if mtime_ns is not None:
        os.utime(target, ns=(mtime_ns, mtime_ns))


def same_on_b(cluster: LabCluster, path: str) -> bool:
    here = entry(cluster, A, path)
    return here is not None and entry(cluster, B, path) == here


def synced(cluster: LabCluster, path: str, timeout: float = 5) -> None:
    wait_for(lambda: same_on_b(cluster, path), timeout,
             f"{path} on node-b as on node-a (content, mode, owner, mtime)", poll=0.01)


def test_sync_pushes_contents_mode_and_mtime_and_deletes(cluster: LabCluster) -> None:
    cluster.created()
    wait_for(lambda: cluster.agent_state(A)["sync"], 5, "node-a's sync watcher runs")
    state = cluster.agent_state(B)
    assert state["role"] == "backup" and state["sync"] is False, "a backup runs no sync"
    events = EventStream(cluster, A)
    try:
        data = b"global\n    maxconn 4096\n" + secrets.token_bytes(300)
        started = time.monotonic()
        write(cluster, A, HAPROXY, data, 0o640, MTIME_NS)
        synced(cluster, HAPROXY)
        measured("sync of one file (write on node-a until equal on node-b)",
                 time.monotonic() - started)
        copy = cluster.file(B, HAPROXY)
        assert copy.read_bytes() == data
        assert stat.S_IMODE(copy.stat().st_mode) == 0o640
        assert copy.stat().st_mtime_ns == MTIME_NS
        assert stat.S_IMODE(copy.parent.stat().st_mode) == stat.S_IMODE(
            cluster.file(A, HAPROXY).parent.stat().st_mode)
        pushed = events.wait(started, lambda e: e["kind"] == "sync"
                             and HAPROXY in e["data"].get("written", []), 5,
                             "a sync event names the pushed file")[1]
        assert "pushed to node-b" in pushed["message"] and HAPROXY in pushed["message"]

        # A name that is not UTF-8 (a file from an older system) is a file like any other.
        write(cluster, A, LEGACY, b"latin-1 name\n", 0o600, MTIME_NS)
        synced(cluster, LEGACY)

        # Never synced: this node's own folder, and anything written on the backup.
        write(cluster, A, "/etc/skutui/local/only-on-a", b"mine\n")
        write(cluster, B, "/etc/skutui/written-on-b.cfg", b"the backup's own\n")
        barrier = "/etc/skutui/haproxy/after.cfg"
        write(cluster, A, barrier, b"pushed after the others\n")
        synced(cluster, barrier)
        time.sleep(3 * 0.2)  # three debounce periods more for anything still on its way
        assert not cluster.file(B, "/etc/skutui/local/only-on-a").exists()
        assert not cluster.file(A, "/etc/skutui/written-on-b.cfg").exists(), \
            "the backup never pushes"
        assert cluster.read(B, "/etc/skutui/local/role").strip() == "backup"
        assert cluster.read(A, "/etc/skutui/local/role").strip() == "master"

        deleted_at = time.monotonic()
        cluster.file(A, HAPROXY).unlink()
        wait_for(lambda: not cluster.file(B, HAPROXY).exists(), 5,
                 "the delete reaches node-b", poll=0.01)
        measured("sync of one delete", time.monotonic() - deleted_at)
        gone = events.wait(deleted_at, lambda e: e["kind"] == "sync"
                           and HAPROXY in e["data"].get("deleted", []), 5,
                           "a sync event names the deleted file")[1]
        assert "1 deleted" in gone["message"]
        assert cluster.file(B, barrier).exists(), "only the deleted file went"
        errors = [e["message"] for _, e in events.since(started) if e["level"] != "info"]
        assert errors == []
        assert cluster.agent_state(A)["sync"] is True, "the sync watcher still runs"
    finally:
        events.stop()


def test_a_change_made_while_b_is_away_arrives_when_b_returns(cluster: LabCluster) -> None:
    cluster.created()
    write(cluster, A, HAPROXY, b"version 1\n", 0o640, MTIME_NS)
    synced(cluster, HAPROXY)
    # Drift on the backup: a file only node-b has (the master's tree is the reference).
    write(cluster, B, "/etc/skutui/haproxy/drift.cfg", b"edited on the backup\n")
    events = EventStream(cluster, A)
    try:
        with cluster.unreachable(B):
            lost = events.wait(0, lambda e: e["kind"] == "peer" and e["data"].get("up") is False,
                               PEER_RETURN, "node-a reports node-b unreachable")[1]
            assert "node-b" in lost["message"] and "unreachable" in lost["message"]
            rows = cluster.nodes(A)
            assert (rows[B]["status"], rows[B]["message"]) == (
                "unreachable", "Node unreachable"), rows[B]
            changed_at = time.monotonic()
            write(cluster, A, HAPROXY, b"version 2, written while node-b was away\n", 0o600,
                  MTIME_NS + 1_000_000_000)
            write(cluster, A, "/etc/skutui/haproxy/new.cfg", b"new while away\n", 0o640)
            write(cluster, A, "/etc/skutui/local/only-on-a", b"never synced\n")
            time.sleep(0.5)
            assert cluster.read(B, HAPROXY) == "version 1\n", "nothing reached node-b"
            assert cluster.agent_state(A)["peer"]["up"] is False
        returned = time.monotonic()
        for path in (HAPROXY, "/etc/skutui/haproxy/new.cfg"):
            synced(cluster, path, timeout=PEER_RETURN)
        measured("catch-up after node-b returned (SSH allowed again until in step)",
                 time.monotonic() - returned)
        assert cluster.read(B, HAPROXY) == "version 2, written while node-b was away\n"
        assert stat.S_IMODE(cluster.file(B, HAPROXY).stat().st_mode) == 0o600
        wait_for(lambda: not cluster.file(B, "/etc/skutui/haproxy/drift.cfg").exists(), 5,
                 "the reconcile removes node-b's drift")
        assert not cluster.file(B, "/etc/skutui/local/only-on-a").exists()
        assert cluster.read(B, "/etc/skutui/local/role").strip() == "backup"
        back = events.wait(changed_at, lambda e: e["kind"] == "peer"
                           and e["data"].get("up") is True, 5, "node-b reachable again")[1]
        assert "node-b" in back["message"]
        reconciled = events.wait(changed_at, lambda e: e["kind"] == "sync"
                                 and e["data"].get("sync") == "reconcile"
                                 and HAPROXY in e["data"].get("written", []), 5,
                                 "the reconcile names what it wrote")[1]
        assert "reconciled with node-b" in reconciled["message"]
        assert "/etc/skutui/haproxy/drift.cfg" in reconciled["data"]["deleted"]
    finally:
        events.stop()
    rows = cluster.nodes(A)
    assert (rows[B]["status"], rows[B]["colour"]) == ("ok", "green"), rows[B]


# --- 4. replication ------------------------------------------------------------------------


REPLAYED = "/tmp/replayed"
COMMANDS = 50


def replayed(cluster: LabCluster, node: str) -> list[str]:
    target = cluster.file(node, REPLAYED)
    return target.read_text().split() if target.exists() else []


def queue_commands(cluster: LabCluster, count: int) -> None:
    """``count`` numbered ``skutui exec --no-wait`` on node-a, one after the other."""
    script = (f"for i in $(seq 1 {count}); do skutui exec --no-wait -- "
              f"sh -c \"echo $i >> {REPLAYED}\" 2>>/tmp/exec.err || echo \"failed $i\"; done; "
              "tail -n 1 /tmp/exec.err")
    result = cluster.sh(A, script, timeout=300)  # a Python start-up each: slow on a busy machine
    assert result.returncode == 0 and "failed" not in result.stdout, result.stdout
    assert f"queued as #{count} for node-b" in result.stdout, result.stdout


def journal(cluster: LabCluster) -> dict:
    result = cluster.skutui(A, "node", "journal", "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.fixture
def replication(cluster: LabCluster) -> Iterator[LabCluster]:
    for node in (A, B):
        cluster.sh(node, f"rm -f {REPLAYED} /tmp/exec.err", check=True)
    cluster.created()
    yield cluster
    for node in (A, B):
        cluster.sh(node, f"rm -f {REPLAYED} /tmp/exec.err")


def expect_all_in_order(cluster: LabCluster, timeout: float, count: int = COMMANDS) -> float:
    """Every command replayed on node-b exactly once, in order; returns when it was seen."""
    wanted = [str(i) for i in range(1, count + 1)]
    wait_for(lambda: len(replayed(cluster, B)) >= count, timeout,
             f"{count} commands replayed on node-b", poll=0.02)
    done = time.monotonic()
    time.sleep(0.5)  # a doubled command would show up here
    assert replayed(cluster, B) == wanted, "none lost, none doubled, in order"
    assert replayed(cluster, A) == wanted, "each ran on node-a first"
    return done


def test_commands_queued_while_b_is_away_replay_in_order_once(replication) -> None:
    cluster = replication
    events = EventStream(cluster, A)
    try:
        with cluster.unreachable(B):
            wait_for(lambda: cluster.agent_state(A)["peer"]["up"] is False, PEER_RETURN,
                     "node-a's agent sees node-b away")
            queue_commands(cluster, COMMANDS)
            summary = journal(cluster)
            assert summary["pending"] == COMMANDS, summary
            assert [e["argv"][-1] for e in summary["entries"]] == [
                f"echo {i} >> {REPLAYED}" for i in range(1, COMMANDS + 1)]
            assert cluster.agent_state(A)["replication"]["pending"] == COMMANDS
            assert replayed(cluster, B) == []
        returned = time.monotonic()
        done = expect_all_in_order(cluster, PEER_RETURN + 30)
        wait_for(lambda: journal(cluster)["pending"] == 0, 5, "the journal is empty")
        summary = journal(cluster)
        assert summary["acked"] == COMMANDS and summary["failed_total"] == 0, summary
        applied = [(at, e["data"]["seq"]) for at, e in events.since(returned, "replication")
                   if e["data"].get("status") == "applied"]
        assert [seq for _, seq in applied] == list(range(1, COMMANDS + 1)), applied
        assert all(f"applied on the peer: sh -c 'echo {seq} >> {REPLAYED}'" in e["message"]
                   for (_, seq), (_, e) in zip(applied, events.since(returned, "replication"), strict=False))
    finally:
        events.stop()
    measured(f"replay of {COMMANDS} queued commands (node-b back until all ran there)",
             done - returned)
    measured(f"replay of {COMMANDS} queued commands (first to last acknowledged)",
             applied[-1][0] - applied[0][0])
    assert cluster.agent_state(A)["replication"]["pending"] == 0


def agent_pid(cluster: LabCluster, node: str) -> str:
    pids = cluster.run(node, "pgrep", "-f", "--", "skutui agent run").stdout.split()
    assert len(pids) == 1, pids
    return pids[0]


def restart_agent(cluster: LabCluster, node: str) -> None:
    """kill -9 the agent, then start it again as an operator would (`skutui node start`),
    systemd holding back its own restart."""
    cluster.hold_restarts(node)
    cluster.run(node, "kill", "-9", agent_pid(cluster, node), check=True)
    wait_for(lambda: "agent" not in cluster.daemons(node), 5, f"{node}'s agent is gone")
    result = cluster.skutui(node, "node", "start")
    assert result.returncode == 0, result.stderr
    wait_for(lambda: "agent" in cluster.daemons(node), 5, f"{node}'s agent runs again")


def test_replay_survives_the_masters_agent_killed_while_queued_and_mid_replay(
        replication) -> None:
    """The replay is the master's agent's work: kill -9 it while commands wait, and again
    while they replay."""
    cluster, count = replication, COMMANDS
    with cluster.unreachable(B):
        queue_commands(cluster, count)
        restart_agent(cluster, A)  # killed while everything waits
        assert journal(cluster)["pending"] == count
    # Killed again in the middle of the replay, once some commands reached node-b.
    wait_for(lambda: len(replayed(cluster, B)) >= 10, PEER_RETURN,
             "the replay to node-b is under way", poll=0.005)
    cluster.run(A, "kill", "-9", agent_pid(cluster, A), check=True)
    stopped_at = len(replayed(cluster, B))
    assert stopped_at < count, "the agent was killed in the middle of the replay"
    wait_for(lambda: "agent" not in cluster.daemons(A), 5, "node-a's agent is gone")
    time.sleep(0.3)
    halted = len(replayed(cluster, B))
    assert halted <= stopped_at + 1, "nothing replays while the master's agent is down"
    assert 0 < journal(cluster)["pending"] < count
    result = cluster.skutui(A, "node", "start")
    assert result.returncode == 0, result.stderr
    expect_all_in_order(cluster, 30, count)
    print(f"MEASURED replay interrupted after {halted} of {count} commands")
    wait_for(lambda: journal(cluster)["pending"] == 0, 5, "the journal is empty")
    summary = journal(cluster)
    assert summary["failed_total"] == 0 and summary["last_failure"] is None, summary


# --- 5. events -------------------------------------------------------------------------------


def role_events(stream: EventStream, since: float) -> list[dict]:
    return [event for _, event in stream.since(since, "role")]


def test_events_show_each_role_change_once_as_keepalived_makes_it(cluster: LabCluster) -> None:
    cluster.created()
    streams = {node: EventStream(cluster, node) for node in (A, B)}
    try:
        # Maintenance on the master hands over first: node-a ranks itself below node-b (a
        # backup once node-b takes over), and only then enters maintenance (FAULT).
        for trigger, changes in (
                ("on", {A: [("backup", "BACKUP"), ("maintenance", "FAULT")], B: [("master", "MASTER")]}),
                ("off", {A: [("backup", "BACKUP")], B: []})):
            started = time.monotonic()
            result = cluster.skutui(A, "maintenance", trigger)
            assert result.returncode == 0, result.stderr
            for node, expected in changes.items():
                for role, state in expected:
                    arrived, event = streams[node].wait(
                        started, lambda e, role=role: e["kind"] == "role"
                        and e["data"]["role"] == role, 10, f"a role event ({role})")
                    measured(f"maintenance {trigger}: role event on {node} ({role})",
                             arrived - started)
                    assert event["node"] == node and event["level"] in ("info", "warning"), event
                    assert event["data"]["cause"] == f"keepalived {state}", event
                    assert f"keepalived moved this node to {state}" in event["message"]
                    # keepalived's notify hook then reports its steps, all done.
                    _, steps = streams[node].wait(
                        started, lambda e, state=state: e["kind"] == "service"
                        and e["data"].get("cause") == f"keepalived {state}", 5, f"{state} steps")
                    assert steps["data"]["failed"] == [] and steps["level"] == "info", steps
            if trigger == "on":
                wait_vip_moved(cluster, B, EVENTUALLY)
            time.sleep(0.6)  # a second event for the same change would have come by now
            for node, expected in changes.items():
                seen = role_events(streams[node], started)
                assert [e["data"]["role"] for e in seen] == [role for role, _ in expected], \
                    f"{node}: one role event per change, not {[e['message'] for e in seen]}"
    finally:
        for stream in streams.values():
            stream.stop()
    assert cluster.vip_holders() == {B}, "failback disabled: node-b keeps the floating IP"
    rows = cluster.nodes(A)
    assert (rows[A]["role"], rows[B]["role"]) == ("backup", "master"), rows


# --- after a takeover: the new master syncs and replicates to the old one --------------------


def test_after_a_takeover_the_new_master_syncs_and_replicates_to_the_old_one(
        replication) -> None:
    """keepalived dies on node-a: node-b takes over, and node-a (whose role file still says
    master, since no transition ran there) must stop acting as master, so that node-b's
    configuration and commands reach it."""
    cluster = replication
    kill_keepalived(cluster, A)
    wait_vip_moved(cluster, B, EVENTUALLY)
    taken_over = time.monotonic()
    events = EventStream(cluster, B)
    try:
        wait_for(lambda: (lambda s: (s["role"], s["sync"]) == ("backup", False))(
            cluster.agent_state(A)), 5, "node-a's agent stops acting as master")
        state = cluster.agent_state(B)
        assert (state["role"], state["sync"]) == ("master", True), state

        write(cluster, B, HAPROXY, b"written on the new master\n", 0o640, MTIME_NS)
        wait_for(lambda: entry(cluster, A, HAPROXY) == entry(cluster, B, HAPROXY), 5,
                 f"{HAPROXY} from node-b on node-a", poll=0.01)
        write(cluster, A, "/etc/skutui/written-on-a.cfg", b"node-a is no master now\n")

        result = cluster.skutui(B, "exec", "--wait", "10", "--", "sh", "-c",
                                f"echo after-takeover >> {REPLAYED}")
        assert result.returncode == 0, result.stderr
        assert "#1 replicated to node-a" in result.stderr, result.stderr
        assert replayed(cluster, A) == ["after-takeover"]

        time.sleep(0.6)
        assert not cluster.file(B, "/etc/skutui/written-on-a.cfg").exists(), \
            "node-a does not push: it is not the master"
        problems = [e["message"] for _, e in events.since(taken_over)
                    if e["level"] != "info"]
        assert problems == [], problems
    finally:
        events.stop()
    rows = cluster.nodes(B)
    assert (rows[B]["role"], rows[B]["status"]) == ("master", "ok"), rows[B]
    assert (rows[A]["role"], rows[A]["status"], rows[A]["message"]) == (
        "backup", "failure", "not ready to take over: keepalived is down"), rows[A]

    # node-a's keepalived back: node-a rejoins as a healthy backup.
    result = cluster.skutui(A, "node", "start")
    assert result.returncode == 0, result.stderr
    wait_for(lambda: {n: (r["role"], r["status"]) for n, r in cluster.nodes(B).items()}
             == {A: ("backup", "ok"), B: ("master", "ok")}, EVENTUALLY,
             "node-a back as a healthy backup", poll=0.2)
    assert cluster.vip_holders() == {B}
