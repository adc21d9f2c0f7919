"""One kept, pinned, key-authenticated SSH connection to the other node.

Sessions (commands, SFTP) are opened on it as needed; when it drops (keepalive, peer
reboot) the next request connects again. Nothing here retries a command by itself: a
replayed command is the journal's decision, not the transport's.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import posixpath
import secrets
import shlex
import socket
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import asyncssh

from skutui import __version__
from skutui.domain import trust
from skutui.domain.paths import Paths
from skutui.peer.errors import (
    AuthenticationFailed,
    CommandTimeout,
    HostKeyChanged,
    HostKeyError,
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
    pin_label,
)
from skutui.peer.hostkeys import SSH_PORT, KnownHosts, OfferedHostKey, fingerprint

log = logging.getLogger(__name__)

DEFAULT_CONNECT_TIMEOUT = 10.0
"""Seconds for TCP connect, handshake and login. Generous on purpose: the original's 2 s
showed slow peers as unreachable."""
DEFAULT_KEEPALIVE_INTERVAL = 5.0
DEFAULT_KEEPALIVE_COUNT_MAX = 3
"""A silent peer is declared gone after about interval × count seconds."""
DEFAULT_COMMAND_TIMEOUT = 60.0

Command = Sequence[str] | str


@dataclass(frozen=True)
class CommandResult:
    """What a command on the peer left behind. ``exit_status`` is -1 if a signal killed it."""

    command: str
    exit_status: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.exit_status == 0


def command_line(command: Command) -> str:
    """The shell line sent to the peer: an argv list is quoted, a string is sent as written."""
    if isinstance(command, str):
        return command
    if not command:
        raise ValueError("empty command")
    return shlex.join(command)


def translate_connect_error(exc: BaseException, host: str, port: int,
                            timeout: float) -> PeerError:
    """Turn a failure to open an SSH connection into the operator's words."""
    where = host if port == SSH_PORT else f"{host} port {port}"
    if isinstance(exc, PeerError):
        return exc
    if isinstance(exc, TimeoutError):  # asyncio's and the socket's are the same class
        return PeerTimeout(host, (
            f"{where} did not answer within {timeout:g} s: check that the peer is up and that "
            f"no firewall drops port {port}; raise the connect timeout if the link is slow"))
    if isinstance(exc, ConnectionRefusedError):
        return PeerUnreachable(host, (
            f"cannot reach {where}: connection refused. Check that sshd runs on the peer "
            f"and listens on {host} (ListenAddress in /etc/ssh/sshd_config) and that no "
            f"firewall rejects port {port}"))
    if isinstance(exc, socket.gaierror):
        return PeerUnreachable(host, f"cannot resolve {host}: {exc.strerror}; use the peer's "
                                     "IP address")
    if isinstance(exc, OSError) and exc.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH):
        reason = exc.strerror or os.strerror(exc.errno)
        return PeerUnreachable(host, (
            f"cannot reach {where}: {reason.lower()}. Check the address, the cluster "
            "link (cable, VLAN, interface up) and the routes on this node"))
    if isinstance(exc, OSError):
        return PeerUnreachable(host, f"cannot reach {where}: {exc.strerror or exc}")
    if isinstance(exc, asyncssh.DisconnectError):
        return PeerUnreachable(host, (
            f"{where} closed the SSH connection during login: {exc.reason}"))
    return PeerError(host, f"SSH to {where} failed: {exc}")


async def fetch_host_key(host: str, *, port: int = SSH_PORT,
                         connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
                         algorithms: Sequence[str] = ()) -> OfferedHostKey:
    """Connect without logging in and return the host key the peer offers.

    Nothing is trusted or sent here; the caller shows ``.fingerprint`` and decides.
    """
    try:
        key = await asyncio.wait_for(asyncssh.get_server_host_key(
            host, port, config=None, server_host_key_algs=list(algorithms) or ()),
            connect_timeout)
    except Exception as exc:  # noqa: BLE001 - every cause becomes an operator message
        raise translate_connect_error(exc, host, port, connect_timeout) from exc
    if key is None:
        raise PeerError(host, f"{host} completed the SSH handshake without showing a host "
                              "key (GSS key exchange?); skutui needs a plain host key to pin")
    return OfferedHostKey(host, port, key)


