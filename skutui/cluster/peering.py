"""The peer as production reaches it: its host key, the one-time key exchange, and the kept
SSH connection the peer's NodeOps run over.

Each is handed to :class:`~skutui.cluster.operations.ClusterOperations` by the production
wiring; tests hand it fakes instead. ``skutui.peer`` is imported inside each function:
it brings asyncssh, slow to import, and many commands never reach the peer.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from skutui.cluster.nodeops import RemoteOps
from skutui.cluster.transaction import FileGuard
from skutui.domain import validation
from skutui.domain.paths import Paths
from skutui.domain.wire import CreateRequest, Progress

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
        await asyncio.to_thread(authorize_key_locally, keys.peer_public_key)
    except BaseException:
        kept.restore()
        raise
