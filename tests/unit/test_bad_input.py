"""Bad input, refused: a clear message, exit code 2, no traceback, nothing changed.

Every option and argument of ``skutui`` that takes a value gets values that are wrong by
construction (``test_every_argument_that_takes_a_value_is_covered`` walks the parser, so a
new one must be added here): random text and bytes as a shell passes them, control
characters, empty, overlong, numbers out of range, NaN and infinities, addresses no node
may use, options given twice or without their value. The command runs in-process with
SKUTUI_ROOT on a temporary folder and must:

- exit with 2 and print nothing on standard output;
- say why on standard error in one line (after argparse's usage lines when argparse
  refuses it) that names the option or the field, in printable characters only (a value
  is quoted, so an escape sequence in it never reaches the terminal), without a traceback
  or a Python exception name;
- leave the folder as it was: the same paths, bytes and modes.

Each check runs before skutui reads more of the system than this node's addresses and
links (given from memory here) and before it would reach a peer, the agent, a daemon, a
subprocess or the lab: the guards below make any such attempt fail the property, so it
holds without root and without the lab.

cluster.toml. A file that cannot be read, decoded, parsed or checked is one ConfigError
naming the file and, where the file has one, the line of the key at fault. A command that
reads it, or a cluster.toml on standard input (``skutui node apply``), exits with 2: the
file is input the operator can edit, like an argument. Only a file that cannot be read at
all is a failure (exit 1). Either way nothing changes, the file least of all.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import io
import ipaddress
import json
import os
import re
import stat
import string
import tempfile
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from unittest import mock

import pytest
import tomli_w
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from skutui.__main__ import main as skutui_main
from skutui.cli import main as cli
from skutui.cli.common import EXIT_BAD_INPUT
from skutui.cli.exec import SECONDS_MAX
from skutui.cli.node_history import ALL_KINDS as HISTORY_KINDS
from skutui.domain import codec, trust
from skutui.domain import history as history_domain
from skutui.domain import settings as settings_table
from skutui.domain.model import CHECK_INTERVAL_MAX, CHECK_INTERVAL_MIN, SCHEMA_VERSION, InterfaceAddress
from skutui.domain.paths import CONFIG_ROOT_ENV
from skutui.domain.syncplan import UNSAFE_ROOTS
from skutui.system import store
from skutui.system.files import write_bytes_atomic, write_text_atomic
from skutui_lab import cli as lab_cli
from skutui_lab.topology import NODE_NAMES
from tests.fakes import CANDIDATES, FLOATING_IP, LINKS, LOCAL, REMOTE, default_cluster

SETTINGS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])

ADDRESSES = [
    *CANDIDATES,
    InterfaceAddress("lo", "127.0.0.1", 8, label="lo", loopback=True),
    InterfaceAddress("dummy0", "10.255.0.1", 32, label="dummy0", kind="dummy"),
    InterfaceAddress("br0", "203.0.113.1", 24, label="br0", kind="bridge"),
    InterfaceAddress("eth2", "192.0.2.20", 24, label="eth2", up=False),
]
"""This node's addresses as the tests give them: LOCAL.ip (eth0, with the peer's REMOTE.ip)
and 203.0.113.5 (eth1) are usable; the others are an alias, loopback, a dummy, a bridge
and a link that is down."""


# --- running skutui -------------------------------------------------------------------------


@dataclass(frozen=True)
class Call:
    """One command line (and standard input) that skutui must refuse, and the words of
    which its message must hold at least one: the option, or the field as the message
    names it."""

    argv: tuple[str, ...]
    names: tuple[str, ...]
    stdin: bytes = b""
    root: str = "empty"


@dataclass(frozen=True)
class Result:
    code: int | str | None
    out: str
    err: str


class Touched(AssertionError):
    """skutui reached for something outside the folder the test gave it."""


@dataclass
class System:
    """What skutui may not reach while it refuses input; every attempt is recorded."""

    touched: list[str] = field(default_factory=list)

    def forbid(self, what: str):
        def refuse(*args, **kwargs):
            self.touched.append(what)
            raise Touched(f"skutui reached for {what} before refusing the input")

        return refuse


def tree(root: Path) -> dict[str, tuple]:
    """Every path under ``root`` (and the root) with its kind, mode and bytes or target."""
    found = {".": ("dir", stat.S_IMODE(root.lstat().st_mode))}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(folder, name)
            info = path.lstat()
            key = str(path.relative_to(root))
            if stat.S_ISLNK(info.st_mode):
                found[key] = ("link", os.readlink(path))
            elif stat.S_ISDIR(info.st_mode):
                found[key] = ("dir", stat.S_IMODE(info.st_mode))
            else:
                found[key] = ("file", stat.S_IMODE(info.st_mode), path.read_bytes())
    return found


def run_skutui(root: Path, argv: tuple[str, ...], stdin: bytes = b"") -> Result:
    """``skutui ARGV`` in this process, as a shell runs it: standard input as UTF-8 text
    over bytes, SKUTUI_ROOT on ``root``, no SKUTUI_DEBUG."""
    out, err = io.StringIO(), io.StringIO()
    environ = {key: value for key, value in os.environ.items() if key != cli.DEBUG_ENV}
    environ[CONFIG_ROOT_ENV] = str(root)
    with (
        mock.patch.dict(os.environ, environ, clear=True),
        mock.patch("sys.stdin", io.TextIOWrapper(io.BytesIO(stdin), encoding="utf-8")),
        contextlib.redirect_stdout(out),
        contextlib.redirect_stderr(err),
    ):
        try:
            code: int | str | None = skutui_main(list(argv))
        except SystemExit as exit_:
            code = exit_.code
    return Result(code, out.getvalue(), err.getvalue())


EXCEPTION_NAME = re.compile(r"\b[A-Z][A-Za-z]*(?:Error|Exception|Exit|Interrupt)\b|Traceback")
ARGPARSE_ERROR = re.compile(r"skutui[^:\n]*: error: ")


def leaked_names(text: str, given: str) -> set[str]:
    """Exception names and tracebacks in ``text`` that the input itself did not contain."""
    return set(EXCEPTION_NAME.findall(text)) - set(EXCEPTION_NAME.findall(given))


def message_line(err: str) -> str:
    """The one line that says what is wrong; argparse's usage lines may come before it."""
    lines = err.rstrip("\n").split("\n")
    message, usage = lines[-1], lines[:-1]
    if usage:
        assert usage[0].startswith("usage: ") and all(line.startswith(" ") for line in usage[1:]), err
        assert ARGPARSE_ERROR.match(message), err
    else:
        assert message.startswith("skutui: ") or ARGPARSE_ERROR.match(message), err
    return message


def assert_clear(err: str, given: str, names: tuple[str, ...]) -> str:
    """One printable line naming one of ``names``, no traceback, no exception name."""
    assert err.endswith("\n"), repr(err)
    assert not leaked_names(err, given), err
    assert "unexpected error" not in err, err
    unprintable = sorted({ch for ch in err if not (ch.isprintable() or ch == "\n")})
    assert not unprintable, f"unprintable {unprintable!r} in {err!r}"
    message = message_line(err)
    assert any(name.lower() in message.lower() for name in names), (names, message)
    return message


def check_refused(system: System, root: Path, call: Call) -> Result:
    system.touched.clear()
    before = tree(root)
    result = run_skutui(root, call.argv, call.stdin)
    given = " ".join(call.argv) + call.stdin.decode("utf-8", "replace")
    assert not system.touched, (system.touched, result)
    assert result.code == EXIT_BAD_INPUT, result
    assert result.out == "", result
    assert_clear(result.err, given, call.names)
    assert tree(root) == before, "the folder changed"
    return result


# --- what skutui may and may not reach --------------------------------------------------------


