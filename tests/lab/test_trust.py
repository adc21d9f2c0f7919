"""Trust between the nodes, on real sshd, on one cluster: each node's key does skutui's work
only, from the peer's cluster address only; a symbolic link planted in the backup's synced
folder carries no write outside it; a new pair of keys replaces the old without a moment
where neither works; and destroy leaves no skutui key on either node.

The keys are tried with the plain OpenSSH client, as a thief holding one would: from the
peer (a shell, a command, SFTP, a forwarding) and from the host's own address on the lab
bridge.
"""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from skutui.domain import trust
from skutui_lab.topology import BRIDGE_IP
from tests.lab.labcluster import A, B, EventStream, LabCluster, file_tree, wait_for

pytestmark = pytest.mark.lab

KEY = "/etc/skutui/local/id_ed25519"
KNOWN_HOSTS = "/etc/skutui/local/known_hosts"
AUTHORIZED_KEYS = "/root/.ssh/authorized_keys"
ADMIN = ("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOm5Tc0/o6Zv3oXn3k5w5X3bR0vS6HcBZ3kT8Y1m0oXq "
         "admin@laptop")
"""root's own key, not skutui's: every change skutui makes leaves it as it is."""
SCRATCH = ("/tmp/stop-logins", "/tmp/logins", "/tmp/login-failures", "/tmp/old_key",
           "/tmp/replicated", "/tmp/after-rekey", "/tmp/stolen")
"""What the test leaves in the nodes' own /tmp, removed before it starts."""


def ssh_options(key: str, known_hosts: str) -> list[str]:
    """The plain OpenSSH client with only this key and this pin; nothing of its own."""
    return ["-F", "/dev/null", "-i", key, "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
            "-o", f"UserKnownHostsFile={known_hosts}", "-o", "StrictHostKeyChecking=yes",
            "-o", "ConnectTimeout=5"]


def ssh(cluster: LabCluster, node: str, command: str, *options: str,
        key: str = KEY) -> subprocess.CompletedProcess:
    """``ssh`` from ``node`` to its peer as root with skutui's key (or ``key``) and pinned
    host key; no ``command``: a login shell is asked for."""
    peer = cluster.ip(cluster.other(node))
    argv = ["ssh", *ssh_options(key, KNOWN_HOSTS), *options, f"root@{peer}"]
    return cluster.run(node, *argv, *([command] if command else []), input="", timeout=30)


def skutui_lines(cluster: LabCluster, node: str) -> list[trust.KeyLine]:
    path = cluster.file(node, AUTHORIZED_KEYS)
    return trust.skutui_keys(path.read_text()) if path.exists() else []


def public_key(cluster: LabCluster, node: str) -> str:
    return cluster.read(node, KEY + ".pub").strip()


def test_each_key_runs_skutuis_steps_only_from_the_peer_rekey_keeps_logins_and_destroy_removes_both(
        cluster: LabCluster) -> None:
    """One cluster for all of it: making one takes longer than any check."""
    for node in (A, B):
        cluster.run(node, "rm", "-f", *SCRATCH)
    cluster.created()
    check_keys_and_skutuis_own_work(cluster)
    check_a_planted_link_carries_no_write_outside(cluster)
    check_rekey_keeps_logins_working(cluster)

    # destroy removes the keys from both nodes; root's own line stays.
    destroyed = cluster.skutui(A, "cluster", "destroy", "--yes")
    assert destroyed.returncode == 0, destroyed.stderr
    for node in (A, B):
        assert skutui_lines(cluster, node) == [], node
        assert cluster.read(node, AUTHORIZED_KEYS) == ADMIN + "\n", "root's own line stays"
        refused = ssh(cluster, node, "skutui --version")
        assert refused.returncode == 255 and "Permission denied" in refused.stderr, refused


