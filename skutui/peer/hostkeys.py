"""Knowing the peer is the peer: its host key's fingerprint, and where it is pinned.

skutui keeps its own known_hosts (Paths.known_hosts, never synced, never ~/.ssh): one line
per peer address in OpenSSH format, so ``ssh-keygen -lf`` and ``ssh -o UserKnownHostsFile=``
read it too.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import asyncssh

from skutui.peer.errors import HostKeyChanged, HostKeyNotConfirmed, pin_label
from skutui.peer.localfs import make_private_dir
from skutui.system.files import write_bytes_atomic

log = logging.getLogger(__name__)

SSH_PORT = 22


def fingerprint(key: asyncssh.SSHKey) -> str:
    """SHA256 fingerprint exactly as ``ssh-keygen -lf`` prints it ("SHA256:…")."""
    return key.get_fingerprint("sha256")


def host_key_file_hint(algorithm: str) -> str:
    """Where sshd keeps the host key of this type, for the operator to check by hand."""
    kind = "rsa"
    if "ed25519" in algorithm:
        kind = "ed25519"
    elif "ecdsa" in algorithm:
        kind = "ecdsa"
    return f"/etc/ssh/ssh_host_{kind}_key.pub"


@dataclass(frozen=True)
class OfferedHostKey:
    """The host key a peer showed on first contact, before anyone trusts it."""

    host: str
    port: int
    key: asyncssh.SSHKey

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.key)

    @property
    def algorithm(self) -> str:
        return self.key.get_algorithm()

    @property
    def check_command(self) -> str:
        """What to run on the peer's console to compare fingerprints."""
        return f"ssh-keygen -lf {host_key_file_hint(self.algorithm)}"


class KnownHosts:
    """skutui's pinned host keys: one file, read fresh each time, rewritten atomically."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def pinned(self, host: str, port: int = SSH_PORT) -> asyncssh.SSHKey | None:
        """The key pinned for this address, or None."""
        label = pin_label(host, port)
        for line in self._text().splitlines():
            fields = line.split()
            if len(fields) >= 3 and _names(line, label):
                try:
                    return asyncssh.import_public_key(" ".join(fields[1:3]))
                except asyncssh.KeyImportError:
                    continue
        return None

    def fingerprint(self, host: str, port: int = SSH_PORT) -> str | None:
        key = self.pinned(host, port)
        return fingerprint(key) if key is not None else None

    def pin(self, offered: OfferedHostKey, *, expected_fingerprint: str | None = None,
            trust_new: bool = False) -> bool:
        """Pin the offered key once the operator accepted it; return True if written.

        Accepting means an ``expected_fingerprint`` that matches (what the operator read on
        the peer's console, or the one the console showed and the operator confirmed), or
        ``trust_new`` for scripts. An already pinned, different key is never replaced here:
        that is :class:`HostKeyChanged`; a legitimately new one is pinned with :meth:`repin`.
        """
        self._confirmed(offered, expected_fingerprint, trust_new)
        current = self.pinned(offered.host, offered.port)
        if current is not None:
            if fingerprint(current) == offered.fingerprint:
                return False
            raise HostKeyChanged(offered.host, offered.port, fingerprint(current),
                                 offered.fingerprint, self.path)
        self.set(pin_label(offered.host, offered.port), public_key_line(offered.key))
        log.info("pinned the SSH host key of %s: %s", pin_label(offered.host, offered.port),
                 offered.fingerprint)
        return True

    def repin(self, offered: OfferedHostKey, *, expected_fingerprint: str | None = None,
              trust_new: bool = False) -> bool:
        """Pin the offered key in place of the one pinned (``skutui cluster rekey`` when the
        peer legitimately has a new host key); the same confirmation as :meth:`pin`. True if
        the pin changed."""
        self._confirmed(offered, expected_fingerprint, trust_new)
        label = pin_label(offered.host, offered.port)
        current = self.pinned(offered.host, offered.port)
        if current is not None and fingerprint(current) == offered.fingerprint:
            return False
        self.set(label, public_key_line(offered.key))
        log.warning("re-pinned the SSH host key of %s: %s (was %s)", label, offered.fingerprint,
                    fingerprint(current) if current is not None else "none")
        return True

    def set(self, label: str, public_key: str) -> None:
        """Pin ``public_key`` ("type base64") for ``label`` ("address" or "[address]:port"),
        in place of any key pinned for it: the caller has checked it."""
        self._rewrite(replace_pin(self._text(), label, public_key))

    @staticmethod
    def _confirmed(offered: OfferedHostKey, expected_fingerprint: str | None,
                   trust_new: bool) -> None:
        host, offered_fp = offered.host, offered.fingerprint
        if expected_fingerprint is not None:
            if normalise_fingerprint(expected_fingerprint) != offered_fp:
                raise HostKeyNotConfirmed(host, (
                    f"{host} offers host key {offered_fp}, not the {expected_fingerprint} "
                    "that was expected; nothing was pinned. Check the fingerprint on the "
                    f"peer's console with `{offered.check_command}`."))
        elif not trust_new:
            raise HostKeyNotConfirmed(host, (
                f"refusing to pin the host key of {host} ({offered_fp}) without "
                f"confirmation: compare it with `{offered.check_command}` on the peer's "
                "console, then accept that fingerprint (or choose to trust a new key)."))

    def forget(self, host: str, port: int = SSH_PORT) -> bool:
        """Drop the pin for this address (before re-pinning a legitimately new key)."""
        label = pin_label(host, port)
        text = self._text()
        kept = _without(text, label)
        if len(kept) == len(text.splitlines()):
            return False
        self._rewrite("".join(f"{line}\n" for line in kept))
        log.info("forgot the pinned SSH host key of %s", label)
        return True

    def _text(self) -> str:
        try:
            return self.path.read_text()
        except FileNotFoundError:
            return ""

    def _rewrite(self, text: str) -> None:
        make_private_dir(self.path.parent)
        write_bytes_atomic(self.path, text.encode(), 0o600)


def public_key_line(key: asyncssh.SSHKey) -> str:
    """"type base64" without a comment: what a known_hosts line needs."""
    return " ".join(key.export_public_key("openssh").decode().split()[:2])


def replace_pin(text: str, label: str, public_key: str) -> str:
    """known_hosts ``text`` with the line for ``label`` replaced by ``label public_key``."""
    fields = public_key.split()
    kept = [*_without(text, label), f"{label} {fields[0]} {fields[1]}"]
    return "".join(f"{line}\n" for line in kept)


def _without(text: str, label: str) -> list[str]:
    return [line for line in text.splitlines() if not _names(line, label)]


def _names(line: str, label: str) -> bool:
    fields = line.split()
    return bool(fields) and not line.startswith(("#", "@")) and label in fields[0].split(",")


def normalise_fingerprint(text: str) -> str:
    """Accept "SHA256:abc", "abc" or with stray spaces, as operators paste them."""
    text = text.strip()
    return text if text.startswith("SHA256:") else f"SHA256:{text}"