@pytest.fixture(scope="module")
def system():
    """This node's addresses and links from memory; everything else skutui could reach for
    (SSH, the agent's socket, daemons, subprocesses, the lab, writing the daemons' files)
    refused and recorded."""
    state = System()

    async def addresses():
        return list(ADDRESSES)

    async def links():
        return list(LINKS)

    forbidden = {
        "asyncssh.connect": "SSH to the peer",
        "asyncssh.get_server_host_key": "the peer's host key",
        "skutui.peer.connection.PeerConnection._connection": "the peer connection",
        "skutui.system.control.request": "the agent's socket",
        "skutui.system.control.stream_events": "the agent's events",
        "skutui.system.control.post_event": "the agent's socket",
        "skutui.agent.sync.tree.scan": "a scan of the file system",
        "skutui.system.node.LocalNode.apply": "writing the daemons' configuration",
        "skutui.system.node.LocalNode.reload": "reloading keepalived",
        "skutui.system.node.LocalNode.start": "starting the daemons",
        "skutui.system.node.LocalNode.stop": "stopping the daemons",
        "skutui.system.node.LocalNode.erase": "erasing this node",
        "skutui.system.node.LocalNode.inventory": "this node's inventory",
        "skutui.system.node.LocalNode.pin_peer_link": "pinning the peer's link-layer address",
        "skutui_lab.lab.Lab": "the lab",
        "subprocess.run": "a subprocess",
        "subprocess.Popen": "a subprocess",
    }
    with contextlib.ExitStack() as stack:
        stack.enter_context(mock.patch("skutui.system.net.discover_addresses", addresses))
        stack.enter_context(mock.patch("skutui.system.net.link_names", links))
        stack.enter_context(mock.patch("socket.gethostname", lambda: LOCAL.hostname))
        for target, what in forbidden.items():
            stack.enter_context(mock.patch(target, state.forbid(what)))
        yield state


@pytest.fixture(scope="module")
def roots():
    """``empty``: no cluster; ``master``: this node is node-a, the master of default_cluster()."""
    with tempfile.TemporaryDirectory() as top:
        empty = Path(top, "empty")
        empty.mkdir()
        master = Path(top, "master")
        (master / "local").mkdir(parents=True, mode=0o700)
        store.save(default_cluster(), master / "cluster.toml")
        write_text_atomic(master / "local" / "role", "master\n")
        yield {"empty": empty, "master": master}


def refuse(system: System, roots: dict[str, Path], call: Call) -> Result:
    return check_refused(system, roots[call.root], call)


# --- values wrong by construction -------------------------------------------------------------

ARGV_CHARS = st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00")


def argv_text(min_size: int = 0, max_size: int = 30) -> st.SearchStrategy[str]:
    """An argument as a shell passes it: any characters but NUL, or any bytes decoded as
    Python decodes argv (undecodable bytes become surrogate escapes)."""
    return st.one_of(
        st.text(ARGV_CHARS, min_size=min_size, max_size=max_size),
        st.binary(min_size=min_size, max_size=max_size).map(lambda b: os.fsdecode(b.replace(b"\0", b""))),
    )


def rejected_by(parse):
    """True for text that ``parse`` (from the standard library) refuses."""

    def rejected(text: str) -> bool:
        try:
            parse(text)
        except (ValueError, ArithmeticError):
            return True
        return False

    return rejected


EMPTY = st.sampled_from(["", " ", "\t", "  \n "])
UNUSABLE_NETWORKS = ("0.0.0.0/32", "127.0.0.0/8", "224.0.0.0/4", "169.254.0.0/16",
                     "255.255.255.255/32", "::/128", "::1/128", "ff00::/8", "fe80::/10")
UNUSABLE_IP = st.one_of(*(st.ip_addresses(network=n) for n in UNUSABLE_NETWORKS)).map(str)
"""Unspecified, loopback, multicast, link-local, broadcast: no node may hold them."""
ANY_IP = st.ip_addresses().map(str)
OCTET_OUT_OF_RANGE = st.builds(
    lambda octets, bad, at: ".".join(map(str, octets[:at] + [bad] + octets[at + 1:])),
    st.lists(st.integers(0, 255), min_size=4, max_size=4), st.integers(256, 10**30), st.integers(0, 3))
OVERLONG_ADDRESS = st.text("0123456789abcdef.:", min_size=46, max_size=1000)
"""Longer than any address's text (45 characters at most)."""
SCOPED = st.builds(lambda ip, scope: f"{ip}%{scope}", ANY_IP, argv_text(max_size=10))
"""An address with an interface scope: neither keepalived nor the peer could share it."""


def not_a_key_body(text: str) -> bool:
    try:
        trust.key_body(text)
    except trust.NotAPublicKey:
        return True
    return False


NOT_AN_ADDRESS = argv_text().filter(rejected_by(lambda t: ipaddress.ip_address(t.strip())))
BAD_IP = st.one_of(EMPTY, NOT_AN_ADDRESS, UNUSABLE_IP, OCTET_OUT_OF_RANGE, OVERLONG_ADDRESS, SCOPED)
"""Addresses no field that holds an IP accepts."""

BAD_REMOTE_IP = st.one_of(
    BAD_IP,
    st.sampled_from([LOCAL.ip, f" {LOCAL.ip} "]),
    st.ip_addresses(v=6, network="2001:db8::/32").map(str),
)
"""Also this node's own address, and an IPv6 address beside the IPv4 local one."""

BAD_LOCAL_IP = st.one_of(
    BAD_IP,
    st.ip_addresses(v=4, network="192.0.2.0/25").map(str),
    st.sampled_from(["198.18.0.50", "127.0.0.1", "10.255.0.1", "203.0.113.1", "192.0.2.20"]),
    st.just(FLOATING_IP.split("/")[0]),
)
"""Also addresses that are not on this node, that are on an alias, loopback, a dummy, a
bridge or a link that is down, and the floating IP."""


def _with_prefix(ip: str, prefix: int | None) -> str:
    return ip if prefix is None else f"{ip}/{prefix}"


def _network_or_broadcast(ip: ipaddress.IPv4Address, prefix: int, broadcast: bool) -> str:
    network = ipaddress.ip_network((ip, prefix), strict=False)
    return f"{network.broadcast_address if broadcast else network.network_address}/{prefix}"


NETWORK_OR_BROADCAST = st.builds(_network_or_broadcast, st.ip_addresses(v=4), st.integers(0, 30), st.booleans())
"""The kernel answers ARP for neither (prefixes up to /30)."""
PREFIX_OUT_OF_RANGE = st.one_of(
    st.builds(lambda ip, p: f"{ip}/{p}", st.ip_addresses(v=4).map(str),
              st.integers(33, 10**9) | st.integers(max_value=-1)),
    st.builds(lambda ip, p: f"{ip}/{p}", st.ip_addresses(v=6).map(str), st.integers(129, 10**9)),
    st.builds(lambda ip, p: f"{ip}/{p}", ANY_IP, argv_text(min_size=1)).filter(
        rejected_by(lambda t: ipaddress.ip_interface(t.strip()))),
)
BAD_FLOATING_SYNTAX = st.one_of(
    EMPTY,
    argv_text().filter(rejected_by(lambda t: ipaddress.ip_interface(t.strip()))),
    st.builds(_with_prefix, UNUSABLE_IP, st.none() | st.integers(0, 32)),
    NETWORK_OR_BROADCAST,
    PREFIX_OUT_OF_RANGE,
    st.builds(_with_prefix, SCOPED, st.none() | st.integers(0, 32)),
    OCTET_OUT_OF_RANGE,
    OVERLONG_ADDRESS,
)
"""Floating IPs wrong wherever they are given."""
NODE_IPS_AS_FLOATING = st.sampled_from([f"{LOCAL.ip}/24", REMOTE.ip, f"{REMOTE.ip}/32"])
BAD_FLOATING_IP = BAD_FLOATING_SYNTAX | NODE_IPS_AS_FLOATING
"""Also a node's own cluster IP (both nodes of the tests' cluster)."""
FLOATING_PREFIX = st.integers(8, 28) | st.just(32)
TWICE_FLOATING = st.builds(lambda last, a, b: (f"198.18.0.{last}/{a}", f"198.18.0.{last}/{b}"),
                           st.integers(98, 110), FLOATING_PREFIX, FLOATING_PREFIX)
