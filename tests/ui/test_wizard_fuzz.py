"""The Configure wizard and the Edit screen refuse bad text, field by field.

Hypothesis types a value that is wrong by construction (the generators of
tests/unit/test_bad_input.py, kept to what a keyboard types: printable, on one line) into
one field of an otherwise valid form, key by key, and presses F2. Then:

- that field shows a message under it that names it, and no other field shows one;
- the form stays: no steps screen, no dialog;
- the fake service was asked nothing: no host key, pre-flight, create or edit;
- the console is still running.

One console runs per property: it runs in the test's event loop while hypothesis, in a
worker thread, hands it one example after the other (a console started for each example
would make the properties several times slower).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from textual.pilot import Pilot

from skutui.ui.widgets.fields import TextField
from tests.fakes import FLOATING_IP, LOCAL, PASSWORD, REMOTE, FakeClusterService
from tests.ui.snapshot_apps.common import build, on_screen, tap, until
from tests.unit.test_bad_input import (
    BAD_FLOATING_SYNTAX,
    BAD_INTERVAL,
    BAD_REMOTE_IP,
    NODE_IPS_AS_FLOATING,
    TWICE_FLOATING,
    argv_text,
    leaked_names,
)

SETTINGS = settings(max_examples=15, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])

TYPED_MAX = 120
"""Longer values are as wrong, only slower to type key by key."""


def typed(values: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    """What can be typed into a one-line field: printable characters only."""
    return values.filter(lambda text: text.isprintable() and len(text) <= TYPED_MAX)


def with_valid(items: st.SearchStrategy[tuple[str, ...]]) -> st.SearchStrategy[str]:
    """Floating IPs as typed: the wrong ones among a valid one, comma separated."""
    return st.builds(lambda bad, first: ", ".join([FLOATING_IP, *bad] if first else [*bad, FLOATING_IP]),
                     items, st.booleans())


BAD_FLOATING_ITEM = typed(BAD_FLOATING_SYNTAX | NODE_IPS_AS_FLOATING).filter(
    lambda text: "," not in text and text.strip())
"""One wrong floating IP; a comma would split it, a blank one is not an item."""
BAD_FLOATING_LIST = with_valid(st.one_of(BAD_FLOATING_ITEM.map(lambda item: (item,)), TWICE_FLOATING))
BAD_PASSWORDS = st.one_of(
    st.tuples(st.just(""), typed(argv_text())),
    st.tuples(typed(argv_text(min_size=1)), typed(argv_text())).filter(lambda pair: pair[0] != pair[1]),
)
"""Empty, or the confirmation differs."""

CONFIGURE_VALID = {"remote_ip": REMOTE.ip, "password": PASSWORD, "confirmation": PASSWORD,
                   "floating_ips": FLOATING_IP, "check_interval": "1"}
EDIT_VALID = {"floating_ips": FLOATING_IP, "check_interval": "1"}
ASKED_BEFORE_APPLY = {"cluster_candidates", "nodes"}
"""What the console asks of the service to draw the forms; anything else is an action."""


class Form:
    """A form on the console, filled and applied from hypothesis's thread."""

    def __init__(self, pilot: Pilot, service: FakeClusterService, valid: dict[str, str]):
        self.pilot = pilot
        self.app = pilot.app
        self.screen = pilot.app.screen
        self.service = service
        self.valid = valid
        self.loop = asyncio.get_running_loop()

    def check(self, typing: dict[str, str], field: str, names: tuple[str, ...]) -> None:
        asyncio.run_coroutine_threadsafe(self._check(typing, field, names), self.loop).result(timeout=30)

    async def _type(self, field_id: str, text: str) -> None:
        field = self.screen.query_one(f"#{field_id}", TextField)
        field.focus()
        field.value = ""
        await self.pilot.pause()
        for character in text:
            self.app.simulate_key(character)
        await self.pilot.pause()
        assert field.value == text, (field.value, text)

    async def _check(self, typing: dict[str, str], field: str, names: tuple[str, ...]) -> None:
        screen = self.screen
        assert self.app.screen is screen, f"the form is gone: {self.app.screen}"
        screen.show_errors({})
        for field_id, value in self.valid.items():
            screen.query_one(f"#{field_id}", TextField).value = value
        for field_id, text in typing.items():
            await self._type(field_id, text)
        await tap(self.pilot, "f2")
        await until(self.pilot, lambda: self.app.screen is not screen or any(self.errors().values()),
                    "a message under a field, or another screen", timeout=5)

        assert self.app.is_running
        assert self.app.screen is screen, f"the form went on to {type(self.app.screen).__name__}"
        errors = self.errors()
        message = errors.pop(field)
        assert any(name.lower() in message.lower() for name in names), (names, message)
        assert "\n" not in message.strip() and not leaked_names(message, " ".join(typing.values())), message
        assert not any(errors.values()), errors
        asked = {call[0] for call in self.service.calls}
        assert asked <= ASKED_BEFORE_APPLY, asked

    def errors(self) -> dict[str, str]:
        return {field_id: widget.error for field_id, widget in self.screen.fields().items()}


