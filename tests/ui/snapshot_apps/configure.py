"""Configure and the steps of creating a cluster, from the empty form to the result."""

from __future__ import annotations

from textual.pilot import Pilot

from tests.fakes import FakeClusterService
from tests.ui.snapshot_apps.common import FormValues, Scene, fill_create_form, on_screen, shows, steps_done


def no_cluster(**knobs) -> FakeClusterService:
    return FakeClusterService(configured=False, **knobs)


async def empty_form(pilot: Pilot) -> None:
    await on_screen(pilot, "ConfigureScreen")


async def invalid_form(pilot: Pilot) -> None:
    await fill_create_form(
        pilot,
        FormValues(remote_ip="198.18.0.1", confirmation="other", floating_ips="198.18.0.300", check_interval="0.001"),
    )
    await pilot.press("f2")
    await shows(pilot, "Correct the fields")


async def host_key(pilot: Pilot) -> None:
    await fill_create_form(pilot)
    await pilot.press("f2")
    await on_screen(pilot, "ConfirmDialog")


async def preflight_failed(pilot: Pilot) -> None:
    await host_key(pilot)
    await pilot.press("y")
    await steps_done(pilot)


async def wrong_password(pilot: Pilot) -> None:
    await fill_create_form(pilot, FormValues(password="wrong", confirmation="wrong"))
    await pilot.press("f2")
    await on_screen(pilot, "ConfirmDialog")
    await pilot.press("y")
    await steps_done(pilot)


async def erase(pilot: Pilot) -> None:
    await host_key(pilot)
    await pilot.press("y")
    await shows(pilot, "ERASE")


async def created(pilot: Pilot) -> None:
    await erase(pilot)
    await pilot.press("y")
    await steps_done(pilot)


SCENES = [
    Scene("configure", no_cluster, empty_form),
    Scene("configure_invalid", no_cluster, invalid_form),
    Scene("host_key", no_cluster, host_key),
    Scene("preflight_failed", lambda: no_cluster(preflight_failures=("Same interface", "Version")), preflight_failed),
    Scene("wrong_password", no_cluster, wrong_password, wide=False),
    Scene("erase", no_cluster, erase),
    Scene("created", no_cluster, created),
]
