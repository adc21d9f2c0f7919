"""The lab's promises: two isolated, reachable nodes with real sshd, and nothing left after down.

Traffic stays on the lab's own 198.18.0.0/24 bridge.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import asyncssh
import pytest

import skutui
from skutui_lab import NODES, PASSWORD, Lab, LabError
from skutui_lab.system import is_running, link_exists, netns_exists
from skutui_lab.topology import BRIDGE, NETWORK

pytestmark = pytest.mark.lab

NODE_A, NODE_B = NODES
CLI = [sys.executable, "-m", "skutui_lab.cli"]

ICMP_ECHO = """
import os, socket, struct, sys
def checksum(data):
    total = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    total = (total >> 16) + (total & 0xFFFF)
    return ~(total + (total >> 16)) & 0xFFFF
ident, target = os.getpid() & 0xFFFF, sys.argv[1]
body = struct.pack("!BBHHH", 8, 0, 0, ident, 1) + b"skutui"
packet = body[:2] + struct.pack("!H", checksum(body)) + body[4:]
sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
sock.settimeout(2)
sock.sendto(packet, (target, 0))
while True:
    data, (source, _) = sock.recvfrom(2048)
    header = data[(data[0] & 0x0F) * 4:][:8]
    kind, _, _, reply_id, _ = struct.unpack("!BBHHH", header)
    if source == target and kind == 0 and reply_id == ident:
        print("echo reply from", source)
        break
"""

SSH_BANNER = """
import socket, sys
with socket.create_connection((sys.argv[1], 22), timeout=2) as conn:
    print(conn.recv(64).decode().strip())
"""


def run_in(lab: Lab, node: str, *argv: str, **kwargs) -> subprocess.CompletedProcess:
    kwargs.setdefault("check", True)
    kwargs.setdefault("timeout", 30)
    return lab.exec(node, list(argv), capture_output=True, text=True, **kwargs)


def cli(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, **kwargs)


def test_nodes_have_their_own_hostname(lab: Lab) -> None:
    for node in NODES:
        assert run_in(lab, node.name, "hostname").stdout.strip() == node.hostname
        assert run_in(lab, node.name, "cat", "/etc/hostname").stdout.strip() == node.hostname
        assert (lab.node_dir(node.name) / "etc/hostname").read_text().strip() == node.hostname


def test_nodes_reach_each_other_on_the_lab_network_only(lab: Lab) -> None:
    for node, peer in ((NODE_A, NODE_B), (NODE_B, NODE_A)):
        routes = run_in(lab, node.name, "ip", "-4", "-o", "route").stdout.splitlines()
        assert [route.split()[0] for route in routes] == [NETWORK]
        ping = run_in(lab, node.name, sys.executable, "-c", ICMP_ECHO, peer.ip, timeout=10)
        assert f"echo reply from {peer.ip}" in ping.stdout
        banner = run_in(lab, node.name, sys.executable, "-c", SSH_BANNER, peer.ip, timeout=10)
        assert banner.stdout.startswith("SSH-2.0-OpenSSH")


async def test_root_logs_in_over_ssh_with_the_lab_password_only(lab: Lab) -> None:
    for node in NODES:
        async with asyncssh.connect(
            node.ip, username="root", password=PASSWORD, known_hosts=None,
            connect_timeout=5,
        ) as conn:
            result = await conn.run("hostname", check=True)
            assert result.stdout.strip() == node.hostname
    with pytest.raises(asyncssh.PermissionDenied):
        await asyncssh.connect(
            NODE_A.ip, username="root", password="not-the-lab-password", known_hosts=None,
            connect_timeout=5,
        )


def expected_version() -> str:
    return f"skutui {skutui.__version__}"


def skutui_probe() -> str:
    """``skutui --version`` once the entry point exists; the lab's own CLI stands in before."""
    main = Path(skutui.__file__).with_name("__main__.py")
    return "skutui --version" if main.exists() else "skutui lab info --json"


async def test_skutui_in_a_node_is_the_installation_that_built_the_lab(lab: Lab) -> None:
    wrapper = run_in(lab, NODE_A.name, "sh", "-c", "command -v skutui").stdout.strip()
    assert wrapper == "/usr/sbin/skutui", "where the package puts it, on root's PATH"
    assert sys.executable in (lab.disk(NODE_A.name) / "usr/sbin/skutui").read_text()
    assert not Path("/usr/sbin/skutui").exists() or Path("/usr/sbin/skutui").read_text() != (
        lab.disk(NODE_A.name) / "usr/sbin/skutui").read_text(), "the host's own is untouched"
    probe = skutui_probe()
    local = run_in(lab, NODE_A.name, "sh", "-c", probe).stdout
    async with asyncssh.connect(
        NODE_B.ip, username="root", password=PASSWORD, known_hosts=None, connect_timeout=5,
    ) as conn:
        over_ssh = (await conn.run(probe, check=True)).stdout
        login_shell = (await conn.run(f"bash -lc '{probe}'", check=True)).stdout
    if probe.endswith("--version"):
        assert local.strip() == over_ssh.strip() == login_shell.strip() == expected_version()
    else:
        assert json.loads(local)["up"] and json.loads(over_ssh)["up"]


