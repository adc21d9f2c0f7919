"""Configure and the steps of creating a cluster, from the empty form to the result."""

from __future__ import annotations

from textual.pilot import Pilot

from skutui.cluster.preflight import PEER_NIC, SAME_VERSION
from tests.fakes import FakeClusterService
from tests.ui.snapshot_apps.common import FormValues, Scene, fill_create_form, on_screen, shows, steps_done, tap


def no_cluster(**knobs) -> FakeClusterService:
    return FakeClusterService(configured=False, **knobs)


async def empty_form(pilot: Pilot) -> None:
    await on_screen(pilot, "ConfigureScreen")


async def invalid_form(pilot: Pilot) -> None:
    await fill_create_form(
        pilot,
        FormValues(remote_ip="198.18.0.1", confirmation="other", floating_ips="198.18.0.300", check_interval="0.001"),
    )
    await tap(pilot, "f2")
    await shows(pilot, "Correct the fields")


async def host_key(pilot: Pilot) -> None:
    await fill_create_form(pilot)
    await tap(pilot, "f2")
    await on_screen(pilot, "ConfirmDialog")


async def preflight_failed(pilot: Pilot) -> None:
    await host_key(pilot)
    await tap(pilot, "y")
    await steps_done(pilot)


async def wrong_password(pilot: Pilot) -> None:
    await fill_create_form(pilot, FormValues(password="wrong", confirmation="wrong"))
    await tap(pilot, "f2")
    await on_screen(pilot, "ConfirmDialog")
    await tap(pilot, "y")
    await steps_done(pilot)


async def erase(pilot: Pilot) -> None:
    await host_key(pilot)
    await tap(pilot, "y")
    await shows(pilot, "ERASE")


async def created(pilot: Pilot) -> None:
    await erase(pilot)
    await tap(pilot, "y")
    await steps_done(pilot)


SCENES = [
    Scene("configure", no_cluster, empty_form, wide=True),
    Scene("configure_invalid", no_cluster, invalid_form),
    Scene("host_key", no_cluster, host_key),
    Scene("preflight_failed", lambda: no_cluster(preflight_failures=(PEER_NIC, SAME_VERSION)), preflight_failed),
    Scene("wrong_password", no_cluster, wrong_password, snapshot=False),
    Scene("erase", no_cluster, erase, wide=True),
    Scene("created", no_cluster, created, wide=True),
]
