"""Checks of single values, shared by the settings and by the other inputs.

Each function returns the value normalised or raises ``ValidationError``. The caller names
the input (``field``, its key) and gives its ``label`` (its words on screen), so every
message reads ``<Label> <value> <what is wrong>; <the fix>.``
"""

from __future__ import annotations

import ipaddress
import re

from skutui.domain.errors import ValidationError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

INTERFACE_NAME_MAX = 15
"""Linux IFNAMSIZ less the terminating NUL."""

_HOSTNAME_LABEL = re.compile(r"[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?")
"""One label of a hostname as systemd accepts it: letters, digits, '_' and inner hyphens."""
_HOSTNAME_MAX = 253


def problem(field: str, label: str, what: str, *, fix: str) -> ValidationError:
    """``<label> <what>; <fix>.``: the shape of every message."""
    return ValidationError(field, f"{label} {what}; {fix}.")


def text(value: object, field: str, label: str, what: str) -> str:
    """Non-empty text, stripped; ``what`` says what to enter."""
    if not isinstance(value, str):
        raise ValidationError(field, f"{label} must be text ({what}), not {value!r}.")
    stripped = value.strip()
    if not stripped:
        raise ValidationError(field, f"{label} is empty; enter {what}.")
    return stripped


def format_seconds(seconds: float) -> str:
    """Seconds as keepalived reads them and the operator sees them: ``0.1``, ``1``, ``1.25``,
    never ``1e-01``."""
    return f"{seconds:.2f}".rstrip("0").rstrip(".")


def unusable_reason(ip: IPAddress) -> str | None:
    """Why an address cannot be a cluster or floating IP, or None when it can."""
    if ip.is_unspecified:
        return "is the unspecified address"
    if ip.is_loopback:
        return "is a loopback address"
    if ip.is_multicast:
        return "is a multicast address"
    if ip.is_link_local:
        return "is a link-local address, which needs an interface scope"
    if isinstance(ip, ipaddress.IPv4Address) and ip == ipaddress.IPv4Address("255.255.255.255"):
        return "is the broadcast address"
    return None


def _refuse_scope(value: str, field: str, label: str) -> None:
    """An address with '%…' names a scope, which keepalived and the peer cannot share."""
    if "%" in value:
        raise ValidationError(
            field, f"{label} {value!r} has an interface scope; enter the address without '%…'."
        )


def ip_address(value: object, field: str, label: str) -> IPAddress:
    """A unicast IPv4 or IPv6 address a node can use."""
    given = text(value, field, label, "an IPv4 or IPv6 address")
    _refuse_scope(given, field, label)
    try:
        ip = ipaddress.ip_address(given)
    except ValueError:
        raise ValidationError(
            field,
            f"{label} {given!r} is not an IP address; enter an IPv4 address such as "
            "198.18.0.1 or an IPv6 address such as 2001:db8::1.",
        ) from None
    reason = unusable_reason(ip)
    if reason:
        raise ValidationError(field, f"{label} {ip} {reason}; enter a unicast address.")
    return ip


def address_with_prefix(value: object, field: str, label: str) -> str:
    """An address held by a node, as ``address/prefix``.

    A bare address gets the host prefix (/32 or /128), the same default keepalived applies,
    so the address is held without adding a route for a whole subnet. The subnet's own
    network and broadcast addresses are refused: the kernel would not answer ARP for them.
    """
    given = text(value, field, label, "an address with its prefix, such as 198.18.0.100/24")
    _refuse_scope(given, field, label)
    try:
        iface = ipaddress.ip_interface(given)
    except ValueError:
        raise ValidationError(
            field,
            f"{label} {given!r} is not an address with a prefix; enter one such as "
            "198.18.0.100/24 or 2001:db8::100/64.",
        ) from None
    ip = iface.ip
    reason = unusable_reason(ip)
    if reason:
        raise ValidationError(field, f"{label} {given} {reason}; enter a unicast address.")
    network = iface.network
    if isinstance(ip, ipaddress.IPv4Address) and network.prefixlen <= 30:
        if ip in (network.network_address, network.broadcast_address):
            which = "network" if ip == network.network_address else "broadcast"
            raise ValidationError(
                field,
                f"{label} {given} is the {which} address of {network}; "
                "enter a host address inside the subnet.",
            )
    return f"{ip}/{network.prefixlen}"


def interface_name(value: object, field: str, label: str) -> str:
    """A Linux link name (not an address label such as ``eth0:1``)."""
    given = text(value, field, label, "an interface name such as eth0")
    if len(given) > INTERFACE_NAME_MAX:
        raise ValidationError(
            field,
            f"{label} {given!r} is longer than {INTERFACE_NAME_MAX} characters; "
            "enter a Linux interface name.",
        )
    if ":" in given:
        raise ValidationError(
            field,
            f"{label} {given!r} is an address label, not a link; "
            f"enter the link name ({given.split(':', 1)[0]!r}).",
        )
    if given in (".", "..") or any(ch == "/" or ch.isspace() or not ch.isprintable() for ch in given):
        raise ValidationError(field, f"{label} {given!r} is not a valid interface name.")
    return given


def hostname_spelling(value: object, field: str, label: str) -> str:
    """An RFC 1123 hostname as systemd accepts it."""
    given = text(value, field, label, "the node's hostname")
    labels = given.split(".")
    if len(given) > _HOSTNAME_MAX or not all(_HOSTNAME_LABEL.fullmatch(part) for part in labels):
        raise ValidationError(
            field,
            f"{label} {given!r} is not a valid hostname; use letters, digits, hyphens and "
            "underscores (hostnamectl set-hostname NAME).",
        )
    return given


def words(value: object) -> list[object]:
    """A list as given, or text split at its commas (as a flag or a form field gives a
    list); an item that is only blanks is kept, for its check to call it empty."""
    if isinstance(value, str):
        return [part for part in value.split(",") if part]
    if isinstance(value, (list, tuple)):
        return list(value)
    return [value]
