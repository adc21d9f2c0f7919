"""The cluster lifecycle on two real nodes: real sshd, keepalived, conntrackd and the agent.

Each test starts from two nodes without any cluster, key or pinned host (the ``cluster``
fixture) and checks both what the operator reads (exit codes, messages, the node table) and
what is really there (files on both nodes, running daemons, which node holds the floating
IP). Traffic stays on the lab's 198.18.0.0/24 bridge and loopback.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import secrets
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

import asyncssh
import pytest

from skutui_lab import PASSWORD, Lab
from skutui_lab.topology import FLOATING_IP
from tests.lab.labcluster import (
    EVENTUALLY,
    INTERVAL,
    NODE_A,
    NODE_B,
    VIP,
    A,
    B,
    CreateRun,
    LabCluster,
    tree_changes,
    wait_for,
)

pytestmark = pytest.mark.lab

ROW_KEYS = {"node", "role", "ip", "hostname", "status", "colour", "message"}
MANAGED = ("/etc/skutui/cluster.toml", "/etc/keepalived/keepalived.conf",
           "/etc/conntrackd/conntrackd.conf")
RUNTIME = {"/etc/skutui": ("local/journal", "local/generation", "local/generation.lock")}
"""Written by the running agent on its own (the replication journal; the configuration
generation, taken by the backup at the first reconcile); not something a refused command
changed."""


# --- what the operator sees ----------------------------------------------------------------


def assert_master_row(row: dict, node: str) -> None:
    assert set(row) == ROW_KEYS
    assert (row["hostname"], row["role"]) == (node, "master"), row
    assert "keepalived" not in row["message"] and "conntrackd" not in row["message"], row


def assert_backup_row(row: dict, node: str) -> None:
    assert set(row) == ROW_KEYS
    assert (row["hostname"], row["role"], row["status"], row["colour"]) == (
        node, "backup", "ok", "green"), row
    assert row["message"] == "Node online and passive"


def assert_maintenance_row(row: dict, node: str) -> None:
    assert (row["hostname"], row["role"], row["status"], row["colour"], row["message"]) == (
        node, "maintenance", "maintenance", "orange", "Node in maintenance mode"), row


def assert_no_traceback(result: subprocess.CompletedProcess) -> None:
    assert "Traceback" not in result.stdout + result.stderr


def assert_roles(cluster: LabCluster, master: str) -> None:
    """Both nodes' tables agree: ``master`` is master, the other is a healthy backup."""
    backup = cluster.other(master)
    with ThreadPoolExecutor(2) as pool:
        tables = dict(zip((A, B), pool.map(cluster.nodes, (A, B)), strict=True))
    for seen_from, rows in tables.items():
        assert set(rows) == {A, B}
        assert {rows[n]["node"] for n in rows} == {"local", "remote"}
        assert rows[seen_from]["node"] == "local"
        assert_master_row(rows[master], master)
        assert_backup_row(rows[backup], backup)


def settle_vip(cluster: LabCluster, holder: str, timeout: float = EVENTUALLY) -> None:
    wait_for(lambda: cluster.vip_holders() == {holder}, timeout,
             f"{VIP} held by {holder} only")


def hold_for(cluster: LabCluster, seconds: float, check, what: str) -> None:
    """``check`` stays true for ``seconds``: a state that must not change."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert check(), what
        time.sleep(0.05)


# --- helpers on the nodes ------------------------------------------------------------------


class AddressMonitor:
    """``ip monitor address`` inside a node: every address added or deleted while it runs."""

    def __init__(self, cluster: LabCluster, node: str):
        self.cluster, self.node = cluster, node
        self.lines: list[str] = []
        self.proc = subprocess.Popen(
            cluster.lab.command(node, ["sh", "-c", "echo $$; exec ip -o -ts monitor address"]),
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            text=True, env=cluster.lab.environment())
        self.pid = int(self.proc.stdout.readline())
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        # Proof that it listens before the test acts: a host-scope address on lo, removed again.
        probe = "127.0.0.99/32"
        cluster.run(node, "ip", "addr", "add", probe, "dev", "lo", check=True)
        cluster.run(node, "ip", "addr", "del", probe, "dev", "lo", check=True)
        wait_for(lambda: any("Deleted" in line and "127.0.0.99" in line for line in self.lines),
                 5, f"address monitor on {node} sees changes")

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.append(line.strip())

    def vip_changes(self) -> list[str]:
        return [line for line in self.lines if f" {VIP}/" in line]

    def vip_gaps(self) -> list[float]:
        """Seconds from each removal of the floating IP to its return (inf if it did not)."""
        gaps, removed = [], None
        for line in self.vip_changes():
            moment = datetime.fromisoformat(line[1:line.index("]")]).timestamp()
            if "Deleted" in line:
                removed = moment
            elif removed is not None:
                gaps.append(moment - removed)
                removed = None
        return gaps + ([math.inf] if removed is not None else [])

    def stop(self) -> None:
        self.cluster.run(self.node, "kill", str(self.pid))
        self.proc.wait(timeout=10)
        self.reader.join(timeout=10)


def keepalived_dump(cluster: LabCluster, node: str) -> str:
    """keepalived's own view of its configuration and state (its SIGUSR1 data dump)."""
    dump = cluster.file(node, "/run/skutui/keepalived.data")
    dump.unlink(missing_ok=True)
    cluster.sh(node, "kill -USR1 $(cat /run/skutui/keepalived.pid)", check=True)
    sizes: list[int] = []

    def complete() -> bool:
        sizes.append(dump.stat().st_size if dump.exists() else -1)
        return len(sizes) > 2 and sizes[-1] == sizes[-2] == sizes[-3] > 0

    wait_for(complete, 5, f"keepalived data dump on {node}")
    return dump.read_text()