"""The same floating IP listed twice, each time valid alone (198.18.0.98 to .110 are no
node's, nor the network or broadcast address of a prefix from /8 to /28)."""

MIN, MAX = Decimal(str(CHECK_INTERVAL_MIN)), Decimal(str(CHECK_INTERVAL_MAX))
NOT_FINITE = st.sampled_from(["nan", "NaN", "-nan", "sNaN", "inf", "-inf", "+inf", "Infinity", "-Infinity"])
BAD_TRANSPORT = argv_text().filter(lambda t: t.strip().lower() not in {"unicast", "multicast"})
BAD_ROUTER_ID = st.one_of(
    st.integers().filter(lambda v: not 1 <= v <= 255).map(str),
    argv_text().filter(lambda t: not t.strip().isdigit()),
)
"""Out of range, or not a whole number."""
BAD_INTERVAL = st.one_of(
    EMPTY,
    NOT_FINITE,
    st.decimals(places=2, allow_nan=False, allow_infinity=False).filter(lambda d: not MIN <= d <= MAX).map(str),
    st.integers(int(MIN * 1000), int(MAX * 1000)).filter(lambda n: n % 10).map(lambda n: f"{n // 1000}.{n % 1000:03d}"),
    st.sampled_from(["1e999", "-1e999", "1e308", "9" * 5000, "1e-999", "-0"]),
    argv_text().filter(rejected_by(lambda t: Decimal(t.strip()))),
)
"""Out of range, finer than a centisecond, not finite, not a number."""

NAME_CHARS = string.ascii_letters + string.digits + "_-"
BAD_INTERFACE_NAME = st.one_of(
    st.text(NAME_CHARS, min_size=16, max_size=300),
    st.builds(lambda a, sep, b: a + sep + b, st.text(NAME_CHARS, min_size=1, max_size=6),
              st.sampled_from([":", "/", " ", "\t", "\x1b", "\u00a0", "\u202e", "\x7f"]),
              st.text(NAME_CHARS, min_size=1, max_size=6)),
    st.sampled_from([".", "..", " ", "\t"]),
)
"""Too long for Linux, an address label, a slash, blanks or control characters inside."""

SERVICE_NAME_CHARS = string.ascii_letters + string.digits + "_"
BAD_SERVICE_ITEM = st.one_of(
    st.text(SERVICE_NAME_CHARS, min_size=1, max_size=8).map(lambda name: "-" + name),
    st.builds(lambda a, sep, b: a + sep + b, st.text(SERVICE_NAME_CHARS, min_size=1, max_size=6),
              st.sampled_from([" ", "\t", "/", "$", ";", "\x1b", "\u00a0", "\u202e", "\x7f", "*"]),
              st.text(SERVICE_NAME_CHARS, min_size=1, max_size=6)),
    st.sampled_from(["/etc/init.d/haproxy", "keepalived", "conntrackd", " ", ".hidden", "--help"]),
)
"""Read as an option (a leading '-'), blanks, a slash (a path, not a name), a character a
service name never has, skutui's own daemons, an item that is only blanks."""
BAD_SERVICES = st.builds(lambda names, bad, at: ",".join(names[:at] + [bad] + names[at:]),
                         st.lists(st.sampled_from(["haproxy", "nginx", "php8.2-fpm", "getty@tty1"]),
                                  max_size=2, unique=True), BAD_SERVICE_ITEM, st.integers(0, 2))
BAD_SYNCED_ITEM = st.one_of(
    argv_text(min_size=1).filter(lambda t: "," not in t and t.strip() and not t.strip().startswith("/")),
    st.sampled_from(sorted(UNSAFE_ROOTS)).flatmap(
        lambda r: st.sampled_from([r, r + "/", r + "/.", "//" + r.lstrip("/"), r + "/x/.."])),
    st.sampled_from(["/proc", "/sys", "/dev", "/run"]).flatmap(
        lambda tree: st.builds(lambda name: f"{tree}/{name}", st.text(NAME_CHARS, min_size=1, max_size=8))),
    st.sampled_from([" ", "/etc/haproxy/../shadow"]),
)
"""Relative, a whole system folder however written, inside a virtual file system, '..'."""
BAD_SYNCED_PATHS = st.builds(lambda paths, bad, at: ",".join(paths[:at] + [bad] + paths[at:]),
                             st.lists(st.sampled_from(["/etc/haproxy", "/etc/nginx/conf.d"]), max_size=2,
                                      unique=True), BAD_SYNCED_ITEM, st.integers(0, 2))

B64 = string.ascii_letters + string.digits + "+/"
PREFIX = st.sampled_from(["", "SHA256:"])
BAD_FINGERPRINT = st.one_of(
    EMPTY,
    st.builds(str.__add__, PREFIX, st.text(B64, max_size=100).filter(lambda body: len(body) != 43)),
    st.builds(lambda prefix, body, bad, at: prefix + body[:at] + bad + body[at:], PREFIX,
              st.text(B64, min_size=42, max_size=42),
              ARGV_CHARS.filter(lambda ch: ch not in B64), st.integers(0, 42)),
    st.sampled_from(["MD5:" + ":".join(["ab"] * 16), "sha256:" + "A" * 43]),
)
"""Not 43 base64 characters after the optional SHA256: (a wrong length, a character
outside base64, another digest)."""


def not_in(*words: str):
    return lambda text: text not in words


def number_text(values: st.SearchStrategy) -> st.SearchStrategy[str]:
    return values.map(repr)


NOT_A_FLOAT = argv_text().filter(rejected_by(float))
TOO_LONG = number_text(st.floats(min_value=SECONDS_MAX, exclude_min=True, allow_infinity=False))
BAD_WAIT = st.one_of(NOT_FINITE, NOT_A_FLOAT, number_text(st.floats(max_value=-1e-9, allow_infinity=False)), TOO_LONG)
BAD_COMMAND_TIMEOUT = st.one_of(
    NOT_FINITE, NOT_A_FLOAT, number_text(st.floats(max_value=0, allow_infinity=False)), TOO_LONG)
BAD_RECENT = st.one_of(st.integers(max_value=-1).map(str), argv_text().filter(rejected_by(int)))
BAD_LINES = st.one_of(st.integers(max_value=-1).map(str),
                      argv_text().filter(rejected_by(int)).filter(lambda v: v != "all"))
BAD_ADVERT = st.one_of(
    NOT_FINITE, NOT_A_FLOAT,
    number_text(st.floats(max_value=CHECK_INTERVAL_MIN, exclude_max=True, allow_infinity=False)),
    number_text(st.floats(min_value=CHECK_INTERVAL_MAX, exclude_min=True, allow_infinity=False)))


BAD_WEBHOOK_URL = st.one_of(
    st.sampled_from(["ftp://hooks.example.com/x", "http://", "https:///x", "hooks.example.com/x",
                     "https://h:99999/", "https://h:port/", "http://a b/", "https://h/\x1b[2J",
                     "javascript:alert(1)", "https://" + "h" * 3000]),
    argv_text(min_size=1).filter(lambda t: t.strip() != "").filter(
        rejected_by(lambda t: settings_table.WEBHOOK_URL.read(t))),
)
"""Not http or https, no host, a bad port, blanks or control characters, overlong."""
BAD_METRICS_FILE = st.one_of(
    st.sampled_from(["skutui.prom", "./skutui.prom", "/var/lib/x/../skutui.prom", "/var/lib/skutui.txt",
                     "/var/lib/prometheus/node-exporter/", "/x/skutui.prom.tmp"]),
    argv_text(min_size=1).filter(lambda t: t.strip() != "").filter(
        rejected_by(lambda t: settings_table.METRICS_FILE.read(t))),
)
"""Relative, with '..', not ending in .prom (node_exporter reads nothing else)."""
BAD_SINCE = st.one_of(
    EMPTY,
    st.sampled_from(["yesterday", "5x", "-5m", "2026-13-01", "2026-02-30T10:00", "10:61", "1e9"]),
    argv_text().filter(lambda t: t.strip() != "").filter(
        rejected_by(lambda t: history_domain.parse_since(t, 0.0))),
)
"""Neither a duration back from now nor a date and time."""
BAD_KIND = argv_text().filter(lambda t: t not in HISTORY_KINDS)
BAD_DRILL_ID = st.one_of(EMPTY, st.text("!@#$%^&*() /\\", min_size=1, max_size=8),
                         st.text(NAME_CHARS, min_size=101, max_size=200),
                         argv_text(min_size=1).filter(lambda t: not all(c.isalnum() or c in "-_." for c in t)))
