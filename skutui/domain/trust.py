"""What one node lets the other do with skutui's key: the line of root's authorized_keys
that allows it, the commands that key may run, and the lines that hold it, found so that
destroy and erase remove exactly those, and nothing of root's own.

Each node logs in to the other as root with a key of its own. The line that allows it
carries ``restrict`` (no terminal, no forwarding of ports, agent or X11), ``from=`` the
peer's cluster address, a forced command, :data:`SERVE_COMMAND`, and the comment
``skutui@…`` (:data:`KEY_COMMENT`). Whatever the holder of the key asks for, sshd runs
the forced command instead and hands it the request in ``SSH_ORIGINAL_COMMAND``;
:func:`served` decides what of it runs: skutui's own steps, never a shell, another command
or SFTP. The forced command and the comment both mark a line as skutui's.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import shlex
from collections.abc import Collection
from dataclasses import dataclass

from skutui.domain.errors import BadInput

KEY_COMMENT = "skutui@"
"""The start of the comment of every key skutui makes or allows (``skutui@HOSTNAME``,
``skutui@peer``)."""

NODE_COMMAND = ("skutui", "node")
"""What the other node runs here: ``skutui node STEP …``."""
EVENTS_COMMAND = ("skutui", "events", "--json", "--recent", "0")
"""This node's agent events, followed by the console on the other node."""
VERSION_COMMAND = ("skutui", "--version")
SERVE_COMMAND = shlex.join((*NODE_COMMAND, "serve"))
"""The forced command of every skutui key: the dispatcher of ``skutui node serve``."""

KEY_TYPES = frozenset({
    "ssh-ed25519", "ssh-rsa", "ssh-dss", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521", "sk-ssh-ed25519@openssh.com", "sk-ecdsa-sha2-nistp256@openssh.com",
})

SERVED_NODE_STEPS = frozenset({
    # the lifecycle's (create, edit, destroy, maintenance, rollback) and the node table's
    "facts", "inventory", "snapshot", "restore", "apply", "reload", "start", "stop", "erase",
    "maintenance", "change", "pin-peer-link", "hand-over", "commit",
    # the sync's, the replication's, and what the master's agent reads of the backup's
    "manifest", "sync-apply", "sync-put", "sync-get", "replay", "agent-state", "history",
    "drill",
    # the key rotation's (``skutui cluster rekey``)
    "authorize-key", "new-key", "prove-key", "commit-key", "pin-host-key",
})
"""The ``skutui node`` steps the other node runs here."""
LOCAL_NODE_STEPS = frozenset({"serve", "journal", "prepare", "units", "recover"})
"""The ``skutui node`` steps only this node runs: sshd's dispatcher, the journal, what
keepalived's unit and the package run here, and the operator's recovery."""
SERVED_COMMANDS = (VERSION_COMMAND, EVENTS_COMMAND)
"""Whole commands the other node runs here, besides the node steps."""
SHOWN_MAX = 80


class KeyRefused(BadInput):
    """What the key asked for is not one of skutui's own steps; nothing ran."""


class NotAPublicKey(BadInput):
    """A text given as an OpenSSH public key is not one."""


@dataclass(frozen=True)
class KeyLine:
    """One line of authorized_keys: ``[options] type base64 [comment]``."""

    options: tuple[str, ...]
    key_type: str
    body: str
    comment: str

    @property
    def is_skutui(self) -> bool:
        return self.option("command") == SERVE_COMMAND or self.comment.startswith(KEY_COMMENT)

    def option(self, name: str) -> str | None:
        """The value of option ``name`` without its quotes; None if the line has none."""
        for option in self.options:
            key, _, value = option.partition("=")
            if key.lower() == name:
                return value[1:-1] if value.startswith('"') else value
        return None


def public_key_fields(text: str, origin: str = "public key") -> tuple[str, str, str]:
    """(type, base64 body, comment) of an OpenSSH public key line, checked: the type is a
    key type and the body decodes to a key of that type, so garbage never gets installed."""
    fields = text.strip().split(None, 2)
    if len(fields) < 2 or fields[0] not in KEY_TYPES:
        raise NotAPublicKey(f"{origin} is not an OpenSSH public key line: {text.strip()[:60]!r}")
    key_type, body = fields[0], fields[1]
    if _blob_type(body) != key_type:
        raise NotAPublicKey(f"{origin} is not an OpenSSH public key: its base64 body does "
                            f"not hold a {key_type} key")
    return key_type, body, fields[2].strip() if len(fields) > 2 else ""


def key_body(text: str) -> str:
    """``text`` if it is the base64 body of an OpenSSH public key of a known type."""
    if _blob_type(text) not in KEY_TYPES:
        raise NotAPublicKey(f"{text[:60]!r} is not the base64 body of a public key of a "
                            "known type")
    return text


def _blob_type(body: str) -> str | None:
    try:
        blob = base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError):
        return None
    name_length = int.from_bytes(blob[:4], "big")
    return blob[4:4 + name_length].decode("ascii", "replace")