def keepalived_pids(cluster: LabCluster, node: str) -> list[str]:
    return cluster.run(node, "pgrep", "-x", "keepalived").stdout.split()


def transitions(cluster: LabCluster, node: str) -> list[str]:
    return [line for line in cluster.agent_log(node).splitlines() if "notify: transition" in line]


def offered_fingerprint(ip: str) -> str | None:
    """The host key fingerprint sshd at ``ip`` offers now; None while it is not listening."""

    async def fetch() -> str:
        key = await asyncio.wait_for(asyncssh.get_server_host_key(ip, 22), 5)
        return key.get_fingerprint("sha256")

    try:
        return asyncio.run(fetch())
    except (TimeoutError, OSError, asyncssh.Error):
        return None


def fingerprint_of(public_key: Path) -> str:
    return asyncssh.import_public_key(public_key.read_text()).get_fingerprint("sha256")


def routers_heard(cluster: LabCluster, node: str, seconds: float) -> subprocess.Popen:
    """Listen for VRRP adverts in ``node`` (in the background); the result is printed JSON."""
    code = ("import json, sys; from skutui.system.vrrp_probe import routers_heard; "
            "print(json.dumps(sorted(routers_heard(sys.argv[1], float(sys.argv[2])))))")
    return subprocess.Popen(
        cluster.lab.command(node, [sys.executable, "-c", code, cluster.ip(node), str(seconds)]),
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=cluster.lab.environment())


def heard(listener: subprocess.Popen) -> list[list]:
    out, err = listener.communicate(timeout=30)
    assert listener.returncode == 0, err
    return json.loads(out)


# --- 1. create ----------------------------------------------------------------------------


@pytest.fixture(scope="class")
def made(lab: Lab) -> Iterator[tuple[LabCluster, subprocess.CompletedProcess]]:
    """One cluster made with the default flags, and what its create printed."""
    cluster = LabCluster(lab)
    cluster.reset()
    cluster.assert_clean()
    try:
        yield cluster, cluster.created()
    finally:
        cluster.reset()
        cluster.assert_clean()


