"""Creating a cluster from the Configure screen: every step visible, nothing done unasked."""

from __future__ import annotations

import pytest

from skutui.cluster import preflight
from skutui.ui.widgets.fields import TextField
from tests.fakes import FLOATING_IP, HOST_KEY, LOCAL, PASSWORD, REMOTE, FakeClusterService
from tests.ui.snapshot_apps.common import (
    FormValues,
    build,
    fill_create_form,
    log_text,
    on_screen,
    screen_text,
    shows,
    steps_done,
    tap,
)


def no_cluster(**knobs) -> FakeClusterService:
    return FakeClusterService(configured=False, **knobs)


async def apply_and_accept_key(pilot) -> None:
    await tap(pilot, "f2")
    await on_screen(pilot, "ConfirmDialog")
    assert HOST_KEY in screen_text(pilot.app)
    await tap(pilot, "y")


async def test_create_typed_from_the_keyboard_shows_each_step_then_details():
    service = no_cluster()
    app = build(service)
    async with app.run_test(size=(80, 24)) as pilot:
        await on_screen(pilot, "ConfigureScreen")
        assert app.focused.id == "local_ip"
        await tap(pilot, "down")  # eth0  198.18.0.1/24
        await pilot.press("tab", *REMOTE.ip, "enter", *PASSWORD, "enter", *PASSWORD, "enter")
        assert app.focused.id == "floating_ips"
        app.focused.value = FLOATING_IP
        assert app.screen.query_one("#password", TextField).value == PASSWORD
        app.screen.query_one("#services_on_both", TextField).value = "haproxy"
        app.screen.query_one("#synced_paths", TextField).value = "/etc/haproxy"
        await apply_and_accept_key(pilot)
        await until_erase_question(pilot)
        text = screen_text(app)
        assert "ERASED" in text and REMOTE.ip in text
        await tap(pilot, "y")
        assert await steps_done(pilot) == "succeeded"
        log = log_text(app)
        for name in preflight.check_names():
            assert f"PASS {name}" in log
        assert "Starting node-a node-a is master Starting node-b node-b is backup" in log
        assert "Cluster created: node-a is the master, 198.18.0.2 the backup." in log
        [(_, request)] = service.called("create")
        assert (request.local_ip, request.remote_ip, request.password) == (LOCAL.ip, REMOTE.ip, PASSWORD)
        assert request.settings == {"floating_ips": (FLOATING_IP,), "check_interval": 1.0,
                                    "failback": "disabled", "heartbeat_transport": "unicast",
                                    "services_on_both": ("haproxy",), "services": (),
                                    "synced_paths": ("/etc/haproxy",)}
        assert request.host_key_fingerprint == HOST_KEY
        await tap(pilot, "enter")
        await on_screen(pilot, "DetailsScreen")
        assert len(app.screen_stack) == 2
        text = " ".join(screen_text(app).split())
        assert "Services on both haproxy" in text and "Synced paths /etc/skutui, /etc/haproxy" in text


async def test_a_bad_service_name_is_said_under_its_field_and_nothing_is_asked():
    service = no_cluster()
    app = build(service)
    async with app.run_test(size=(80, 36)) as pilot:
        await on_screen(pilot, "ConfigureScreen")
        await tap(pilot, "down")
        screen = app.screen
        for field, value in (("remote_ip", REMOTE.ip), ("password", PASSWORD), ("confirmation", PASSWORD),
                             ("services", "-haproxy"), ("synced_paths", "/etc")):
            screen.query_one(f"#{field}", TextField).value = value
        await tap(pilot, "f2")
        await shows(pilot, "starts with")
        text = " ".join(screen_text(app).split())
        assert "Service '-haproxy' starts with '-', which would be read as an option" in text
        assert "Synced path /etc is a whole system folder" in text
        assert app.focused.id == "services"
        assert service.calls == [c for c in service.calls if c[0] not in ("fetch_host_key", "create")]


async def until_erase_question(pilot) -> None:
    await shows(pilot, "ERASE the configuration")


async def test_aliases_are_never_offered_as_the_local_ip():
    app = build(no_cluster())
    async with app.run_test(size=(80, 24)) as pilot:
        await on_screen(pilot, "ConfigureScreen")
        offered = [value for _, value in app.screen.query_one("#local_ip").options]
        assert offered == [LOCAL.ip, "203.0.113.5"]
        assert "198.18.0.50" not in screen_text(app)