"""Empty, overlong, or with characters a drill's id never holds."""
BAD_PORT = st.one_of(st.integers(max_value=0).map(str), st.integers(min_value=65536).map(str),
                     argv_text().filter(lambda t: not t.isdigit()))
BAD_LIMIT = st.one_of(st.integers(max_value=0).map(str), st.integers(min_value=100_001).map(str),
                      argv_text().filter(rejected_by(int)))


# --- cluster create and cluster check ---------------------------------------------------------

CREATE = ("--local-ip", LOCAL.ip, "--remote-ip", REMOTE.ip, "--password-stdin",
          "--floating-ip", FLOATING_IP, "--trust-new-host-key")
"""Valid options: with one of them swapped for a bad one, the command must refuse."""
PASSWORD = b"s3cret\n"


def create_call(command: str, *options: str, names: tuple[str, ...], stdin: bytes = PASSWORD,
                base: tuple[str, ...] = CREATE) -> Call:
    yes = ("--yes",) if command == "create" else ()
    return Call(("cluster", command, *base, *options, *yes), names, stdin)


def without(base: tuple[str, ...], *options: str) -> tuple[str, ...]:
    """``base`` less the given options and their values."""
    kept, skip = [], False
    for word in base:
        if skip:
            skip = False
        elif word in options:
            skip = word not in ("--password-stdin", "--trust-new-host-key")
        else:
            kept.append(word)
    return tuple(kept)