class TestOneCluster:
    """What a new cluster is, and what it refuses, seen by tests that leave it as it was: one
    create for all."""

    def test_create_makes_a_master_and_b_backup_with_the_floating_ip_on_a(self, made) -> None:
        cluster, result = made
        assert_no_traceback(result)
        assert "Cluster created: node-a and node-b" in result.stdout
        assert "node-a is master" in result.stdout and "node-b is backup" in result.stdout

        assert cluster.vip_holders() == {A}
        assert_roles(cluster, master=A)
        for node in (A, B):
            assert cluster.daemons(node) == {"keepalived", "conntrackd", "agent"}, node

        toml_a, toml_b = (cluster.read(n, "/etc/skutui/cluster.toml") for n in (A, B))
        assert toml_a == toml_b, "both nodes hold the same cluster.toml"
        for node in (A, B):
            keepalived = cluster.read(node, "/etc/keepalived/keepalived.conf")
            assert f"advert_int {INTERVAL:g}" in keepalived
            assert f"unicast_src_ip {cluster.ip(node)}" in keepalived
            assert cluster.ip(cluster.other(node)) in keepalived.split("unicast_peer {")[1].split("}")[0]
            assert f"{VIP}/24 dev eth0" in keepalived
            conntrackd = cluster.read(node, "/etc/conntrackd/conntrackd.conf")
            assert f"IPv4_address {cluster.ip(node)}" in conntrackd
            assert cluster.read(node, "/etc/skutui/local/maintenance").strip() == "0"
        assert cluster.read(A, "/etc/skutui/local/role").strip() == "master"
        assert cluster.read(B, "/etc/skutui/local/role").strip() == "backup"

        for node in (A, B):
            status = cluster.skutui(node, "status", "--json")
            assert status.returncode == 0, status.stderr
            data = json.loads(status.stdout)
            assert set(data) == {"version", "hostname", "configured", "cluster", "nodes"}
            assert data["hostname"] == node and data["configured"] is True
            rows = {row["hostname"]: row for row in data["nodes"]}
            assert [row["node"] for row in data["nodes"]] == ["local", "remote"]
            assert rows[node]["node"] == "local"
            assert_master_row(rows[A], A)
            assert_backup_row(rows[B], B)
            config = data["cluster"]
            assert config["interface"] == "eth0"
            assert config["nodes"] == {A: {"ip": NODE_A.ip}, B: {"ip": NODE_B.ip}}
            assert config["floating_ips"] == [FLOATING_IP]
            assert config["check_interval"] == INTERVAL
            assert config["failback"] == "disabled"
            assert config["virtual_router_id"] == 51
        shown = [json.loads(cluster.skutui(n, "cluster", "show", "--json", check=True).stdout)
                 for n in (A, B)]
        assert shown[0] == shown[1]


    def test_node_table_turns_green_on_both_nodes_after_create(self, made) -> None:
        cluster, _ = made
        created = time.monotonic()

        def green(seen_from: str) -> dict | None:
            rows = cluster.nodes(seen_from)
            ok = all((row["status"], row["colour"]) == ("ok", "green") for row in rows.values())
            return rows if ok else None

        rows = wait_for(lambda: green(A), 10, "both rows ok and green on node-a", poll=0.2)
        print(f"MEASURED create returned until both rows green: {(time.monotonic() - created) * 1000:.0f} ms")
        assert (rows[A]["role"], rows[A]["message"]) == ("master", "Node online and active")
        assert (rows[B]["role"], rows[B]["message"]) == ("backup", "Node online and passive")
        assert (rows[A]["node"], rows[B]["node"]) == ("local", "remote")
        other = wait_for(lambda: green(B), 5, "both rows ok and green on node-b", poll=0.2)
        assert {n: (r["role"], r["message"]) for n, r in other.items()} == {
            n: (r["role"], r["message"]) for n, r in rows.items()}
        # What "active" stands for: node-a's agent runs the sync watcher, node-b's does not.
        state_a, state_b = cluster.agent_state(A), cluster.agent_state(B)
        assert (state_a["role"], state_a["sync"]) == ("master", True), state_a
        assert (state_b["role"], state_b["sync"]) == ("backup", False), state_b
        assert state_a["peer"]["up"] is True and state_b["peer"]["up"] is True
        assert cluster.vip_holders() == {A}

    def test_keys_and_configurations_are_root_only_and_so_is_the_control_socket(self, made) -> None:
        cluster, _ = made
        private = ("/etc/skutui/cluster.toml", "/etc/skutui/local/id_ed25519",
                   "/etc/skutui/local/known_hosts", "/etc/keepalived/keepalived.conf",
                   "/etc/conntrackd/conntrackd.conf", "/run/skutui/control.sock")
        for node in (A, B):
            for path in private:
                info = cluster.file(node, path).stat()
                assert (stat.S_IMODE(info.st_mode), info.st_uid) == (0o600, 0), (node, path)
            assert stat.S_IMODE(cluster.file(node, "/etc/skutui/local").stat().st_mode) == 0o700
            # Another user is refused with a clear message, whatever the socket's mode.
            nobody = cluster.run(node, "setpriv", "--reuid=65534", "--regid=65534",
                                 "--clear-groups", "skutui", "events", "--state")
            assert nobody.returncode != 0 and "for root only" in nobody.stderr, nobody.stderr
            assert "Traceback" not in nobody.stderr

    def test_status_says_at_once_that_the_peer_cannot_be_reached(self, made) -> None:
        cluster, _ = made
        with cluster.unreachable(B):
            started = time.monotonic()
            status = cluster.skutui(A, "status", "--json")
            took = time.monotonic() - started
        assert status.returncode == 0, status.stderr
        rows = {row["hostname"]: row for row in json.loads(status.stdout)["nodes"]}
        assert_master_row(rows[A], A)
        assert (rows[B]["node"], rows[B]["status"], rows[B]["colour"], rows[B]["message"]) == (
            "remote", "unreachable", "grey", "Node unreachable"), rows[B]
        assert took < 5, f"status took {took:.1f} s"

    def test_edit_on_the_backup_is_refused_naming_the_master(self, made) -> None:
        cluster, _ = made
        before = cluster.both_trees(skip=RUNTIME)
        result = cluster.skutui(B, "cluster", "edit", "--check-interval", "2")
        assert result.returncode == 1
        assert_no_traceback(result)
        assert "not the master" in result.stderr
        assert "node-a" in result.stderr and NODE_A.ip in result.stderr
        assert tree_changes(before, cluster.both_trees(skip=RUNTIME)) == []
        assert cluster.vip_holders() == {A}