async def pin_peer(host: str, known_hosts: Path, *, port: int = SSH_PORT,
                   expected_fingerprint: str | None = None, trust_new: bool = False,
                   connect_timeout: float = DEFAULT_CONNECT_TIMEOUT) -> OfferedHostKey:
    """Fetch and pin in one go, for scripts that already know the fingerprint."""
    offered = await fetch_host_key(host, port=port, connect_timeout=connect_timeout)
    KnownHosts(known_hosts).pin(offered, expected_fingerprint=expected_fingerprint,
                                trust_new=trust_new)
    return offered


class _KeyLogin:
    """Everyday login: this node's own key, nothing else (no password, agent or ~/.ssh)."""

    def __init__(self, private_key: Path) -> None:
        self.private_key = private_key

    def options(self, host: str) -> dict:
        """The private key is read here, alone: given its path, asyncssh would also read the
        ``.pub`` beside it and refuse the pair while a key rotation replaces one then the
        other."""
        try:
            key = asyncssh.read_private_key(self.private_key)
        except FileNotFoundError:
            raise AuthenticationFailed(host, (
                f"this node has no SSH key yet ({self.private_key}), so it cannot log in to "
                f"{host}: run the key exchange with the peer's root password first "
                "(cluster Create)")) from None
        return {"client_keys": [key], "preferred_auth": "publickey",
                "password_auth": False, "kbdint_auth": False}

    def refused(self, host: str) -> AuthenticationFailed:
        return KeyRejected(host, (
            f"{host} refused skutui's key for root ({self.private_key}): it is not in "
            f"/root/.ssh/authorized_keys there, or sshd ignores that file. Run the key "
            "exchange again with the root password (cluster Create), or append "
            f"{self.private_key}.pub to /root/.ssh/authorized_keys on {host} by hand"))

    def spent(self) -> None:
        """Nothing to forget: the key file stays for the next reconnect."""


class _PasswordLogin:
    """The one login with the root password: offered at most once, then forgotten.

    Knowing whether the password was actually sent is what tells "refused" from
    "not offered" apart.
    """

    def __init__(self, password: str, private_key: Path) -> None:
        self._password: str | None = password
        self.private_key = private_key
        self.sent = False

    def __repr__(self) -> str:
        return f"<password login, sent={self.sent}>"

    def _give(self) -> str | None:
        self.sent = True
        return self._password

    def options(self, host: str) -> dict:
        if self._password is None:
            raise AuthenticationFailed(host, (
                f"the password login to {host} ended before the keys were installed; run "
                "the key exchange again"))
        return {"password": self._give, "client_keys": None,
                "preferred_auth": "password,keyboard-interactive",
                "password_auth": True, "kbdint_auth": True}

    def refused(self, host: str) -> AuthenticationFailed:
        if self.sent:
            return PasswordRejected(host, self.private_key)
        return PasswordLoginDisabled(host, self.private_key)

    def spent(self) -> None:
        self._password = None