def bad_tracked_list(bad_names: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    """Interfaces to track, comma separated, one of them wrong."""
    good = st.lists(st.sampled_from(LINKS), max_size=3)
    return st.builds(lambda names, bad, at: ",".join(names[:at] + [bad] + names[at:]),
                     good, bad_names, st.integers(0, 3))


def create_calls(command: str) -> st.SearchStrategy[Call]:
    def option(name: str, values: st.SearchStrategy[str], *names: str) -> st.SearchStrategy[Call]:
        return values.map(lambda value: create_call(
            command, f"{name}={value}", names=(name, *names), base=without(CREATE, name)))

    return st.one_of(
        option("--local-ip", BAD_LOCAL_IP, "Local IP"),
        option("--remote-ip", BAD_REMOTE_IP, "Remote IP"),
        option("--check-interval", BAD_INTERVAL),
        option("--failback", argv_text().filter(
            lambda t: t.strip().lower() not in {"disabled", "local", "remote", LOCAL.hostname}), "Failback"),
        option("--virtual-router-id", BAD_ROUTER_ID, "Virtual router ID"),
        option("--heartbeat-transport", BAD_TRANSPORT, "Heartbeat transport"),
        option("--services", BAD_SERVICES, "Service"),
        option("--services-on-both", BAD_SERVICES, "Service"),
        option("--synced-paths", BAD_SYNCED_PATHS, "Synced path"),
        option("--tracked-interfaces", bad_tracked_list(BAD_INTERFACE_NAME.filter(lambda name: "," not in name)),
               "--track", "Tracked interface"),
        st.sampled_from(["haproxy", "nginx,haproxy"]).map(lambda both: create_call(
            command, "--services=haproxy", f"--services-on-both={both}", names=("Service",))),
        BAD_FINGERPRINT.map(lambda value: create_call(
            command, f"--accept-host-key={value}", names=("--accept-host-key", "Host key fingerprint"),
            base=without(CREATE, "--trust-new-host-key"))),
        BAD_FLOATING_IP.map(lambda value: create_call(
            command, f"--floating-ip={value}", names=("--floating-ip", "Floating IP"),
            base=without(CREATE, "--floating-ip"))),
        TWICE_FLOATING.map(lambda pair: create_call(
            command, *(f"--floating-ip={cidr}" for cidr in pair), names=("Floating IP",),
            base=without(CREATE, "--floating-ip"))),
        st.sampled_from([b"", b"\n", b"\r\n"]).map(lambda stdin: create_call(
            command, names=("password",), stdin=stdin)),
        st.just(create_call(command, names=("--password-stdin",), base=without(CREATE, "--password-stdin"))),
        st.sampled_from(["--local-ip", "--remote-ip", "--check-interval", "--failback", "--accept-host-key"]).flatmap(
            lambda name: st.sampled_from([
                create_call(command, name, names=(name,), base=without(CREATE, name, "--trust-new-host-key")),
                create_call(command, *[f"{name}={TWICE[name]}"] * 2, names=(name,),
                            base=without(CREATE, name, "--trust-new-host-key")),
            ])),
    )


TWICE = {"--local-ip": LOCAL.ip, "--remote-ip": REMOTE.ip, "--check-interval": "2",
         "--failback": "local", "--accept-host-key": "SHA256:" + "A" * 43, "--track": "eth1",
         "--node": "remote", "--wait": "1", "--command-timeout": "10", "--recent": "3",
         "--advert": "1", "--since": "1h", "--limit": "5", "--webhook-url": "https://h/x",
         "--metrics-file": "/var/lib/x/skutui.prom", "--lines": "10", "--timeout": "5"}
"""A valid value for each option that may be given once: given twice (or without a value),
the command must refuse."""


@SETTINGS
@given(call=st.sampled_from(["check", "create"]).flatmap(create_calls))
@example(call=create_call("create", "--accept-host-key=zzz", names=("Host key fingerprint",),
                          base=without(CREATE, "--trust-new-host-key")))
@example(call=create_call("create", "--remote-ip=198.18.0.2%\x1b[2J", names=("Remote IP",),
                          base=without(CREATE, "--remote-ip")))
@example(call=create_call("create", "--local-ip=198.18.0.1", names=("--local-ip",)))
@example(call=create_call("check", "--check-interval=1e999", names=("--check-interval",)))
def test_cluster_create_and_check_refuse_bad_values(system, roots, call):
    refuse(system, roots, call)


# --- cluster edit -----------------------------------------------------------------------------


def edit(*options: str, names: tuple[str, ...], root: str = "master") -> Call:
    return Call(("cluster", "edit", *options), names, root=root)


SYNTAX_ERRORS_OF_EDIT = st.one_of(
    BAD_INTERVAL.map(lambda v: (f"--check-interval={v}", ("--check-interval",))),
    BAD_FLOATING_SYNTAX.map(
        lambda v: (f"--floating-ip={v}", ("--floating-ip", "Floating IP"))),
    bad_tracked_list(BAD_INTERFACE_NAME.filter(lambda name: "," not in name)).flatmap(
        lambda v: st.sampled_from([(f"--track={v}", ("--track", "Tracked interface")),
                                   (f"--tracked-interfaces={v}", ("--track", "Tracked interface"))])),
    BAD_TRANSPORT.flatmap(lambda v: st.sampled_from([
        (f"--heartbeat-transport={v}", ("--transport", "Heartbeat transport")),
        (f"--transport={v}", ("--transport", "Heartbeat transport"))])),
    BAD_WEBHOOK_URL.map(lambda v: (f"--webhook-url={v}", ("--webhook-url", "Webhook URL"))),
    BAD_METRICS_FILE.map(lambda v: (f"--metrics-file={v}", ("--metrics-file", "Metrics file"))),
    BAD_SERVICES.map(lambda v: (f"--services={v}", ("--services", "Service"))),
    BAD_SERVICES.map(lambda v: (f"--services-on-both={v}", ("--services-on-both", "Service"))),
    BAD_SYNCED_PATHS.map(lambda v: (f"--synced-paths={v}", ("--synced-paths", "Synced path"))),
    st.sampled_from(["--check-interval", "--failback", "--track", "--webhook-url", "--metrics-file"]).map(
        lambda name: (name, (name,))),
)
"""What is wrong on any node, configured or not."""


@SETTINGS
@given(option=SYNTAX_ERRORS_OF_EDIT, root=st.sampled_from(["empty", "master"]))
@example(option=("--floating-ip=nonsense", ("Floating IP",)), root="empty")
@example(option=("--track=eth\x1b[0m", ("Tracked interface",)), root="master")
def test_cluster_edit_refuses_what_is_wrong_on_any_node(system, roots, option, root):
    text, names = option
    refuse(system, roots, edit(text, names=names, root=root))


@SETTINGS
@given(call=st.one_of(
    argv_text().filter(lambda t: t.strip().lower() not in {"disabled", "local", "remote", LOCAL.hostname,
                                                          REMOTE.hostname}).map(
        lambda v: edit(f"--failback={v}", names=("--failback", "Failback"))),
    bad_tracked_list(argv_text(min_size=1).filter(lambda t: t and "," not in t and t.strip() not in LINKS)).map(
        lambda v: edit(f"--track={v}", names=("--track", "Tracked interface"))),
    NODE_IPS_AS_FLOATING.map(lambda v: edit(f"--floating-ip={v}", names=("Floating IP",))),
    TWICE_FLOATING.map(lambda pair: edit(*(f"--floating-ip={c}" for c in pair), names=("Floating IP",))),
    st.sampled_from(["--check-interval", "--failback", "--track"]).map(
        lambda name: edit(*[f"{name}={TWICE[name]}"] * 2, names=(name,))),
    st.sampled_from(["eth9", "bond7"]).map(lambda link: edit(f"--floating-ip=198.18.0.100/24@{link}",
                                                             names=("Floating IP",))),
    st.just(edit("--services-on-both=haproxy", "--services=haproxy", names=("Service",))),
))
@example(call=edit("--floating-ip=2001:db8::1%eth0", names=("Floating IP",)))
def test_cluster_edit_on_the_master_refuses_what_does_not_fit_the_cluster(system, roots, call):
    """A stranger for failback, a link this node lacks, a node's own IP as floating IP."""
    refuse(system, roots, call)


# --- the other commands -----------------------------------------------------------------------


def positional(*words: str, value: str, names: tuple[str, ...]) -> Call:
    """``words -- value``: the value cannot be taken for an option."""
    return Call((*words, "--", value), names)


def twice_or_bare(*words: str, option: str, after: tuple[str, ...] = ()) -> st.SearchStrategy[Call]:
    return st.sampled_from([
        Call((*words, *[f"{option}={TWICE[option]}"] * 2, *after), (option,)),
        Call((*words, *after, option), (option,)),
    ])


OTHER_COMMANDS = st.one_of(
    BAD_WAIT.map(lambda v: Call(("exec", f"--wait={v}", "--", "true"), ("--wait",))),
    BAD_COMMAND_TIMEOUT.map(lambda v: Call(("exec", f"--command-timeout={v}", "--", "true"),
                                           ("--command-timeout",))),
    st.sampled_from([(), ("--",), ("--no-wait", "--")]).map(
        lambda words: Call(("exec", *words), ("command",))),
    twice_or_bare("exec", option="--wait"),
    twice_or_bare("exec", option="--command-timeout"),
    BAD_RECENT.map(lambda v: Call(("events", f"--recent={v}"), ("--recent",))),
    twice_or_bare("events", option="--recent"),
    BAD_LINES.map(lambda v: Call(("logs", f"--lines={v}"), ("--lines",))),
    twice_or_bare("logs", option="--lines"),
    argv_text().filter(not_in("on", "off")).map(
        lambda v: positional("maintenance", value=v, names=("state",))),
    argv_text().filter(not_in("local", "remote")).map(
        lambda v: Call(("maintenance", "on", f"--node={v}"), ("--node",))),
    twice_or_bare("maintenance", option="--node", after=("on",)),
    argv_text().filter(not_in("on", "off")).map(
        lambda v: positional("node", "maintenance", value=v, names=("state",))),
    argv_text().filter(not_in("master", "backup", "fault")).map(
        lambda v: positional("agent", "notify", value=v, names=("state",))),
    BAD_ADVERT.map(lambda v: Call(("lab", "up", f"--advert={v}"), ("--advert",))),
    twice_or_bare("lab", "up", option="--advert"),
    BAD_COMMAND_TIMEOUT.map(lambda v: Call(("node", "hand-over", f"--timeout={v}"), ("--timeout",))),
    twice_or_bare("node", "hand-over", option="--timeout"),
    argv_text().filter(lambda v: v not in NODE_NAMES).map(
        lambda v: Call(("lab", "exec", "--", v, "true"), ("node",))),
    st.sampled_from([("history",), ("node", "history")]).flatmap(lambda words: st.one_of(
        BAD_SINCE.map(lambda v: Call((*words, f"--since={v}"), ("--since",))),
        BAD_KIND.map(lambda v: Call((*words, f"--kind={v}"), ("--kind",))),
        twice_or_bare(*words, option="--since"),
    )),
    BAD_LIMIT.map(lambda v: Call(("node", "history", f"--limit={v}"), ("--limit",))),
    twice_or_bare("node", "history", option="--limit"),
    BAD_DRILL_ID.map(lambda v: positional("node", "drill", "mark", value=v, names=("drill",))),
    NOT_AN_ADDRESS.map(lambda v: Call(("node", "drill", "probe", f"--address={v}", "--port=49812"),
                                      ("--address",))),
    BAD_PORT.map(lambda v: Call(("node", "drill", "probe", "--address=198.18.0.100", f"--port={v}"),
                                ("--port",))),
    NOT_AN_ADDRESS.map(lambda v: Call(("node", "authorize-key", f"--from={v}"), ("--from",))),
    argv_text().filter(not_a_key_body).map(
        lambda v: Call(("node", "authorize-key", f"--from={REMOTE.ip}", f"--replacing={v}"),
                       ("--replacing",))),
    NOT_AN_ADDRESS.map(lambda v: Call(("node", "prove-key", f"--to={v}"), ("--to",))),
    NOT_AN_ADDRESS.map(lambda v: Call(("node", "pin-host-key", f"--address={v}"), ("--address",))),
    BAD_FINGERPRINT.map(lambda v: Call(("cluster", "rekey", f"--accept-host-key={v}"),
                                       ("--accept-host-key", "Host key fingerprint"))),
    twice_or_bare("cluster", "rekey", option="--accept-host-key"),
    argv_text().filter(lambda v: v not in NODE_NAMES).map(
        lambda v: positional("lab", "reboot", value=v, names=("node",))),
)


@SETTINGS
@given(call=OTHER_COMMANDS)
@example(call=Call(("exec", "--wait=nan", "--", "true"), ("--wait",)))
@example(call=Call(("exec", "--command-timeout=1e9", "--", "true"), ("--command-timeout",)))
@example(call=Call(("exec", "--wait=1e13", "--", "true"), ("--wait",)))
@example(call=Call(("events", "--recent=-1"), ("--recent",)))
@example(call=Call(("maintenance", "on", "--node=local", "--node=remote"), ("--node",)))
def test_exec_events_maintenance_agent_and_lab_refuse_bad_values(system, roots, call):
    refuse(system, roots, call)


# --- node steps that read standard input, and manifest ----------------------------------------

def not_a_json_object(data: bytes) -> bool:
    try:
        return not isinstance(json.loads(data.decode("utf-8")), dict)
    except ValueError:
        return True


NOT_JSON_OBJECT = st.one_of(
    st.binary(max_size=60).filter(not_a_json_object),
    st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=8),
                 lambda inner: st.lists(inner, max_size=3), max_leaves=5).map(lambda v: json.dumps(v).encode()),
)
"""Not JSON, not UTF-8, or JSON but not an object."""

