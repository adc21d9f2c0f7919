"""The form controls: a text field edits like a line editor, labels are drawn by the
controls, errors appear under their field and go away."""

from __future__ import annotations

from textual import events
from textual.app import App, ComposeResult

from skutui.ui.profile import ConsoleProfile
from skutui.ui.widgets.fields import Choice, SecretField, TextField
from tests.fakes import FakeClusterService
from tests.ui.snapshot_apps.common import build, on_screen, screen_text, tap


class FieldApp(App[None]):
    profile = ConsoleProfile(plain=False)

    def compose(self) -> ComposeResult:
        yield TextField(placeholder="type here", label="Name", id="name")
        yield TextField("1", label="Interval", id="interval")
        yield SecretField(label="Secret", id="secret")
        yield Choice([("one", 1), ("two", 2)], 1, vertical=True, label="Pick", id="pick")


def line(app: App, widget_id: str) -> str:
    return app.screen.query_one(f"#{widget_id}").render_line(0).text


async def test_typing_and_line_editing_keys():
    app = FieldApp()
    async with app.run_test(size=(60, 8)) as pilot:
        field = app.query_one("#name", TextField)
        assert app.focused is field
        await pilot.press(*"10.0.0.2", "left", "left", "backspace", "x")
        assert field.value == "10.0.x.2"
        await pilot.press("home", "delete", "end", "!")
        assert field.value == "0.0.x.2!"
        await pilot.press("ctrl+a", "right", "ctrl+k")
        assert field.value == "0"
        await pilot.press(*" a, b", "ctrl+w")
        assert field.value == "0 a, "
        await pilot.press("ctrl+u")
        assert field.value == ""


async def test_entering_a_field_selects_its_text_so_typing_replaces_it():
    app = FieldApp()
    async with app.run_test(size=(60, 8)) as pilot:
        await pilot.press("tab")
        field = app.query_one("#interval", TextField)
        assert app.focused is field
        await pilot.press("2")
        assert field.value == "2"
        await pilot.press("tab", "shift+tab", "backspace")
        assert field.value == ""


async def test_the_label_is_drawn_by_the_control_and_the_placeholder_when_empty():
    app = FieldApp()
    async with app.run_test(size=(60, 8)):
        assert line(app, "name").startswith("Name" + " " * 18 + " ")
        assert line(app, "interval").startswith("Interval" + " " * 14 + "1")
        assert "type here" not in line(app, "name")  # it has the focus: a cursor, no hint
        app.query_one("#interval").focus()
        await app.query_one("#interval").run_action("app.focus_previous")
        assert line(app, "pick").startswith("Pick" + " " * 18 + "(*) one")


async def test_printable_keys_are_typed_not_taken_as_shortcuts():
    app = build(FakeClusterService(configured=False))
    async with app.run_test(size=(80, 24)) as pilot:
        await on_screen(pilot, "ConfigureScreen")
        app.screen.query_one("#remote_ip").focus()
        await pilot.pause()
        assert " q " not in screen_text(app).splitlines()[-1]
        await tap(pilot, "q")
        assert app.is_running and app.screen.query_one("#remote_ip", TextField).value == "q"


async def test_a_long_value_scrolls_to_keep_the_cursor_in_view():
    app = FieldApp()
    async with app.run_test(size=(40, 8)) as pilot:
        text = "198.18.0.100/24, 198.18.0.101/24, 198.18.0.102/24"
        await pilot.press(*text)
        shown = line(app, "name")
        assert shown.rstrip().endswith("0.102/24") and len(shown) == app.query_one("#name").size.width
        await pilot.press("home")
        assert line(app, "name")[22:].startswith("198.18.0.100")


async def test_paste_inserts_the_first_line_and_a_click_moves_the_cursor():
    app = FieldApp()
    async with app.run_test(size=(60, 8)) as pilot:
        field = app.query_one("#name", TextField)
        field.post_message(events.Paste("abc\ndef"))
        await pilot.pause()
        assert field.value == "abc"
        await pilot.click("#name", offset=(23, 0))
        await pilot.press("x")
        assert field.value == "axbc"


async def test_secrets_show_one_star_per_character():
    app = FieldApp()
    async with app.run_test(size=(60, 8)) as pilot:
        app.query_one("#secret").focus()
        await pilot.press(*"s3cret")
        assert "******" in line(app, "secret") and "s3cret" not in line(app, "secret")
