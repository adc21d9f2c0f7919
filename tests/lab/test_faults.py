"""The fault matrix: each fault is survived on two real nodes, and each test ends with what
the operator sees (the node table) and with the data (configurations identical where they
must be, the journal complete, the floating IP on one node only).

Faults already covered elsewhere: keepalived killed (test_cluster), SSH cut mid-create
(test_cluster), split brain at create (test_cluster), a changed host key (test_cluster), the
password never in a file, log or process list (test_cluster), a backup away while files
change and commands are queued (test_agent), a master's agent killed mid-replay
(test_agent). Bad input of every kind: tests/unit/test_bad_input.py.
"""

from __future__ import annotations

import secrets
import signal
from collections.abc import Callable
from typing import TypeVar

import pytest

from tests.lab.labcluster import (
    EVENTUALLY,
    INTERFACE,
    INTERVAL,
    VIP,
    A,
    B,
    CreateRun,
    LabCluster,
    tree_changes,
    wait_for,
)
from tests.lab.test_cluster import (
    assert_maintenance_row,
    assert_master_row,
    assert_roles,
    hold_for,
    keepalived_pids,
    settle_vip,
)

pytestmark = pytest.mark.lab

T = TypeVar("T")

SYNCED = "/etc/skutui/cluster.toml"
VRRP_TABLE = "skutui_test_no_vrrp"
VRRP_RULES = (
    f"add table inet {VRRP_TABLE}\n"
    f"add chain inet {VRRP_TABLE} input {{ type filter hook input priority 0 ; }}\n"
    f"add rule inet {VRRP_TABLE} input ip protocol vrrp drop\n")
"""This node hears no VRRP advert from its peer (SSH and conntrackd still pass)."""


def healthy(cluster: LabCluster, master: str) -> None:
    """The end state of every fault: one master with the floating IP, a green backup, the
    same cluster.toml on both."""
    settle_vip(cluster, master, EVENTUALLY)
    last: list[str] = []

    def agrees() -> bool:
        try:
            assert_roles(cluster, master)
        except AssertionError as differs:
            last[:] = [str(differs)]
            return False
        return True

    try:
        wait_for(agrees, EVENTUALLY, f"both tables show {master} master, the other a green backup")
    except AssertionError as failed:
        raise AssertionError(f"{failed}; the tables last differed in: {last}") from None
    assert cluster.read(A, SYNCED) == cluster.read(B, SYNCED)


def until(fetch: Callable[[], T], accept: Callable[[T], bool], timeout: float, what: str) -> T:
    """The first value ``fetch`` returns that ``accept`` takes, polled for ``timeout``."""
    return wait_for(lambda: value if accept(value := fetch()) else None, timeout, what)


def some_master(cluster: LabCluster) -> str:
    """After a fault heals, either node may be master (failback is disabled): the holder."""
    holders = until(cluster.vip_holders, lambda h: len(h) == 1, EVENTUALLY, f"{VIP} on one node")
    return next(iter(holders))


def keepalived_signal(cluster: LabCluster, node: str, sig: signal.Signals) -> None:
    cluster.run(node, "pkill", f"-{sig.name.removeprefix('SIG')}", "-x", "keepalived",
                check=True)


# --- the master hangs ---------------------------------------------------------------------


def test_hung_master_is_replaced_releases_the_ip_and_rejoins(cluster: LabCluster) -> None:
    cluster.created()
    keepalived_signal(cluster, A, signal.SIGSTOP)
    try:
        wait_for(lambda: cluster.holds_vip(B), EVENTUALLY, "node-b takes the floating IP")
        # keepalived is stopped, not dead: only the agent can see that and drop the address.
        wait_for(lambda: not cluster.holds_vip(A), EVENTUALLY, "node-a releases the floating IP")
        for seen_from in (A, B):
            rows = cluster.nodes(seen_from)
            assert_master_row(rows[B], B)
            assert rows[B]["status"] == "ok", rows[B]
            assert (rows[A]["status"], rows[A]["colour"]) == ("failure", "red"), rows[A]
            assert "keepalived" in rows[A]["message"], rows[A]
    finally:
        keepalived_signal(cluster, A, signal.SIGCONT)
    healthy(cluster, some_master(cluster))


# --- the cluster link goes down -----------------------------------------------------------


def test_cluster_link_down_on_the_master_then_up(cluster: LabCluster) -> None:
    cluster.created()
    cluster.run(A, "ip", "link", "set", INTERFACE, "down", check=True)
    try:
        wait_for(lambda: cluster.holds_vip(B), EVENTUALLY, "node-b takes the floating IP")
        rows = until(lambda: cluster.nodes(B), lambda r: r[A]["status"] == "unreachable",
                     3 * INTERVAL + 10, "node-b shows node-a unreachable")
        assert (rows[A]["colour"], rows[A]["message"]) == ("grey", "Node unreachable"), rows[A]
        assert_master_row(rows[B], B)
        # node-a's keepalived sees its link down: it leaves MASTER and drops the address.
        wait_for(lambda: not cluster.holds_vip(A), EVENTUALLY, "node-a drops the floating IP")
    finally:
        cluster.run(A, "ip", "link", "set", INTERFACE, "up", check=True)
    healthy(cluster, some_master(cluster))