def key_line(public_key: str, from_address: str, comment: str) -> str:
    """The authorized_keys line that lets the peer at ``from_address`` run skutui's steps
    with ``public_key`` ("type base64 …"), and nothing else: no terminal, no forwarding."""
    try:
        address = str(ipaddress.ip_address(from_address))
    except ValueError:
        raise BadInput(f"the peer's address {from_address!r} is not an IP address; a key is "
                       "allowed from the peer's cluster IP only") from None
    key_type, body, _ = public_key_fields(public_key)
    return f'restrict,from="{address}",command="{SERVE_COMMAND}" {key_type} {body} {comment}'


def authorize(text: str, public_key: str, from_address: str, comment: str, *,
              only: bool = False, replacing: Collection[str] = ()) -> tuple[str, bool]:
    """authorized_keys ``text`` with ``public_key`` allowed skutui's steps from
    ``from_address``, and whether that changed anything. A line already holding the same key
    (with other options, or none: a cluster made before) is replaced, so the key is never
    allowed more. ``only``: every other skutui key goes, and so do the keys whose bodies are
    in ``replacing`` whatever their line holds (an old key allowed by hand carries no mark
    of skutui's)."""
    wanted = key_line(public_key, from_address, comment)
    body = public_key_fields(public_key)[1]
    kept = [line for line in text.splitlines()
            if (parsed := parse_line(line)) is None
            or not (parsed.body == body
                    or (only and (parsed.is_skutui or parsed.body in replacing)))]
    new = "\n".join([*kept, wanted]) + "\n"
    return new, new != text


def parse_line(line: str) -> KeyLine | None:
    """The key a line of authorized_keys holds; None for blanks, comments and lines that
    hold no key this parser knows (they are kept as they are)."""
    text = line.strip()
    if not text or text.startswith("#"):
        return None
    head, rest = _split_first(text)
    options: tuple[str, ...] = ()
    if head not in KEY_TYPES:
        options = tuple(_split_options(head))
        head, rest = _split_first(rest)
        if head not in KEY_TYPES:
            return None
    fields = rest.split(None, 1)
    if not fields:
        return None
    return KeyLine(options, head, fields[0], fields[1].strip() if len(fields) > 1 else "")


def _split_first(text: str) -> tuple[str, str]:
    """The first word (spaces inside double quotes belong to it) and the rest."""
    quoted = False
    index = 0
    while index < len(text):
        char = text[index]
        if char == "\\" and quoted:
            index += 2
            continue
        if char == '"':
            quoted = not quoted
        elif char in " \t" and not quoted:
            return text[:index], text[index:].strip()
        index += 1
    return text, ""


def _split_options(text: str) -> list[str]:
    options, start, quoted, index = [], 0, False, 0
    while index < len(text):
        char = text[index]
        if char == "\\" and quoted:
            index += 2
            continue
        if char == '"':
            quoted = not quoted
        elif char == "," and not quoted:
            options.append(text[start:index])
            start = index + 1
        index += 1
    options.append(text[start:])
    return options


def revoke(text: str, bodies: Collection[str] | None = None) -> tuple[str, int]:
    """authorized_keys ``text`` without skutui's keys (``bodies``: only these keys, whatever
    their options), and how many lines went. Every other line is kept as it was."""
    kept, removed = [], 0
    for line in text.splitlines():
        parsed = parse_line(line)
        gone = parsed is not None and (parsed.body in bodies if bodies is not None
                                       else parsed.is_skutui)
        if gone:
            removed += 1
        else:
            kept.append(line)
    if not removed:
        return text, 0
    return ("\n".join(kept) + "\n" if kept else ""), removed


def skutui_keys(text: str) -> list[KeyLine]:
    return [parsed for line in text.splitlines()
            if (parsed := parse_line(line)) is not None and parsed.is_skutui]


def served(original: str | None) -> list[str]:
    """The skutui command line (without the leading ``skutui``) that the key's request
    ``original`` (sshd's ``SSH_ORIGINAL_COMMAND``) may run here; :class:`KeyRefused` for
    anything else. The request is split as a shell would and compared word by word; it is
    never handed to a shell. It must be quoted exactly as skutui quotes what it sends
    (``shlex.join``): anything a shell would read otherwise is not skutui's."""
    if not original or not original.strip():
        raise KeyRefused("skutui's key opens no shell here: it runs skutui's own steps "
                         "(`skutui node …`) and nothing else")
    shown = original if len(original) <= SHOWN_MAX else original[:SHOWN_MAX] + "…"
    try:
        argv = shlex.split(original)
    except ValueError:
        argv = []
    if shlex.join(argv) != original:
        argv = []
    if tuple(argv) in SERVED_COMMANDS:
        return argv[1:]
    if len(argv) >= 3 and tuple(argv[:2]) == NODE_COMMAND and argv[2] in SERVED_NODE_STEPS:
        return argv[1:]
    raise KeyRefused(f"skutui's key runs only skutui's own steps here; refused `{shown}`")