def check_keys_and_skutuis_own_work(cluster: LabCluster) -> None:
    for node in (A, B):
        peer = cluster.other(node)
        lines = skutui_lines(cluster, node)
        assert len(lines) == 1, (node, lines)
        line = lines[0]
        assert "restrict" in line.options, line
        assert line.option("from") == cluster.ip(peer), line
        assert line.option("command") == trust.SERVE_COMMAND, line
        assert line.body == public_key(cluster, peer).split()[1], "the peer's own key"

    for node in (A, B):
        # A command, a login shell, a terminal: none of them runs.
        command = ssh(cluster, node, "id")
        assert command.returncode != 0 and "uid=" not in command.stdout, command
        assert "runs only skutui's own steps" in command.stderr, command.stderr
        shell = ssh(cluster, node, "", "-T")
        assert shell.returncode != 0 and "opens no shell" in shell.stderr, shell
        terminal = ssh(cluster, node, "id", "-tt")
        assert terminal.returncode != 0 and "uid=" not in terminal.stdout, terminal
        assert "PTY allocation request failed" in terminal.stderr, terminal.stderr
        # No file transfer of its own, no forwarding through the peer.
        peer = cluster.ip(cluster.other(node))
        sftp = cluster.run(node, "sftp", *ssh_options(KEY, KNOWN_HOSTS), "-b", "-",
                           f"root@{peer}", input="get /etc/shadow /tmp/stolen\n", timeout=30)
        assert sftp.returncode != 0, sftp
        assert not cluster.file(node, "/tmp/stolen").exists()
        forward = ssh(cluster, node, "", "-W", f"{peer}:22")
        assert forward.returncode != 0 and "SSH-2.0" not in forward.stdout, forward
        assert "prohibited" in forward.stderr, forward.stderr
        # skutui's own step does run, with the same key.
        allowed = ssh(cluster, node, "skutui --version")
        assert allowed.returncode == 0 and allowed.stdout.startswith("skutui "), allowed

    # The same key from another address (the host, on the lab bridge) is refused at login.
    for node in (A, B):
        peer = cluster.ip(cluster.other(node))
        stolen = subprocess.run(
            ["ssh", *ssh_options(str(cluster.file(node, KEY)), str(cluster.file(node, KNOWN_HOSTS))),
             "-o", f"BindAddress={BRIDGE_IP}", f"root@{peer}", "skutui --version"],
            capture_output=True, text=True, timeout=30)
        assert stolen.returncode == 255 and "Permission denied" in stolen.stderr, stolen

    # skutui's own work goes on through these keys: the node table, an edit, a sync, a
    # replicated command, maintenance of the peer.
    rows = cluster.nodes(B)
    assert {row["role"] for row in rows.values()} == {"master", "backup"}, rows
    edited = cluster.skutui(A, "cluster", "edit", "--check-interval", "0.3")
    assert edited.returncode == 0, edited.stderr
    assert "check_interval = 0.3" in cluster.read(B, "/etc/skutui/cluster.toml")
    cluster.file(A, "/etc/skutui/app.conf").write_text("synced through the forced command\n")
    wait_for(lambda: cluster.file(B, "/etc/skutui/app.conf").exists()
             and cluster.read(B, "/etc/skutui/app.conf") == "synced through the forced command\n",
             10, "the sync carries a file to node-b")
    replicated = cluster.skutui(A, "exec", "--", "touch", "/tmp/replicated")
    assert replicated.returncode == 0, replicated.stderr
    assert cluster.file(B, "/tmp/replicated").exists()
    on = cluster.skutui(A, "maintenance", "on", "--node", "remote")
    assert on.returncode == 0, on.stderr
    off = cluster.skutui(A, "maintenance", "off", "--node", "remote")
    assert off.returncode == 0, off.stderr



def check_a_planted_link_carries_no_write_outside(cluster: LabCluster) -> None:
    """On the backup, links planted in the synced folder: the master's pushes under their
    names write nothing outside it, and the refusal is reported. (That the next whole-tree
    comparison then puts a folder in the link's place is a unit test's: it comes 30 s after
    the refusal.)"""
    events = EventStream(cluster, A)
    outside = cluster.file(B, "/etc/keepalived")
    before = file_tree(outside)
    try:
        started = time.monotonic()
        conf = cluster.file(A, "/etc/skutui/conf.d/site.conf")
        conf.parent.mkdir()
        conf.write_text("first\n")
        events.wait(started, lambda e: e["kind"] == "sync" and conf.name in e["message"],
                    10, "conf.d is pushed to node-b")
        wait_for(lambda: cluster.file(B, "/etc/skutui/conf.d/site.conf").is_file(), 10,
                 "site.conf on node-b")
        # On the backup: conf.d becomes a link to a folder outside, app.conf a link to a
        # file there.
        cluster.sh(B, "rm -r /etc/skutui/conf.d && ln -s /etc/keepalived /etc/skutui/conf.d && "
                      "ln -sf /etc/keepalived/keepalived.conf /etc/skutui/app.conf", check=True)
        # A file pushed under the link's own name takes the link's place.
        cluster.file(A, "/etc/skutui/app.conf").write_text("in place of the link\n")
        wait_for(lambda: cluster.file(B, "/etc/skutui/app.conf").is_file()
                 and not cluster.file(B, "/etc/skutui/app.conf").is_symlink(), 10,
                 "the link in the file's place is replaced by the file")
        assert cluster.read(B, "/etc/skutui/app.conf") == "in place of the link\n"
        # A file pushed through the linked folder is refused, and the master says so.
        started = time.monotonic()
        cluster.file(A, "/etc/skutui/conf.d/keepalived.conf").write_text("vrrp_script x {}\n")
        refused = events.wait(started, lambda e: e["kind"] == "sync" and e["level"] == "error",
                              10, "the master reports the refused path")[1]
        assert "/etc/skutui/conf.d/keepalived.conf" in refused["message"], refused
        assert "conf.d is a symbolic link (to /etc/keepalived)" in refused["message"], refused
    finally:
        events.stop()
    assert file_tree(outside) == before, "nothing outside the synced folder changed"


