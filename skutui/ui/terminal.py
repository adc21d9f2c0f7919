"""Only what changed goes down the line: a terminal driver that remembers what the screen
shows and sends the cells that differ, as curses does.

Textual redraws whole lines, often whole screens, and writes every cell with its colours:
about 4 KB for an 80x24 screen, four seconds at 9600 baud, for a change of one word. This
driver keeps two pictures of the screen, the one Textual asked for and the one already
sent, and writes the difference: cursor moves, the changed characters, a colour change
where the colour changes, and "erase to end of line" for blank tails. An unchanged frame
costs nothing.

It is used in the plain profile (serial lines, the Linux console), whose frames are ASCII
with the 16 ANSI colours. Anything it does not model (an erase or scroll sequence from
elsewhere) is passed through as it came, and the next frame is sent whole, so the screen is
never left wrong. Ctrl+L sends it whole on request, for a screen garbled by kernel messages
on a serial console.
"""

from __future__ import annotations

import os
import re

from rich.cells import get_character_cell_size
from textual.drivers.linux_driver import LinuxDriver

Cell = tuple[str, str]
"""(character, style): the style is SGR parameters in a fixed order, '' for the default.
The right half of a wide character is the cell ('', style)."""

BLANK: Cell = (" ", "")

_TOKEN = re.compile(
    r"\x1b\[([0-9;:<=>?]*)([ -/]*)([@-~])"  # CSI: parameters, intermediates, final
    r"|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)"  # OSC
    r"|\x1b[P_^X].*?\x1b\\"  # DCS, APC, PM, SOS
    r"|\x1b[^\[\]P_^X]"  # other escapes
    r"|([\r\n])"
    r"|([^\x00-\x1f\x7f]+)"
    r"|[\x00-\x1f\x7f]",
    re.DOTALL,
)
_ERASING_FINALS = frozenset("@JKLMPSTXr")
"""CSI finals that change cells or scroll: after one, what the screen shows is unknown."""
_SCREEN_MODES = frozenset({"?47", "?1047", "?1049"})
"""Private modes that switch to another screen."""

_ATTR_OFF = {22: (1, 2), 23: (3,), 24: (4, 21), 25: (5, 6), 27: (7,), 28: (8,), 29: (9,), 55: (53,)}
_VISIBLE_ON_SPACE = frozenset({4, 7, 9, 21, 51, 52, 53})
"""Attributes a space shows (underline, reverse, strike, frames): a space ignores the rest."""

GAP = 4
"""Unchanged cells between two changes that are rewritten rather than jumped over: a
cursor move costs about as much."""


class Pen:
    """SGR state parsed from Textual's output: attributes, foreground, background."""

    __slots__ = ("attrs", "fg", "bg")

    def __init__(self) -> None:
        self.attrs: set[int] = set()
        self.fg = ""
        self.bg = ""

    def apply(self, params: str) -> None:
        numbers = [int(p) if p.isdigit() else 0 for p in params.replace(":", ";").split(";")] if params else [0]
        i = 0
        while i < len(numbers):
            n = numbers[i]
            if n == 0:
                self.attrs.clear()
                self.fg = self.bg = ""
            elif n in (38, 48):
                width = 3 if numbers[i + 1: i + 2] == [5] else 5 if numbers[i + 1: i + 2] == [2] else 1
                value = ";".join(str(v) for v in numbers[i: i + width])
                if n == 38:
                    self.fg = value
                else:
                    self.bg = value
                i += width
                continue
            elif n == 39:
                self.fg = ""
            elif n == 49:
                self.bg = ""
            elif 30 <= n <= 37 or 90 <= n <= 97:
                self.fg = str(n)
            elif 40 <= n <= 47 or 100 <= n <= 107:
                self.bg = str(n)
            elif n in _ATTR_OFF:
                self.attrs.difference_update(_ATTR_OFF[n])
            else:
                self.attrs.add(n)
            i += 1

    def styles(self) -> tuple[str, str]:
        """This pen's style for any character, and for a space: a space keeps only what a
        space shows, so a colour change over blanks is no change."""
        attrs, fg, bg = self.attrs, self.fg, self.bg
        full = ";".join([*map(str, sorted(attrs)), *filter(None, (fg, bg))])
        if 7 in attrs:
            return full, full
        return full, ";".join([*map(str, sorted(attrs & _VISIBLE_ON_SPACE)), *filter(None, (bg,))])


