"""The peer adapter against asyncssh's own SSH server on 127.0.0.1 (see tests/fakes_ssh.py)."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import stat
import subprocess
import traceback
from pathlib import Path

import asyncssh
import pytest

from skutui.domain.paths import Paths
from skutui.peer import (
    AuthenticationFailed,
    CommandTimeout,
    HostKeyChanged,
    HostKeyNotConfirmed,
    HostKeyNotPinned,
    KeyRejected,
    KnownHosts,
    PasswordLoginDisabled,
    PasswordRejected,
    PeerConnection,
    PeerError,
    PeerTimeout,
    PeerUnreachable,
    RemoteCommandFailed,
    RemoteFileError,
    RemoteFileNotFound,
    SkutuiMissing,
    authorize_key_locally,
    ensure_local_key,
    fetch_host_key,
    install_keys,
    local_host_key,
    pin_peer,
)
from tests.fakes_ssh import FakePeer, LinkProxy, closed_port, new_host_key, silent_server

PASSWORD = "Pw-4-root!only-once"
OUR_ADDRESS = "10.0.0.1"
OUR_HOST_KEY = new_host_key().export_public_key("openssh").decode()


@pytest.fixture
def paths(tmp_path: Path) -> Paths:
    return Paths(config_root=tmp_path / "this-node" / "etc" / "skutui")


@pytest.fixture
async def peer_node(tmp_path: Path):
    node = await FakePeer(tmp_path / "peer", password=PASSWORD).start()
    yield node
    await node.stop()


async def pinned(node: FakePeer, paths: Paths) -> None:
    await pin_peer(node.host, paths.known_hosts, port=node.port, trust_new=True)


def exchange(port: int, paths: Paths, password: str = PASSWORD, **options):
    """The key exchange as cluster Create runs it, against the fake peer on ``port``."""
    return install_keys("127.0.0.1", password, our_address=OUR_ADDRESS,
                        our_host_key=OUR_HOST_KEY, paths=paths, port=port, **options)


async def refused_exchange(root: Path, paths: Paths,
                           **peer_options) -> tuple[PeerError, FakePeer]:
    """Run the exchange against a fresh peer configured to refuse it."""
    node = await FakePeer(root, **{"password": PASSWORD, **peer_options}).start()
    try:
        await pinned(node, paths)
        with pytest.raises(PeerError) as refused:
            await exchange(node.port, paths)
    finally:
        await node.stop()
    return refused.value, node


@pytest.fixture
async def connected(peer_node: FakePeer, paths: Paths):
    """A peer whose host key is pinned and whose keys were exchanged."""
    await pinned(peer_node, paths)
    await exchange(peer_node.port, paths)
    connection = PeerConnection(peer_node.host, paths=paths, port=peer_node.port,
                                connect_timeout=2)
    yield connection
    await connection.close()


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# --- host keys -------------------------------------------------------------------------

async def test_fingerprint_is_what_ssh_keygen_prints(peer_node: FakePeer, tmp_path: Path):
    offered = await fetch_host_key(peer_node.host, port=peer_node.port)

    assert offered.fingerprint == peer_node.host_key.get_fingerprint("sha256")
    assert offered.fingerprint.startswith("SHA256:")
    assert offered.check_command == "ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub"
    if shutil.which("ssh-keygen"):
        public = tmp_path / "host.pub"
        public.write_bytes(peer_node.host_key.export_public_key("openssh"))
        printed = subprocess.run(["ssh-keygen", "-lf", str(public)], check=True,
                                 capture_output=True, text=True).stdout
        assert printed.split()[1] == offered.fingerprint


async def test_pinning_needs_the_operators_yes(peer_node: FakePeer, paths: Paths):
    offered = await fetch_host_key(peer_node.host, port=peer_node.port)
    known = KnownHosts(paths.known_hosts)

    with pytest.raises(HostKeyNotConfirmed, match="without confirmation"):
        known.pin(offered)
    with pytest.raises(HostKeyNotConfirmed) as refused:
        known.pin(offered, expected_fingerprint="SHA256:" + "A" * 43)
    assert offered.fingerprint in str(refused.value)
    assert not paths.known_hosts.exists()

    # what an operator pastes: without the prefix, with spaces around
    assert known.pin(offered, expected_fingerprint=f"  {offered.fingerprint[7:]} ")
    assert known.fingerprint(peer_node.host, peer_node.port) == offered.fingerprint


async def test_pin_is_a_private_openssh_line_written_once(peer_node: FakePeer, paths: Paths):
    offered = await fetch_host_key(peer_node.host, port=peer_node.port)
    known = KnownHosts(paths.known_hosts)

    assert known.pin(offered, trust_new=True) is True
    assert known.pin(offered, trust_new=True) is False

    line, = paths.known_hosts.read_text().splitlines()
    assert line.startswith(f"[127.0.0.1]:{peer_node.port} ssh-ed25519 AAAA")
    assert mode(paths.known_hosts) == 0o600
    assert mode(paths.local_dir) == 0o700
    assert [p.name for p in paths.local_dir.iterdir()] == ["known_hosts"]  # no temp left


async def test_changed_host_key_is_refused_before_anything_is_sent(
        tmp_path: Path, paths: Paths):
    first = await FakePeer(tmp_path / "peer", password=PASSWORD).start()
    port = first.port
    await pinned(first, paths)
    pinned_fp = first.host_key.get_fingerprint("sha256")
    await first.stop()

    impostor = await FakePeer(tmp_path / "peer", password=PASSWORD).start(port)
    try:
        offered_fp = impostor.host_key.get_fingerprint("sha256")
        with pytest.raises(HostKeyChanged) as changed:
            await exchange(port, paths)
        with pytest.raises(HostKeyChanged):
            await PeerConnection(impostor.host, paths=paths, port=port).connect()
        with pytest.raises(HostKeyChanged):
            KnownHosts(paths.known_hosts).pin(
                await fetch_host_key(impostor.host, port=port), trust_new=True)
    finally:
        await impostor.stop()

    message = str(changed.value)
    assert changed.value.pinned == pinned_fp and changed.value.offered == offered_fp
    for part in ("127.0.0.1", pinned_fp, offered_fp, str(paths.known_hosts), "re-pin"):
        assert part in message
    assert impostor.passwords_tried == [] and impostor.key_logins == 0
    assert KnownHosts(paths.known_hosts).fingerprint("127.0.0.1", port) == pinned_fp


async def test_forgetting_a_pin_allows_pinning_the_new_key(peer_node: FakePeer, paths: Paths):
    known = KnownHosts(paths.known_hosts)
    known.path.parent.mkdir(parents=True)
    other = new_host_key().export_public_key("openssh").decode().split()
    known.path.write_text(f"[127.0.0.1]:{peer_node.port} {other[0]} {other[1]}\n"
                          f"192.0.2.9 {other[0]} {other[1]}\n")
    offered = await fetch_host_key(peer_node.host, port=peer_node.port)

    with pytest.raises(HostKeyChanged):
        known.pin(offered, trust_new=True)
    assert known.forget(peer_node.host, peer_node.port) is True
    assert known.pin(offered, expected_fingerprint=offered.fingerprint)
    assert known.fingerprint("192.0.2.9") is not None  # other peers' pins untouched


async def test_no_pin_no_connection(peer_node: FakePeer, paths: Paths):
    with pytest.raises(HostKeyNotPinned, match="confirm the peer's fingerprint"):
        await PeerConnection(peer_node.host, paths=paths, port=peer_node.port).connect()
    with pytest.raises(HostKeyNotPinned):
        await exchange(peer_node.port, paths)
    assert peer_node.connections == [] and peer_node.passwords_tried == []


# --- the key exchange ------------------------------------------------------------------

async def test_key_exchange_sets_up_both_directions(peer_node: FakePeer, paths: Paths,
                                                    tmp_path: Path):
    await pinned(peer_node, paths)

    keys = await exchange(peer_node.port, paths)

    our_public = Path(f"{paths.private_key}.pub").read_text().strip()
    assert mode(paths.private_key) == 0o600
    assert our_public.split()[1] in peer_node.authorized_keys()
    assert mode(peer_node.path("/root/.ssh")) == 0o700
    assert mode(peer_node.path("/root/.ssh/authorized_keys")) == 0o600

    peer_key = peer_node.path("/etc/skutui/local/id_ed25519.pub")
    assert keys.peer_public_key == peer_key.read_text().strip()
    assert keys.our_key_added and keys.peer_key_generated
    assert mode(peer_node.path("/etc/skutui/local")) == 0o700

    peer_known_hosts = peer_node.path("/etc/skutui/local/known_hosts")
    assert peer_known_hosts.read_text() == f"{OUR_ADDRESS} {' '.join(OUR_HOST_KEY.split()[:2])}\n"
    assert mode(peer_known_hosts) == 0o600

    # the caller's half: let the peer log in to us
    authorized = tmp_path / "this-node" / "root" / ".ssh" / "authorized_keys"
    assert authorize_key_locally(keys.peer_public_key, "10.0.0.2", authorized) is True
    assert authorize_key_locally(keys.peer_public_key, "10.0.0.2", authorized) is False
    assert authorized.read_text() == ('restrict,from="10.0.0.2",command="skutui node serve" '
                                      + " ".join(keys.peer_public_key.split()[:2])
                                      + " skutui@peer\n"), \
        "from the peer only, skutui's steps only, no terminal or forwarding, and marked as " \
        "skutui's whatever the key's own comment: destroy and erase find it"
    assert mode(authorized) == 0o600 and mode(authorized.parent) == 0o700

    # from now on: the key, never the password (and never in a command line)
    assert peer_node.passwords_tried == [PASSWORD]
    assert not any(PASSWORD in command for command in peer_node.commands)
    async with PeerConnection(peer_node.host, paths=paths, port=peer_node.port) as peer:
        assert (await peer.run(["true"])).ok
    assert peer_node.passwords_tried == [PASSWORD]


async def test_repeating_the_exchange_changes_nothing(peer_node: FakePeer, paths: Paths):
    await pinned(peer_node, paths)
    keys_file = peer_node.path("/root/.ssh/authorized_keys")
    keys_file.parent.mkdir(parents=True)
    someone = new_host_key().export_public_key("openssh").decode().strip()
    keys_file.write_text(f'from="192.0.2.1" {someone}')  # no final newline, options first
    ensure_local_key(paths)
    ours = Path(f"{paths.private_key}.pub").read_text().strip()

    first = await exchange(peer_node.port, paths)
    again = await exchange(peer_node.port, paths)

    assert keys_file.read_text() == (f'from="192.0.2.1" {someone}\n'
                                     f'restrict,from="{OUR_ADDRESS}",command="skutui node serve" '
                                     f'{" ".join(ours.split()[:2])} skutui@peer\n')
    assert (again.our_key_added, again.peer_key_generated) == (False, False)
    assert again.peer_public_key == first.peer_public_key
    assert len(peer_node.path("/etc/skutui/local/known_hosts").read_text().splitlines()) == 1


async def test_peer_key_without_its_public_half_is_derived(peer_node: FakePeer, paths: Paths):
    await pinned(peer_node, paths)
    private = peer_node.path("/etc/skutui/local/id_ed25519")
    private.parent.mkdir(parents=True)
    key = asyncssh.generate_private_key("ssh-ed25519")
    private.write_bytes(key.export_private_key("openssh"))

    keys = await exchange(peer_node.port, paths)

    assert keys.peer_key_generated is False
    assert asyncssh.import_public_key(keys.peer_public_key).public_data == key.public_data


def test_local_keys_are_made_once_and_checked(paths: Paths, tmp_path: Path):
    public = ensure_local_key(paths)
    assert public.startswith("ssh-ed25519 AAAA") and public.endswith("@" + os.uname().nodename)
    Path(f"{paths.private_key}.pub").unlink()
    assert ensure_local_key(paths).split()[:2] == public.split()[:2]  # derived, not replaced
    assert mode(paths.private_key) == 0o600 and mode(paths.local_dir) == 0o700

    host_key = tmp_path / "ssh_host_ed25519_key.pub"
    host_key.write_text(OUR_HOST_KEY)
    assert local_host_key(host_key) == OUR_HOST_KEY.strip()
    host_key.write_text("-----BEGIN OPENSSH PRIVATE KEY-----\n")
    with pytest.raises(ValueError, match="is not an OpenSSH public key"):
        local_host_key(host_key)
    with pytest.raises(ValueError, match="the peer's public key is not"):
        authorize_key_locally("ssh-ed25519 garbage", "10.0.0.2", tmp_path / "authorized_keys")
    assert not (tmp_path / "authorized_keys").exists()


async def test_wrong_password(peer_node: FakePeer, paths: Paths):
    await pinned(peer_node, paths)
    with pytest.raises(PasswordRejected) as refused:
        await exchange(peer_node.port, paths, "not-the-password")
    message = str(refused.value)
    assert "root login with a password was refused by 127.0.0.1" in message
    assert "the password is wrong" in message and "PermitRootLogin yes" in message
    assert peer_node.passwords_tried == ["not-the-password"]  # offered once, not retried


async def test_root_password_login_prohibited_reads_the_same(tmp_path: Path, paths: Paths):
    refused, _ = await refused_exchange(tmp_path / "peer", paths, password_accepted=False)
    assert type(refused) is PasswordRejected
    message = str(refused)
    assert "PermitRootLogin prohibit-password" in message and "cannot tell" in message
    assert "set PermitRootLogin yes in /etc/ssh/sshd_config on the peer and reload sshd, " \
           "or install the key by hand" in message


async def test_password_login_not_offered(tmp_path: Path, paths: Paths):
    refused, node = await refused_exchange(tmp_path / "peer", paths, password=None)
    assert type(refused) is PasswordLoginDisabled
    message = str(refused)
    assert "root login with a password is refused by 127.0.0.1" in message
    assert "PasswordAuthentication yes" in message and "password was not sent" in message
    assert node.passwords_tried == []


async def _failures_with_the_password(tmp_path: Path, paths: Paths) -> list[PeerError]:
    """Every way the exchange can fail, each tried with the real password."""
    failures = [
        (await refused_exchange(tmp_path / "a", paths, password_accepted=False))[0],
        (await refused_exchange(tmp_path / "b", paths, password=None))[0],
    ]

    async def attempt(port: int, timeout: float = 2) -> None:
        with pytest.raises(PeerError) as failed:
            await exchange(port, paths, connect_timeout=timeout)
        failures.append(failed.value)

    def pin_without_looking(port: int) -> None:
        with paths.known_hosts.open("a") as known_hosts:
            known_hosts.write(f"[127.0.0.1]:{port} {OUR_HOST_KEY}\n")

    broken = await FakePeer(tmp_path / "c", password=PASSWORD).start()
    broken.path("/root").mkdir()
    broken.path("/root/.ssh").write_text("a file where a directory should be")
    await pinned(broken, paths)
    await attempt(broken.port)
    port = broken.port
    await broken.stop()
    impostor = await FakePeer(tmp_path / "d", password=PASSWORD).start(port)
    await attempt(port)
    await impostor.stop()
    assert impostor.passwords_tried == []

    silent, silent_port = await silent_server()
    pin_without_looking(silent_port)
    await attempt(silent_port, timeout=0.3)
    silent.close()
    refused_port = closed_port()
    pin_without_looking(refused_port)
    await attempt(refused_port)
    return failures


async def test_the_password_never_leaks(tmp_path: Path, paths: Paths, caplog):
    caplog.set_level(logging.DEBUG)
    failures = await _failures_with_the_password(tmp_path, paths)

    assert [type(exc) for exc in failures] == [
        PasswordRejected, PasswordLoginDisabled, RemoteFileError, HostKeyChanged,
        PeerTimeout, PeerUnreachable]
    for exc in failures:
        shown = "".join(traceback.format_exception(exc)) + repr(exc) + str(exc)
        assert PASSWORD not in shown, type(exc)
    assert caplog.records and PASSWORD not in caplog.text
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert PASSWORD.encode() not in path.read_bytes(), path


# --- the kept connection ---------------------------------------------------------------

async def test_commands_are_quoted_and_report_status_and_output(connected: PeerConnection,
                                                                 peer_node: FakePeer):
    echoed = await connected.run(["cat"], input="line one\nline 'two'\n")
    assert (echoed.exit_status, echoed.stdout, echoed.stderr) == (0, "line one\nline 'two'\n", "")

    failed = await connected.run(["fail", "3", "it's", "broken; rm -rf /"])
    assert (failed.exit_status, failed.stderr, failed.ok) == (3, "it's broken; rm -rf /\n", False)
    assert peer_node.commands[-1] == "fail 3 'it'\"'\"'s' 'broken; rm -rf /'"

    with pytest.raises(RemoteCommandFailed) as error:
        await connected.run_checked(["fail", "2", "no such service"])
    assert error.value.exit_status == 2
    assert str(error.value) == "`fail 2 'no such service'` failed on 127.0.0.1 with exit " \
                               "status 2: no such service"
    assert (await connected.run_checked("true")).ok


async def test_many_sessions_share_one_connection(connected: PeerConnection,
                                                  peer_node: FakePeer):
    before = len(peer_node.connections)
    results = await asyncio.gather(*(connected.run(["cat"], input=f"{n}\n") for n in range(12)))
    assert [r.stdout for r in results] == [f"{n}\n" for n in range(12)]
    assert await connected.read_file("/root/.ssh/authorized_keys")
    assert len(peer_node.connections) == before + 1


async def test_a_hung_command_times_out_and_the_connection_stays(connected: PeerConnection):
    with pytest.raises(CommandTimeout) as hung:
        await connected.run(["sleep", "5"], timeout=0.2)
    assert str(hung.value).startswith("`sleep 5` on 127.0.0.1 did not finish within 0.2 s")
    assert (await connected.run(["true"])).ok


async def test_remote_version(connected: PeerConnection, peer_node: FakePeer):
    assert await connected.remote_version() == "0.1.0"

    peer_node.skutui_version = None
    with pytest.raises(SkutuiMissing) as missing:
        await connected.remote_version()
    assert str(missing.value).startswith("skutui is not installed on 127.0.0.1")
    assert missing.value.exit_status == 127


async def test_files_are_replaced_atomically(connected: PeerConnection, peer_node: FakePeer):
    target = "/etc/skutui/cluster.toml"
    peer_node.path(target).write_text("old = 1\n")

    await connected.write_file_atomic(target, "new = 2\n", 0o640)

    assert peer_node.path(target).read_text() == "new = 2\n"
    assert mode(peer_node.path(target)) == 0o640
    assert await connected.read_file(target) == b"new = 2\n"
    assert sorted(os.listdir(peer_node.path("/etc/skutui"))) == ["cluster.toml", "local"]


async def test_a_file_name_that_is_not_utf8_is_written_as_its_bytes(connected: PeerConnection,
                                                                     peer_node: FakePeer):
    """A Latin-1 name reaches Python as surrogate escapes; the peer gets the same bytes."""
    target = os.fsdecode(b"/etc/skutui/l\xe9gacy.cfg")

    await connected.write_file_atomic(target, b"old system\n", 0o600)

    written = os.fsencode(peer_node.path("/etc/skutui")) + b"/l\xe9gacy.cfg"
    assert open(written, "rb").read() == b"old system\n"
    assert await connected.read_file(target) == b"old system\n"


async def test_a_failed_write_leaves_the_old_file_and_no_temp(connected: PeerConnection,
                                                              peer_node: FakePeer, monkeypatch):
    target = "/etc/skutui/cluster.toml"
    peer_node.path(target).write_text("old = 1\n")
    sftp = await connected._sftp_client()

    async def refuse(old: str, new: str) -> None:
        raise asyncssh.SFTPFailure("disk full")
    monkeypatch.setattr(sftp, "posix_rename", refuse)

    with pytest.raises(RemoteFileError, match=f"cannot write {target} on 127.0.0.1: disk full"):
        await connected.write_file_atomic(target, b"x" * 100_000)
    assert peer_node.path(target).read_text() == "old = 1\n"
    assert sorted(os.listdir(peer_node.path("/etc/skutui"))) == ["cluster.toml", "local"]


async def test_missing_files_and_directories(connected: PeerConnection, peer_node: FakePeer):
    with pytest.raises(RemoteFileNotFound, match="cannot read /nope.toml on 127.0.0.1: no such"):
        await connected.read_file("/nope.toml")
    with pytest.raises(RemoteFileNotFound):
        await connected.write_file_atomic("/no/such/dir/file", b"x")
    with pytest.raises(RemoteFileNotFound):
        await connected.remove("/nope.toml", missing_ok=False)
    await connected.remove("/nope.toml")

    await connected.make_dir("/var/lib/skutui/journal", 0o700)
    await connected.make_dir("/var/lib/skutui/journal", 0o700)
    await connected.write_file_atomic("/var/lib/skutui/journal/1", b"x")
    assert mode(peer_node.path("/var/lib/skutui/journal")) == 0o700
    assert mode(peer_node.path("/var/lib/skutui")) == 0o755
    assert await connected.exists("/var/lib/skutui/journal/1")
    await connected.remove("/var/lib/skutui/journal/1")
    assert not await connected.exists("/var/lib/skutui/journal/1")


async def test_reconnects_on_the_next_request_after_a_drop(connected: PeerConnection,
                                                          peer_node: FakePeer):
    await connected.write_file_atomic("/before", b"1")
    assert connected.connected
    peer_node.drop_connections()
    for _ in range(100):
        if not connected.connected:
            break
        await asyncio.sleep(0.01)
    assert not connected.connected

    assert (await connected.run(["cat"], input="back\n")).stdout == "back\n"
    assert await connected.read_file("/before") == b"1"  # SFTP reopened on the new connection


async def test_reconnects_after_the_peer_restarts(connected: PeerConnection, peer_node: FakePeer):
    assert (await connected.run(["true"])).ok
    port = peer_node.port
    await peer_node.stop()
    peer_node.drop_connections()

    with pytest.raises(PeerUnreachable, match="connection refused"):
        await connected.run(["true"])
    await peer_node.start(port)
    assert (await connected.run(["true"])).ok


async def test_keepalive_notices_a_cut_link_and_the_next_request_reconnects(
        connected: PeerConnection, peer_node: FakePeer, paths: Paths):
    proxy = await LinkProxy(peer_node.port).start()
    await pinned(proxy, paths)  # the proxy shows the peer's key under its own port
    peer = PeerConnection("127.0.0.1", paths=paths, port=proxy.port,
                          keepalive_interval=0.1, keepalive_count_max=2)
    try:
        assert (await peer.run(["true"])).ok
        proxy.cut()
        started = asyncio.get_running_loop().time()
        while peer.connected:
            await asyncio.sleep(0.02)
        assert asyncio.get_running_loop().time() - started < 1.5

        assert (await peer.run(["cat"], input="again\n")).stdout == "again\n"
    finally:
        await peer.close()
        await proxy.stop()


async def test_key_not_accepted_by_the_peer(peer_node: FakePeer, paths: Paths):
    await pinned(peer_node, paths)
    peer = PeerConnection(peer_node.host, paths=paths, port=peer_node.port)

    with pytest.raises(AuthenticationFailed, match="this node has no SSH key yet"):
        await peer.connect()
    ensure_local_key(paths)
    with pytest.raises(KeyRejected) as refused:
        await peer.connect()
    assert str(refused.value).startswith(
        f"127.0.0.1 refused skutui's key for root ({paths.private_key})")
    assert peer_node.passwords_tried == []


async def test_unreachable_peers(paths: Paths):
    port = closed_port()
    with pytest.raises(PeerUnreachable) as refused:
        await fetch_host_key("127.0.0.1", port=port)
    assert str(refused.value).startswith(f"cannot reach 127.0.0.1 port {port}: connection refused")

    server, port = await silent_server()
    try:
        with pytest.raises(PeerTimeout, match=rf"127.0.0.1 port {port} did not answer within 0.3"):
            await fetch_host_key("127.0.0.1", port=port, connect_timeout=0.3)
    finally:
        server.close()


async def test_close_is_safe_twice_and_reopens_on_use(connected: PeerConnection):
    await connected.connect()
    await connected.close()
    await connected.close()
    assert not connected.connected
    assert (await connected.run(["true"])).ok
