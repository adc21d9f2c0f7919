"""Every cluster setting, declared once.

A setting's key is its name everywhere: the attribute of ``ClusterConfig``, the key in
cluster.toml and in ``--json`` output, the ``--flag`` (with dashes) and the field of a form.
Its row below says how the operator calls it (the label on screen, in messages, in ``cluster
show`` and in the "what changed" lines), how it is checked, how it is shown, and whether
``cluster create`` and ``cluster edit`` take it. The codec, the command line, the console's
Details screen and the lifecycle all read this table; adding a setting is one row and its
check here, its field in the model, what the renderers do with it and its form field.
"""

from __future__ import annotations

import dataclasses
import enum
import ipaddress
import re
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import urlsplit

from skutui.domain import values
from skutui.domain.errors import ValidationError
from skutui.domain.model import (
    CHECK_INTERVAL_MAX,
    CHECK_INTERVAL_MIN,
    CHECK_INTERVAL_STEP,
    DEBIAN_TEXTFILE_DIR,
    FAILBACK_DISABLED,
    LINK_SEPARATOR,
    METRICS_FILE_SUFFIX,
    TRANSPORTS,
    ClusterConfig,
)
from skutui.domain.syncplan import UNSAFE_ROOTS, VIRTUAL_TREES

FAILBACK_LOCAL = "local"
FAILBACK_REMOTE = "remote"
FAILBACK_WORDS = (FAILBACK_DISABLED, FAILBACK_LOCAL, FAILBACK_REMOTE)
"""Words the failback setting gives a meaning of its own; a node may not be named so."""

WEBHOOK_URL_MAX = 2048
VIRTUAL_ROUTER_ID_MIN = 1
VIRTUAL_ROUTER_ID_MAX = 255

_SERVICE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9:_.@-]*")
"""A service as ``service NAME start`` and systemd units take it; the first character is
never ``-``, so a name can never be read as an option."""
OWN_DAEMONS = ("keepalived", "conntrackd")
"""Started and stopped by skutui itself: never a service of the operator's lists."""


class Kind(enum.Enum):
    """How a value is written in cluster.toml; the value is what a message calls it."""

    NUMBER = "a number of seconds"
    INTEGER = "an integer"
    TEXT = "text"
    TEXT_LIST = "a list of text"

    @property
    def toml_types(self) -> tuple[type, ...]:
        return _TOML_TYPES[self]

    @property
    def described(self) -> str:
        return str(self.value)


_TOML_TYPES: dict[Kind, tuple[type, ...]] = {
    Kind.NUMBER: (int, float), Kind.INTEGER: (int,), Kind.TEXT: (str,), Kind.TEXT_LIST: (list,)}


@dataclass(frozen=True)
class Context:
    """What a check or a display may need to know besides the value itself; what is not
    known is None (or empty), and the checks that need it are left for later."""

    local: str | None = None
    """This node's hostname."""
    remote: str | None = None
    """The peer's hostname."""
    nodes: tuple[str, ...] = ()
    """Both hostnames, as cluster.toml lists them."""
    node_ips: tuple[str, ...] = ()
    interface: str | None = None
    """The cluster NIC."""
    links: Collection[str] | None = None
    """This node's link names; None checks names for their spelling only."""
    peer_links: Collection[str] | None = None
    """The peer's link names, when it was asked; None leaves that check to pre-flight."""

    @classmethod
    def of(cls, config: ClusterConfig, local: str | None = None,
           links: Collection[str] | None = None,
           peer_links: Collection[str] | None = None) -> Context:
        """The context of an existing cluster, seen from ``local``."""
        names = tuple(node.hostname for node in config.nodes)
        remote = next((name for name in names if name != local), None) if local else None
        return cls(local=local, remote=remote, nodes=names,
                   node_ips=tuple(node.ip for node in config.nodes),
                   interface=config.interface, links=links, peer_links=peer_links)

    def missing_link(self, name: str) -> str | None:
        """Where link ``name`` is missing ("this node", the peer's name), if it is known to be."""
        if self.links is not None and name not in self.links:
            return "this node"
        if self.peer_links is not None and name not in self.peer_links:
            return self.remote or "the peer"
        return None

    def known_links(self) -> str:
        """The links both nodes have (as far as known), for a message's fix."""
        known = set(self.links if self.links is not None else self.peer_links or ())
        if self.peer_links is not None:
            known &= set(self.peer_links)
        return ", ".join(sorted(known)) or "none"


