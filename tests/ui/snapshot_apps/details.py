"""Details, and what it leads to: Edit, Destroy, Help."""

from __future__ import annotations

from textual.pilot import Pilot

from tests.fakes import FakeClusterService
from tests.ui.snapshot_apps.common import Scene, on_screen, shows, steps_done, tap


async def details(pilot: Pilot) -> None:
    await on_screen(pilot, "DetailsScreen")


async def destroy(pilot: Pilot) -> None:
    await details(pilot)
    await tap(pilot, "d")
    await on_screen(pilot, "ConfirmDialog")


async def destroyed(pilot: Pilot) -> None:
    await destroy(pilot)
    await tap(pilot, "y")
    await steps_done(pilot)


async def edit(pilot: Pilot) -> None:
    await details(pilot)
    await tap(pilot, "e")
    await on_screen(pilot, "EditScreen")


async def edit_applied(pilot: Pilot) -> None:
    await edit(pilot)
    pilot.app.screen.query_one("#check_interval").value = "2"
    await tap(pilot, "f2")
    await steps_done(pilot)


async def edit_nothing(pilot: Pilot) -> None:
    await edit(pilot)
    await tap(pilot, "f2")
    await steps_done(pilot)


async def help_screen(pilot: Pilot) -> None:
    await details(pilot)
    await tap(pilot, "f1")
    await on_screen(pilot, "HelpScreen")


async def error_dialog(pilot: Pilot) -> None:
    await details(pilot)
    await tap(pilot, "e")
    await on_screen(pilot, "NoticeDialog")


async def start_failed(pilot: Pilot) -> None:
    await shows(pilot, "Could not read")


SCENES = [
    Scene("details", FakeClusterService, details, wide=True),
    Scene("details_backup", lambda: FakeClusterService(master=False), details, wide=True),
    Scene("destroy", FakeClusterService, destroy, wide=True),
    Scene("destroyed", FakeClusterService, destroyed, snapshot=False),
    Scene("edit", FakeClusterService, edit, wide=True),
    Scene("edit_applied", FakeClusterService, edit_applied),
    Scene("edit_nothing", FakeClusterService, edit_nothing, snapshot=False),
    Scene("help", FakeClusterService, help_screen, wide=True),
    Scene(
        "error",
        lambda: FakeClusterService(
            errors={"link_names": "Could not list the links of node-a: netlink timed out; try again."}),
        error_dialog,
    ),
    Scene(
        "start_failed",
        lambda: FakeClusterService(
            errors={"cluster": "/etc/skutui/cluster.toml line 2: unterminated string; fix or remove the file."}),
        start_failed,
    ),
]