# --- 2. failover ---------------------------------------------------------------------------


def test_killed_keepalived_moves_the_floating_ip_to_b_and_shows_a_red(cluster: LabCluster) -> None:
    cluster.created()
    assert cluster.vip_holders() == {A}

    cluster.hold_restarts(A)  # keepalived stays dead: systemd would start it again
    cluster.run(A, "pkill", "-9", "-x", "keepalived", check=True)
    wait_for(lambda: cluster.holds_vip(B), EVENTUALLY, "node-b takes the floating IP")
    # keepalived was killed without a word: only the agent's guard can drop the address on a.
    wait_for(lambda: not cluster.holds_vip(A), EVENTUALLY,
             "node-a's agent releases the floating IP")
    assert cluster.vip_holders() == {B}

    for seen_from in (A, B):
        rows = cluster.nodes(seen_from)
        assert_master_row(rows[B], B)
        assert rows[A]["role"] != "master", rows[A]
        assert (rows[A]["status"], rows[A]["colour"]) == ("failure", "red"), rows[A]
        assert "keepalived" in rows[A]["message"], rows[A]
    assert "keepalived" not in cluster.daemons(A)


# --- 3. maintenance -----------------------------------------------------------------------


def test_maintenance_survives_a_restart_and_a_returns_as_backup(cluster: LabCluster) -> None:
    cluster.created()
    on = cluster.skutui(A, "maintenance", "on")
    assert on.returncode == 0, on.stderr
    assert "node-a is in maintenance" in on.stdout
    settle_vip(cluster, B)
    rows = cluster.nodes(A)
    assert_maintenance_row(rows[A], A)
    assert_master_row(rows[B], B)
    assert cluster.read(A, "/etc/skutui/local/maintenance").strip() == "1"

    again = cluster.skutui(A, "maintenance", "on")
    assert again.returncode == 1 and "already under maintenance" in again.stderr

    for step in ("stop", "start"):
        result = cluster.skutui(A, "node", step)
        assert result.returncode == 0, result.stderr
    assert cluster.daemons(A) == {"keepalived", "conntrackd", "agent"}
    # A restarted keepalived would take over within 3 adverts if it forgot the maintenance.
    hold_for(cluster, 3 * INTERVAL + 1.0, lambda: cluster.vip_holders() == {B},
             "the floating IP stays on node-b while node-a restarts in maintenance")
    for seen_from in (A, B):
        rows = cluster.nodes(seen_from)
        assert_maintenance_row(rows[A], A)
        assert_master_row(rows[B], B)

    off = cluster.skutui(A, "maintenance", "off")
    assert off.returncode == 0, off.stderr
    assert "node-a left maintenance" in off.stdout
    wait_for(lambda: cluster.nodes(A)[A]["role"] == "backup", EVENTUALLY, "node-a back as backup")
    # Failback disabled: node-a does not take the floating IP back.
    hold_for(cluster, 3 * INTERVAL + 0.5, lambda: cluster.vip_holders() == {B},
             "failback disabled: the floating IP stays on node-b")
    assert_roles(cluster, master=B)
    assert cluster.read(A, "/etc/skutui/local/maintenance").strip() == "0"


def test_maintenance_off_with_failback_local_makes_a_master_again(cluster: LabCluster) -> None:
    cluster.created("--failback", "local")
    assert 'failback = "node-a"' in cluster.read(B, "/etc/skutui/cluster.toml")
    # From the other node this time: node-b puts its peer in maintenance over SSH.
    on = cluster.skutui(B, "maintenance", "on", "--node", "remote")
    assert on.returncode == 0, on.stderr
    settle_vip(cluster, B)
    rows = cluster.nodes(B)
    assert_maintenance_row(rows[A], A)
    assert_master_row(rows[B], B)

    off = cluster.skutui(B, "maintenance", "off", "--node", "remote")
    assert off.returncode == 0, off.stderr
    settle_vip(cluster, A)
    wait_for(lambda: cluster.nodes(A)[B]["role"] == "backup", EVENTUALLY, "node-b back to backup")
    assert_roles(cluster, master=A)