Check = Callable[[Any, Context], Any]
Show = Callable[[Any, Context], str]


def _listed(value: Sequence[str], context: Context) -> str:
    return ", ".join(value) or "none"


def _plain(value: object, context: Context) -> str:
    return str(value)


@dataclass(frozen=True)
class Setting:
    key: str
    label: str
    """The operator's words for it: screen label, message subject, ``cluster show`` line."""
    kind: Kind
    check: Check
    """Operator value (text or list) -> the normalised value cluster.toml holds."""
    show: Show = _plain
    item: str = ""
    """What one item of a list is called in a message ("Floating IP"); the label if empty."""
    flag_help: str = ""
    metavar: str = ""
    repeat: bool = False
    """The flag is repeated, once an item (``--floating-ip A --floating-ip B``), instead of
    taking a comma-separated list."""
    aliases: tuple[str, ...] = ()
    """Older spellings of the flag, still accepted."""
    on_create: bool = False
    on_edit: bool = False
    required: bool = False
    """cluster.toml must name it (the others take the model's default when absent)."""

    @property
    def flag(self) -> str:
        name = self.key.removesuffix("s") if self.repeat else self.key
        return "--" + name.replace("_", "-")

    @property
    def default(self) -> Any:
        found = {field.name: field for field in dataclasses.fields(ClusterConfig)}[self.key]
        return found.default

    def read(self, text: str) -> Any:
        """A flag's text, checked for what can be checked without the cluster (a repeated
        flag's text is one item of the list)."""
        if self.repeat:
            return self.check([text], Context())[0]
        return self.check(text, Context())

    def shown(self, value: Any, context: Context = Context()) -> str:
        return self.show(value, context)

    @property
    def item_label(self) -> str:
        return self.item or self.label


# --- the checks ------------------------------------------------------------------------------


def _check_interval(value: object, context: Context) -> float:
    """Seconds between VRRP adverts: 0.1 to 40 in steps of 0.01 (VRRPv3 counts centiseconds)."""
    fix = (
        f"enter seconds from {CHECK_INTERVAL_MIN:g} to {CHECK_INTERVAL_MAX:g} "
        f"in steps of {CHECK_INTERVAL_STEP:g}"
    )

    def problem(what: str) -> ValidationError:
        return values.problem("check_interval", CHECK_INTERVAL.label, what, fix=fix)

    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise problem(f"{value!r} is not a number")
    text = value.strip() if isinstance(value, str) else repr(value)
    if not text:
        raise problem("is empty")
    try:
        seconds = Decimal(text)
    except InvalidOperation:
        raise problem(f"{text!r} is not a number") from None
    if not seconds.is_finite():
        raise problem(f"{text!r} is not a number")
    try:
        finer = seconds != seconds.quantize(Decimal(str(CHECK_INTERVAL_STEP)))
    except InvalidOperation:  # too many digits to quantize: far out of range, said below
        finer = False
    if finer:
        raise problem(f"{text} has more than two decimals")
    if not Decimal(str(CHECK_INTERVAL_MIN)) <= seconds <= Decimal(str(CHECK_INTERVAL_MAX)):
        raise problem(f"{text} is out of range")
    return float(seconds)


def _show_seconds(value: float, context: Context) -> str:
    return f"{values.format_seconds(value)} s"


def _check_failback(value: object, context: Context) -> str:
    """``disabled`` or the hostname of the node that takes the floating IPs back on return.

    The operator may say ``disabled``, ``local``, ``remote`` or either hostname (any case).
    Before the peer is contacted its hostname is unknown: ``remote`` is kept as the word,
    and a hostname other than this node's is refused.
    """
    label = FAILBACK.label
    known = [name for name in (context.local, context.remote, *context.nodes) if name]
    names = list(dict.fromkeys(known))
    choices = (f"{FAILBACK_DISABLED}, {names[0]} or {names[1]}" if len(names) == 2
               else f"{FAILBACK_DISABLED}, {FAILBACK_LOCAL} or {FAILBACK_REMOTE}")
    given = values.text(value, "failback", label, choices)
    word = given.lower()
    if word == FAILBACK_DISABLED:
        return FAILBACK_DISABLED
    if word in (FAILBACK_LOCAL, FAILBACK_REMOTE):
        side = context.local if word == FAILBACK_LOCAL else context.remote
        if side is not None:
            return side
        if not context.nodes:
            return word
    else:
        values.hostname_spelling(given, "failback", label)
        for name in names:
            if word == name.lower():
                return name
        if not names:
            return given
        if len(names) == 1:
            raise ValidationError(
                "failback", f"{label} {given!r} is not this node; enter {choices} (the peer's "
                "hostname is known once the peer is contacted).")
    raise ValidationError("failback", f"{label} {given!r} is not a node of this cluster; "
                                      f"enter {choices}.")