FILE_CONTENT = st.none() | st.binary(max_size=8).map(lambda b: base64.b64encode(b).decode())
GOOD_FILE = st.builds(lambda name: f"/etc/skutui-test/{name}", st.text(NAME_CHARS, min_size=1, max_size=8))
BAD_SNAPSHOT = st.one_of(
    st.fixed_dictionaries({"files": st.dictionaries(GOOD_FILE, FILE_CONTENT, max_size=2)}),
    st.fixed_dictionaries({"running": st.just({})}),
    st.fixed_dictionaries({"files": st.integers() | st.text(max_size=5) | st.lists(st.integers(), max_size=2),
                           "running": st.just({})}),
    st.fixed_dictionaries({"files": st.dictionaries(
        argv_text(max_size=10).filter(lambda t: not t.startswith("/")), FILE_CONTENT, min_size=1, max_size=2),
        "running": st.just({})}),
    st.fixed_dictionaries({"files": st.dictionaries(
        GOOD_FILE, st.text("!@#$%^&*()", min_size=1, max_size=8) | st.integers(), min_size=1, max_size=2),
        "running": st.just({})}),
    st.builds(lambda name, mode: {"files": {name: ""}, "modes": {name: mode}, "running": {}}, GOOD_FILE,
              st.integers(max_value=-1) | st.integers(min_value=0o10000) | st.text(max_size=4) | st.floats()),
).map(lambda snapshot: json.dumps(snapshot).encode())
"""Objects that are not what ``skutui node snapshot`` prints: a key missing, of the wrong
kind, a relative path, content that is not base64, a mode that is not one."""

BAD_RECORDS = st.one_of(
    st.binary(max_size=60).filter(rejected_by(lambda b: json.loads(b.decode("utf-8")))),
    st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=8),
                 lambda inner: st.dictionaries(st.text(max_size=4), inner, max_size=3), max_leaves=5
                 ).map(lambda v: json.dumps(v).encode()),
    st.fixed_dictionaries({"id": st.text(max_size=5), "time": st.text(max_size=5),
                           "kind": st.sampled_from(["role", "sync", "failover"])}).map(
        lambda record: json.dumps([record]).encode()),
)
"""Not JSON, not a list, or records that are not failovers or drills with an id and a time."""

BAD_ROOT = st.one_of(
    argv_text().filter(lambda t: not t.startswith("/")),
    st.sampled_from(sorted(UNSAFE_ROOTS)).flatmap(
        lambda r: st.sampled_from([r, r + "/", r + "/.", "/" + r, "//" + r.lstrip("/"), r + "/x/.."])),
    st.sampled_from(["/proc", "/sys", "/dev", "/run"]).flatmap(
        lambda tree: st.builds(lambda name: f"{tree}/{name}", st.text(NAME_CHARS, min_size=1, max_size=8))),
)
"""Relative, a whole system folder however written, inside a virtual file system."""


@SETTINGS
@given(call=st.one_of(
    NOT_JSON_OBJECT.map(lambda stdin: Call(("node", "restore"), ("snapshot",), stdin)),
    BAD_SNAPSHOT.map(lambda stdin: Call(("node", "restore"), ("snapshot",), stdin)),
    BAD_ROOT.map(lambda root: Call(("node", "manifest", "--", root), ("refusing to list",))),
    BAD_RECORDS.map(lambda stdin: Call(("node", "history", "--put"), ("records",), stdin)),
))
@example(call=Call(("node", "restore"), ("snapshot",), b"garbage"))
@example(call=Call(("node", "restore"), ("snapshot",), b'{"files": {}}'))
@example(call=Call(("node", "manifest", "--", "//etc"), ("refusing to list",)))
@example(call=Call(("node", "manifest", "--", "x\x1b[2J"), ("refusing to list",)))
def test_node_steps_refuse_what_they_cannot_use(system, roots, call):
    """The plumbing the master runs over SSH refuses a bad request before it touches
    anything: a snapshot is checked whole before the daemons are stopped for the restore."""
    result = refuse(system, roots, call)
    if call.argv[1] == "manifest":
        assert repr(call.argv[-1]) in result.err


def one_text_line(data: bytes) -> bool:
    """A line as the steps read it: UTF-8, and no line break in it."""
    try:
        return not set("\r\n") & set(data.decode("utf-8"))
    except UnicodeDecodeError:
        return False


@SETTINGS
@given(step=st.sampled_from(["sync-apply", "sync-put", "sync-get"]),
       lines=st.lists(NOT_JSON_OBJECT.filter(one_text_line), min_size=1, max_size=3))
@example(step="sync-apply", lines=[b"garbage", b"[]", b"null"])
def test_the_steps_kept_running_answer_a_bad_line_and_read_the_next(system, roots, step, lines):
    """The master keeps these running on the peer: a line they cannot use is answered with
    one clear error of its own, before anything is touched, and the next line is read."""
    root = roots["master"]
    system.touched.clear()
    before = tree(root)
    stdin = b"".join(line + b"\n" for line in lines) + b"{}\n"
    result = run_skutui(root, ("node", step), stdin)
    assert not system.touched, (system.touched, result)
    assert (result.code, result.err) == (0, ""), result
    *errors, ready = [json.loads(answer) for answer in result.out.splitlines()]
    assert ready == {} and len(errors) == len(lines), result
    for line, answer in zip(lines, errors, strict=True):
        assert list(answer) == ["error"], answer
        message = answer["error"]
        assert not leaked_names(message, line.decode()), message
        assert message.isprintable() and " request is not " in message, message
    assert tree(root) == before, "the folder changed"


# --- unknown commands and options -------------------------------------------------------------


def parsers(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()):
    """Every parser of the command line by its command path, the top one first."""
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from parsers(sub, (*path, name))


PARSERS = dict(parsers(cli.build_parser())) | {
    path: parser for path, parser in parsers(lab_cli.build_parser()) if path[:1] == ("lab",)}

REQUIRED = {
    ("cluster", "check"): ("--local-ip", LOCAL.ip, "--remote-ip", REMOTE.ip),
    ("cluster", "create"): ("--local-ip", LOCAL.ip, "--remote-ip", REMOTE.ip),
    ("maintenance",): ("on",),
    ("node", "maintenance"): ("on",),
    ("node", "manifest"): ("/srv/x",),
    ("node", "hand-over"): ("--timeout", "5"),
    ("agent", "notify"): ("master",),
    ("node", "drill", "mark"): ("drill-1",),
    ("node", "drill", "probe"): ("--address", "198.18.0.100", "--port", "49812"),
    ("node", "authorize-key"): ("--from", REMOTE.ip),
    ("node", "prove-key"): ("--to", REMOTE.ip),
    ("node", "pin-host-key"): ("--address", REMOTE.ip),
    ("lab", "reboot"): ("node-a",),
}
"""What each command needs besides an unknown option to be otherwise complete."""
TAKES_ANY_WORDS = {("exec",), ("lab", "exec")}
"""Their command after the options swallows whatever follows."""


def option_strings(parser: argparse.ArgumentParser) -> list[str]:
    return [name for action in parser._actions for name in action.option_strings]


def unknown_option(path: tuple[str, ...]) -> st.SearchStrategy[Call]:
    known = option_strings(PARSERS[path]) + option_strings(PARSERS[()])
    return st.text(string.ascii_lowercase + string.digits + "-", min_size=1, max_size=12).map(
        lambda name: f"--{name}").filter(
        lambda option: option != "--" and not any(k.startswith(option) for k in known)).map(
        lambda option: Call((*path, *REQUIRED.get(path, ()), option), (option,)))


def unknown_command(path: tuple[str, ...]) -> st.SearchStrategy[Call]:
    commands = {name for (*parent, name) in (p for p in PARSERS if p) if tuple(parent) == path}
    return argv_text(min_size=1).filter(lambda word: word not in commands and not word.startswith("-")).map(
        lambda word: Call((*path, word), ("invalid choice",)))


GROUPS = [path for path in PARSERS if any(isinstance(a, argparse._SubParsersAction) for a in PARSERS[path]._actions)]


def needs_a_command(parser: argparse.ArgumentParser) -> bool:
    return any(isinstance(a, argparse._SubParsersAction) and a.required for a in parser._actions)


