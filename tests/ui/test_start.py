"""Start-up: the home screen is the first screen, Configure does not wait for the addresses,
a slow read shows the start screen, slow imports wait for the home screen."""

from __future__ import annotations

import asyncio
import sys

from skutui.domain.errors import Failed
from skutui.ui import app as app_module
from skutui.ui.screens.configure import ConfigureScreen
from skutui.ui.screens.details import DetailsScreen
from skutui.ui.screens.start import StartScreen
from tests.fakes import FakeClusterService
from tests.ui.snapshot_apps.common import build, on_screen, screen_text, shows, tap, until


class SlowAddresses(FakeClusterService):
    """Addresses that come only when the test lets them."""

    def __init__(self, **knobs) -> None:
        super().__init__(configured=False, **knobs)
        self.addresses_read = asyncio.Event()
        self.found: list | None = None

    async def cluster_candidates(self):
        await self.addresses_read.wait()
        if self.found is not None:
            self.calls.append(("cluster_candidates",))
            return self.found
        return await super().cluster_candidates()


class SlowState(FakeClusterService):
    async def cluster(self):
        await asyncio.sleep(0.2)
        return await super().cluster()


async def test_the_home_screen_is_the_first_screen():
    app = build(FakeClusterService())
    async with app.run_test(size=(80, 24)):
        assert isinstance(app.screen_stack[0], DetailsScreen)
        assert len(app.screen_stack) == 1


async def test_configure_is_drawn_before_the_addresses_are_read():
    service = SlowAddresses()
    app = build(service)
    async with app.run_test(size=(80, 24)) as pilot:
        assert isinstance(app.screen, ConfigureScreen) and not app.screen.ready
        assert "reading this node's addresses" in screen_text(app)
        assert app.focused.id == "local_ip"
        await tap(pilot, "f2")
        await shows(pilot, "still being read")
        service.addresses_read.set()
        await on_screen(pilot, "ConfigureScreen")
        await shows(pilot, "203.0.113.5/24")
        assert "reading this node's addresses" not in screen_text(app)
        assert "still being read" not in screen_text(app)


async def test_no_usable_address_says_so_and_apply_is_not_offered():
    service = SlowAddresses()
    service.found = []
    service.addresses_read.set()
    app = build(service)
    async with app.run_test(size=(80, 24)) as pilot:
        await on_screen(pilot, "ConfigureScreen")
        await shows(pilot, "No address on this node can carry the cluster")
        assert not app.screen.query("#local_ip")
        assert app.screen.check_action("apply", ()) is False


class BrokenAddresses(FakeClusterService):
    async def cluster_candidates(self):
        raise Failed("netlink timed out")


async def test_addresses_that_cannot_be_read_are_said_where_the_choice_was():
    app = build(BrokenAddresses(configured=False))
    async with app.run_test(size=(80, 24)) as pilot:
        await on_screen(pilot, "ConfigureScreen")
        await shows(pilot, "Could not read this node's addresses: netlink timed out.")
        assert len(app.screen_stack) == 1


async def test_a_slow_read_shows_the_start_screen_then_home(monkeypatch):
    monkeypatch.setattr(app_module, "HOME_WAIT", 0.02)
    app = build(SlowState())
    async with app.run_test(size=(80, 24)) as pilot:
        assert isinstance(app.screen_stack[0], StartScreen)
        assert "Reading the cluster state" in screen_text(app)
        await on_screen(pilot, "DetailsScreen")


async def test_slow_imports_wait_for_the_home_screen_and_run_in_a_thread(monkeypatch):
    imported: list[tuple[str, bool]] = []

    def fake_import_all(names):
        import threading

        imported.append((",".join(names), threading.current_thread() is threading.main_thread()))

    monkeypatch.setattr(app_module, "_import_all", fake_import_all)
    monkeypatch.setattr(app_module, "PRELOAD_DELAY", 0)
    app = build(FakeClusterService(configured=False))
    app.preload = ("json",)
    async with app.run_test(size=(80, 24)) as pilot:
        await on_screen(pilot, "ConfigureScreen")
        await until(pilot, lambda: imported, "the preload")
        assert imported == [("json", False)]
        await app.preloaded()


def test_preloading_a_missing_module_is_only_logged(caplog):
    app_module._import_all(["skutui_no_such_module", "json"])
    assert "skutui_no_such_module" in caplog.text and "json" in sys.modules


async def test_a_key_read_before_the_first_refresh_still_gets_its_screen_filled(monkeypatch):
    """The slow imports start after the first frame's refresh; a key pressed before that
    refresh (a screen pushed at once) must not leave that screen waiting for them."""
    monkeypatch.setattr(app_module, "PRELOAD_DELAY", 0)
    app = build(FakeClusterService())
    app.preload = ("json",)
    after_refresh = app.call_after_refresh

    def refresh_never_comes(callback, *args, **kwargs):
        if getattr(callback, "__self__", None) is app._drawn:
            return True  # the refresh that would start the imports never comes
        return after_refresh(callback, *args, **kwargs)

    monkeypatch.setattr(app, "call_after_refresh", refresh_never_comes)
    async with app.run_test(size=(80, 24)) as pilot:
        await on_screen(pilot, "DetailsScreen")
        await tap(pilot, "n")
        await on_screen(pilot, "NodesScreen")
        await shows(pilot, "Node online and passive")