def _show_failback(value: str, context: Context) -> str:
    if value == FAILBACK_DISABLED:
        return value
    if value == context.local:
        return f"{value} (this node)"
    if value == context.remote:
        return f"{value} (the peer)"
    return value


def _check_heartbeat_transport(value: object, context: Context) -> str:
    label = HEARTBEAT_TRANSPORT.label
    choices = " or ".join(TRANSPORTS)
    given = values.text(value, "heartbeat_transport", label, choices)
    if given.lower() not in TRANSPORTS:
        raise ValidationError("heartbeat_transport", f"{label} {given!r} is not a transport "
                                                     f"VRRP offers here; enter {choices}.")
    return given.lower()


def _check_interface(value: object, context: Context) -> str:
    return values.interface_name(value, "interface", INTERFACE.label)


def _check_tracked_interfaces(value: object, context: Context) -> tuple[str, ...]:
    """Links keepalived watches besides the cluster NIC, without repeats; the cluster NIC is
    dropped from the list, since keepalived always tracks it. Each must exist on both nodes
    (as far as ``context`` knows their links): a link missing on one node keeps it in FAULT."""
    found: dict[str, None] = {}
    for item in values.words(value):
        name = values.interface_name(item, "tracked_interfaces", TRACKED_INTERFACES.item_label)
        if name == context.interface:
            continue
        missing = context.missing_link(name)
        if missing:
            raise ValidationError(
                "tracked_interfaces",
                f"{TRACKED_INTERFACES.item_label} {name} does not exist on {missing}; enter "
                f"links both nodes have: {context.known_links()}.",
            )
        found.setdefault(name, None)
    return tuple(found)


def _show_tracked_interfaces(value: Sequence[str], context: Context) -> str:
    return ", ".join(dict.fromkeys([*([context.interface] if context.interface else []), *value]))


def _floating_ip(item: object, context: Context) -> tuple[str, str]:
    """One floating IP as (``address/prefix``, its link or "" for the cluster NIC)."""
    label = FLOATING_IPS.item_label
    given = values.text(item, "floating_ips", label,
                        "an address with its prefix, such as 198.18.0.100/24")
    address, separator, link = given.rpartition(LINK_SEPARATOR)
    if not separator:
        address, link = given, ""
    cidr = values.address_with_prefix(address, "floating_ips", label)
    if separator:
        if not link.strip():
            raise ValidationError("floating_ips", f"{label} {given!r} names no link after "
                                                  f"'{LINK_SEPARATOR}'; enter CIDR@LINK, such "
                                                  "as 198.18.1.100/24@eth1, or the CIDR alone.")
        link = values.interface_name(link, "floating_ips", f"The link of {label.lower()} {cidr}")
    if link == context.interface:
        link = ""
    missing = context.missing_link(link) if link else None
    if missing:
        raise ValidationError(
            "floating_ips", f"{label} {cidr}: link {link} does not exist on {missing}; name a "
                            f"link both nodes have ({context.known_links()}), or none for the "
                            "cluster NIC.")
    return cidr, link


def _check_floating_ips(value: object, context: Context) -> tuple[str, ...]:
    """Each floating IP as ``address/prefix``, with ``@LINK`` when another link than the
    cluster NIC carries it (the link must exist on both nodes, as far as ``context`` knows);
    no repeats and none a node's own cluster IP."""
    label = FLOATING_IPS.item_label
    nodes = {ipaddress.ip_address(ip) for ip in context.node_ips}
    seen: dict[values.IPAddress, str] = {}
    for item in values.words(value):
        cidr, link = _floating_ip(item, context)
        ip = ipaddress.ip_interface(cidr).ip
        if ip in nodes:
            raise ValidationError(
                "floating_ips",
                f"{label} {cidr} is a node's own cluster address; "
                "a floating IP must be an address no node owns.",
            )
        if ip in seen:
            raise ValidationError(
                "floating_ips", f"{label} {ip} is listed twice ({seen[ip]} and {cidr}); keep one.")
        seen[ip] = f"{cidr}{LINK_SEPARATOR}{link}" if link else cidr
    return tuple(seen.values())