async def test_invalid_fields_are_marked_inline_and_nothing_is_asked_of_the_peer():
    service = no_cluster()
    app = build(service)
    async with app.run_test(size=(80, 24)) as pilot:
        await fill_create_form(
            pilot, FormValues(remote_ip=LOCAL.ip, confirmation="typo", floating_ips="nonsense", check_interval="99")
        )
        await tap(pilot, "f2")
        await pilot.pause()
        errors = {name: field.error for name, field in app.screen.fields().items()}
        assert "this node's own address" in errors["remote_ip"]
        assert "passwords differ" in errors["password"]
        assert "nonsense" in errors["floating_ips"]
        assert "out of range" in errors["check_interval"]
        assert app.focused.id == "remote_ip"
        assert service.calls == [("cluster_candidates",)]


async def test_a_local_ip_must_be_chosen():
    app = build(no_cluster())
    async with app.run_test(size=(80, 24)) as pilot:
        await fill_create_form(pilot, local_choice=0)
        await tap(pilot, "f2")
        await shows(pilot, "Choose this node's cluster address")


async def test_every_failed_preflight_check_is_listed_with_its_hint():
    """Every check that compares the nodes fails: the peer must be logged in to for that."""
    names = [name for name in preflight.check_names() if name != preflight.PEER_AUTHENTICATED]
    service = no_cluster(preflight_failures=tuple(names))
    app = build(service)
    async with app.run_test(size=(80, 24)) as pilot:
        await fill_create_form(pilot)
        await apply_and_accept_key(pilot)
        assert await steps_done(pilot) == "stopped"
        log = log_text(app)
        [(_, request)] = service.called("preflight")
        results = await service.preflight(request, lambda line: None)
        assert [r.name for r in results if not r.passed] == names
        for result in results:
            if not result.passed:
                assert " ".join(f"FAIL {result.name}: {result.detail} {result.hint}".split()) in log
        assert f"{len(names)} of {len(names) + 1} checks failed" in log
        assert service.called("create") == []


async def test_one_failed_check_stops_before_the_erase_question_and_keeps_the_form():
    service = no_cluster(preflight_failures=(preflight.SAME_VERSION,))
    app = build(service)
    async with app.run_test(size=(80, 24)) as pilot:
        await fill_create_form(pilot)
        await apply_and_accept_key(pilot)
        assert await steps_done(pilot) == "stopped"
        log = log_text(app)
        total = len(preflight.check_names())
        assert f"FAIL {preflight.SAME_VERSION}" in log and f"PASS {preflight.DIFFERENT_HOSTNAMES}" in log
        assert f"1 of {total} checks failed" in log
        assert "ERASE" not in screen_text(app)
        assert service.called("create") == []
        await tap(pilot, "escape")
        await on_screen(pilot, "ConfigureScreen")
        assert app.screen.query_one("#remote_ip", TextField).value == REMOTE.ip


async def test_wrong_password_is_the_failed_login_check_and_nothing_more():
    service = no_cluster()
    app = build(service)
    async with app.run_test(size=(80, 24)) as pilot:
        await fill_create_form(pilot, FormValues(password="wrong", confirmation="wrong"))
        await apply_and_accept_key(pilot)
        assert await steps_done(pilot) == "stopped"
        log = log_text(app)
        assert f"FAIL {preflight.PEER_AUTHENTICATED}: root login with a password was refused by 198.18.0.2" in log
        assert "1 of 2 checks failed" in log
        assert "Traceback" not in screen_text(app)
        assert service.called("create") == []


@pytest.mark.parametrize("answer", ["n", "escape", "enter"])
async def test_anything_but_yes_to_the_erase_question_changes_nothing(answer):
    """Enter too: the safe answer has the focus."""
    service = no_cluster()
    app = build(service)
    async with app.run_test(size=(80, 24)) as pilot:
        await fill_create_form(pilot)
        await apply_and_accept_key(pilot)
        await until_erase_question(pilot)
        await tap(pilot, answer)
        assert await steps_done(pilot) == "stopped"
        assert service.called("create") == []
        assert service.config is None
        assert "Erase not confirmed" in screen_text(app)


async def test_rejected_host_key_stops_before_any_login():
    service = no_cluster()
    app = build(service)
    async with app.run_test(size=(80, 24)) as pilot:
        await fill_create_form(pilot)
        await tap(pilot, "f2")
        await on_screen(pilot, "ConfirmDialog")
        await tap(pilot, "n")
        assert await steps_done(pilot) == "stopped"
        assert service.called("preflight") == []


async def test_a_failed_create_says_why_and_goes_back_to_the_form():
    service = no_cluster(errors={"create": "keepalived did not start on node-b: see /run/skutui/agent.log there."})
    app = build(service)
    async with app.run_test(size=(80, 24)) as pilot:
        await fill_create_form(pilot)
        await apply_and_accept_key(pilot)
        await until_erase_question(pilot)
        await tap(pilot, "y")
        assert await steps_done(pilot) == "failed"
        text = screen_text(app)
        assert "Rolling back" in text and "keepalived did not start on node-b" in text
        await tap(pilot, "escape")
        await on_screen(pilot, "ConfigureScreen")
