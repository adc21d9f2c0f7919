"""The one use of the root password: give both nodes a dedicated key for each other.

The master logs in to the backup and the backup to the master, so the exchange installs
keys in both directions. :func:`install_keys` does everything that happens on the peer and
returns the peer's public key; the caller then authorizes it here with
:func:`authorize_key_locally`. Keeping the local half with the caller keeps the order of
the Create steps (and their messages) in one place.

Either key is allowed only skutui's own steps, only from the other node's cluster address
(the line :func:`skutui.domain.trust.key_line` writes). The exchange itself runs over the
one password login, which no forced command limits.
"""

from __future__ import annotations

import logging
import socket
from dataclasses import dataclass
from pathlib import Path

import asyncssh

from skutui.domain import trust
from skutui.domain.paths import Paths
from skutui.peer.connection import DEFAULT_CONNECT_TIMEOUT, PeerConnection
from skutui.peer.errors import KeyRejected, RemoteFileNotFound
from skutui.peer.hostkeys import SSH_PORT, replace_pin
from skutui.peer.localfs import make_private_dir
from skutui.system import authorized_keys as allowed_keys
from skutui.system.files import write_bytes_atomic

log = logging.getLogger(__name__)

ROOT_AUTHORIZED_KEYS = Paths().authorized_keys
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
    return ensure_key(paths.private_key)


def ensure_key(private: Path) -> str:
    """The key pair at ``private`` (made if missing); its public key line. The public half
    is always the private key's own: one left behind by an interrupted rekey is rewritten."""
    public = Path(f"{private}.pub")
    if private.exists():
        derived = asyncssh.read_private_key(private).export_public_key("openssh")
        try:
            written = public.read_bytes()
        except FileNotFoundError:
            written = b""
        if written.split()[:2] != derived.split()[:2]:
            write_bytes_atomic(public, derived, 0o644)
            written = derived
        return written.decode().strip()
    make_private_dir(private.parent)
    key = asyncssh.generate_private_key("ssh-ed25519", comment=f"{trust.KEY_COMMENT}{socket.gethostname()}")
    write_bytes_atomic(private, key.export_private_key("openssh"), 0o600)
    write_bytes_atomic(public, key.export_public_key("openssh"), 0o644)
    log.info("created the SSH key %s", private)
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


def authorize_key_locally(public_key: str, from_address: str,
                          authorized_keys: Path = ROOT_AUTHORIZED_KEYS) -> bool:
    """Let the holder of ``public_key`` run skutui's steps here as root, from
    ``from_address`` only; False if exactly that was allowed already. The line carries
    skutui's comment whatever the key's own (the peer's ssh-keygen gives it root@HOST), so
    that destroy and erase find it."""
    public_key = checked_public_key(public_key, "the peer's public key")
    return allowed_keys.authorize(authorized_keys, public_key, from_address)


# --- skutui cluster rekey: a new key that works before the old one goes ------------------------

def new_key(paths: Paths) -> str:
    """A fresh key pair beside this node's own (``Paths.new_private_key``), replacing any
    left by an interrupted rekey; its public key line. The key in use is untouched."""
    pending = paths.new_private_key
    pending.unlink(missing_ok=True)
    Path(f"{pending}.pub").unlink(missing_ok=True)
    return ensure_key(pending)


async def prove_key(paths: Paths, host: str, *, port: int = SSH_PORT,
                    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT) -> str:
    """Log in to ``host`` with the new key and run ``skutui --version`` through its forced
    command: the new key works there before the old one is given up. The version answered."""
    async with PeerConnection(host, paths=paths, port=port, connect_timeout=connect_timeout,
                              private_key=paths.new_private_key) as peer:
        return await peer.remote_version()


def commit_key(paths: Paths) -> tuple[str | None, str]:
    """The new key becomes this node's key in one rename; (old, new) public key lines."""
    pending = paths.new_private_key
    if not pending.exists():
        raise FileNotFoundError(f"no new key to take ({pending}); run `skutui node new-key` "
                                "first")
    old = ensure_key(paths.private_key) if paths.private_key.exists() else None
    new = ensure_key(pending)
    pending.replace(paths.private_key)
    Path(f"{pending}.pub").unlink(missing_ok=True)
    ensure_key(paths.private_key)
    log.info("this node's SSH key %s replaced by a new one", paths.private_key)
    return old, new


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
        our_key_added = await _authorize_on_peer(peer, our_public_key, our_address)
        peer_public_key, generated = await _ensure_peer_key(peer, remote_paths)
        await _pin_on_peer(peer, remote_paths, our_address, our_host_key)

    await _prove_key_login(host, paths, our_address, port, connect_timeout)
    log.info("keys exchanged with %s (our key %s, its key %s)", host,
             "added" if our_key_added else "already there",
             "created" if generated else "already there")
    return InstalledKeys(peer_public_key, our_key_added, generated)


async def _authorize_on_peer(peer: PeerConnection, public_key: str, our_address: str) -> bool:
    path = str(ROOT_AUTHORIZED_KEYS)
    await peer.make_dir(str(ROOT_AUTHORIZED_KEYS.parent), 0o700)
    try:
        text = (await peer.read_file(path)).decode(errors="surrogateescape")
    except RemoteFileNotFound:
        text = ""
    text, added = trust.authorize(text, public_key, our_address, allowed_keys.PEER_COMMENT)
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


async def _prove_key_login(host: str, paths: Paths, our_address: str, port: int,
                           connect_timeout: float) -> None:
    """A key login; whether skutui runs there (the key's forced command) is pre-flight's
    next check, which says how to install it."""
    try:
        async with PeerConnection(host, paths=paths, port=port, connect_timeout=connect_timeout):
            pass
    except KeyRejected as exc:
        raise KeyRejected(host, (
            f"skutui's key was added to {ROOT_AUTHORIZED_KEYS} on {host}, but {host} still "
            f"refuses it. The key is allowed from {our_address} only: make it the address "
            f"this node sends from toward {host} (the cluster NIC's first address). Else check "
            "AuthorizedKeysFile and StrictModes in /etc/ssh/sshd_config there, and that "
            "/root/.ssh is 0700 and authorized_keys 0600, owned by root"
        )) from exc