@SETTINGS
@given(call=st.one_of(
    st.sampled_from([p for p in PARSERS if p not in TAKES_ANY_WORDS and not needs_a_command(PARSERS[p])]).flatmap(
        unknown_option),
    st.sampled_from(GROUPS).flatmap(unknown_command),
))
def test_unknown_commands_and_options_are_refused(system, roots, call):
    refuse(system, roots, call)


COVERED = {
    ("cluster", "check"): {"--local-ip", "--remote-ip", "--floating-ip", "--check-interval", "--failback",
                           "--virtual-router-id", "--heartbeat-transport", "--accept-host-key",
                           "--tracked-interfaces", "--synced-paths", "--services", "--services-on-both"},
    ("cluster", "edit"): {"--check-interval", "--failback", "--tracked-interfaces", "--floating-ip",
                          "--heartbeat-transport", "--synced-paths", "--services", "--services-on-both",
                          "--webhook-url", "--metrics-file"},
    ("history",): {"--since", "--kind"},
    ("node", "history"): {"--since", "--kind", "--limit"},
    ("node", "drill", "mark"): {"drill"},
    ("node", "drill", "probe"): {"--address", "--port"},
    ("maintenance",): {"state", "--node"},
    ("exec",): {"--wait", "--command-timeout", "command"},
    ("events",): {"--recent"},
    ("logs",): {"--lines"},
    ("lab", "reboot"): {"node"},
    ("node", "maintenance"): {"state"},
    ("node", "manifest"): {"roots"},
    ("node", "hand-over"): {"--timeout"},
    ("agent", "notify"): {"state"},
    ("lab", "up"): {"--advert"},
    ("lab", "exec"): {"node"},
    ("node", "authorize-key"): {"--from", "--replacing"},
    ("node", "prove-key"): {"--to"},
    ("node", "pin-host-key"): {"--address"},
    ("cluster", "rekey"): {"--accept-host-key"},
}
COVERED[("cluster", "create")] = COVERED[("cluster", "check")]
EXEMPT = {
    (("node", "manifest"), "--exclude"): "any folder may be left out of a manifest",
    (("lab", "exec"), "command"): "any command, or none for a login shell",
    (("agent", "notify"), "boot"): "keepalived's hook passes what it read; one that cannot be "
                                   "read makes the hand-over's moment now",
    (("agent", "notify"), "uptime"): "as boot",
}


def test_every_argument_that_takes_a_value_is_covered():
    """A new option or argument that takes a value needs its bad values above."""
    takes_values = {
        (path, action.option_strings[0] if action.option_strings else action.dest)
        for path, parser in PARSERS.items()
        for action in parser._actions
        if action.nargs != 0 and not isinstance(action, (argparse._SubParsersAction, argparse._HelpAction,
                                                         argparse._VersionAction))
    }
    covered = {(path, name) for path, names in COVERED.items() for name in names} | set(EXEMPT)
    assert takes_values == covered


# --- cluster.toml -----------------------------------------------------------------------------

DOCUMENT = codec.to_dict(default_cluster())
"""The valid document every bad one below is made from."""
NODES = list(DOCUMENT["nodes"])
LIST_KEYS = ("tracked_interfaces", "floating_ips", "synced_paths", "services", "services_on_both")


def toml(document: dict) -> bytes:
    return tomli_w.dumps(document).encode()


def changed(document: dict, path: tuple[str, ...], value) -> dict:
    """A deep copy of ``document`` with the value at ``path`` set (or removed when ``value``
    is REMOVE)."""
    copy = json.loads(json.dumps(document))
    *parents, last = path
    table = copy
    for key in parents:
        table = table[key]
    if value is REMOVE:
        del table[last]
    else:
        table[last] = value
    return copy


REMOVE = object()


@dataclass(frozen=True)
class BadFile:
    """The bytes of a cluster.toml that must be refused, and the key the error names
    (None when the fault is in the text itself: syntax, encoding)."""

    data: bytes
    key: tuple[str, ...] | None = None
    missing: bool = False
    """The key is not in the file: the message names it, no line can."""


def bad_value(path: tuple[str, ...], values: st.SearchStrategy, key: tuple[str, ...] | None = None):
    """The valid document with the value at ``path`` replaced; text that cannot be UTF-8
    (argv's surrogate escapes) is left to the cases of bytes that are not UTF-8."""

    def bad_file(value) -> BadFile | None:
        try:
            return BadFile(toml(changed(DOCUMENT, path, value)), key or path)
        except UnicodeEncodeError:
            return None

    return values.map(bad_file).filter(lambda bad: bad is not None)


TOML_SCALARS = st.one_of(st.booleans(), st.integers(-2**63, 2**63 - 1), st.floats(), st.text(max_size=12),
                         st.datetimes(), st.dates(), st.times())
TOML_VALUES = st.recursive(TOML_SCALARS, lambda inner: st.lists(inner, max_size=3)
                           | st.dictionaries(st.text(max_size=6), inner, max_size=3), max_leaves=6)


def of_another_kind(*kinds: type) -> st.SearchStrategy:
    """TOML values none of ``kinds`` (a boolean is never a number here)."""
    return TOML_VALUES.filter(lambda v: isinstance(v, bool) or not isinstance(v, kinds))


GOOD_ITEM = {"tracked_interfaces": "eth1", "floating_ips": FLOATING_IP, "synced_paths": "/etc/skutui",
             "services": "haproxy", "services_on_both": "nginx"}


def list_with(key: str, bad: st.SearchStrategy) -> st.SearchStrategy[list]:
    """A list for ``key`` of valid items and one bad one."""
    return st.builds(lambda good, item, at: good[:at] + [item] + good[at:],
                     st.lists(st.just(GOOD_ITEM[key]), max_size=1), bad, st.integers(0, 1))


BAD_HOSTNAME = st.one_of(
    st.sampled_from(["disabled", "LOCAL", "Remote", "", " ", "-a", "a-", "a..b", ".a", "a b", "a/b", "é"]),
    st.text(NAME_CHARS, min_size=64, max_size=80).map(lambda label: "a" + label),
    st.lists(st.text(string.ascii_lowercase, min_size=60, max_size=63), min_size=5, max_size=5).map(".".join),
)
"""Reserved words, bad characters or hyphens, a label over 63 or a name over 253 characters."""


def nodes_with(first: str, second: str, first_ip: str = LOCAL.ip, second_ip: str = REMOTE.ip) -> dict:
    return {first: {"ip": first_ip}, second: {"ip": second_ip}}


SERVICE_CHARS = string.ascii_letters + string.digits + ":_.@\\-"
BAD_SERVICE = st.builds(lambda a, bad, b: a + bad + b, st.text(SERVICE_CHARS, min_size=1, max_size=5),
                        st.characters(blacklist_categories=("Cs",), blacklist_characters="\0" + SERVICE_CHARS),
                        st.text(SERVICE_CHARS, min_size=1, max_size=5))
"""A character no unit name has, inside the name."""
BAD_SYNCED_PATH = st.one_of(
    argv_text(min_size=1).filter(lambda t: t.strip() and not t.strip().startswith("/")),
    st.builds(lambda a, b: f"/{a}/../{b}", st.text(NAME_CHARS, max_size=5), st.text(NAME_CHARS, max_size=5)),
)
BAD_FLOAT_INTERVAL = st.one_of(
    st.floats().filter(lambda x: not CHECK_INTERVAL_MIN <= x <= CHECK_INTERVAL_MAX),
    st.integers(-2**63, 2**63 - 1).filter(lambda n: not CHECK_INTERVAL_MIN <= n <= CHECK_INTERVAL_MAX),
    st.integers(int(MIN * 1000), int(MAX * 1000)).filter(lambda n: n % 10).map(lambda n: n / 1000),
)

