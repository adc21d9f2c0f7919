"""What can go wrong with the other node, as the operator needs to read it.

Every failure is a :class:`PeerError`; ``str(exc)`` is the whole operator message (what
failed, on which address, with which value, and what to do). No message ever contains a
password: none of these classes is given one.
"""

from __future__ import annotations

from pathlib import Path

from skutui.domain.errors import Failed

SSHD_CONFIG = "/etc/ssh/sshd_config"


class PeerError(Failed):
    """Base of every failure talking to the peer; ``host`` is the address that was used."""

    def __init__(self, host: str, message: str) -> None:
        super().__init__(message)
        self.host = host


class PeerUnreachable(PeerError):
    """No SSH conversation was possible: refused, no route, name unknown, connection lost."""


class PeerTimeout(PeerUnreachable):
    """The peer did not answer within the connect timeout (shown as unreachable)."""


class HostKeyError(PeerError):
    """The peer's identity could not be trusted; nothing was sent to it."""


class HostKeyNotPinned(HostKeyError):
    """No host key is pinned for this address yet: the fingerprint must be confirmed first."""


class HostKeyNotConfirmed(HostKeyError):
    """The offered key is not the one the operator confirmed, or nobody confirmed it."""


class HostKeyChanged(HostKeyError):
    """The peer offers another host key than the pinned one: refused until re-pinned."""

    def __init__(self, host: str, port: int, pinned: str, offered: str | None,
                 known_hosts: Path) -> None:
        self.port = port
        self.pinned = pinned
        self.offered = offered
        self.known_hosts = known_hosts
        shown = offered or "(it could not be read again)"
        super().__init__(host, (
            f"the SSH host key of {_where(host, port)} has changed: pinned {pinned}, "
            f"offered {shown}. skutui stopped before logging in; nothing was sent. "
            "This happens when the peer was reinstalled or its host keys were regenerated, "
            f"or when another machine answers on {host}. Compare the offered fingerprint "
            "with `ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub` on the peer's console; "
            f"if they match, re-pin: delete the line for {pin_label(host, port)} from "
            f"{known_hosts} and accept the new fingerprint."))


class AuthenticationFailed(PeerError):
    """The peer answered but refused to let root in."""


class PasswordRejected(AuthenticationFailed):
    """The password was sent and refused: wrong, or root may not log in with a password.

    sshd answers both cases the same way on purpose, so the message names both.
    """

    def __init__(self, host: str, key_file: Path) -> None:
        super().__init__(host, (
            f"root login with a password was refused by {host}: either the password is "
            "wrong, or the peer's sshd does not let root log in with a password (stock "
            "OpenSSH defaults to PermitRootLogin prohibit-password, which rejects even the "
            "right password, and SSH answers both cases the same way, so skutui cannot tell "
            "them apart). Check the password; if it is right, set PermitRootLogin yes in "
            f"{SSHD_CONFIG} on the peer and reload sshd, or install the key by hand: "
            f"append {key_file}.pub to /root/.ssh/authorized_keys on {host}."))


class PasswordLoginDisabled(AuthenticationFailed):
    """The peer's sshd does not offer password logins at all: the password was not sent."""

    def __init__(self, host: str, key_file: Path) -> None:
        super().__init__(host, (
            f"root login with a password is refused by {host}: its sshd does not offer "
            "password authentication (PasswordAuthentication no), so the password was not "
            f"sent. Set PasswordAuthentication yes and PermitRootLogin yes in {SSHD_CONFIG} "
            "on the peer and reload sshd, or install the key by hand: append "
            f"{key_file}.pub to /root/.ssh/authorized_keys on {host}."))


class KeyRejected(AuthenticationFailed):
    """The peer refused this node's key (never installed, removed, or ignored by sshd)."""


class RemoteCommandFailed(PeerError):
    """A command on the peer ended with a non-zero exit status."""

    def __init__(self, host: str, command: str, exit_status: int, stdout: str,
                 stderr: str, message: str | None = None) -> None:
        self.command = command
        self.exit_status = exit_status
        self.stdout = stdout
        self.stderr = stderr
        if message is None:
            message = f"`{command}` failed on {host} with exit status {exit_status}"
            if exit_status == 127:
                message += " (command not found there)"
            detail = _tail(stderr) or _tail(stdout)
            if detail:
                message += f": {detail}"
        super().__init__(host, message)


class SkutuiMissing(RemoteCommandFailed):
    """``skutui --version`` is not found on the peer."""


class CommandTimeout(PeerError):
    """A command on the peer ran past its time limit; the connection itself was fine."""

    def __init__(self, host: str, command: str, timeout: float) -> None:
        self.command = command
        self.timeout = timeout
        super().__init__(host, (
            f"`{command}` on {host} did not finish within {timeout:g} s; skutui closed its "
            "session, but the command may still be running there"))


class RemoteFileError(PeerError):
    """A file operation on the peer failed."""

    def __init__(self, host: str, path: str, message: str) -> None:
        self.path = path
        super().__init__(host, message)


class RemoteFileNotFound(RemoteFileError):
    """The file (or its directory) does not exist on the peer."""


def pin_label(host: str, port: int) -> str:
    """How the host appears in a known_hosts file (OpenSSH writes [host]:port off port 22)."""
    return host if port == 22 else f"[{host}]:{port}"


def _where(host: str, port: int) -> str:
    return host if port == 22 else f"{host} port {port}"


def _tail(text: str, lines: int = 5, chars: int = 500) -> str:
    """The end of a command's output: where the reason usually is."""
    kept = "\n".join(text.strip().splitlines()[-lines:])
    return kept if len(kept) <= chars else "…" + kept[-chars:]