# --- 4. wrong password --------------------------------------------------------------------


def test_wrong_password_fails_clearly_and_changes_nothing(cluster: LabCluster) -> None:
    before = cluster.both_trees()
    result = cluster.create(password="not-the-root-password")
    assert result.returncode == 1, result.stdout + result.stderr
    assert_no_traceback(result)
    assert "refused by 198.18.0.2" in result.stderr and "password is wrong" in result.stderr
    assert "not-the-root-password" not in result.stdout + result.stderr

    check = cluster.skutui(A, *cluster.check_args(), input="wrong-again\n")
    assert check.returncode == 1
    assert "[FAIL] Peer reachable and authenticated" in check.stdout

    assert tree_changes(before, cluster.both_trees()) == []
    for node in (A, B):
        assert cluster.daemons(node) == set()
    assert cluster.vip_holders() == set()


# --- 5. changed host key -----------------------------------------------------------------


def test_changed_host_key_of_b_is_refused_and_changes_nothing(cluster: LabCluster) -> None:
    cluster.created()
    key = cluster.file(B, "/etc/ssh/ssh_host_ed25519_key")
    pub = cluster.file(B, "/etc/ssh/ssh_host_ed25519_key.pub")
    saved = {path: (path.read_bytes(), stat.S_IMODE(path.stat().st_mode)) for path in (key, pub)}
    pinned = fingerprint_of(pub)
    try:
        cluster.sh(B, "rm -f /etc/ssh/ssh_host_ed25519_key /etc/ssh/ssh_host_ed25519_key.pub && "
                      "ssh-keygen -q -t ed25519 -N '' -f /etc/ssh/ssh_host_ed25519_key && "
                      "kill -HUP $(cat /run/sshd.pid)", check=True)
        new = fingerprint_of(pub)
        assert new != pinned
        wait_for(lambda: offered_fingerprint(NODE_B.ip) == new, 10, "node-b offers its new key")

        before = cluster.both_trees(skip=RUNTIME)
        rows = cluster.nodes(A)
        assert (rows[B]["status"], rows[B]["colour"]) == ("unreachable", "grey"), rows[B]
        assert rows[B]["message"].startswith("Node unreachable: its SSH host key changed"), rows[B]
        assert_master_row(rows[A], A)

        for args in (("cluster", "edit", "--check-interval", "0.5"),
                     ("maintenance", "on", "--node", "remote")):
            refused = cluster.skutui(A, *args)
            assert refused.returncode == 1, (args, refused.stdout, refused.stderr)
            assert_no_traceback(refused)
            assert "host key of 198.18.0.2 has changed" in refused.stderr
            assert pinned in refused.stderr and new in refused.stderr
        assert tree_changes(before, cluster.both_trees(skip=RUNTIME)) == []
        assert cluster.vip_holders() == {A}
        assert f"advert_int {INTERVAL:g}" in cluster.read(B, "/etc/keepalived/keepalived.conf")

        # Without any cluster, but with the pin kept: a new create is refused just the same,
        # even though the operator asked to trust a new key.
        for node in (B, A):
            assert cluster.skutui(node, "node", "erase").returncode == 0
        before = cluster.both_trees()
        again = cluster.create()
        assert again.returncode == 1
        assert "host key of 198.18.0.2 has changed" in again.stderr
        assert_no_traceback(again)
        assert tree_changes(before, cluster.both_trees()) == []
        assert cluster.daemons(A) == cluster.daemons(B) == set()
    finally:
        for path, (content, mode) in saved.items():
            path.write_bytes(content)
            path.chmod(mode)
        cluster.sh(B, "kill -HUP $(cat /run/sshd.pid)", check=True)
        wait_for(lambda: offered_fingerprint(NODE_B.ip) == pinned, 10,
                 "node-b offers its original key again")


# --- 6. connection cut in the middle of create ----------------------------------------------


CUT_TABLE = "skutui_test_cut"
CUT_RULES = (f"add table inet {CUT_TABLE}\n"
             f"add chain inet {CUT_TABLE} input {{ type filter hook input priority 0 ; }}\n"
             f"add rule inet {CUT_TABLE} input tcp dport 22 reject with tcp reset\n")


@pytest.mark.parametrize("trigger", ["/etc/skutui/cluster.toml", "/etc/skutui/local/role"],
                         ids=["while-b-is-written", "while-b-starts"])