# --- split brain -----------------------------------------------------------------------------


def test_split_brain_shows_red_on_both_and_heals(cluster: LabCluster) -> None:
    cluster.created()
    for node in (A, B):
        cluster.run(node, "nft", "-f", "-", input=VRRP_RULES, check=True)
    try:
        wait_for(lambda: cluster.vip_holders() == {A, B}, EVENTUALLY,
                 "both nodes take the floating IP")
        for seen_from in (A, B):
            rows = until(lambda seen_from=seen_from: cluster.nodes(seen_from),
                         lambda r: all(row["role"] == "master" for row in r.values()),
                         EVENTUALLY, f"{seen_from} sees two masters")
            for node in (A, B):
                assert (rows[node]["status"], rows[node]["colour"]) == ("failure", "red")
                assert "split brain" in rows[node]["message"].lower(), rows[node]
    finally:
        for node in (A, B):
            cluster.run(node, "nft", "delete", "table", "inet", VRRP_TABLE, check=True)
    healthy(cluster, some_master(cluster))


# --- the peer restarts ------------------------------------------------------------------------


@pytest.mark.parametrize("in_maintenance", [False, True], ids=["active", "maintenance"])
def test_restarted_backup_rejoins_reconciles_and_keeps_maintenance(
        cluster: LabCluster, in_maintenance: bool) -> None:
    replayed = f"/tmp/replayed-{secrets.token_hex(4)}"
    cluster.created()
    if in_maintenance:
        assert cluster.skutui(A, "maintenance", "on", "--node", "remote").returncode == 0
    # node-b crashes: every daemon and its agent killed at once, nothing told, and it
    # cannot be reached until it boots again (nor does systemd start anything again).
    with cluster.unreachable(B):
        cluster.hold_restarts(B)
        cluster.sh(B, "pkill -9 -x keepalived; pkill -9 -x conntrackd; "
                      "pkill -9 -f -- '[s]kutui agent run'; true", check=True)
        wait_for(lambda: cluster.daemons(B) == set(), 10, "node-b has nothing running")
        rows = until(lambda: cluster.nodes(A), lambda r: r[B]["status"] == "unreachable", 15,
                     "node-a shows node-b unreachable")
        assert rows[B]["colour"] == "grey", rows[B]
        assert_master_row(rows[A], A)
        # While node-b is down, the master changes a synced file and runs two commands.
        note = cluster.file(A, "/etc/skutui/notes.txt")
        note.write_text("written while node-b was down\n")
        for word in ("one", "two"):
            queued = cluster.skutui(A, "exec", "--no-wait", "--", "sh", "-c",
                                    f"echo {word} >> {replayed}")
            assert queued.returncode == 0, queued.stderr
    # node-b boots: its units start conntrackd, keepalived and the agent.
    cluster.lab.reboot(B)
    wait_for(lambda: cluster.file(B, "/etc/skutui/notes.txt").exists()
             and cluster.read(B, "/etc/skutui/notes.txt") == note.read_text(), 15,
             "the master's change reaches node-b after its restart")
    wait_for(lambda: cluster.run(B, "cat", replayed).stdout == "one\ntwo\n", 15,
             "both commands replayed on node-b, in order, once")
    assert cluster.daemons(B) == {"keepalived", "conntrackd", "agent"}
    if in_maintenance:
        hold_for(cluster, 3 * INTERVAL + 1.0, lambda: cluster.vip_holders() == {A},
                 "node-b restarts in maintenance and never takes the floating IP")
        for seen_from in (A, B):
            rows = cluster.nodes(seen_from)
            assert_maintenance_row(rows[B], B)
            assert_master_row(rows[A], A)
        # The journal keeps each line's priority: the role change is a warning there.
        warnings = cluster.run(B, "journalctl", "--identifier=skutui", "--priority=warning",
                               "--output=cat", "--no-pager").stdout
        assert "keepalived moved this node to FAULT" in warnings, warnings
        assert cluster.skutui(A, "maintenance", "off", "--node", "remote").returncode == 0
    healthy(cluster, A)
    assert cluster.run(B, "cat", replayed).stdout == "one\ntwo\n"
    assert cluster.agent_state(A)["replication"]["pending"] == 0


# --- a corrupt cluster.toml ------------------------------------------------------------------


