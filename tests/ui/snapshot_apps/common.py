"""Building the console on the fake, and waiting for it, the same way in every UI test."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from rich.console import Console
from textual.pilot import Pilot

from skutui.ui.app import SkutuiApp
from skutui.ui.profile import ConsoleProfile
from skutui.ui.widgets.fields import TextField
from tests.fakes import FLOATING_IP, PASSWORD, REMOTE, FakeClusterService

Reach = Callable[[Pilot], Awaitable[None]]


def build(service: FakeClusterService, plain: bool = False) -> SkutuiApp:
    """The console on the fake, steady: no blinking cursor, no animation."""
    app = SkutuiApp(service, ConsoleProfile(plain=plain), cursor_blink=False)
    app.animation_level = "none"
    return app


async def until(pilot: Pilot, predicate: Callable[[], bool], what: str = "", timeout: float = 5.0) -> None:
    """Let the app run until ``predicate()`` holds; the fake answers at once, so this is quick."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what or predicate}")
        await pilot.pause(0.002)
    await pilot.pause(0)


async def tap(pilot: Pilot, *keys: str) -> None:
    """Keys as the app receives them, without the pilot's wait for an idle CPU after each:
    the scenes press dozens of keys between them, and ``until`` waits for what matters."""
    for key in keys:
        pilot.app.simulate_key(key)
        await pilot.pause(0)
        await pilot.pause(0)


def screen_name(pilot: Pilot) -> str:
    return type(pilot.app.screen).__name__


async def on_screen(pilot: Pilot, name: str) -> None:
    """The screen is up and has read what it shows (Configure reads this node's addresses
    after it is drawn)."""
    await until(pilot, lambda: screen_name(pilot) == name and getattr(pilot.app.screen, "ready", True), name)


def screen_text(app: SkutuiApp) -> str:
    """What the terminal shows now, as text (the screen and any dialog over it)."""
    width, height = app.size
    console = Console(
        width=width, height=height, file=io.StringIO(), record=True,
        force_terminal=True, color_system="truecolor", legacy_windows=False,
    )
    console.print(app.screen._compositor.render_update(full=True))
    return console.export_text(styles=False)


def log_text(app: SkutuiApp, selector: str = "#steps") -> str:
    """All a log holds, wrapped lines joined and spaces collapsed, for matching sentences."""
    lines = app.screen.query_one(selector).lines
    return " ".join(" ".join(strip.text for strip in lines).split())


async def shows(pilot: Pilot, text: str) -> None:
    await until(pilot, lambda: text in screen_text(pilot.app), repr(text))


async def steps_done(pilot: Pilot) -> str:
    """Wait for the steps screen to finish its work; returns how it ended."""
    await on_screen(pilot, "StepsScreen")
    await until(pilot, lambda: getattr(pilot.app.screen, "outcome", "running") != "running", "the steps to finish")
    log = pilot.app.screen.query_one("#steps")
    await until(pilot, lambda: log.scroll_y == log.max_scroll_y, "the log to show its last line")
    await pilot.pause()
    return pilot.app.screen.outcome


@dataclass(frozen=True)
class FormValues:
    remote_ip: str = REMOTE.ip
    password: str = PASSWORD
    confirmation: str = PASSWORD
    floating_ips: str = FLOATING_IP
    check_interval: str = "1"


async def fill_create_form(pilot: Pilot, values: FormValues = FormValues(), local_choice: int = 1) -> None:
    """Choose the local IP with the arrow keys and put the values in the text fields."""
    await on_screen(pilot, "ConfigureScreen")
    screen = pilot.app.screen
    screen.query_one("#local_ip").focus()
    await tap(pilot, *["down"] * local_choice)
    for name in ("remote_ip", "password", "confirmation", "floating_ips", "check_interval"):
        screen.query_one(f"#{name}", TextField).value = getattr(values, name)
    screen.query_one("#local_ip").focus()
    await pilot.pause()


@dataclass(frozen=True)
class Scene:
    """One screen or dialog in one situation: the fake that sets it up, the keys that reach it."""

    name: str
    service: Callable[[], FakeClusterService]
    reach: Reach
    wide: bool = False
    """Also drawn at 120x40 in the default profile."""
    snapshot: bool = True
    """False for a state the pilot tests already show; it is still checked for ASCII."""
