"""An SSH peer for tests: asyncssh's own server, rooted in a temporary directory.

It speaks real SSH (host key, password and public-key login, exec sessions, SFTP), so the
peer adapter is exercised end to end without root or a real sshd. Commands are a few
fakes (``skutui --version``, ``ssh-keygen``, ``cat``...); files live under ``root``, which
the SFTP server serves as "/".
"""

from __future__ import annotations

import asyncio
import shlex
from pathlib import Path

import asyncssh

LOCALHOST = "127.0.0.1"


def new_host_key() -> asyncssh.SSHKey:
    return asyncssh.generate_private_key("ssh-ed25519")


class FakePeer:
    """One fake node. ``password=None`` offers no password login (PasswordAuthentication no);
    ``password_accepted=False`` rejects even the right one (PermitRootLogin prohibit-password).
    """

    def __init__(self, root: Path, *, password: str | None = "lab-root-pw",
                 password_accepted: bool = True, host_key: asyncssh.SSHKey | None = None,
                 skutui_version: str | None = "skutui 0.1.0", sftp: bool = True) -> None:
        """``sftp=False``: no file transfer is served, as for skutui's key under its forced
        command."""
        self.root = root
        self.sftp = sftp
        self.password = password
        self.password_accepted = password_accepted
        self.host_key = host_key or new_host_key()
        self.skutui_version = skutui_version
        self.passwords_tried: list[str] = []
        self.key_logins = 0
        self.commands: list[str] = []
        self.connections: list[asyncssh.SSHServerConnection] = []
        self._acceptor: asyncssh.SSHAcceptor | None = None
        self.port = 0
        root.mkdir(parents=True, exist_ok=True)

    @property
    def host(self) -> str:
        return LOCALHOST

    def path(self, remote: str) -> Path:
        """Where a path on the fake peer lives on this machine."""
        return self.root / remote.lstrip("/")

    async def start(self, port: int = 0) -> FakePeer:
        peer = self

        class Server(asyncssh.SSHServer):
            def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
                peer.connections.append(conn)

            def begin_auth(self, username: str) -> bool:
                return True

            def password_auth_supported(self) -> bool:
                return peer.password is not None

            def validate_password(self, username: str, password: str) -> bool:
                peer.passwords_tried.append(password)
                return (peer.password_accepted and username == "root"
                        and password == peer.password)

            def public_key_auth_supported(self) -> bool:
                return True

            def validate_public_key(self, username: str, key: asyncssh.SSHKey) -> bool:
                body = key.export_public_key("openssh").split()[1].decode()
                ok = username == "root" and body in peer.authorized_keys()
                peer.key_logins += ok
                return ok

        self._acceptor = await asyncssh.listen(
            LOCALHOST, port, server_host_keys=[self.host_key], server_factory=Server,
            process_factory=self._command, encoding=None,
            sftp_factory=((lambda chan: asyncssh.SFTPServer(chan, chroot=str(self.root)))
                          if self.sftp else None),
            reuse_address=True)
        self.port = self._acceptor.get_port()
        return self

    async def stop(self) -> None:
        if self._acceptor is not None:
            self._acceptor.close()
            await self._acceptor.wait_closed()
            self._acceptor = None
        for conn in self.connections:
            conn.close()

    def drop_connections(self) -> None:
        """What a reboot or a cut link looks like from the client: the connection ends."""
        for conn in self.connections:
            conn.abort()
        self.connections.clear()

    def authorized_keys(self) -> set[str]:
        """The base64 bodies of the keys root accepts (options and comments ignored)."""
        path = self.path("/root/.ssh/authorized_keys")
        if not path.exists():
            return set()
        return {word for line in path.read_text().splitlines() if not line.startswith("#")
                for word in line.split() if word.startswith("AAAA")}

    async def _command(self, process: asyncssh.SSHServerProcess) -> None:
        self.commands.append(process.command or "")
        argv = shlex.split(process.command or "")
        name = argv[0] if argv else ""
        status = 0
        if name == "cat":
            process.stdout.write(await process.stdin.read())
        elif name == "true":
            pass
        elif name == "sleep":
            await asyncio.sleep(float(argv[1]))
        elif name == "fail":  # fail STATUS MESSAGE...: write MESSAGE to stderr, exit STATUS
            process.stderr.write(" ".join(argv[2:]).encode() + b"\n")
            status = int(argv[1])
        elif name == "skutui" and self.skutui_version is not None:
            process.stdout.write(self.skutui_version.encode() + b"\n")
        elif name == "ssh-keygen" and "-f" in argv:
            status = self._ssh_keygen(argv, process)
        else:
            process.stderr.write(f"sh: 1: {name}: not found\n".encode())
            status = 127
        process.exit(status)

    def _ssh_keygen(self, argv: list[str], process: asyncssh.SSHServerProcess) -> int:
        private = self.path(argv[argv.index("-f") + 1])
        if "-y" in argv:
            key = asyncssh.read_private_key(private)
            process.stdout.write(key.export_public_key("openssh"))
            return 0
        if private.exists():
            return 1
        key = asyncssh.generate_private_key("ssh-ed25519", comment="root@fake-peer")
        private.write_bytes(key.export_private_key("openssh"))
        private.chmod(0o600)
        Path(f"{private}.pub").write_bytes(key.export_public_key("openssh"))
        return 0


class LinkProxy:
    """A TCP relay in front of a fake peer whose current connections can be cut silently:
    bytes are swallowed, nothing is closed, as with a pulled cable. New connections pass."""

    host = LOCALHOST

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = 0
        self._server: asyncio.Server | None = None
        self._links: list[list[bool]] = []

    async def start(self) -> LinkProxy:
        self._server = await asyncio.start_server(self._relay, LOCALHOST, 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def cut(self) -> None:
        for link in self._links:
            link[0] = False

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(LOCALHOST, self.target_port)
        link = [True]
        self._links.append(link)

        async def pump(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            while data := await source.read(65536):
                if link[0]:
                    sink.write(data)
            sink.close()

        await asyncio.gather(pump(reader, up_writer), pump(up_reader, writer),
                             return_exceptions=True)


async def silent_server() -> tuple[asyncio.Server, int]:
    """Accepts TCP and never says a word: what a hung sshd or a half-dead host looks like."""
    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()
        writer.close()

    server = await asyncio.start_server(hold, LOCALHOST, 0)
    return server, server.sockets[0].getsockname()[1]


def closed_port() -> int:
    """A port nothing listens on (bound then released), for "connection refused"."""
    import socket

    with socket.socket() as sock:
        sock.bind((LOCALHOST, 0))
        return sock.getsockname()[1]