def test_corrupt_cluster_toml_gives_a_clear_error_and_the_cluster_keeps_running(
        cluster: LabCluster) -> None:
    cluster.created()
    good = cluster.read(B, SYNCED)
    corrupt = good.replace("check_interval = 0.2", "check_interval = [oops")
    assert corrupt != good
    path = cluster.file(B, SYNCED)
    path.write_text(corrupt)
    for command in (("nodes",), ("status",), ("cluster", "show")):
        result = cluster.skutui(B, *command)
        assert result.returncode != 0, command
        assert "Traceback" not in result.stdout + result.stderr
        message = result.stderr.strip()
        assert len(message.splitlines()) <= 3, message
        assert "/etc/skutui/cluster.toml" in message and "line" in message, message
    assert path.read_text() == corrupt, "reading never rewrites the file"
    # The daemons run on their own rendered files: the floating IP stays where it is.
    hold_for(cluster, 3 * INTERVAL + 0.5, lambda: cluster.vip_holders() == {A},
             "the floating IP stays on node-a")
    assert cluster.daemons(B) == {"keepalived", "conntrackd", "agent"}
    # The master's next change of the file repairs the backup's copy.
    master = cluster.file(A, SYNCED)
    master.write_text(master.read_text())
    wait_for(lambda: cluster.read(B, SYNCED) == good, 10,
             "the master's sync puts the good file back on node-b")
    healthy(cluster, A)


# --- Ctrl+C during create -----------------------------------------------------------------


def test_ctrl_c_during_create_rolls_both_nodes_back(cluster: LabCluster) -> None:
    areas = ("/etc/skutui", "/etc/keepalived", "/etc/conntrackd")
    skip = {"/etc/skutui": ("local",)}
    before = {n: cluster.trees(n, areas, skip) for n in (A, B)}
    create = CreateRun(cluster)
    try:
        create.wait_line("Starting node-b", 30)
        # node-a is master with the floating IP by now: the worst moment to stop.
        cluster.run(A, "kill", "-INT", create.pid, check=True)
    finally:
        code, lines, stderr = create.finish()
    output = lines + stderr
    assert code == 130, output
    assert "Traceback" not in output
    assert "interrupted" in stderr.lower() and "rolled back" in stderr, output
    for node in (A, B):
        assert tree_changes(before[node], cluster.trees(node, areas, skip)) == [], node
        assert cluster.daemons(node) == set(), node
    assert cluster.vip_holders() == set()


# --- disk full --------------------------------------------------------------------------------


def test_disk_full_on_the_backup_keeps_the_old_configuration_on_both(cluster: LabCluster) -> None:
    """/etc/skutui on node-b is a small tmpfs; filled up, an edit fails before its first
    step (node-b cannot keep its rollback record), and both keep the configuration they
    had."""
    cluster.run(B, "mount", "-t", "tmpfs", "-o", "size=512k,mode=0755", "skutui-test",
                "/etc/skutui", check=True)
    try:
        cluster.created()
        files = ("/etc/skutui/cluster.toml", "/etc/keepalived/keepalived.conf")
        read = {n: (lambda p, n=n: cluster.run(n, "cat", p, check=True).stdout) for n in (A, B)}
        old = {(n, p): read[n](p) for n in (A, B) for p in files}
        cluster.sh(B, "dd if=/dev/zero of=/etc/skutui/local/filler bs=4k 2>/dev/null; true")
        free = cluster.run(B, "df", "--output=avail", "/etc/skutui", check=True).stdout.split()[-1]
        assert free == "0", free
        pids = {n: keepalived_pids(cluster, n) for n in (A, B)}

        result = cluster.skutui(A, "cluster", "edit", "--check-interval", "0.5")
        assert result.returncode == 1, result.stdout + result.stderr
        assert "Traceback" not in result.stdout + result.stderr
        assert result.stderr.strip() == ("skutui: node-b cannot keep the change's rollback "
                                         "record (No space left on device); nothing was "
                                         "changed"), result.stderr
        assert {(n, p): read[n](p) for n in (A, B) for p in files} == old
        # Both kept running throughout: a failed edit costs no takeover.
        assert {n: keepalived_pids(cluster, n) for n in (A, B)} == pids
        leftovers = cluster.sh(B, "ls -A /etc/skutui | grep -v -x -e local -e cluster.toml; "
                                  "true").stdout
        assert leftovers == "", "no temporary file is left behind"
        assert cluster.vip_holders() == {A}

        cluster.run(B, "rm", "/etc/skutui/local/filler", check=True)
        again = cluster.skutui(A, "cluster", "edit", "--check-interval", "0.5")
        assert again.returncode == 0, again.stderr
        assert "check_interval = 0.5" in read[B]("/etc/skutui/cluster.toml")
    finally:
        cluster.skutui(B, "node", "erase")
        cluster.run(B, "umount", "/etc/skutui")