class ScreenDiff:
    """The screen Textual asked for and the screen already sent; ``feed`` returns the
    bytes that turn the second into the first."""

    def __init__(self) -> None:
        self.wanted: dict[int, list[Cell]] = {}
        self.shown: dict[int, list[Cell]] | None = None
        """None: unknown, so the next frame clears the screen and is sent whole."""
        self.dirty: set[int] = set()
        self._pen = Pen()
        self._x = self._y = 0
        self._cursor: tuple[int, int] | None = None
        """Where the terminal's cursor is, or None when unknown."""
        self._sgr: str | None = None
        """The style the terminal draws with, or None when unknown."""
        self._space_form: dict[str, str] = {"": ""}
        """Each style seen, as a space drawn with it shows."""

    # Reading Textual's output ------------------------------------------------------------

    def feed(self, data: str) -> str:
        out: list[str] = []
        for match in _TOKEN.finditer(data):
            csi_params, csi_inter, csi_final, newline, text = match.groups()
            if text is not None:
                self._put(text)
                continue
            if newline is not None:
                self._x = 0
                if newline == "\n":
                    self._y += 1
                continue
            if csi_final in ("H", "f") and not csi_inter and not csi_params.startswith(("<", "=", ">", "?")):
                parts = (csi_params.split(";") + ["", ""])[:2]
                self._y = int(parts[0] or 1) - 1
                self._x = int(parts[1] or 1) - 1
                continue
            if csi_final == "m" and not csi_inter:
                self._pen.apply(csi_params)
                continue
            # Not modelled: what is drawn so far goes first, then this, as it came.
            out.append(self.flush())
            out.append(match.group(0))
            self._passed_through(match.group(0), csi_params, csi_final)
        out.append(self.flush())
        return "".join(out)

    def _put(self, text: str) -> None:
        row = self.wanted.setdefault(self._y, [])
        x = self._x
        full, space = self._pen.styles()
        self._space_form[full] = space
        if text.isascii():
            end = x + len(text)
            if len(row) < end:
                row.extend([BLANK] * (end - len(row)))
            row[x:end] = [(char, space if char == " " else full) for char in text]
            x = end
        else:
            for char in text:
                width = get_character_cell_size(char)
                if width == 0:
                    if x and len(row) >= x:
                        previous, style = row[x - 1]
                        row[x - 1] = (previous + char, style)
                    continue
                if len(row) < x + width:
                    row.extend([BLANK] * (x + width - len(row)))
                style = space if char == " " else full
                row[x] = (char, style)
                if width == 2:
                    row[x + 1] = ("", style)
                x += width
        self._x = x
        self.dirty.add(self._y)

    def _passed_through(self, token: str, params: str | None, final: str | None) -> None:
        if final is not None:  # a CSI sequence: only those have a final byte
            if final in _ERASING_FINALS or (final in "hl" and params in _SCREEN_MODES):
                self.invalidate()
            elif final in "ABCDEFGHIJKLMNOPQRSTUVWXYZ`abcdefg":
                self._cursor = None
        elif token in ("\x1bc", "\x1b8", "\x1bD", "\x1bE", "\x1bM"):
            self.invalidate()
        elif token != "\x07" and not token.startswith("\x1b"):
            self._cursor = None  # a control character: tab, backspace, ...

    def invalidate(self) -> None:
        """Forget what the terminal shows: the next flush clears it and sends every cell."""
        self.shown = None
        self._cursor = None
        self._sgr = None

    def resize(self, width: int, height: int) -> None:
        """The terminal changed size: what it shows is unknown, and Textual redraws."""
        self.wanted = {y: row[:width] for y, row in self.wanted.items() if y < height}
        self.invalidate()

    # Writing the difference ----------------------------------------------------------------

    def flush(self) -> str:
        if not self.dirty:
            return ""
        out: list[str] = []
        if self.shown is None:
            out.append("\x1b[0m\x1b[H\x1b[2J")
            self._sgr, self._cursor = "", (0, 0)
            self.shown = {}
            self.dirty = set(self.wanted)
        for y in sorted(self.dirty):
            self._row(y, self.shown, out)
        self.dirty.clear()
        return "".join(out)

    def _row(self, y: int, shown: dict[int, list[Cell]], out: list[str]) -> None:
        new = self.wanted.get(y, [])
        old = shown.get(y, [])
        width = max(len(new), len(old))
        new_full = new + [BLANK] * (width - len(new))
        old_full = old + [BLANK] * (width - len(old))
        # The tail of `new` that is blank can be erased in one go when `old` had text there.
        end = width
        while end and new_full[end - 1] == BLANK:
            end -= 1
        erase = any(cell != BLANK for cell in old_full[end:])
        runs: list[list[int]] = []
        for x in range(end):
            if new_full[x] != old_full[x]:
                if runs and x - runs[-1][1] <= GAP:
                    runs[-1][1] = x + 1
                else:
                    runs.append([x, x + 1])
        for start, stop in runs:
            if new_full[start][0] == "" and start:
                start -= 1  # the right half of a wide character: write the character
            if stop < width and new_full[stop][0] == "":
                stop += 1
            self._move(start, y, out)
            self._write(new_full[start:stop], out)
        if erase:
            self._move(end, y, out)
            if self._sgr != "":
                out.append("\x1b[0m")
                self._sgr = ""
            out.append("\x1b[K")
        shown[y] = new_full[:end]

    def _move(self, x: int, y: int, out: list[str]) -> None:
        if self._cursor == (x, y):
            return
        if self._cursor is not None and self._cursor[1] == y and 0 < x - self._cursor[0] <= 3:
            out.append(f"\x1b[{x - self._cursor[0]}C")
        elif x == 0:
            out.append(f"\x1b[{y + 1}H")
        else:
            out.append(f"\x1b[{y + 1};{x + 1}H")
        self._cursor = (x, y)

    def _write(self, cells: list[Cell], out: list[str]) -> None:
        for char, style in cells:
            if not char:
                continue
            if style != self._sgr and not (char == " " and self._sgr is not None
                                           and style == self._space_form.get(self._sgr)):
                out.append(f"\x1b[0;{style}m" if style else "\x1b[0m")
                self._sgr = style
            out.append(char)
        assert self._cursor is not None, "cells are written where _move put the cursor"
        x, y = self._cursor
        self._cursor = (x + len(cells), y)

    def repaint(self) -> str:
        """Everything again, from a cleared screen."""
        self.invalidate()
        self.dirty = set(self.wanted)
        return self.flush()


class DiffDriver(LinuxDriver):
    """Textual's Linux driver, writing only what changed on the screen (see ScreenDiff)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.diff = ScreenDiff()
        self._size: tuple[int, int] | None = None

    def write(self, data: str) -> None:
        try:
            size = os.get_terminal_size(self.fileno)
        except OSError:
            size = None
        if size is not None and (size.columns, size.lines) != self._size:
            if self._size is not None:
                self.diff.resize(*size)
            self._size = (size.columns, size.lines)
        data = self.diff.feed(data)
        if data:
            super().write(data)

    def repaint(self) -> None:
        super().write(self.diff.repaint())
        self.flush()