class PeerConnection:
    """The kept SSH connection to the peer, as root, verified against the pinned host key.

    Safe to share between tasks: each request opens its own session on the one connection.
    """

    def __init__(self, host: str, *, paths: Paths | None = None, port: int = SSH_PORT,
                 username: str = "root",
                 connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
                 keepalive_interval: float = DEFAULT_KEEPALIVE_INTERVAL,
                 keepalive_count_max: int = DEFAULT_KEEPALIVE_COUNT_MAX,
                 command_timeout: float = DEFAULT_COMMAND_TIMEOUT,
                 private_key: Path | None = None) -> None:
        """``private_key``: log in with this key instead of this node's own (a new key being
        proved by ``skutui cluster rekey``)."""
        self.host = host
        self.port = port
        self.username = username
        self.paths = paths or Paths.from_env()
        self.connect_timeout = connect_timeout
        self.keepalive_interval = keepalive_interval
        self.keepalive_count_max = keepalive_count_max
        self.command_timeout = command_timeout
        self._login: _KeyLogin | _PasswordLogin = _KeyLogin(private_key or self.paths.private_key)
        self._conn: asyncssh.SSHClientConnection | None = None
        self._sftp: asyncssh.SFTPClient | None = None
        self._lost = False
        self._lock = asyncio.Lock()
        self._sftp_lock = asyncio.Lock()

    @classmethod
    def _with_password(cls, host: str, password: str, **kwargs) -> PeerConnection:
        """A connection that logs in once with the root password (key exchange only).

        The password is offered on the first connect and forgotten right after: the
        connection never reconnects, so when it drops the exchange must be run again.
        """
        peer = cls(host, **kwargs)
        peer._login = _PasswordLogin(password, peer.paths.private_key)
        return peer

    def __repr__(self) -> str:
        state = "connected" if self.connected else "not connected"
        return f"<PeerConnection {self.username}@{pin_label(self.host, self.port)} {state}>"

    @property
    def connected(self) -> bool:
        return self._conn is not None and not self._conn.is_closed() and not self._lost

    async def __aenter__(self) -> PeerConnection:
        await self.connect()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def connect(self) -> None:
        """Open the connection now if it is not open (requests also do this by themselves)."""
        await self._connection()

    async def close(self) -> None:
        async with self._lock:
            await self._drop()

    # --- commands -------------------------------------------------------------------

    async def run(self, command: Command, *, input: str | bytes | None = None,
                  timeout: float | None = None) -> CommandResult:
        """Run a command on the peer and return its exit status and output.

        A list is quoted with shlex.join; a string is a shell line taken as written. A
        non-zero exit is a result, not an error (see :meth:`run_checked`).
        """
        line = command_line(command)
        limit = self.command_timeout if timeout is None else timeout
        data = input.encode() if isinstance(input, str) else input
        with self._transport_errors(f"running `{line}`"):
            process = await self._open_session(lambda conn: conn.create_process(
                line, encoding=None, stdin=asyncssh.DEVNULL if not data else asyncssh.PIPE,
                input=data or None))
            try:
                completed = await process.wait(timeout=limit)
            except asyncssh.TimeoutError:
                raise CommandTimeout(self.host, line, limit) from None
            finally:
                process.close()
        status = completed.exit_status
        return CommandResult(line, -1 if status is None else status,
                             _text(completed.stdout), _text(completed.stderr))

    async def stream_lines(self, command: Command) -> AsyncIterator[str]:
        """Lines of a long-running command's output as they arrive (the peer's event stream);
        ends when the command does. The session closes when the caller stops iterating."""
        line = command_line(command)
        with self._transport_errors(f"running `{line}`"):
            process = await self._open_session(
                lambda conn: conn.create_process(line, stdin=asyncssh.DEVNULL))
        try:
            async for text in process.stdout:
                yield text
        finally:
            process.close()

    async def open_process(self, command: Command) -> PeerProcess:
        """A long-running command on the peer that answers one line for each line it is
        sent (the backup's replayer): one session for many requests."""
        line = command_line(command)
        with self._transport_errors(f"running `{line}`"):
            process = await self._open_session(lambda conn: conn.create_process(line))
        return PeerProcess(self, line, process)

    async def run_checked(self, command: Command, *, input: str | bytes | None = None,
                          timeout: float | None = None) -> CommandResult:
        """Like :meth:`run`, but a non-zero exit raises :class:`RemoteCommandFailed`."""
        result = await self.run(command, input=input, timeout=timeout)
        if not result.ok:
            raise RemoteCommandFailed(self.host, result.command, result.exit_status,
                                      result.stdout, result.stderr)
        return result

    async def remote_version(self) -> str:
        """The skutui version installed on the peer ("0.1.0"), from ``skutui --version``."""
        result = await self.run(list(trust.VERSION_COMMAND))
        if result.exit_status == 127:
            raise SkutuiMissing(
                self.host, result.command, 127, result.stdout, result.stderr,
                message=(f"skutui is not installed on {self.host} (`skutui --version` "
                         f"exited with 127, command not found); install skutui {__version__} "
                         "there, the version this node runs, then try again"))
        if not result.ok:
            raise RemoteCommandFailed(self.host, result.command, result.exit_status,
                                      result.stdout, result.stderr)
        first_line = result.stdout.strip().partition("\n")[0]
        if not first_line:
            raise RemoteCommandFailed(self.host, result.command, 0, "", result.stderr,
                                      message=f"`skutui --version` printed nothing on "
                                              f"{self.host}")
        return first_line.split()[-1]

    # --- files ----------------------------------------------------------------------

    async def read_file(self, path: str) -> bytes:
        sftp = await self._sftp_client()
        with self._file_errors("read", path):
            async with sftp.open(path, "rb") as remote:
                return await remote.read()

    async def exists(self, path: str) -> bool:
        sftp = await self._sftp_client()
        with self._file_errors("check", path):
            return await sftp.exists(path)

    async def write_file_atomic(self, remote_path: str, data: bytes | str,
                                mode: int = 0o644) -> None:
        """Replace a file on the peer so it never sees half of it.

        Written to a hidden temp name in the same directory (the sync watcher skips hidden
        files), fsynced, given ``mode``, then renamed over the target in one step.
        """
        if isinstance(data, str):
            data = data.encode()
        directory, name = posixpath.split(remote_path)
        temp = posixpath.join(directory, f".{name}.{secrets.token_hex(4)}.tmp")
        sftp = await self._sftp_client()
        with self._file_errors("write", remote_path):
            try:
                async with sftp.open(temp, "xb",
                                     attrs=asyncssh.SFTPAttrs(permissions=mode)) as remote:
                    await remote.write(data)
                    await remote.chmod(mode)  # the server's umask applied at open
                    await remote.fsync()
                await sftp.posix_rename(temp, remote_path)
            except BaseException:
                await _quietly(sftp.remove(temp))
                raise

    async def remove(self, path: str, *, missing_ok: bool = True) -> None:
        sftp = await self._sftp_client()
        with self._file_errors("remove", path):
            try:
                await sftp.remove(path)
            except asyncssh.SFTPNoSuchFile:
                if not missing_ok:
                    raise

    async def make_dir(self, path: str, mode: int = 0o755) -> None:
        """Create a directory (parents 0755) with ``mode``; an existing one is left alone."""
        sftp = await self._sftp_client()
        with self._file_errors("create the directory", path):
            parent = posixpath.dirname(path.rstrip("/"))
            if parent not in ("", "/"):
                await sftp.makedirs(parent, attrs=asyncssh.SFTPAttrs(permissions=0o755),
                                    exist_ok=True)
            if not await sftp.isdir(path):
                await sftp.mkdir(path, asyncssh.SFTPAttrs(permissions=mode))

    # --- the connection itself -----------------------------------------------------

    async def _connection(self) -> asyncssh.SSHClientConnection:
        async with self._lock:
            if not self.connected:
                await self._drop()
                self._conn = await self._open()
            assert self._conn is not None
            return self._conn

    async def _sftp_client(self) -> asyncssh.SFTPClient:
        async with self._sftp_lock:
            if self._sftp is None or not self.connected:
                with self._transport_errors("starting SFTP"):
                    # Paths as the kernel has them: a file name that is not UTF-8 (it
                    # reaches Python as surrogate escapes) is sent as its own bytes.
                    sftp = await self._open_session(lambda conn: conn.start_sftp_client(
                        path_errors="surrogateescape"))
                self._sftp = sftp
            return self._sftp

    async def _open_session(self, opener):
        """Open a channel on the kept connection; if that connection turns out to have
        closed under us, connect again once. Safe: nothing ran on the peer yet."""
        conn = await self._connection()
        try:
            return await opener(conn)
        except asyncssh.ChannelOpenError as exc:
            # asyncssh's own words when the channel died with the connection
            closed = conn.is_closed() or exc.reason == "SSH connection closed"
            if exc.code != asyncssh.OPEN_CONNECT_FAILED or not closed:
                raise
        self._lost = True
        log.info("the SSH connection to %s had closed; connecting again", self.host)
        return await opener(await self._connection())

    async def _open(self) -> asyncssh.SSHClientConnection:
        known_hosts = KnownHosts(self.paths.known_hosts)
        pinned = known_hosts.pinned(self.host, self.port)
        if pinned is None:
            raise HostKeyNotPinned(self.host, (
                f"no SSH host key is pinned for {pin_label(self.host, self.port)} in "
                f"{known_hosts.path}: confirm the peer's fingerprint first (cluster Create "
                "does this)"))
        login = self._login
        try:
            conn = await asyncssh.connect(
                self.host, self.port, username=self.username,
                known_hosts=str(known_hosts.path), config=None, agent_path=None,
                gss_auth=False, gss_kex=False, host_based_auth=False,
                connect_timeout=self.connect_timeout,
                keepalive_interval=self.keepalive_interval,
                keepalive_count_max=self.keepalive_count_max,
                **login.options(self.host))
        except asyncssh.PermissionDenied as exc:
            raise login.refused(self.host) from exc
        except (asyncssh.HostKeyNotVerifiable, asyncssh.KeyExchangeFailed) as exc:
            raise await self._host_key_refusal(pinned, exc) from exc
        except Exception as exc:  # noqa: BLE001 - every cause becomes an operator message
            raise translate_connect_error(exc, self.host, self.port,
                                          self.connect_timeout) from exc
        finally:
            login.spent()
        self._lost = False
        log.debug("connected to %s", pin_label(self.host, self.port))
        return conn

    async def _host_key_refusal(self, pinned: asyncssh.SSHKey,
                                exc: asyncssh.DisconnectError) -> HostKeyError:
        """Name both fingerprints: look again at what the peer offers, without logging in."""
        offered = None
        same_type = [alg.decode() for alg in pinned.sig_algorithms]
        for algorithms in (same_type, ()):
            try:
                offered = (await fetch_host_key(self.host, port=self.port,
                                                connect_timeout=self.connect_timeout,
                                                algorithms=algorithms)).fingerprint
                break
            except PeerError:  # best effort: the refusal stands anyway
                continue
        if offered == fingerprint(pinned):
            return HostKeyError(self.host, (
                f"the SSH key exchange with {self.host} failed although it offers the pinned "
                f"host key {offered}: {exc.reason}"))
        log.warning("SSH host key of %s changed: pinned %s, offered %s",
                    pin_label(self.host, self.port), fingerprint(pinned), offered)
        return HostKeyChanged(self.host, self.port, fingerprint(pinned), offered,
                              self.paths.known_hosts)

    async def _drop(self) -> None:
        sftp, conn = self._sftp, self._conn
        self._sftp = self._conn = None
        if sftp is not None:
            sftp.exit()
        if conn is not None:
            conn.close()
            await _quietly(asyncio.wait_for(conn.wait_closed(), 2))

    @contextmanager
    def _transport_errors(self, doing: str) -> Iterator[None]:
        try:
            yield
        except asyncssh.ChannelOpenError as exc:
            self._lost = True
            raise PeerUnreachable(self.host, (
                f"{self.host} refused a new SSH session while {doing}: {exc.reason}; skutui "
                "reconnects on the next request")) from exc
        except (asyncssh.DisconnectError, ConnectionError) as exc:
            self._lost = True
            reason = getattr(exc, "reason", None) or exc
            raise PeerUnreachable(self.host, (
                f"lost the SSH connection to {self.host} while {doing}: {reason}; skutui "
                "reconnects on the next request")) from exc

    @contextmanager
    def _file_errors(self, verb: str, path: str) -> Iterator[None]:
        with self._transport_errors(f"trying to {verb} {path}"):
            try:
                yield
            except asyncssh.SFTPConnectionLost as exc:
                raise asyncssh.ConnectionLost(exc.reason) from exc
            except asyncssh.SFTPNoSuchFile as exc:
                raise RemoteFileNotFound(self.host, path, (
                    f"cannot {verb} {path} on {self.host}: no such file or directory"
                )) from exc
            except asyncssh.SFTPError as exc:
                raise RemoteFileError(self.host, path, (
                    f"cannot {verb} {path} on {self.host}: {exc.reason}")) from exc