def _check_synced_paths(value: object, context: Context) -> tuple[str, ...]:
    """Absolute paths the master copies to the backup; never a whole system folder (the
    sync mirrors with deletes) nor a virtual or runtime file system."""
    label = SYNCED_PATHS.item_label
    found: dict[str, None] = {}
    for item in values.words(value):
        given = values.text(item, "synced_paths", label, "an absolute path such as /etc/haproxy")
        path = PurePosixPath(given)
        if not path.is_absolute() or ".." in path.parts or given.startswith("//"):
            raise ValidationError(
                "synced_paths",
                f"{label} {given!r} is not an absolute path without '..'; "
                "enter one such as /etc/haproxy.",
            )
        if str(path) in UNSAFE_ROOTS:
            raise ValidationError(
                "synced_paths", f"{label} {path} is a whole system folder, which the sync "
                                "would mirror with deletes onto the backup; name the folder of "
                                "the service, such as /etc/haproxy.")
        if any(path == PurePosixPath(tree) or PurePosixPath(tree) in path.parents
               for tree in VIRTUAL_TREES):
            raise ValidationError(
                "synced_paths", f"{label} {path} is on a virtual or runtime file system; name "
                                "a folder of configuration, such as /etc/haproxy.")
        found.setdefault(str(path), None)
    return tuple(found)


def _service_name(item: object, key: str, label: str) -> str:
    given = values.text(item, key, label, "a service name such as haproxy")
    if given.startswith("-"):
        raise ValidationError(key, f"{label} {given!r} starts with '-', which would be read as "
                                   "an option; enter the service's name, such as haproxy.")
    if any(ch.isspace() for ch in given):
        raise ValidationError(key, f"{label} {given!r} contains a space; enter one name per "
                                   "item, comma separated, such as haproxy,nginx.")
    if "/" in given:
        raise ValidationError(key, f"{label} {given!r} contains '/'; enter the service's name "
                                   "(haproxy), not a path to its script or unit.")
    if not _SERVICE_NAME.fullmatch(given):
        raise ValidationError(key, f"{label} {given!r} is not a service name; use letters, "
                                   "digits and : _ . @ - only, such as haproxy.")
    if given in OWN_DAEMONS:
        raise ValidationError(key, f"{label} {given!r} is started and stopped by skutui "
                                   "itself; leave it out of the list.")
    return given


def _services_of(key: str) -> Check:
    def check(value: object, context: Context) -> tuple[str, ...]:
        label = BY_KEY[key].item_label
        found: dict[str, None] = {}
        for item in values.words(value):
            found.setdefault(_service_name(item, key, label), None)
        return tuple(found)

    check.__doc__ = f"The service names of {key}, without repeats."
    return check


_check_services = _services_of("services")
"""Services the master starts and the backup stops."""
_check_services_on_both = _services_of("services_on_both")
"""Services kept running on both nodes."""


def _check_virtual_router_id(value: object, context: Context) -> int:
    """The VRRP group number, 1 to 255; another cluster on the segment must use another."""
    fix = (
        f"enter a whole number from {VIRTUAL_ROUTER_ID_MIN} to {VIRTUAL_ROUTER_ID_MAX} "
        "that no other VRRP group on this network uses"
    )

    def problem(what: str) -> ValidationError:
        return values.problem("virtual_router_id", VIRTUAL_ROUTER_ID.label, what, fix=fix)

    if isinstance(value, str) and value.strip().isdigit():
        number = int(value.strip())
    elif isinstance(value, int) and not isinstance(value, bool):
        number = value
    else:
        shown = value.strip() if isinstance(value, str) else value
        raise problem(f"{shown!r} is not a whole number")
    if not VIRTUAL_ROUTER_ID_MIN <= number <= VIRTUAL_ROUTER_ID_MAX:
        raise problem(f"{number} is out of range")
    return number


