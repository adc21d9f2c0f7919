"""Which console profile to draw with: full colour, or the plain one for VT and serial lines."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

PLAIN_TERMS = frozenset({"linux", "vt100", "vt102", "vt220", "dumb"})
SERIAL_DEVICE_PREFIXES = ("/dev/ttyS", "/dev/ttyAMA", "/dev/ttyUSB", "/dev/hvc", "/dev/ttyACM")


@dataclass(frozen=True)
class ConsoleProfile:
    plain: bool
    """16 colours, ASCII only, no mouse, no animation."""

    @property
    def mouse(self) -> bool:
        return not self.plain


def _on_serial_line() -> bool:
    try:
        name = os.ttyname(sys.stderr.fileno())
    except OSError:
        return False
    return name.startswith(SERIAL_DEVICE_PREFIXES)


def detect_profile(ascii_requested: bool = False, environ: dict[str, str] | None = None) -> ConsoleProfile:
    env = os.environ if environ is None else environ
    term = env.get("TERM", "")
    return ConsoleProfile(plain=ascii_requested or term in PLAIN_TERMS or _on_serial_line())


def styles_dir() -> Path:
    """The .tcss folder: inside the installed package, or at the top of a checkout."""
    package = Path(__file__).resolve().parent.parent
    for candidate in (package / "styles", package.parent / "styles"):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError("skutui styles folder not found; reinstall skutui")