def test_connection_cut_during_create_rolls_both_nodes_back(cluster: LabCluster,
                                                            trigger: str) -> None:
    """Cut when node-b receives its configuration, or when it starts its daemons (node-a
    is master with the floating IP by then): both nodes end as they were before."""
    # node-b had a configuration of its own: create erases it, a rollback must give it back.
    cluster.file(B, "/etc/keepalived/keepalived.conf").write_text("# node-b's own keepalived\n")
    cluster.file(B, "/etc/conntrackd/conntrackd.conf").write_text("# node-b's own conntrackd\n")
    areas = ("/etc/skutui", "/etc/keepalived", "/etc/conntrackd")
    skip = {"/etc/skutui": ("local",)}
    before = {n: cluster.trees(n, areas, skip) for n in (A, B)}
    running_before = {n: cluster.daemons(n) for n in (A, B)}

    marker = cluster.file(B, trigger)
    create = CreateRun(cluster)
    cut = False
    try:
        # The moment node-b writes the file, cut every SSH session to it and
        # refuse new ones (a reset, so nothing waits for a timeout) until create gives up.
        wait_for(marker.exists, 30, f"node-b writes {trigger}", poll=0.001)
        cluster.run(B, "nft", "-f", "-", input=CUT_RULES, check=True)
        cut = True
        cluster.run(B, "pkill", "-f", "sshd: root")
        create.wait_line("Failed:", 30)
    finally:
        if cut:
            cluster.run(B, "nft", "delete", "table", "inet", CUT_TABLE, check=True)
        code, output, stderr = create.finish()
    assert code == 1, output + stderr
    assert "both nodes were rolled back as they were" in stderr, output + stderr
    assert "rollback incomplete" not in stderr
    # Cut while node-b ran a step, or refused when create went back to it: either way named.
    cause = stderr.split(";")[0]
    assert NODE_B.ip in cause, stderr
    assert "lost the SSH connection" in cause or "connection refused" in cause, stderr
    assert "Traceback" not in output + stderr
    assert "Rolling back node-b" in output and "Rolling back node-a" in output

    for node in (A, B):
        assert tree_changes(before[node], cluster.trees(node, areas, skip)) == [], node
        assert cluster.daemons(node) == running_before[node], node
        for name in ("role", "maintenance"):
            assert not cluster.file(node, f"/etc/skutui/local/{name}").exists(), (node, name)
    assert cluster.read(B, "/etc/keepalived/keepalived.conf") == "# node-b's own keepalived\n"
    assert cluster.vip_holders() == set()


def test_create_fails_and_rolls_back_when_b_cannot_hear_a(cluster: LabCluster) -> None:
    """A firewall on node-b drops VRRP: node-b would make itself master too (split brain),
    so create must not report success."""
    cluster.run(B, "nft", "-f", "-", check=True, input=(
        "add table inet skutui_test_vrrp\n"
        "add chain inet skutui_test_vrrp input { type filter hook input priority 0 ; }\n"
        "add rule inet skutui_test_vrrp input ip protocol vrrp drop\n"))
    result = cluster.create()
    assert result.returncode == 1, result.stdout + result.stderr
    assert_no_traceback(result)
    assert "node-b made itself master" in result.stderr, result.stderr
    assert "split brain" in result.stderr and "IP protocol 112 (VRRP)" in result.stderr
    assert "both nodes were rolled back as they were" in result.stderr
    for node in (A, B):
        assert cluster.daemons(node) == set(), node
        for path in MANAGED:
            assert not cluster.file(node, path).exists(), (node, path)
    assert cluster.vip_holders() == set()


# --- 7. destroy ---------------------------------------------------------------------------


def test_destroy_leaves_both_nodes_clean_and_silent(cluster: LabCluster) -> None:
    cluster.created()
    unconfirmed = cluster.skutui(A, "cluster", "destroy")
    assert unconfirmed.returncode == 2 and "--yes" in unconfirmed.stderr
    assert cluster.file(B, "/etc/skutui/cluster.toml").exists()

    listener = routers_heard(cluster, B, 3 * INTERVAL)
    assert [NODE_A.ip, 51] in heard(listener), "the probe hears the master's adverts"

    result = cluster.skutui(A, "cluster", "destroy", "--yes")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Cluster destroyed on node-a and node-b" in result.stdout
    assert "warning" not in result.stdout

    for node in (A, B):
        for path in MANAGED + ("/etc/skutui/local/role", "/etc/skutui/local/maintenance"):
            assert not cluster.file(node, path).exists(), (node, path)
        assert cluster.daemons(node) == set(), (node, cluster.processes(node))
        assert VIP not in cluster.addresses(node), node
    # Nobody announces anything any more: node-b kept no keepalived that could take the IP.
    listeners = [routers_heard(cluster, node, 3 * INTERVAL + 0.3) for node in (A, B)]
    assert [heard(listener) for listener in listeners] == [[], []]
    assert cluster.vip_holders() == set()
    gone = cluster.skutui(A, "nodes", "--json")
    assert gone.returncode == 1 and "No cluster is configured" in gone.stderr


