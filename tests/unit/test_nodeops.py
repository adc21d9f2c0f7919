"""Node operations on each side, and the production pieces that reach the peer, with the
machine and the SSH connection replaced: this node's steps run in a thread, the peer's as
``skutui node …`` commands whose failures read as the peer's own words; a refused key
exchange leaves no file behind."""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass, field
from pathlib import Path

import pytest

import skutui.peer
from skutui.cluster import peering
from skutui.cluster.nodeops import LocalOps, RemoteNodeError, RemoteOps
from skutui.cluster.transaction import FileGuard
from skutui.domain import codec, trust
from skutui.domain.errors import Failed, ValidationError
from skutui.domain.model import ClusterConfig, Role
from skutui.domain.paths import Paths
from skutui.domain.syncplan import MANIFEST_VERSION
from skutui.peer import CommandResult, RemoteCommandFailed
from skutui.system.change import Change
from skutui.system.node import NodeFacts
from tests.unit.fake_nodes import FINGERPRINT, PASSWORD, A, B, request

CONFIG = ClusterConfig(interface="eth0", nodes=(A, B))
FACTS = NodeFacts(hostname="node-b", version="0.1.0", configured=True, role=Role.BACKUP,
                  maintenance=False, services={"keepalived": True})


class Machine:
    """Stands in for LocalNode: answers each call and records it."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def __getattr__(self, name: str):
        answers = {"facts": FACTS, "inventory": {"hostname": "node-a"}, "snapshot": {"files": {}},
                   "set_maintenance": "node-a is in maintenance", "config": CONFIG,
                   "role": Role.MASTER}

        def call(*args):
            self.calls.append((name, *args))
            return answers.get(name)

        return call


async def test_this_node_s_operations_are_local_node_s():
    machine = Machine()
    ops = LocalOps(machine, "node-a")
    assert await ops.facts() == FACTS
    assert await ops.inventory() == {"hostname": "node-a"}
    assert await ops.snapshot() == {"files": {}}
    await ops.restore({"files": {}})
    await ops.apply(CONFIG)
    for step in (ops.reload, ops.start, ops.stop, ops.erase):
        await step()
    await ops.erase(keep_keys=True)
    assert await ops.set_maintenance(True) == "node-a is in maintenance"
    assert await ops.config() == CONFIG
    assert await ops.role() is Role.MASTER
    await ops.close()
    assert machine.calls == [("facts",), ("inventory",), ("snapshot",), ("restore", {"files": {}}),
                             ("apply", CONFIG), ("reload",), ("start",), ("stop",),
                             ("erase", False), ("erase", True),
                             ("set_maintenance", True), ("config",), ("role",)]


@dataclass
class Process:
    answers: list[str]
    closed: bool = False
    asked: list[str] = field(default_factory=list)

    async def ask(self, request: str, timeout: float) -> str:
        self.asked.append(request)
        answer = self.answers.pop(0)
        if isinstance(answer, BaseException):
            raise answer
        return answer

    def close(self) -> None:
        self.closed = True


class Peer:
    """Stands in for PeerConnection: each command answered from ``results``. A command the
    peer's key would not run (its forced command, ``skutui node serve``) is refused here as
    there: every step RemoteOps sends must be one the peer serves."""

    host = B.ip
    command_timeout = 30.0

    def __init__(self) -> None:
        self.commands: list[tuple[list[str], str | None]] = []
        self.results: dict[str, CommandResult | BaseException] = {}
        self.connected = True
        self.process = Process([json.dumps(FACTS.to_dict()) + "\n"])
        self.opened: list[list[str]] = []
        self.closed = 0

    async def run_checked(self, command, *, input=None, timeout=None) -> CommandResult:
        trust.served(shlex.join(command))
        self.commands.append((command, input))
        result = self.results.get(command[2], CommandResult(" ".join(command), 0, "", ""))
        if isinstance(result, BaseException):
            raise result
        return result

    async def open_process(self, command):
        trust.served(shlex.join(command))
        self.opened.append(command)
        return self.process

    async def stream_lines(self, command):
        trust.served(shlex.join(command))
        self.opened.append(command)
        yield '{"kind": "role"}\n'

    async def close(self) -> None:
        self.closed += 1


def answered(stdout: str) -> CommandResult:
    return CommandResult("skutui node", 0, stdout, "")


def failed(status: int, stderr: str, command: str = "skutui node restore") -> RemoteCommandFailed:
    return RemoteCommandFailed(B.ip, command, status, "", stderr)


async def test_the_peer_s_operations_are_skutui_node_commands():
    peer = Peer()
    peer.results = {"inventory": answered('{"hostname": "node-b"}'),
                    "snapshot": answered('{"files": {}}'),
                    "maintenance": answered("node-b is in maintenance\n")}
    ops = RemoteOps(peer, "node-b")
    assert await ops.inventory() == {"hostname": "node-b"}
    assert await ops.snapshot() == {"files": {}}
    await ops.restore({"files": {}})
    await ops.apply(CONFIG)
    for step in (ops.reload, ops.start, ops.stop, ops.erase):
        await step()
    await ops.erase(keep_keys=True)
    assert await ops.set_maintenance(True) == "node-b is in maintenance"
    assert [command for command, _ in peer.commands] == [
        ["skutui", "node", name] for name in
        ("inventory", "snapshot", "restore", "apply", "reload", "start", "stop", "erase")
    ] + [["skutui", "node", "erase", "--keep-keys"], ["skutui", "node", "maintenance", "on"]]
    inputs = dict((command[2], given) for command, given in peer.commands)
    assert json.loads(inputs["restore"]) == {"files": {}}
    assert codec.loads(inputs["apply"]) == CONFIG


async def test_every_step_the_peer_is_asked_for_is_one_its_key_serves():
    """Each RemoteOps step runs through the fake's check of the forced command; one the
    dispatcher does not serve fails here before it fails on a real cluster."""
    peer = Peer()
    peer.results = {"history": answered("[]"), "hand-over": answered("0.5\n"),
                    "manifest": answered(json.dumps({"version": MANIFEST_VERSION, "entries": {}})),
                    "pin-peer-link": answered("pinned\n")}
    peer.process.answers += [json.dumps({"ok": True, "snapshot": None}) + "\n",
                             json.dumps({"ok": True}) + "\n"]
    ops = RemoteOps(peer, "node-b")
    for step in (ops.inventory, ops.snapshot, ops.reload, ops.start, ops.stop, ops.erase,
                 ops.commit_connections):
        peer.results.setdefault(step.__name__, answered("{}"))
        await step()
    await ops.restore({"files": {}})
    await ops.apply(CONFIG)
    await ops.erase(keep_keys=True)
    await ops.set_maintenance(False)
    await ops.facts()
    await ops.history(1.0, ["failover"])
    await ops.put_history([])
    await ops.manifest(["/etc/skutui"], ["/etc/skutui/local"])
    await ops.drill_mark("drill-1")
    await ops.drill_mark(None)
    await ops.drill_probe("198.18.0.100", 49812)
    await ops.pin_peer_link(A.ip, "02:00:00:00:00:01")
    await ops.begin_change(Change("cluster edit", "node-a"))
    await ops.end_change()
    assert await ops.hand_over(5.0) == 0.5
    assert [line async for line in ops.event_lines()]
    sent = [shlex.join(command) for command, _ in peer.commands] + [
        shlex.join(command) for command in peer.opened]
    assert {shlex.split(line)[2] for line in sent if line.startswith("skutui node ")} == {
        "inventory", "snapshot", "reload", "start", "stop", "erase", "commit", "restore",
        "apply", "maintenance", "facts", "history", "manifest", "drill", "pin-peer-link",
        "change", "hand-over"}
    await ops.close()


async def test_the_peer_s_facts_come_from_one_kept_command():
    peer = Peer()
    peer.process.answers.append(json.dumps(FACTS.to_dict()) + "\n")
    ops = RemoteOps(peer, "node-b")
    assert await ops.facts() == FACTS
    assert await ops.facts() == FACTS
    assert peer.opened == [["skutui", "node", "facts", "--stream"]]
    lines = [line async for line in ops.event_lines()]
    assert lines == ['{"kind": "role"}\n'] and peer.opened[-1][:2] == ["skutui", "events"]
    await ops.close()
    assert peer.process.closed and peer.closed == 1


async def test_the_peer_s_refusal_is_passed_on_in_its_own_words():
    peer = Peer()
    peer.results["restore"] = failed(2, "skutui: the snapshot to restore has no 'files' key\n")
    with pytest.raises(RemoteNodeError, match="^node-b: the snapshot to restore has no 'files' key$"):
        await RemoteOps(peer, "node-b").restore({})
    peer.results["restore"] = failed(1, "")
    with pytest.raises(RemoteNodeError, match="^node-b: `skutui node restore` failed on 198.18.0.2"):
        await RemoteOps(peer, "node-b").restore({})


async def test_a_dropped_connection_during_a_step_says_the_step_may_be_half_done():
    peer = Peer()
    peer.connected = False
    peer.results["start"] = failed(-1, "", "skutui node start")
    with pytest.raises(RemoteNodeError) as raised:
        await RemoteOps(peer, "node-b").start()
    assert str(raised.value) == ("node-b: lost the SSH connection to 198.18.0.2 while `skutui node "
                                 "start` ran there; the step may have stopped half-way")
    assert isinstance(raised.value, Failed)


async def test_a_failed_facts_command_is_the_peer_s_message():
    peer = Peer()
    peer.process.answers = [failed(1, "skutui: cluster.toml line 2: bad\n")]
    with pytest.raises(RemoteNodeError, match="^node-b: cluster.toml line 2: bad$"):
        await RemoteOps(peer, "node-b").facts()


# --- the production pieces that reach the peer --------------------------------------------------


@dataclass
class Offered:
    fingerprint: str = FINGERPRINT


@pytest.fixture
def peer_library(monkeypatch, tmp_path):
    """skutui.peer's first-contact functions, recorded; each may be made to fail."""
    calls: list[tuple] = []
    failures: dict[str, BaseException] = {}

    async def fetch_host_key(host, *, connect_timeout):
        calls.append(("fetch_host_key", host, connect_timeout))
        return Offered()

    class KnownHosts:
        def __init__(self, path: Path):
            self.path = path

        def pin(self, offered, *, expected_fingerprint, trust_new):
            calls.append(("pin", expected_fingerprint, trust_new))
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.write_text(f"{B.ip} ssh-ed25519 AAAA\n")

    async def install_keys(host, password, *, our_address, our_host_key, paths, connect_timeout):
        calls.append(("install_keys", host, password, our_address))
        paths.private_key.write_text("private")
        if "install_keys" in failures:
            raise failures["install_keys"]

        @dataclass
        class Installed:
            peer_public_key: str = "ssh-ed25519 PEER"

        return Installed()

    def authorize_key_locally(key, from_address):
        calls.append(("authorize_key_locally", key, from_address))

    for name, value in (("fetch_host_key", fetch_host_key), ("KnownHosts", KnownHosts),
                        ("install_keys", install_keys),
                        ("authorize_key_locally", authorize_key_locally),
                        ("local_host_key", lambda: "ssh-ed25519 OURS")):
        monkeypatch.setattr(skutui.peer, name, value)
    return calls, failures


