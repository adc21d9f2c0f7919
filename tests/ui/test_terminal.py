"""The plain profile's driver sends only what changed, and the screen it leaves is the one
Textual drew: checked on a small terminal model, with frames Textual renders and random ones."""

from __future__ import annotations

import io
import random
import re

import pytest
from rich.cells import get_character_cell_size
from rich.console import Console

from skutui.ui.terminal import BLANK, Pen, ScreenDiff
from tests.fakes import FakeClusterService
from tests.ui.snapshot_apps.common import build, on_screen, tap


class Terminal:
    """Cells and what they show, after a stream of cursor moves, SGR, erases and text."""

    TOKEN = re.compile(r"\x1b\[([0-9;?]*)([A-Za-z@])|\x1b.|([\r\n])|([^\x00-\x1f\x7f]+)|[\x00-\x1f]")

    def __init__(self, width: int = 80, height: int = 24):
        self.width, self.height = width, height
        self.cells = [[BLANK] * width for _ in range(height)]
        self.x = self.y = 0
        self.pen = Pen()

    def feed(self, data: str) -> None:
        for match in self.TOKEN.finditer(data):
            params, final, newline, text = match.groups()
            if text:
                for char in text:
                    full, space = self.pen.styles()
                    style = space if char == " " else full
                    width = get_character_cell_size(char)
                    for offset, cell in enumerate([(char, style), ("", style)][:width]):
                        if 0 <= self.y < self.height and 0 <= self.x + offset < self.width:
                            self.cells[self.y][self.x + offset] = cell
                    self.x += width
            elif newline == "\n":
                self.y, self.x = self.y + 1, 0
            elif newline == "\r":
                self.x = 0
            elif final in ("H", "f"):
                parts = (params.split(";") + ["", ""])[:2]
                self.y, self.x = int(parts[0] or 1) - 1, int(parts[1] or 1) - 1
            elif final == "C":
                self.x += int(params or 1)
            elif final == "m":
                self.pen.apply(params)
            elif final == "J" and params == "2":
                self.cells = [[self.erased()] * self.width for _ in range(self.height)]
            elif final == "K":
                for x in range(self.x, self.width):
                    self.cells[self.y][x] = self.erased()

    def erased(self):
        return (" ", self.pen.styles()[1])

    def text(self) -> list[str]:
        return ["".join(char for char, _ in row) for row in self.cells]


def shows_the_same(frames: list[str], width: int = 80, height: int = 24) -> tuple[Terminal, int, int]:
    """Feed the frames as Textual wrote them and through the driver's diff; the two
    terminals must show the same cells. Returns the diffed terminal and both byte counts."""
    direct, diffed, diff = Terminal(width, height), Terminal(width, height), ScreenDiff()
    sent = raw = 0
    for frame in frames:
        direct.feed(frame)
        out = diff.feed(frame)
        diffed.feed(out)
        sent += len(out)
        raw += len(frame)
        assert diffed.cells == direct.cells
    return diffed, raw, sent


def layout_frame(rows: list[list[tuple[str, str]]]) -> str:
    """A whole-screen frame as Textual writes one: a move per line, SGR, reset after each run."""
    out = []
    for y, row in enumerate(rows):
        out.append(f"\x1b[{y + 1};1H")
        for char, style in row:
            out.append(f"\x1b[{style}m{char}\x1b[0m")
        if y < len(rows) - 1:
            out.append("\n")
    return "".join(out)


STYLES = ["39;49", "1;39;49", "7;39;49", "31;49", "1;31;49", "30;47", "1;30;47", "97;104", "2;39;49"]


def random_screen(rng: random.Random, width: int, height: int) -> list[list[tuple[str, str]]]:
    return [[(rng.choice("  abc-*[]()"), rng.choice(STYLES)) for _ in range(width)] for _ in range(height)]