# --- 9. edit --------------------------------------------------------------------------------


def test_edit_check_interval_reloads_both_without_dropping_the_floating_ip(
        cluster: LabCluster) -> None:
    cluster.created()
    new = 0.8
    """Longer than the old master-down interval (3.6 x 0.2 s): a backup still timing the
    master at the old interval would take over."""
    # The notify hooks of the start log once their conntrackd steps are done.
    for node, role in ((A, "master"), (B, "backup")):
        wait_for(lambda node=node, role=role: f"transition to {role}" in (transitions(cluster, node) or [""])[-1],
                 5, f"{node} logged its transition to {role}")
    pids = {n: keepalived_pids(cluster, n) for n in (A, B)}
    roles = {n: cluster.read(n, "/etc/skutui/local/role") for n in (A, B)}
    notified = {n: transitions(cluster, n) for n in (A, B)}
    monitors = {n: AddressMonitor(cluster, n) for n in (A, B)}
    try:
        result = cluster.skutui(A, "cluster", "edit", "--check-interval", f"{new:g}")
        assert result.returncode == 0, result.stdout + result.stderr
        assert f"Check interval: {INTERVAL:g} s -> {new:g} s" in result.stdout
        # A backup still timing the master at the old interval would take over here.
        hold_for(cluster, 3 * new + 0.5, lambda: cluster.vip_holders() == {A},
                 "the floating IP stays on node-a only")
    finally:
        for monitor in monitors.values():
            monitor.stop()
    assert monitors[A].vip_changes() == [], "node-a never dropped the floating IP"
    assert monitors[B].vip_changes() == [], "node-b never took the floating IP"

    for node in (A, B):
        assert f"advert_int {new:g}" in cluster.read(node, "/etc/keepalived/keepalived.conf")
        assert f"check_interval = {new:g}" in cluster.read(node, "/etc/skutui/cluster.toml")
        assert keepalived_pids(cluster, node) == pids[node], "reloaded, not restarted"
        assert cluster.read(node, "/etc/skutui/local/role") == roles[node]
        assert transitions(cluster, node) == notified[node], "no VRRP transition"
        assert f"Advert interval = {int(new * 1000)} milli-sec" in keepalived_dump(cluster, node)
    assert_roles(cluster, master=A)

    same = cluster.skutui(A, "cluster", "edit", "--check-interval", f"{new:g}")
    assert same.returncode == 0 and same.stdout.strip() == "Nothing to be changed"


# --- 10. the password leaves no trace -----------------------------------------------------


def _hash(password: str) -> str:
    return subprocess.run(["openssl", "passwd", "-6", "-stdin"], input=password,
                          capture_output=True, text=True, check=True).stdout.strip()


def _files_holding(secret: bytes, roots: list[Path]) -> list[str]:
    found = []
    for root in roots:
        for directory, _dirs, files in os.walk(root):
            for name in files:
                path = os.path.join(directory, name)
                try:
                    if not stat.S_ISREG(os.lstat(path).st_mode):
                        continue
                    if secret in Path(path).read_bytes():
                        found.append(path)
                except OSError:
                    continue
    return found


def _processes_holding(secret: bytes) -> list[str]:
    found = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            for part in ("cmdline", "environ"):
                try:
                    if secret in Path(entry.path, part).read_bytes():
                        found.append(f"{entry.name}/{part}")
                except OSError:
                    continue
    return found