def test_etc_skutui_is_per_node_and_visible_from_the_host(lab: Lab) -> None:
    probe = "/etc/skutui/lab-probe"
    run_in(lab, NODE_A.name, "sh", "-c", f"echo written-in-a > {probe}")
    try:
        assert (lab.node_dir(NODE_A.name) / "etc/skutui/lab-probe").read_text() == "written-in-a\n"
        assert lab.host_path(NODE_A.name, probe).read_text() == "written-in-a\n"
        assert not lab.host_path(NODE_B.name, probe).exists()
        assert run_in(lab, NODE_B.name, "test", "-e", probe, check=False).returncode == 1
        assert not Path(probe).exists()
    finally:
        run_in(lab, NODE_A.name, "rm", "-f", probe)


def test_tmp_and_root_ssh_are_private(lab: Lab) -> None:
    run_in(lab, NODE_A.name, "sh", "-c", "echo a > /tmp/lab-probe && echo key > /root/.ssh/probe")
    try:
        assert run_in(lab, NODE_B.name, "test", "-e", "/tmp/lab-probe", check=False).returncode
        assert run_in(lab, NODE_B.name, "test", "-e", "/root/.ssh/probe", check=False).returncode
        assert not Path("/tmp/lab-probe").exists() and not Path("/root/.ssh/probe").exists()
        assert lab.host_path(NODE_A.name, "/tmp/lab-probe").read_text() == "a\n"
    finally:
        run_in(lab, NODE_A.name, "rm", "-f", "/tmp/lab-probe", "/root/.ssh/probe")


def test_processes_are_isolated(lab: Lab) -> None:
    for node in NODES:
        init = run_in(lab, node.name, "cat", "/proc/1/cmdline").stdout
        assert init.split("\0")[0] == "/lib/systemd/systemd", "systemd is the node's PID 1"
        state = run_in(lab, node.name, "systemctl", "is-system-running", check=False).stdout
        assert state.strip() == "running", "booted, and no unit failed"
        # No pipes for the sleeper: it would hold them open and the exec would never end.
        lab.exec(node.name, ["setsid", "-f", "sleep", "4242"], stdout=subprocess.DEVNULL,
                 stderr=subprocess.DEVNULL, check=True, timeout=30)
    try:
        run_in(lab, NODE_A.name, "pkill", "-f", "sleep 4242")
        assert run_in(lab, NODE_A.name, "pgrep", "-f", "sleep 4242", check=False).returncode == 1
        assert run_in(lab, NODE_B.name, "pgrep", "-f", "sleep 4242", check=False).returncode == 0
        sshd = run_in(lab, NODE_A.name, "pgrep", "-x", "sshd").stdout.split()
        assert len(sshd) == 1, "node-a sees only its own sshd"
    finally:
        run_in(lab, NODE_B.name, "pkill", "-f", "sleep 4242", check=False)


def test_cli_status_info_and_exec(lab: Lab) -> None:
    status = cli("status")
    assert status.returncode == 0, status.stderr
    assert "node-a" in status.stdout and "running" in status.stdout
    info = json.loads(cli("info", "--json", check=True).stdout)
    assert {"nodes", "password", "floating_ip", "bridge", "advert", "up"} <= set(info)
    assert info["up"] and info["password"] == PASSWORD
    assert [(n["name"], n["ip"]) for n in info["nodes"]] == [(n.name, n.ip) for n in NODES]
    echoed = cli("exec", "node-b", "--", "sh", "-c", "cat; hostname; exit 7", input="piped\n")
    assert (echoed.returncode, echoed.stdout) == (7, "piped\nnode-b\n")
    again = cli("up")
    assert again.returncode == 0 and "already up" in again.stdout
    unknown = cli("exec", "node-c", "--", "true")
    assert unknown.returncode == 2 and "node-c" in unknown.stderr


def test_cli_refuses_without_root_with_a_clear_message(lab: Lab) -> None:
    nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
    result = subprocess.run([*nobody, *CLI, "down"], capture_output=True, text=True)
    assert result.returncode == 1
    assert "must run as root" in result.stderr and "Traceback" not in result.stderr
    assert lab.is_up()


