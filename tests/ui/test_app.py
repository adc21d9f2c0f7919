"""The console as a whole: keys and help, errors without tracebacks, the plain profile."""

from __future__ import annotations

import pytest
from textual.binding import Binding

from skutui.domain.errors import Failed
from skutui.ui.app import SkutuiApp
from skutui.ui.launch import UnavailableService
from skutui.ui.profile import ascii_text, detect_profile
from skutui.ui.screens import configure, details, dialogs, edit, help, nodes, start, steps
from tests.fakes import FakeClusterService
from tests.ui.snapshot_apps.common import build, on_screen, screen_text, shows, steps_done, tap

BINDING_OWNERS = [
    SkutuiApp,
    configure.ConfigureScreen,
    details.DetailsScreen,
    nodes.NodesScreen,
    edit.EditScreen,
    steps.StepsScreen,
    start.StartScreen,
    dialogs.ConfirmDialog,
    dialogs.NoticeDialog,
    help.HelpScreen,
]


@pytest.mark.parametrize("owner", BINDING_OWNERS, ids=lambda owner: owner.__name__)
def test_every_binding_has_an_id_and_a_description(owner):
    for binding in owner.BINDINGS:
        assert isinstance(binding, Binding)
        assert binding.id and binding.description, binding


async def test_f1_lists_the_keys_of_the_screen_and_esc_closes_it():
    app = build(FakeClusterService(master=False))
    async with app.run_test(size=(80, 24)) as pilot:
        await on_screen(pilot, "DetailsScreen")
        await tap(pilot, "f1")
        await on_screen(pilot, "HelpScreen")
        text = screen_text(app)
        assert "n                 Nodes" in text and "t                 Timeline" in text
        assert "e                 Edit  (not available now)" in text
        assert "x                 Drill  (not available now)" in text
        assert "F1                Help" in text and "q                 Quit" in text
        assert "Tab / Shift+Tab" in text
        await tap(pilot, "escape")
        await on_screen(pilot, "DetailsScreen")


async def test_footer_key_names_are_words():
    app = build(FakeClusterService())
    async with app.run_test(size=(80, 24)) as pilot:
        await on_screen(pilot, "DetailsScreen")
        await tap(pilot, "n")
        await on_screen(pilot, "NodesScreen")
        footer = screen_text(app).splitlines()[-1]
        assert "Esc Back" in footer and "F1 Help" in footer and "m Maintenance on/off" in footer


async def test_a_service_error_is_a_dialog_not_a_traceback():
    message = "Could not list the links of node-a: netlink timed out; try again."
    app = build(FakeClusterService(errors={"link_names": message}))
    async with app.run_test(size=(80, 24)) as pilot:
        await on_screen(pilot, "DetailsScreen")
        await tap(pilot, "e")
        await on_screen(pilot, "NoticeDialog")
        assert message in screen_text(app)
        await tap(pilot, "enter")
        await on_screen(pilot, "DetailsScreen")


async def test_an_unexpected_exception_is_one_line_pointing_at_the_log():
    service = FakeClusterService()

    async def broken():
        raise KeyError("eth9")

    service.link_names = broken
    app = build(service)
    async with app.run_test(size=(80, 24)) as pilot:
        await on_screen(pilot, "DetailsScreen")
        await tap(pilot, "e")
        await on_screen(pilot, "NoticeDialog")
        text = screen_text(app)
        assert "Unexpected error (KeyError: 'eth9')" in text and "Traceback" not in text


async def test_a_failed_start_says_why_and_r_tries_again():
    service = FakeClusterService(errors={"cluster": "cluster.toml line 2: unterminated string"})
    app = build(service)
    async with app.run_test(size=(80, 24)) as pilot:
        await shows(pilot, "cluster.toml line 2: unterminated string")
        service.errors.clear()
        await tap(pilot, "r")
        await on_screen(pilot, "DetailsScreen")


async def test_quit_waits_while_a_change_is_running():
    service = FakeClusterService()
    app = build(service)
    async with app.run_test(size=(80, 24)) as pilot:
        await on_screen(pilot, "DetailsScreen")
        app.busy = True
        await tap(pilot, "q")
        await on_screen(pilot, "NoticeDialog")
        assert "wait for it to finish" in screen_text(app)
        await tap(pilot, "enter")
        app.busy = False
        await tap(pilot, "q")
        await pilot.pause()
        assert not app.is_running


async def test_a_running_change_cannot_be_left_with_esc():
    service = FakeClusterService()
    app = build(service)
    async with app.run_test(size=(80, 24)) as pilot:
        await on_screen(pilot, "DetailsScreen")
        await tap(pilot, "d")
        await on_screen(pilot, "ConfirmDialog")
        await tap(pilot, "y")
        await on_screen(pilot, "StepsScreen")
        assert await steps_done(pilot) == "succeeded"
        assert app.screen.check_action("back", ()) is True
    running = steps.StepsScreen("Destroying the cluster", lambda steps: None, on_success=lambda: None)
    assert running.check_action("back", ()) is False and running.check_action("finish", ()) is False


async def test_the_plain_profile_is_steady_and_mouse_free():
    app = SkutuiApp(FakeClusterService(), detect_profile(environ={"TERM": "vt220"}))
    assert app.profile.plain and not app.profile.mouse
    assert app.theme == "ansi-dark" and app.animation_level == "none" and not app.cursor_blink
    async with app.run_test(size=(80, 24)) as pilot:
        await on_screen(pilot, "DetailsScreen")


def test_service_text_is_made_ascii_for_the_plain_profile():
    assert ascii_text("Failed services: keepalived … — café → ok") == "Failed services: keepalived ... - cafe -> ok"
    assert all(ord(ch) < 128 for ch in ascii_text("node-ä ✓ 日本"))


async def test_passwords_show_as_stars():
    app = build(FakeClusterService(configured=False), plain=True)
    async with app.run_test(size=(80, 24)) as pilot:
        await on_screen(pilot, "ConfigureScreen")
        app.screen.query_one("#password").value = "s3cret"
        await pilot.pause()
        assert "******" in screen_text(app) and "s3cret" not in screen_text(app)


async def test_without_a_service_the_console_opens_and_says_why():
    app = build(UnavailableService("The cluster service is missing from this installation; reinstall skutui."))
    async with app.run_test(size=(80, 24)) as pilot:
        await shows(pilot, "The cluster service is missing")
    with pytest.raises(Failed):
        await UnavailableService("gone").nodes()
