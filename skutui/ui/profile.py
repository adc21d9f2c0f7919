"""Which console profile to draw with: full colour, or the plain one for VT and serial lines."""

from __future__ import annotations

import os
import sys
import unicodedata
from dataclasses import dataclass
from pathlib import Path

PLAIN_TERMS = frozenset({"linux", "vt100", "vt102", "vt220", "dumb"})
SERIAL_DEVICE_PREFIXES = ("/dev/ttyS", "/dev/ttyAMA", "/dev/ttyUSB", "/dev/hvc", "/dev/ttyACM")

_ASCII_LOOKALIKES = str.maketrans(
    {
        "\u2026": "...",
        "\u2014": "-",
        "\u2013": "-",
        "\u2018": "'",
        "\u2019": "'",
        "\u201c": '"',
        "\u201d": '"',
        "\u2192": "->",
        "\u2190": "<-",
        "\u2022": "*",
        "\u00d7": "x",
        "\u2264": "<=",
        "\u2265": ">=",
        "\u00a0": " ",
    }
)


def ascii_text(text: str) -> str:
    """Text a VT100 can show: look-alikes for common punctuation, accents dropped, '?' for the rest."""
    text = unicodedata.normalize("NFKD", text.translate(_ASCII_LOOKALIKES))
    text = "".join(ch for ch in text if not unicodedata.combining(ch))
    return text.encode("ascii", "replace").decode("ascii")


@dataclass(frozen=True)
class ConsoleProfile:
    plain: bool
    """16 colours, ASCII only, no mouse, no animation."""

    @property
    def mouse(self) -> bool:
        return not self.plain

    def text(self, text: str) -> str:
        """Text from outside the console (service messages, hostnames) as this profile can draw it."""
        return ascii_text(text) if self.plain else text


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


STYLES_DIR = Path(__file__).resolve().parent / "styles"
"""The console's .tcss stylesheets, shipped inside the package."""