def _optional_text(value: object, field: str, label: str, what: str) -> str:
    """Text that may be empty (the feature is off)."""
    if not isinstance(value, str):
        raise ValidationError(field, f"{label} must be text ({what}), not {value!r}.")
    return value.strip()


def _check_webhook_url(value: object, context: Context) -> str:
    """An http or https URL each event is POSTed to; empty: none."""
    label = WEBHOOK_URL.label
    fix = "enter one such as https://hooks.example.com/skutui, or nothing for no webhook"
    given = _optional_text(value, "webhook_url", label, fix)
    if not given:
        return ""
    if len(given) > WEBHOOK_URL_MAX or any(ch.isspace() or ord(ch) < 32 for ch in given):
        raise values.problem("webhook_url", label, f"{given[:60]!r} is not a URL", fix=fix)
    parts = urlsplit(given)
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise values.problem("webhook_url", label, f"{given!r} is not an http or https URL",
                             fix=fix)
    try:
        parts.port  # noqa: B018 - urlsplit checks the port only when it is read
    except ValueError:
        raise values.problem("webhook_url", label, f"{given!r} has a bad port", fix=fix) from None
    return given


def _show_webhook_url(value: str, context: Context) -> str:
    """Without its path and query: a webhook's secret token often sits there."""
    if not value:
        return "none"
    parts = urlsplit(value)
    tail = "/..." if parts.path.strip("/") or parts.query else ""
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}{tail}"


def _check_metrics_file(value: object, context: Context) -> str:
    """The Prometheus text file for node_exporter's textfile collector; empty: none."""
    label = METRICS_FILE.label
    fix = (f"enter an absolute path ending in {METRICS_FILE_SUFFIX}, such as "
           f"{DEBIAN_TEXTFILE_DIR}/skutui{METRICS_FILE_SUFFIX}, or nothing for no file")
    given = _optional_text(value, "metrics_file", label, fix)
    if not given:
        return ""
    path = PurePosixPath(given)
    if not path.is_absolute() or ".." in path.parts or "\0" in given:
        raise values.problem("metrics_file", label, f"{given!r} is not an absolute path", fix=fix)
    if path.suffix != METRICS_FILE_SUFFIX:
        raise values.problem("metrics_file", label, f"{given!r} does not end in "
                             f"{METRICS_FILE_SUFFIX} (node_exporter reads no other file)", fix=fix)
    return str(path)


def _show_optional(value: str, context: Context) -> str:
    return value or "none"


# --- the table -------------------------------------------------------------------------------

INTERFACE = Setting(
    "interface", "Interface", Kind.TEXT, _check_interface, required=True)
HEARTBEAT_TRANSPORT = Setting(
    "heartbeat_transport", "Heartbeat transport", Kind.TEXT, _check_heartbeat_transport,
    flag_help="how VRRP adverts travel: unicast to the peer's cluster IP (default; works in "
              "clouds), or multicast to VRRP's group on the cluster NIC",
    metavar="|".join(TRANSPORTS), aliases=("--transport",), on_create=True, on_edit=True)
FAILBACK = Setting(
    "failback", "Failback", Kind.TEXT, _check_failback, _show_failback,
    flag_help="the node that takes the floating IPs back when it returns: disabled, local, "
              "remote or a node's hostname",
    metavar="disabled|local|remote|HOSTNAME", on_create=True, on_edit=True)
CHECK_INTERVAL = Setting(
    "check_interval", "Check interval", Kind.NUMBER, _check_interval, _show_seconds,
    flag_help=f"seconds between VRRP adverts ({CHECK_INTERVAL_MIN:g} to {CHECK_INTERVAL_MAX:g})",
    metavar="SECONDS", on_create=True, on_edit=True)
TRACKED_INTERFACES = Setting(
    "tracked_interfaces", "Tracked interfaces", Kind.TEXT_LIST, _check_tracked_interfaces,
    _show_tracked_interfaces, item="Tracked interface",
    flag_help="links keepalived watches besides the cluster NIC, comma separated; each "
              "must exist on both nodes, and one that goes down moves the floating IPs",
    metavar="IF,…", aliases=("--track",), on_create=True, on_edit=True)
FLOATING_IPS = Setting(
    "floating_ips", "Floating IPs", Kind.TEXT_LIST, _check_floating_ips, _listed,
    item="Floating IP",
    flag_help="a floating IP held by the master, on the cluster NIC or on the link named "
              "after @ (it must exist on both nodes); repeat the option; on edit, the whole "
              "new list",
    metavar="CIDR[@NIC]", repeat=True, on_create=True, on_edit=True)
