"""The other node, over SSH: pin its host key, exchange keys once, then one kept connection.

Everything is async; asyncssh is imported only when this package is (the console imports
it lazily). Every failure is a :class:`PeerError` whose ``str()`` is the operator message.

First contact (cluster Create), in this order::

    from skutui.peer import (KnownHosts, PeerConnection, authorize_key_locally,
                             fetch_host_key, install_keys, local_host_key)

    offered = await fetch_host_key("10.0.0.2")           # nothing trusted or sent yet
    show(offered.fingerprint, offered.check_command)    # "SHA256:…", "ssh-keygen -lf …"
    KnownHosts(paths.known_hosts).pin(offered, expected_fingerprint=confirmed)
    #   confirmed: what the operator accepted or typed; scripts may pass trust_new=True
    #   (or use pin_peer(host, paths.known_hosts, expected_fingerprint=…) in one call)

    keys = await install_keys("10.0.0.2", password, our_address="10.0.0.1",
                              our_host_key=local_host_key(), paths=paths)
    authorize_key_locally(keys.peer_public_key)         # so the peer can log in to us

    async with PeerConnection("10.0.0.2", paths=paths) as peer:
        version = await peer.remote_version()           # SkutuiMissing if not installed

Every day::

    peer = PeerConnection("10.0.0.2", paths=paths, connect_timeout=10,
                          keepalive_interval=5, keepalive_count_max=3)
    result = await peer.run(["keepalived", "--version"])      # CommandResult
    await peer.run_checked(["service", "keepalived", "reload"]) # RemoteCommandFailed
    data = await peer.read_file("/etc/skutui/cluster.toml")   # bytes
    await peer.write_file_atomic("/etc/skutui/cluster.toml", data, 0o644)
    await peer.remove("/etc/skutui/old.toml")
    await peer.close()

The connection is opened on first use and again on the next request after it dropped.
Host keys are checked against Paths.known_hosts only (never ~/.ssh, never unchecked); a
changed key raises :class:`HostKeyChanged` before anything is sent. The password is
offered once, to the pinned peer, and never written, logged or put in a message.
"""

from skutui.peer.connection import (
    DEFAULT_COMMAND_TIMEOUT,
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_KEEPALIVE_COUNT_MAX,
    DEFAULT_KEEPALIVE_INTERVAL,
    CommandResult,
    PeerConnection,
    PeerProcess,
    command_line,
    fetch_host_key,
    pin_peer,
)
from skutui.peer.errors import (
    AuthenticationFailed,
    CommandTimeout,
    HostKeyChanged,
    HostKeyError,
    HostKeyNotConfirmed,
    HostKeyNotPinned,
    KeyRejected,
    PasswordLoginDisabled,
    PasswordRejected,
    PeerError,
    PeerTimeout,
    PeerUnreachable,
    RemoteCommandFailed,
    RemoteFileError,
    RemoteFileNotFound,
    SkutuiMissing,
)
from skutui.peer.hostkeys import KnownHosts, OfferedHostKey, fingerprint
from skutui.peer.keys import (
    InstalledKeys,
    authorize_key_locally,
    ensure_local_key,
    install_keys,
    local_host_key,
)

__all__ = [
    "DEFAULT_COMMAND_TIMEOUT", "DEFAULT_CONNECT_TIMEOUT", "DEFAULT_KEEPALIVE_COUNT_MAX",
    "DEFAULT_KEEPALIVE_INTERVAL", "AuthenticationFailed", "CommandResult", "CommandTimeout",
    "HostKeyChanged", "HostKeyError", "HostKeyNotConfirmed", "HostKeyNotPinned",
    "InstalledKeys", "KeyRejected", "KnownHosts", "OfferedHostKey", "PasswordLoginDisabled",
    "PasswordRejected", "PeerConnection", "PeerError", "PeerProcess", "PeerTimeout",
    "PeerUnreachable", "RemoteCommandFailed", "RemoteFileError", "RemoteFileNotFound",
    "SkutuiMissing", "authorize_key_locally", "command_line", "ensure_local_key",
    "fetch_host_key", "fingerprint", "install_keys", "local_host_key", "pin_peer",
]