def test_the_password_is_never_written_shown_or_passed_as_an_argument(
        cluster: LabCluster) -> None:
    # A password of its own, so that no lab path ("/var/lib/skutui-lab") can look like it.
    password = "pw-" + secrets.token_hex(12)
    wrong = "pw-" + secrets.token_hex(12)
    shadow = cluster.file(B, "/etc/shadow")
    original = shadow.read_text()
    lines = [":".join([f[0], _hash(password), *f[2:]]) if f[0] == "root" else ":".join(f)
             for f in (line.split(":") for line in original.splitlines())]
    samples: list[str] = []
    sampling = threading.Event()

    def sample() -> None:
        while not sampling.is_set():
            for node in (A, B):
                samples.extend(cluster.processes(node))
            samples.extend(subprocess.run(["ps", "-eo", "args="], capture_output=True,
                                          text=True).stdout.splitlines())

    sampler = threading.Thread(target=sample, daemon=True)
    try:
        shadow.write_text("\n".join(lines) + "\n")  # in place: the node sees the bound file
        sampler.start()
        refused = cluster.create(password=wrong)
        assert refused.returncode == 1
        created = cluster.create(password=password)
        assert created.returncode == 0, created.stdout + created.stderr
    finally:
        sampling.set()
        sampler.join(timeout=30)
        shadow.write_text(original)
    assert len(samples) > 50, "the process list was sampled while create ran"

    for secret in (password, wrong):
        raw = secret.encode()
        for result in (refused, created):
            assert secret not in result.stdout + result.stderr
        assert not [args for args in samples if secret in args]
        # The lab folder holds each node's /etc folders, its own layer of /root, its logs.
        roots = [cluster.lab.lab_dir]
        for node in (A, B):
            roots += [cluster.file(node, "/run"), cluster.file(node, "/tmp")]
        assert _files_holding(raw, roots) == []
        assert _processes_holding(raw) == []
        logs = cluster.agent_log(A) + cluster.agent_log(B)
        assert logs and secret not in logs


# --- 11. pre-flight -----------------------------------------------------------------------


STRAY_ROUTER = "198.18.0.50"
STRAY_CONF = f"""\
global_defs {{
    router_id stray
    vrrp_version 3
}}
vrrp_instance STRAY {{
    state MASTER
    interface eth0
    virtual_router_id 51
    priority 200
    advert_int 0.1
    unicast_src_ip {STRAY_ROUTER}
    unicast_peer {{
        {NODE_A.ip}
    }}
    virtual_ipaddress {{
        198.18.0.60/32 dev eth0
    }}
}}
"""


def test_preflight_lists_every_failure_together(cluster: LabCluster) -> None:
    args = cluster.check_args()
    same = list(args)
    same[same.index("--remote-ip") + 1] = NODE_A.ip
    bad = cluster.skutui(A, *same, input=PASSWORD + "\n")
    assert bad.returncode == 2, bad.stdout + bad.stderr
    assert_no_traceback(bad)
    assert NODE_A.ip in bad.stderr and "remote" in bad.stderr.lower()

    # Another router with the same virtual router id on the segment, from an address that
    # is neither node's, and a peer that calls itself node-a too.
    before = cluster.both_trees()
    cluster.run(B, "ip", "addr", "add", f"{STRAY_ROUTER}/24", "dev", "eth0", check=True)
    cluster.sh(B, "mkdir -p /run/stray && cat > /run/stray/keepalived.conf",
               input=STRAY_CONF, check=True)
    try:
        cluster.lab.exec(B, ["keepalived", "--vrrp", "-f", "/run/stray/keepalived.conf",
                             "-p", "/run/stray/keepalived.pid", "-r", "/run/stray/vrrp.pid"],
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL, timeout=30, check=True)
        wait_for(lambda: "198.18.0.60" in cluster.addresses(B), 5, "the stray router is master")
        cluster.run(B, "hostname", A, check=True)

        check = cluster.skutui(A, *args, input=PASSWORD + "\n")
        assert check.returncode == 1, check.stdout + check.stderr
        assert_no_traceback(check)
        failed = [line for line in check.stdout.splitlines() if line.startswith("[FAIL]")]
        assert len(failed) == 2, check.stdout
        assert any(f"Virtual router id 51 free: already used by {STRAY_ROUTER}" in line
                   for line in failed), check.stdout
        assert any("Different hostnames: node-a and node-a" in line for line in failed)
        assert "[PASS] Peer reachable and authenticated" in check.stdout
        assert "[PASS] No cluster on this node" in check.stdout
    finally:
        cluster.run(B, "hostname", B)
        cluster.sh(B, "kill $(cat /run/stray/keepalived.pid)")
        wait_for(lambda: not cluster.run(B, "pgrep", "-x", "keepalived").stdout, 10,
                 "the stray router stops")
        cluster.run(B, "ip", "addr", "del", f"{STRAY_ROUTER}/24", "dev", "eth0")
    after = cluster.both_trees()
    for node in (A, B):
        assert after[node]["/etc/keepalived"] == before[node]["/etc/keepalived"]
        assert after[node]["/etc/conntrackd"] == before[node]["/etc/conntrackd"]
        assert not cluster.file(node, "/etc/skutui/cluster.toml").exists()
        assert cluster.daemons(node) == set()
