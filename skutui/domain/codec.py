"""cluster.toml as text: parsing, checking and writing it, without touching a disk.

The file is the cluster's shared configuration, copied from the master to the backup. It
is read with tomllib and written with tomli_w; every problem a reader can meet becomes one
``ConfigError`` naming the file and, where there is one, the line, so callers show it
instead of a traceback. ``skutui.system.store`` reads and writes the file itself.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from typing import Any

import tomli_w

from skutui.domain.errors import BadInput, Failed, ValidationError
from skutui.domain.model import SCHEMA_VERSION, ClusterConfig, Node
from skutui.domain.settings import SETTINGS, Kind, to_document
from skutui.domain.validation import validate_config

FILE_MODE = 0o600
"""The cluster file lists the nodes' addresses and roles' policy: readable by root only."""

HEADER = "# skutui cluster configuration, shared by both nodes. Change it with skutui.\n"

NODES_KEY = "nodes"
NODE_IP_KEY = "ip"

ROOT_KEYS = ("schema_version", *(setting.key for setting in SETTINGS), NODES_KEY)
REQUIRED_ROOT_KEYS = ("schema_version", *(s.key for s in SETTINGS if s.required), NODES_KEY)
"""Keys without a default; the others take the model's defaults when absent."""

_TOML_POSITION = re.compile(r"\s*\(at line (\d+), column (\d+)\)\s*$")
_TOML_AT_END = re.compile(r"\s*\(at end of document\)\s*$")
_SEGMENT = r"""(?:[A-Za-z0-9_-]+|"(?:[^"\\]|\\.)*"|'[^']*')"""
_DOTTED = rf"{_SEGMENT}(?:\s*\.\s*{_SEGMENT})*"
_TABLE_HEADER = re.compile(rf"^\s*\[\[?\s*({_DOTTED})\s*\]")
"""A table's header, ``[a.b]``, or an array of tables' entry, ``[[a.b]]``."""
_KEY_LINE = re.compile(rf"^\s*({_DOTTED})\s*=")


class ConfigError(Failed):
    """cluster.toml cannot be read or written; ``str()`` names the file and the line."""

    def __init__(
        self,
        source: str | os.PathLike[str],
        message: str,
        *,
        line: int | None = None,
        column: int | None = None,
        key: tuple[str, ...] = (),
    ) -> None:
        self.source = str(source)
        self.message = message
        self.line = line
        self.column = column
        self.key = key
        super().__init__(str(self))

    def __str__(self) -> str:
        where = self.source
        if self.line is not None:
            where += f", line {self.line}"
            if self.column is not None:
                where += f", column {self.column}"
        return f"{where}: {self.message}"


class ConfigInvalid(BadInput, ConfigError):
    """cluster.toml was read but its contents are wrong (encoding, syntax, a key or a
    value): bad input, which the command line answers with exit code 2."""


