"""The one use of the root password: give both nodes a dedicated key for each other.

The master logs in to the backup and the backup to the master, so the exchange installs
keys in both directions. :func:`install_keys` does everything that happens on the peer and
returns the peer's public key; the caller then authorizes it here with
:func:`authorize_key_locally`. Keeping the local half with the caller keeps the order of
the Create steps (and their messages) in one place.
"""

from __future__ import annotations

import logging
import socket
from dataclasses import dataclass
from pathlib import Path

import asyncssh

from skutui.domain.paths import Paths
from skutui.peer.connection import DEFAULT_CONNECT_TIMEOUT, PeerConnection
from skutui.peer.errors import KeyRejected, RemoteFileNotFound
from skutui.peer.hostkeys import SSH_PORT, replace_pin
from skutui.peer.localfs import add_authorized_key, make_private_dir
from skutui.system.files import write_bytes_atomic

log = logging.getLogger(__name__)

ROOT_AUTHORIZED_KEYS = Path("/root/.ssh/authorized_keys")
LOCAL_HOST_KEY = Path("/etc/ssh/ssh_host_ed25519_key.pub")


@dataclass(frozen=True)
class InstalledKeys:
    """What the exchange did on the peer."""

    peer_public_key: str
    """The peer's own key ("ssh-ed25519 AAAA… comment"), to authorize on this node."""
    our_key_added: bool
    """False if the peer already trusted our key (a repeated exchange)."""
    peer_key_generated: bool
    """False if the peer already had its skutui key."""


def ensure_local_key(paths: Paths) -> str:
    """Create this node's ed25519 key pair once (private 0600); return the public key line."""
    private, public = paths.private_key, Path(f"{paths.private_key}.pub")
    if private.exists():
        if not public.exists():
            key = asyncssh.read_private_key(private)
            write_bytes_atomic(public, key.export_public_key("openssh"), 0o644)
        return public.read_text().strip()
    make_private_dir(private.parent)
    key = asyncssh.generate_private_key("ssh-ed25519", comment=f"skutui@{socket.gethostname()}")
    write_bytes_atomic(private, key.export_private_key("openssh"), 0o600)
    write_bytes_atomic(public, key.export_public_key("openssh"), 0o644)
    log.info("created this node's SSH key %s", private)
    return public.read_text().strip()


def local_host_key(path: Path = LOCAL_HOST_KEY) -> str:
    """This node's sshd host key, for the peer to pin when it logs in to us."""
    return checked_public_key(path.read_text(), str(path))


def checked_public_key(text: str, origin: str = "public key") -> str:
    """"type base64 [comment]" after making sure it parses, so garbage never gets installed."""
    try:
        asyncssh.import_public_key(text.strip())
    except (asyncssh.KeyImportError, ValueError) as exc:
        raise ValueError(f"{origin} is not an OpenSSH public key: {exc}") from None
    return text.strip()


def authorize_key_locally(public_key: str, authorized_keys: Path = ROOT_AUTHORIZED_KEYS) -> bool:
    """Let the holder of ``public_key`` log in here as root; False if it already could."""
    public_key = checked_public_key(public_key, "the peer's public key")
    try:
        text = authorized_keys.read_text(errors="surrogateescape")
    except FileNotFoundError:
        make_private_dir(authorized_keys.parent)
        text = ""
    text, added = add_authorized_key(text, public_key)
    if added:
        write_bytes_atomic(authorized_keys, text.encode(errors="surrogateescape"), 0o600)
        log.info("authorized the peer's key in %s", authorized_keys)
    return added


async def install_keys(host: str, password: str, *, our_address: str, our_host_key: str,
                       paths: Paths | None = None, remote_paths: Paths | None = None,
                       port: int = SSH_PORT,
                       connect_timeout: float = DEFAULT_CONNECT_TIMEOUT) -> InstalledKeys:
    """Log in once with the root password and set up key logins in both directions.

    On the peer: append this node's public key to /root/.ssh/authorized_keys, create the
    peer's own skutui key in ITS local directory if missing, and pin ``our_host_key`` for
    ``our_address`` in its known_hosts. Then prove that key login works. The peer's host
    key must already be pinned here: the password is only ever sent to the pinned peer.
    """
    paths = paths or Paths.from_env()
    remote_paths = remote_paths or Paths()
    our_host_key = checked_public_key(our_host_key, "this node's host key")
    our_public_key = ensure_local_key(paths)

    peer = PeerConnection._with_password(host, password, paths=paths, port=port,
                                         connect_timeout=connect_timeout)
    del password
    async with peer:
        our_key_added = await _authorize_on_peer(peer, our_public_key)
        peer_public_key, generated = await _ensure_peer_key(peer, remote_paths)
        await _pin_on_peer(peer, remote_paths, our_address, our_host_key)

    await _prove_key_login(host, paths, port, connect_timeout)
    log.info("keys exchanged with %s (our key %s, its key %s)", host,
             "added" if our_key_added else "already there",
             "created" if generated else "already there")
    return InstalledKeys(peer_public_key, our_key_added, generated)


async def _authorize_on_peer(peer: PeerConnection, public_key: str) -> bool:
    path = str(ROOT_AUTHORIZED_KEYS)
    await peer.make_dir(str(ROOT_AUTHORIZED_KEYS.parent), 0o700)
    try:
        text = (await peer.read_file(path)).decode(errors="surrogateescape")
    except RemoteFileNotFound:
        text = ""
    text, added = add_authorized_key(text, public_key)
    if added:
        await peer.write_file_atomic(path, text.encode(errors="surrogateescape"), 0o600)
    return added


async def _ensure_peer_key(peer: PeerConnection, remote_paths: Paths) -> tuple[str, bool]:
    """The peer's skutui key, made on the peer by its own ssh-keygen: it never travels."""
    private = str(remote_paths.private_key)
    public = f"{private}.pub"
    generated = False
    if not await peer.exists(public):
        await peer.make_dir(str(remote_paths.local_dir), 0o700)
        if await peer.exists(private):
            derived = await peer.run_checked(["ssh-keygen", "-y", "-f", private])
            await peer.write_file_atomic(public, derived.stdout.strip() + "\n", 0o644)
        else:
            await peer.run_checked(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", private])
            generated = True
    text = (await peer.read_file(public)).decode()
    return checked_public_key(text, f"{public} on {peer.host}"), generated


async def _pin_on_peer(peer: PeerConnection, remote_paths: Paths, our_address: str,
                       our_host_key: str) -> None:
    path = str(remote_paths.known_hosts)
    try:
        text = (await peer.read_file(path)).decode()
    except RemoteFileNotFound:
        text = ""
    await peer.write_file_atomic(path, replace_pin(text, our_address, our_host_key), 0o600)


async def _prove_key_login(host: str, paths: Paths, port: int, connect_timeout: float) -> None:
    try:
        async with PeerConnection(host, paths=paths, port=port, connect_timeout=connect_timeout):
            pass
    except KeyRejected as exc:
        raise KeyRejected(host, (
            f"skutui's key was added to {ROOT_AUTHORIZED_KEYS} on {host}, but {host} still "
            "refuses it: check AuthorizedKeysFile and StrictModes in /etc/ssh/sshd_config "
            "there, and that /root/.ssh is 0700 and authorized_keys 0600, owned by root"
        )) from exc