def test_up_rebuilds_a_broken_lab_and_down_leaves_nothing(lab: Lab) -> None:
    state = json.loads(lab.state_file.read_text())
    os.kill(state["nodes"]["node-b"]["pid"], 9)
    assert cli("status").returncode == 3
    assert lab.up() is True, "a half-dead lab is rebuilt"
    assert lab.is_up()

    state = json.loads(lab.state_file.read_text())
    pids = [pid for record in state["nodes"].values() for pid in (record["pid"], record["launcher"])]
    assert lab.down() is True
    assert not any(is_running(pid) for pid in pids)
    assert not any(netns_exists(node.netns) for node in NODES)
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert not any(node.netns in listed for node in NODES)
    assert not any(link_exists(name) for name in [BRIDGE] + [node.veth for node in NODES])
    mounts = Path("/proc/self/mountinfo").read_text()
    assert str(lab.lab_dir) not in mounts and "skutui-node" not in mounts
    assert not lab.state_file.exists() and not lab.nodes_dir.exists()
    with pytest.raises(LabError, match="not running"):
        lab.exec(NODE_A.name, ["true"])
    assert lab.down() is False, "down is idempotent"
    assert cli("status").returncode == 3

    lab.up()
    assert lab.is_up()


def test_a_node_is_a_debian_machine_of_its_own_under_systemd(lab: Lab) -> None:
    """Debian's units for the node's packages are enabled as their packages enable them,
    skutui's agent unit is installed and enabled, and what the node writes to its disk
    stays on its disk."""
    enabled = run_in(lab, NODE_A.name, "systemctl", "is-enabled", "ssh.service",
                     "keepalived.service", "conntrackd.service", "skutui-agent.service").stdout
    assert enabled.split() == ["enabled"] * 4
    run_in(lab, NODE_A.name, "sh", "-c", "echo on-the-disk > /var/lib/lab-disk-probe")
    try:
        assert (lab.disk(NODE_A.name) / "var/lib/lab-disk-probe").read_text() == "on-the-disk\n"
        assert not Path("/var/lib/lab-disk-probe").exists()
        assert run_in(lab, NODE_B.name, "test", "-e", "/var/lib/lab-disk-probe",
                      check=False).returncode == 1
    finally:
        run_in(lab, NODE_A.name, "rm", "-f", "/var/lib/lab-disk-probe")
    # The host's kernel settings are out of reach; the node's own network stack is not.
    assert run_in(lab, NODE_A.name, "sh", "-c", "echo 1 > /proc/sys/kernel/core_uses_pid",
                  check=False).returncode != 0
    host = Path("/proc/sys/net/ipv4/ip_forward").read_text()
    run_in(lab, NODE_A.name, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1")
    try:
        assert run_in(lab, NODE_A.name, "sysctl", "-n", "net.ipv4.ip_forward").stdout == "1\n"
        assert run_in(lab, NODE_B.name, "sysctl", "-n", "net.ipv4.ip_forward").stdout == "0\n"
        assert Path("/proc/sys/net/ipv4/ip_forward").read_text() == host
    finally:
        run_in(lab, NODE_A.name, "sysctl", "-q", "-w", "net.ipv4.ip_forward=0")


def test_reboot_ends_every_process_and_boots_from_the_same_disk(lab: Lab) -> None:
    run_in(lab, NODE_B.name, "sh", "-c", "echo kept > /var/lib/lab-reboot-probe; "
                                         "echo lost > /tmp/lab-reboot-probe; "
                                         "ip addr add 198.18.0.77/24 dev eth0")
    lab.exec(NODE_B.name, ["setsid", "-f", "sleep", "4343"], stdout=subprocess.DEVNULL,
             stderr=subprocess.DEVNULL, check=True, timeout=30)
    before = lab.node_pid(NODE_B.name)
    other = lab.node_pid(NODE_A.name)
    try:
        rebooted = cli("reboot", NODE_B.name)
        assert rebooted.returncode == 0, rebooted.stderr
        assert not is_running(before)
        assert lab.node_pid(NODE_A.name) == other, "the other node runs on"
        assert run_in(lab, NODE_B.name, "cat", "/var/lib/lab-reboot-probe").stdout == "kept\n"
        assert run_in(lab, NODE_B.name, "test", "-e", "/tmp/lab-reboot-probe",
                      check=False).returncode == 1
        assert run_in(lab, NODE_B.name, "pgrep", "-f", "sleep 4343", check=False).returncode == 1
        addresses = run_in(lab, NODE_B.name, "ip", "-4", "-o", "addr", "show", "dev", "eth0").stdout
        assert "198.18.0.77" not in addresses and NODE_B.ip in addresses
        assert run_in(lab, NODE_B.name, "systemctl", "is-active", "ssh.service").stdout.strip() \
            == "active"
    finally:
        run_in(lab, NODE_B.name, "rm", "-f", "/var/lib/lab-reboot-probe")
    assert cli("reboot", "node-c").returncode == 2