def chop(y: int, x: int, cells: list[tuple[str, str]]) -> str:
    """A partial update as Textual writes one: a move, then styled text."""
    return f"\x1b[{y + 1};{x + 1}H" + "".join(f"\x1b[{style}m{char}\x1b[0m" for char, style in cells)


@pytest.mark.parametrize("seed", range(5))
def test_random_frames_leave_the_same_screen_and_an_unchanged_frame_costs_nothing(seed):
    rng = random.Random(seed)
    screen = random_screen(rng, 40, 10)
    frames = [layout_frame(screen)]
    for _ in range(30):
        for _ in range(rng.randint(0, 15)):
            y, x = rng.randrange(10), rng.randrange(40)
            screen[y][x] = (rng.choice("  xyz.="), rng.choice(STYLES))
        if rng.random() < 0.3:
            screen[rng.randrange(10)] = [(" ", "39;49")] * 40  # a line emptied
        if rng.random() < 0.5:
            frames.append(layout_frame(screen))
        else:
            y, x = rng.randrange(10), rng.randrange(40)
            cells = [(rng.choice(" ab"), rng.choice(STYLES)) for _ in range(rng.randint(1, 40 - x))]
            screen[y][x: x + len(cells)] = cells
            frames.append(chop(y, x, cells))
    shows_the_same(frames, 40, 10)
    diff = ScreenDiff()
    diff.feed(frames[-1])
    assert diff.feed(frames[-1]) == ""


def test_partial_updates_wide_characters_and_passed_through_sequences():
    frames = [
        layout_frame([[(c, "39;49") for c in "hello world".ljust(20)] for _ in range(3)]),
        "\x1b[2;7H\x1b[1;31mthere\x1b[0m",
        "\x1b[?25l\x07",
        "\x1b[3;1H\x1b[39;49m日本 ok\x1b[0m",
        "\x1b[3;1H\x1b[39;49mab\x1b[0m",
    ]
    diffed, _, _ = shows_the_same(frames, 20, 3)
    assert diffed.text()[1].startswith("hello there")
    out = ScreenDiff()
    out.feed(frames[0])
    assert out.feed("\x1b[?25l") == "\x1b[?25l"


def test_an_erase_from_elsewhere_or_a_repaint_sends_the_whole_screen_again():
    frame = layout_frame([[(c, "39;49") for c in "abc".ljust(10)]])
    diff = ScreenDiff()
    first = diff.feed(frame)
    assert "\x1b[2J" in first
    assert "\x1b[2J" in diff.feed("\x1b[2J") + diff.feed(frame)
    assert diff.repaint().endswith("abc")


def test_a_blank_tail_is_erased_in_one_sequence():
    diff = ScreenDiff()
    diff.feed(layout_frame([[(c, "39;49") for c in "a long line of text".ljust(30)]]))
    out = diff.feed(layout_frame([[(c, "39;49") for c in "a".ljust(30)]]))
    assert out.endswith("\x1b[K") and len(out) < 12


async def test_textual_frames_of_the_console_screens_through_the_diff():
    """Whole frames of Details and Nodes in the plain profile, then Nodes after an event:
    the same screen, and far fewer bytes than Textual writes."""
    service = FakeClusterService()
    app = build(service, plain=True)
    console = Console(file=io.StringIO(), force_terminal=True, color_system="standard", width=80, height=24,
                      legacy_windows=False)

    def frame() -> str:
        return app.screen._compositor.render_update(full=True).render_segments(console)

    async with app.run_test(size=(80, 24)) as pilot:
        await on_screen(pilot, "DetailsScreen")
        frames = [frame()]
        await tap(pilot, "n")
        await on_screen(pilot, "NodesScreen")
        await pilot.pause()
        frames.append(frame())
        service.emit("service", "remote", "conntrackd is not running on this node")
        await pilot.pause(0.1)
        frames.append(frame())
    diffed, raw, sent = shows_the_same(frames)
    assert any("conntrackd is not running" in line for line in diffed.text())
    assert sent * 4 < raw
