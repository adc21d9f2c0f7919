"""The one error taxonomy: every failure an operator can meet is one of these three.

``str()`` of each is the whole message for the operator (what, the value, the fix); both
front ends show it as it is and the command line exits with ``exit_code``. Anything else
that escapes is a bug, and is reported as one.
"""

from __future__ import annotations


class SkutuiError(Exception):
    """Base of every expected failure."""

    exit_code = 1


class BadInput(SkutuiError):
    """The operator gave something wrong (an argument, a field, a cluster.toml's contents);
    nothing was changed."""

    exit_code = 2


class Failed(SkutuiError):
    """The action was tried and did not work; the message says why and what was undone."""

    exit_code = 1


class Refused(Failed):
    """The action would leave the cluster worse than the operator may think (maintenance on
    a master whose peer cannot take over); nothing was changed, and forcing it (``--force``,
    a second confirmation in the console) is the only way. ``reason`` is the message
    without the command line's way to force it, for the console's own question."""

    def __init__(self, reason: str, how_to_force: str) -> None:
        super().__init__(f"{reason} {how_to_force}")
        self.reason = reason


class Interrupted(SkutuiError):
    """The operator stopped it (Ctrl+C); the message says what was undone."""

    exit_code = 130


class ValidationError(BadInput, ValueError):
    """A value the operator can fix; ``field`` names the input (the setting's key, or the
    form field), ``key`` the place in cluster.toml."""

    def __init__(self, field: str, message: str, *, key: tuple[str, ...] | None = None) -> None:
        super().__init__(message)
        self.field = field
        self.message = message
        self.key: tuple[str, ...] = key if key is not None else (field,)