class PeerProcess:
    """A command started by :meth:`PeerConnection.open_process`."""

    def __init__(self, connection: PeerConnection, command: str,
                 process: asyncssh.SSHClientProcess) -> None:
        self.connection = connection
        self.command = command
        self._process = process

    @property
    def closed(self) -> bool:
        return self._process.is_closing()

    async def ask(self, request: str, timeout: float) -> str:
        """Send one line, return the one line answered. The command ending instead is a
        :class:`RemoteCommandFailed` (its exit status and error output), or
        :class:`PeerUnreachable` when the connection went with it."""
        connection = self.connection
        with connection._transport_errors(f"talking to `{self.command}`"):
            self._process.stdin.write(request + "\n")
            try:
                answer = await asyncio.wait_for(self._process.stdout.readline(), timeout)
            except TimeoutError:
                self.close()
                raise CommandTimeout(connection.host, self.command, timeout) from None
            except BaseException:
                self.close()  # cancelled: a late answer must never be taken for the next one
                raise
            if answer.endswith("\n"):
                return answer
            if connection._conn is None or connection._conn.is_closed():
                self.close()
                raise asyncssh.ConnectionLost("the connection closed")
            try:
                completed = await asyncio.wait_for(self._process.wait(), 5)
            finally:
                self.close()
        status = completed.exit_status
        raise RemoteCommandFailed(connection.host, self.command,
                                  -1 if status is None else status, answer,
                                  _text(completed.stderr))

    def send(self, line: str) -> None:
        """One line that wants no answer (a sign of life)."""
        if not self.closed:
            self._process.stdin.write(line + "\n")

    def close(self) -> None:
        self._process.close()


def _text(output: bytes | str | None) -> str:
    if output is None:
        return ""
    return output if isinstance(output, str) else output.decode("utf-8", "replace")


async def _quietly(awaitable) -> None:
    """Best-effort clean-up that must never hide the error being raised."""
    try:
        await awaitable
    except Exception:  # noqa: BLE001
        pass
