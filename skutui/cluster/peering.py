"""The peer as production reaches it: its host key, the one-time key exchange, the key
rotation (``skutui cluster rekey``), and the kept SSH connection the peer's NodeOps run over.

Each is handed to :class:`~skutui.cluster.operations.ClusterOperations` by the production
wiring; tests hand it fakes instead. ``skutui.peer`` is imported inside each function:
it brings asyncssh, slow to import, and many commands never reach the peer.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
from pathlib import Path

from skutui.cluster.nodeops import NODE_COMMAND, RemoteOps
from skutui.cluster.transaction import FileGuard
from skutui.domain import trust, validation
from skutui.domain.paths import Paths
from skutui.domain.wire import CreateRequest, Progress, RekeyRequest
from skutui.system import authorized_keys

CONNECT_TIMEOUT = 10.0
"""Seconds to wait for the peer's SSH server to answer."""


def remote_ops(paths: Paths, connect_timeout: float, address: str, name: str) -> RemoteOps:
    """The peer's NodeOps over a connection opened on first use and kept."""
    from skutui.peer import PeerConnection  # asyncssh: slow to import

    return RemoteOps(PeerConnection(address, paths=paths, connect_timeout=connect_timeout), name)


async def host_key_fingerprint(address: str, *, connect_timeout: float = CONNECT_TIMEOUT) -> str:
    from skutui.peer import fetch_host_key  # asyncssh: slow to import

    address = validation.ip_address(address, "remote_ip")
    return (await fetch_host_key(address, connect_timeout=connect_timeout)).fingerprint


async def exchange_keys(paths: Paths, connect_timeout: float, remote_ip: str, local_ip: str,
                        request: CreateRequest, progress: Progress) -> None:
    """Pin the peer's host key and exchange keys with the password, or change nothing."""
    from skutui.peer import (  # asyncssh: slow
        KnownHosts,
        authorize_key_locally,
        fetch_host_key,
        install_keys,
        local_host_key,
    )

    offered = await fetch_host_key(remote_ip, connect_timeout=connect_timeout)
    progress(f"Host key of {remote_ip}: {offered.fingerprint}")
    kept = FileGuard([paths.known_hosts, paths.private_key, Path(str(paths.private_key) + ".pub")])
    try:
        KnownHosts(paths.known_hosts).pin(
            offered, expected_fingerprint=request.host_key_fingerprint,
            trust_new=request.trust_new_host_key)
        progress(f"Installing this node's key on {remote_ip} (the password is used once)")
        keys = await install_keys(remote_ip, request.password, our_address=local_ip,
                                  our_host_key=local_host_key(), paths=paths,
                                  connect_timeout=connect_timeout)
        await asyncio.to_thread(authorize_key_locally, keys.peer_public_key, remote_ip)
    except BaseException:
        kept.restore()
        raise


async def rekey(paths: Paths, connect_timeout: float, local_ip: str, remote_ip: str,
                request: RekeyRequest, progress: Progress) -> list[str]:
    """New keys for both nodes, each proved to work on the other before it replaces the old
    one; the old ones stay allowed for one more connect timeout (a login that read the old
    key just before it was replaced still gets in), then go. At every moment the key each
    node holds works on the other. With a confirmed fingerprint in ``request``, the peer's
    host key is re-pinned first (and this node's own sent to the peer to pin). Returns what
    was done, one line each."""
    # asyncssh: slow to import, and only the peer needs it
    from skutui.peer import KnownHosts, PeerConnection, fetch_host_key, local_host_key
    from skutui.peer.keys import commit_key, new_key, prove_key

    done: list[str] = []
    if request.repins_host_key:
        offered = await fetch_host_key(remote_ip, connect_timeout=connect_timeout)
        progress(f"Host key of {remote_ip}: {offered.fingerprint}")
        changed = KnownHosts(paths.known_hosts).repin(
            offered, expected_fingerprint=request.host_key_fingerprint,
            trust_new=request.trust_new_host_key)
        done.append(f"host key of {remote_ip} {'re-pinned' if changed else 'unchanged'}: "
                    f"{offered.fingerprint}")
    node = [*NODE_COMMAND]
    async with PeerConnection(remote_ip, paths=paths, connect_timeout=connect_timeout) as peer:
        if request.repins_host_key:
            progress(f"Sending this node's host key to {remote_ip}")
            await peer.run_checked([*node, "pin-host-key", "--address", local_ip],
                                   input=local_host_key())
        progress(f"New key for this node, allowed on {remote_ip} beside the old one")
        ours = await asyncio.to_thread(new_key, paths)
        await peer.run_checked([*node, "authorize-key", "--from", local_ip], input=ours)
        await prove_key(paths, remote_ip, connect_timeout=connect_timeout)
        our_old = (await asyncio.to_thread(commit_key, paths))[0]

        progress(f"New key for {remote_ip}, allowed here beside the old one")
        theirs = (await peer.run_checked([*node, "new-key"])).stdout.strip()
        await asyncio.to_thread(authorized_keys.authorize, paths.authorized_keys, theirs,
                                remote_ip)
        await peer.run_checked([*node, "prove-key", "--to", local_ip])
        committed = json.loads((await peer.run_checked([*node, "commit-key"])).stdout)

        progress(f"Both new keys work; the old ones go in {connect_timeout:g} s, once no "
                 "login can still be using them")
        await asyncio.sleep(connect_timeout)
        # An old key allowed by hand may carry no mark of skutui's: each goes by its body too.
        replacing = [flag for body in _bodies(our_old) for flag in ("--replacing", body)]
        await peer.run_checked([*node, "authorize-key", "--from", local_ip, "--only",
                                *replacing], input=ours)
        await asyncio.to_thread(authorized_keys.authorize, paths.authorized_keys, theirs,
                                remote_ip, only=True, replacing=_bodies(committed.get("old")))
    done.append(f"this node's key replaced: {_fingerprint(ours)}")
    done.append(f"the key of {remote_ip} replaced: {_fingerprint(theirs)}")
    return done


def _bodies(old_key: str | None) -> list[str]:
    """The base64 body of the old key a node had, if it had one."""
    return [trust.public_key_fields(old_key)[1]] if old_key else []


def _fingerprint(public_key: str) -> str:
    """"SHA256:…" of a public key line, as ``ssh-keygen -lf`` prints it."""
    blob = base64.b64decode(trust.public_key_fields(public_key)[1])
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")