BAD_DOCUMENTS = st.one_of(
    # The wrong kind of value for a key.
    *(bad_value((key,), of_another_kind(*kinds)) for key, kinds in {
        "schema_version": (int,), "interface": (str,), "check_interval": (int, float), "failback": (str,),
        "virtual_router_id": (int,), "heartbeat_transport": (str,), "nodes": (dict,),
        **{k: (list,) for k in LIST_KEYS}}.items()),
    *(bad_value((key,), list_with(key, of_another_kind(str))) for key in LIST_KEYS),
    bad_value(("nodes", NODES[1]), of_another_kind(dict)),
    bad_value(("nodes", NODES[1], "ip"), of_another_kind(str)),
    # A key missing, or one skutui does not know.
    *(st.just(BadFile(toml(changed(DOCUMENT, (key,), REMOVE)), (key,), missing=True))
      for key in codec.REQUIRED_ROOT_KEYS),
    st.just(BadFile(toml(changed(DOCUMENT, ("nodes", NODES[1], "ip"), REMOVE)), ("nodes", NODES[1]))),
    st.text(min_size=1, max_size=12).filter(lambda k: k not in codec.ROOT_KEYS).flatmap(
        lambda key: bad_value((key,), TOML_VALUES)),
    st.text(min_size=1, max_size=12).filter(lambda k: k != "ip").flatmap(
        lambda key: bad_value(("nodes", NODES[0], key), TOML_VALUES)),
    # Values out of range or not valid.
    bad_value(("schema_version",), st.integers(-2**63, 2**63 - 1).filter(lambda v: v != SCHEMA_VERSION)),
    bad_value(("check_interval",), BAD_FLOAT_INTERVAL),
    bad_value(("virtual_router_id",), st.integers(-2**63, 2**63 - 1).filter(lambda v: not 1 <= v <= 255)),
    bad_value(("failback",), st.text(max_size=12).filter(
        lambda t: t.strip().lower() not in {"disabled", *(node.lower() for node in NODES)})),
    bad_value(("interface",), BAD_INTERFACE_NAME),
    bad_value(("heartbeat_transport",), BAD_TRANSPORT),
    bad_value(("tracked_interfaces",), list_with("tracked_interfaces", BAD_INTERFACE_NAME)),
    bad_value(("floating_ips",), list_with("floating_ips", BAD_FLOATING_IP)),
    bad_value(("floating_ips",), TWICE_FLOATING.map(list)),
    bad_value(("synced_paths",), list_with("synced_paths", BAD_SYNCED_PATH)),
    bad_value(("services",), list_with("services", BAD_SERVICE | EMPTY)),
    bad_value(("services_on_both",), list_with("services_on_both", BAD_SERVICE | EMPTY)),
    st.just(BadFile(toml(changed(changed(DOCUMENT, ("services",), ["haproxy"]), ("services_on_both",),
                                 ["haproxy"])), ("services_on_both",))),
    st.sampled_from([0, 1]).flatmap(lambda at: bad_value(("nodes", NODES[at], "ip"), BAD_IP)),
    # The nodes: how many, their names, their addresses.
    bad_value(("nodes",), st.lists(st.text(NAME_CHARS, min_size=1, max_size=6), unique=True).filter(
        lambda names: len(names) != 2).map(
            lambda names: {n: {"ip": f"198.18.0.{i + 1}"} for i, n in enumerate(names)})),
    BAD_HOSTNAME.map(lambda name: BadFile(toml(changed(DOCUMENT, ("nodes",), nodes_with(NODES[0], name))),
                                          ("nodes", name))),
    st.just(BadFile(toml(changed(DOCUMENT, ("nodes",), nodes_with(NODES[0], NODES[0].upper()))),
                    ("nodes", NODES[0].upper()))),
    st.sampled_from([LOCAL.ip, "2001:db8::2"]).map(lambda ip: BadFile(
        toml(changed(DOCUMENT, ("nodes",), nodes_with(*NODES, second_ip=ip))), ("nodes", NODES[1], "ip"))),
)
"""Valid TOML that is not a valid cluster, each with the key the error must name."""

VALID = codec.dumps(default_cluster()).encode()
LAST_VALUE_END = VALID.rindex(b'"')
"""The closing quote of the last node's ip: cut before it, the file cannot be a cluster."""
assert VALID.rstrip().endswith(f'ip = "{REMOTE.ip}"'.encode())

BROKEN_TEXT = st.one_of(
    st.binary(max_size=200).filter(lambda data: b"nodes" not in data),
    st.integers(0, LAST_VALUE_END).map(lambda at: VALID[:at]),
    st.builds(lambda at, bad: VALID[:at] + bad + VALID[at:], st.integers(0, len(VALID)),
              st.sampled_from([b"\xff", b"\xfe", b"\x80", b"\xc3\x28", b"\xed\xa0\x80"])),
    st.sampled_from([VALID + f'\n[nodes.{NODES[0]}]\nip = "198.18.0.3"\n'.encode(),
                     b'interface = "eth1"\n' + VALID, VALID.replace(b"schema_version = 1", b"schema_version = ")]),
).map(BadFile)
"""Not UTF-8, not TOML, cut short, a key or table given twice."""


def assert_names_the_place(error: codec.ConfigError, bad: BadFile) -> None:
    """The line of the fault when the file has one; else the message names the key."""
    text = bad.data.decode("utf-8", "replace")
    if bad.key is not None:
        assert error.key == bad.key, (error.key, bad.key, str(error))
    if error.line is None:
        assert error.key and error.key[-1] in error.message, error
        assert not bad.key or bad.missing, f"no line for {bad.key}: {error}"
        return
    assert 1 <= error.line <= text.count("\n") + 1, error
    name = bad.key[-1] if bad.key else ""
    if re.fullmatch(r"[A-Za-z0-9_-]+", name):
        assert name in text.split("\n")[error.line - 1], (error, text)


READERS = [
    (("status",), 2), (("status", "--json"), 2), (("cluster", "show"), 2), (("cluster", "show", "--json"), 2),
    (("nodes",), 2), (("cluster", "edit", "--check-interval=2"), 2), (("maintenance", "on"), 2),
    (("cluster", "destroy"), 2), (("exec", "--", "true"), 2),
]
"""Commands that read this node's cluster.toml first, and their exit code on a bad one."""


@pytest.fixture(scope="module")
def config_root():
    with tempfile.TemporaryDirectory() as top:
        yield Path(top)


@settings(SETTINGS, max_examples=200)
@given(bad=st.one_of(BAD_DOCUMENTS, BROKEN_TEXT), reader=st.sampled_from(READERS))
@example(bad=BadFile(VALID.replace(b'"eth0"', b'"eth\\u001b"'), ("interface",)), reader=READERS[0])
@example(bad=BadFile(VALID.replace(b"= 1.0", b"= 1e308"), ("check_interval",)), reader=READERS[0])
@example(bad=BadFile(toml(changed(DOCUMENT, ("tracked_interfaces",), [{"a": 1}])), ("tracked_interfaces",)),
         reader=READERS[0])
@example(bad=BadFile(toml(changed(DOCUMENT, ("\x85",), False)), ("\x85",)), reader=READERS[0])
def test_a_bad_cluster_file_is_one_clear_error_and_stays_as_it_was(system, config_root, bad, reader):
    path = config_root / "cluster.toml"
    write_bytes_atomic(path, bad.data)
    before = tree(config_root)
    with pytest.raises(codec.ConfigError) as caught:
        store.load(path)
    error = caught.value
    message = str(error)
    assert message.startswith(f"{path}") and "\n" not in message and message.isprintable(), message
    assert not leaked_names(message, bad.data.decode("utf-8", "replace")), message
    assert_names_the_place(error, bad)

    argv, code = reader
    system.touched.clear()
    result = run_skutui(config_root, argv)
    assert not system.touched, system.touched
    assert result.code == code and result.out == "", result
    assert assert_clear(result.err, bad.data.decode("utf-8", "replace"), (str(path),)) == f"skutui: {message}"
    assert tree(config_root) == before, "the folder changed"


@SETTINGS
@given(bad=st.one_of(BAD_DOCUMENTS, BROKEN_TEXT))
@example(bad=BadFile(b"garbage"))
def test_node_apply_refuses_a_bad_cluster_file_on_standard_input(system, roots, bad):
    refuse(system, roots, Call(("node", "apply"), ("standard input",), bad.data))