async def test_the_key_exchange_pins_the_host_key_then_installs_both_keys(peer_library, tmp_path):
    calls, _ = peer_library
    paths = Paths(config_root=tmp_path / "etc")
    lines: list[str] = []
    await peering.exchange_keys(paths, 3.0, B.ip, A.ip, request(), lines.append)
    assert calls == [("fetch_host_key", B.ip, 3.0), ("pin", FINGERPRINT, False),
                     ("install_keys", B.ip, PASSWORD, A.ip),
                     ("authorize_key_locally", "ssh-ed25519 PEER", B.ip)]
    assert lines == [f"Host key of {B.ip}: {FINGERPRINT}",
                     f"Installing this node's key on {B.ip} (the password is used once)"]
    assert paths.known_hosts.exists()


async def test_a_refused_key_exchange_leaves_no_trace(peer_library, tmp_path):
    _, failures = peer_library
    failures["install_keys"] = Failed("root login with a password was refused by 198.18.0.2")
    paths = Paths(config_root=tmp_path / "etc")
    with pytest.raises(Failed, match="refused"):
        await peering.exchange_keys(paths, 3.0, B.ip, A.ip, request(), lambda line: None)
    assert not (tmp_path / "etc").exists(), "not even the folders it made"


async def test_a_refused_key_exchange_puts_back_the_files_that_were_there(peer_library, tmp_path):
    _, failures = peer_library
    failures["install_keys"] = KeyboardInterrupt()
    paths = Paths(config_root=tmp_path / "etc")
    paths.known_hosts.parent.mkdir(parents=True)
    paths.known_hosts.write_text("198.18.0.9 ssh-ed25519 OLD\n")
    paths.known_hosts.chmod(0o644)
    with pytest.raises(KeyboardInterrupt):
        await peering.exchange_keys(paths, 3.0, B.ip, A.ip, request(), lambda line: None)
    assert paths.known_hosts.read_text() == "198.18.0.9 ssh-ed25519 OLD\n"
    assert paths.known_hosts.stat().st_mode & 0o777 == 0o644
    assert not paths.private_key.exists()


def test_the_file_guard_leaves_untouched_files_alone(tmp_path):
    kept = tmp_path / "kept"
    kept.write_text("same")
    guard = FileGuard([kept])
    before = kept.stat().st_mtime_ns
    guard.restore()
    assert kept.read_text() == "same" and kept.stat().st_mtime_ns == before


async def test_the_host_key_fingerprint_is_what_the_peer_offers(peer_library):
    calls, _ = peer_library
    assert await peering.host_key_fingerprint(B.ip, connect_timeout=2.0) == FINGERPRINT
    assert calls == [("fetch_host_key", B.ip, 2.0)]
    with pytest.raises(ValidationError):
        await peering.host_key_fingerprint("not an address")


def test_the_peer_s_operations_run_over_a_kept_connection(tmp_path):
    paths = Paths(config_root=tmp_path)
    ops = peering.remote_ops(paths, 4.0, B.ip, "node-b")
    assert isinstance(ops, RemoteOps) and ops.name == "node-b"
    assert (ops.peer.host, ops.peer.connect_timeout, ops.peer.connected) == (B.ip, 4.0, False)
