"""Details, and what it leads to: Edit, Destroy, Help."""

from __future__ import annotations

from textual.pilot import Pilot

from tests.fakes import FakeClusterService
from tests.ui.snapshot_apps.common import Scene, on_screen, shows, steps_done


async def details(pilot: Pilot) -> None:
    await on_screen(pilot, "DetailsScreen")


async def destroy(pilot: Pilot) -> None:
    await details(pilot)
    await pilot.press("d")
    await on_screen(pilot, "ConfirmDialog")


async def destroyed(pilot: Pilot) -> None:
    await destroy(pilot)
    await pilot.press("y")
    await steps_done(pilot)


async def edit(pilot: Pilot) -> None:
    await details(pilot)
    await pilot.press("e")
    await on_screen(pilot, "EditScreen")


async def edit_applied(pilot: Pilot) -> None:
    await edit(pilot)
    pilot.app.screen.query_one("#check_interval").value = "2"
    await pilot.press("f2")
    await steps_done(pilot)


async def edit_nothing(pilot: Pilot) -> None:
    await edit(pilot)
    await pilot.press("f2")
    await steps_done(pilot)


async def help_screen(pilot: Pilot) -> None:
    await details(pilot)
    await pilot.press("f1")
    await on_screen(pilot, "HelpScreen")


async def error_dialog(pilot: Pilot) -> None:
    await details(pilot)
    await pilot.press("e")
    await on_screen(pilot, "NoticeDialog")


async def start_failed(pilot: Pilot) -> None:
    await shows(pilot, "Could not read")


SCENES = [
    Scene("details", FakeClusterService, details),
    Scene("details_backup", lambda: FakeClusterService(master=False), details),
    Scene("destroy", FakeClusterService, destroy),
    Scene("destroyed", FakeClusterService, destroyed, wide=False),
    Scene("edit", FakeClusterService, edit),
    Scene("edit_applied", FakeClusterService, edit_applied),
    Scene("edit_nothing", FakeClusterService, edit_nothing, wide=False),
    Scene("help", FakeClusterService, help_screen),
    Scene(
        "error",
        lambda: FakeClusterService(errors={"link_names": "Could not list the links of node-a: netlink timed out; try again."}),
        error_dialog,
        wide=False,
    ),
    Scene(
        "start_failed",
        lambda: FakeClusterService(errors={"cluster": "/etc/skutui/cluster.toml line 2: unterminated string; fix or remove the file."}),
        start_failed,
        wide=False,
    ),
]