def load_bytes(raw: bytes, source: str = "<cluster.toml>") -> ClusterConfig:
    """Decode (UTF-8), parse and check the bytes of cluster.toml; ``source`` names them in errors."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        line = raw[: error.start].count(b"\n") + 1
        raise ConfigInvalid(source, "the file is not UTF-8 text.", line=line) from None
    return loads(text, source=source)


def loads(text: str, source: str = "<cluster.toml>") -> ClusterConfig:
    """Parse and check the text of cluster.toml; ``source`` names it in errors."""
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise _syntax_error(error, text, source) from None
    try:
        cfg = _config_from_document(document)
        return validate_config(cfg)
    except _KeyProblem as problem:
        raise ConfigInvalid(
            source, problem.message, line=_locate(text, problem.key), key=problem.key
        ) from None
    except ValidationError as error:
        raise ConfigInvalid(
            source, error.message, line=_locate(text, error.key), key=error.key
        ) from None


def dumps(cfg: ClusterConfig) -> str:
    """The TOML text of ``cfg``, as ``save`` writes it. Raises ValidationError on a bad value."""
    return HEADER + tomli_w.dumps(to_dict(validate_config(cfg)))


def to_dict(cfg: ClusterConfig) -> dict[str, Any]:
    """``cfg`` as plain data with the keys of cluster.toml, for TOML and JSON alike."""
    document: dict[str, Any] = {"schema_version": cfg.schema_version, **to_document(cfg)}
    document[NODES_KEY] = {node.hostname: {NODE_IP_KEY: node.ip} for node in cfg.nodes}
    return document


class _KeyProblem(Exception):
    """A missing, unknown or wrongly typed key, before the values themselves are checked."""

    def __init__(self, key: tuple[str, ...], message: str) -> None:
        super().__init__(message)
        self.key = key
        self.message = message


def _type_name(value: object) -> str:
    names = {bool: "a boolean", int: "an integer", float: "a number", str: "text",
             list: "a list", dict: "a table"}
    for kind, name in names.items():
        if type(value) is kind:
            return name
    return type(value).__name__


def _require(document: Mapping[str, Any], key: str, kinds: tuple[type, ...], what: str,
             path: tuple[str, ...] = ()) -> Any:
    value = document[key]
    if (isinstance(value, bool) and bool not in kinds) or not isinstance(value, kinds):
        raise _KeyProblem((*path, key), f"{key} must be {what}, not {_type_name(value)} ({value!r}).")
    return value


def _setting(document: Mapping[str, Any], key: str, kind: Kind) -> Any:
    """A setting's raw value as the file writes it, its TOML type checked (its meaning is
    checked with the whole configuration)."""
    value = _require(document, key, kind.toml_types, kind.described)
    if kind is Kind.TEXT_LIST:
        for item in value:
            if not isinstance(item, str):
                raise _KeyProblem((key,), f"{key} must hold only text, not {_type_name(item)} ({item!r}).")
        return tuple(value)
    return value


def _config_from_document(document: Mapping[str, Any]) -> ClusterConfig:
    unknown = [key for key in document if key not in ROOT_KEYS]
    if unknown:
        raise _KeyProblem(
            (unknown[0],),
            f"unknown key {unknown[0]!r}; remove it or check the spelling "
            f"(known keys: {', '.join(ROOT_KEYS)}).",
        )
    for key in REQUIRED_ROOT_KEYS:
        if key not in document:
            raise _KeyProblem((key,), f"the key {key!r} is missing.")
    version = _require(document, "schema_version", (int,), "an integer")
    if version != SCHEMA_VERSION:
        raise _KeyProblem(
            ("schema_version",),
            f"schema_version {version} is not one this skutui reads (it reads "
            f"{SCHEMA_VERSION}); use the skutui version that wrote the file.",
        )
    given = {setting.key: _setting(document, setting.key, setting.kind)
             for setting in SETTINGS if setting.key in document}
    return ClusterConfig(
        nodes=_nodes(_require(document, NODES_KEY, (dict,), "a table of two nodes")),
        schema_version=version,
        **given,
    )


def _nodes(table: Mapping[str, Any]) -> tuple[Node, Node]:
    if len(table) != 2:
        raise _KeyProblem(
            (NODES_KEY,),
            f"{NODES_KEY} has {len(table)} node(s); the cluster needs exactly two "
            '([nodes."HOSTNAME"] tables with ip = "ADDRESS").',
        )
    nodes = []
    for hostname, entry in table.items():
        path = (NODES_KEY, hostname)
        if not isinstance(entry, dict):
            raise _KeyProblem(path, f'node {hostname!r} must be a table with ip = "ADDRESS".')
        unknown = [key for key in entry if key != NODE_IP_KEY]
        if unknown:
            raise _KeyProblem(
                (*path, unknown[0]),
                f"unknown key {unknown[0]!r} in node {hostname!r}; a node has only {NODE_IP_KEY!r}.",
            )
        if NODE_IP_KEY not in entry:
            raise _KeyProblem(path, f"node {hostname!r} has no {NODE_IP_KEY!r} key.")
        ip = _require(entry, NODE_IP_KEY, (str,), "text", path)
        nodes.append(Node(hostname, ip))
    return nodes[0], nodes[1]


def _syntax_error(error: tomllib.TOMLDecodeError, text: str, source: str) -> ConfigInvalid:
    message = str(error)
    position = _TOML_POSITION.search(message)
    if position:
        line, column = int(position.group(1)), int(position.group(2))
        message = message[: position.start()]
    else:
        line = text.count("\n") + 1
        column = None
        message = _TOML_AT_END.sub("", message) + " at the end of the file"
    return ConfigInvalid(source, f"TOML syntax error: {message}.", line=line, column=column)


def _parse_dotted(text: str) -> tuple[str, ...] | None:
    """A dotted TOML key as a tuple, parsed by tomllib itself so quoting rules are exact."""
    try:
        document: Any = tomllib.loads(f"{text} = 0")
    except tomllib.TOMLDecodeError:
        return None
    parts: list[str] = []
    while isinstance(document, dict) and len(document) == 1:
        (name, document), = document.items()
        parts.append(name)
    return tuple(parts)


def _locate(text: str, key: tuple[str, ...]) -> int | None:
    """The 1-based line of ``key``: where it is written, else where its first sub-table starts,
    else the header of the closest table that holds it.

    None when the key belongs to the root table and is not in the file: there is no line to
    point at, and the message names the key.
    """
    table: tuple[str, ...] = ()
    inside: int | None = None
    best_line: int | None = None
    best_depth = 0
    # TOML ends a line with \n only; splitlines() would also break at \x85 or \u2028 in a value.
    for number, line in enumerate(text.split("\n"), start=1):
        header = _TABLE_HEADER.match(line)
        if header:
            table = _parse_dotted(header.group(1)) or ()
            found = table
        else:
            assignment = _KEY_LINE.match(line)
            if not assignment:
                continue
            found = (*table, *(_parse_dotted(assignment.group(1)) or ()))
        if found == key:
            return number
        if inside is None and found[: len(key)] == key:
            inside = number
        elif len(found) > best_depth and key[: len(found)] == found:
            best_line, best_depth = number, len(found)
    return inside if inside is not None else best_line