LOGIN_LOOP = """
import asyncio, os, sys
from skutui.domain.paths import Paths
from skutui.peer import PeerConnection, PeerError

async def logins(peer):
    while not os.path.exists("/tmp/stop-logins"):
        try:
            async with PeerConnection(peer, paths=Paths(), connect_timeout=5) as connection:
                await connection.remote_version()
            line, path = "ok", "/tmp/logins"
        except PeerError as exc:
            line, path = str(exc), "/tmp/login-failures"
        with open(path, "a") as out:
            out.write(line + "\\n")

asyncio.run(logins(sys.argv[1]))
"""
"""A fresh login with skutui's own client each time, until /tmp/stop-logins exists."""


def check_rekey_keeps_logins_working(cluster: LabCluster) -> None:
    """Both keys replaced while each node logs in to the other over and over: no login
    fails, the old keys are refused afterwards, skutui's work goes on with the new ones."""
    old = {node: public_key(cluster, node) for node in (A, B)}
    for node in (A, B):
        cluster.run(node, "cp", KEY, "/tmp/old_key", check=True)
        # The peer's key allowed bare and without skutui's comment, as root may have
        # allowed it by hand before the forced command: it goes by its body alone.
        peer_key = " ".join(public_key(cluster, cluster.other(node)).split()[:2])
        cluster.file(node, AUTHORIZED_KEYS).write_text(f"{ADMIN}\n{peer_key}\n")
    # Each node logs in to the other over and over as its agent does when it reconnects:
    # skutui's own client, with the key the node holds at that moment.
    loops = {}
    for node in (A, B):
        peer = cluster.ip(cluster.other(node))
        loops[node] = subprocess.Popen(
            cluster.lab.command(node, [sys.executable, "-c", LOGIN_LOOP, peer]),
            env=cluster.lab.environment())
    try:
        wait_for(lambda: all(cluster.file(n, "/tmp/logins").exists() for n in (A, B)), 20,
                 "key logins run on both nodes")
        rekeyed = cluster.skutui(A, "cluster", "rekey")
        assert rekeyed.returncode == 0, rekeyed.stdout + rekeyed.stderr
    finally:
        for node in (A, B):
            cluster.run(node, "touch", "/tmp/stop-logins")
        for process in loops.values():
            process.wait(timeout=30)
    for node in (A, B):
        failures = cluster.file(node, "/tmp/login-failures")
        assert not failures.exists(), (node, failures.read_text())
        assert len(cluster.read(node, "/tmp/logins").split()) >= 2, node

    for node in (A, B):
        peer = cluster.other(node)
        assert public_key(cluster, node) != old[node], node
        assert [line.body for line in skutui_lines(cluster, peer)] == [
            public_key(cluster, node).split()[1]], "the new key alone is allowed on the peer"
        allowed = cluster.read(peer, AUTHORIZED_KEYS)
        assert old[node].split()[1] not in allowed and allowed.startswith(ADMIN + "\n"), allowed
        refused = ssh(cluster, node, "skutui --version", key="/tmp/old_key")
        assert refused.returncode == 255 and "Permission denied" in refused.stderr, refused
    replicated = cluster.skutui(A, "exec", "--", "touch", "/tmp/after-rekey")
    assert replicated.returncode == 0, replicated.stderr
    assert cluster.file(B, "/tmp/after-rekey").exists()