async def on_form(service: FakeClusterService, reach: Callable[[Pilot], Awaitable[None]], valid: dict[str, str],
                  prop: Callable[[Form], None]) -> None:
    """Run the property ``prop`` against one console on the form ``reach`` opens."""
    app = build(service)
    async with app.run_test(size=(80, 24)) as pilot:
        await reach(pilot)
        await asyncio.to_thread(prop, Form(pilot, service, valid))
        assert app.is_running


async def configure(pilot: Pilot) -> None:
    await on_screen(pilot, "ConfigureScreen")
    pilot.app.screen.query_one("#local_ip").value = LOCAL.ip


async def edit(pilot: Pilot) -> None:
    await on_screen(pilot, "DetailsScreen")
    await tap(pilot, "e")
    await on_screen(pilot, "EditScreen")


def no_cluster() -> FakeClusterService:
    return FakeClusterService(configured=False)


async def test_configure_refuses_a_bad_remote_ip():
    @SETTINGS
    @given(text=typed(BAD_REMOTE_IP))
    @example(text=f"{REMOTE.ip}%eth0")
    def prop(form: Form, text: str) -> None:
        form.check({"remote_ip": text}, "remote_ip", ("Remote IP",))

    await on_form(no_cluster(), configure, CONFIGURE_VALID, prop)


async def test_configure_refuses_an_empty_or_unconfirmed_password():
    @SETTINGS
    @given(pair=BAD_PASSWORDS)
    def prop(form: Form, pair: tuple[str, str]) -> None:
        first, second = pair
        form.check({"password": first, "confirmation": second}, "password", ("password",))

    await on_form(no_cluster(), configure, CONFIGURE_VALID, prop)


async def test_configure_refuses_bad_floating_ips():
    @SETTINGS
    @given(text=BAD_FLOATING_LIST)
    def prop(form: Form, text: str) -> None:
        form.check({"floating_ips": text}, "floating_ips", ("Floating IP",))

    await on_form(no_cluster(), configure, CONFIGURE_VALID, prop)


async def test_configure_refuses_a_bad_check_interval():
    @SETTINGS
    @given(text=typed(BAD_INTERVAL))
    @example(text="1e999")
    def prop(form: Form, text: str) -> None:
        form.check({"check_interval": text}, "check_interval", ("Check interval",))

    await on_form(no_cluster(), configure, CONFIGURE_VALID, prop)


async def test_edit_refuses_bad_floating_ips_and_check_intervals():
    labels = {"floating_ips": "Floating IP", "check_interval": "Check interval"}

    @SETTINGS
    @given(entry=st.one_of(BAD_FLOATING_LIST.map(lambda text: ("floating_ips", text)),
                           typed(BAD_INTERVAL).map(lambda text: ("check_interval", text))))
    @example(entry=("check_interval", "1e999"))
    def prop(form: Form, entry: tuple[str, str]) -> None:
        field, text = entry
        form.check({field: text}, field, (labels[field],))

    await on_form(FakeClusterService(), edit, EDIT_VALID, prop)