SYNCED_PATHS = Setting(
    "synced_paths", "Synced paths", Kind.TEXT_LIST, _check_synced_paths, _listed,
    item="Synced path",
    flag_help="folders the master copies to the backup as they change, comma separated "
              "(on edit, the whole new list; cluster.toml's folder is always added on create)",
    metavar="PATH,…", on_create=True, on_edit=True)
SERVICES = Setting(
    "services", "Services", Kind.TEXT_LIST, _check_services, _listed, item="Service",
    flag_help="services started on the master and stopped on the backup, comma separated",
    metavar="NAME,…", on_create=True, on_edit=True)
SERVICES_ON_BOTH = Setting(
    "services_on_both", "Services on both", Kind.TEXT_LIST, _check_services_on_both, _listed,
    item="Service",
    flag_help="services kept running on both nodes (hot standby: only the floating IPs "
              "move), comma separated",
    metavar="NAME,…", on_create=True, on_edit=True)
VIRTUAL_ROUTER_ID = Setting(
    "virtual_router_id", "Virtual router ID", Kind.INTEGER, _check_virtual_router_id,
    flag_help=f"the VRRP group number ({VIRTUAL_ROUTER_ID_MIN} to {VIRTUAL_ROUTER_ID_MAX}); "
              "no other VRRP router on the cluster network may use it",
    metavar="ID", on_create=True)

WEBHOOK_URL = Setting(
    "webhook_url", "Webhook URL", Kind.TEXT, _check_webhook_url, _show_webhook_url,
    flag_help="POST each event as JSON to this http(s) URL, retried and queued on disk while "
              "it does not answer ('' for none)",
    metavar="URL", on_edit=True)
METRICS_FILE = Setting(
    "metrics_file", "Metrics file", Kind.TEXT, _check_metrics_file, _show_optional,
    flag_help=f"keep a Prometheus text file here for node_exporter's textfile collector, e.g. "
              f"{DEBIAN_TEXTFILE_DIR}/skutui{METRICS_FILE_SUFFIX} ('' for none)",
    metavar="PATH", on_edit=True)

SETTINGS: tuple[Setting, ...] = (
    INTERFACE, HEARTBEAT_TRANSPORT, FAILBACK, CHECK_INTERVAL, TRACKED_INTERFACES, FLOATING_IPS, SYNCED_PATHS,
    SERVICES, SERVICES_ON_BOTH, VIRTUAL_ROUTER_ID, WEBHOOK_URL, METRICS_FILE,
)
"""In the order they are shown."""

BY_KEY: dict[str, Setting] = {setting.key: setting for setting in SETTINGS}


def creatable() -> list[Setting]:
    return [setting for setting in SETTINGS if setting.on_create]


def editable() -> list[Setting]:
    return [setting for setting in SETTINGS if setting.on_edit]


def check_all(given: dict[str, Any], context: Context) -> dict[str, Any]:
    """Each given setting checked, in the table's order."""
    return {setting.key: setting.check(given[setting.key], context)
            for setting in SETTINGS if setting.key in given}


def shown(config: ClusterConfig, context: Context) -> list[tuple[str, str]]:
    """Every setting as (label, value as the operator reads it), in the table's order."""
    return [(setting.label, setting.shown(getattr(config, setting.key), context))
            for setting in SETTINGS]


def changes(old: ClusterConfig, new: ClusterConfig, context: Context) -> list[str]:
    """One line per setting that differs: ``Label: before -> after``."""
    return [f"{setting.label}: {setting.shown(getattr(old, setting.key), context)} -> "
            f"{setting.shown(getattr(new, setting.key), context)}"
            for setting in SETTINGS if getattr(old, setting.key) != getattr(new, setting.key)]


def to_document(config: ClusterConfig) -> dict[str, Any]:
    """The settings as cluster.toml and ``--json`` write them (lists as lists)."""
    document: dict[str, Any] = {}
    for setting in SETTINGS:
        value = getattr(config, setting.key)
        if setting.kind is Kind.TEXT_LIST:
            value = list(value)
        elif setting.kind is Kind.NUMBER:
            value = float(value)
        document[setting.key] = value
    return document
