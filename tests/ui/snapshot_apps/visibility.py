"""What the cluster did and whether it could do it again: the Timeline, a failover's record,
the synced files (in step and drifted, with the push), the standby's readiness (ready and
not), the drill and the timing budget in Edit."""

from __future__ import annotations

from textual.pilot import Pilot

from tests.fakes import FakeClusterService
from tests.ui.snapshot_apps.common import Scene, on_screen, shows, steps_done, tap


async def details(pilot: Pilot) -> None:
    await on_screen(pilot, "DetailsScreen")


async def timeline(pilot: Pilot) -> None:
    await details(pilot)
    await tap(pilot, "t")
    await on_screen(pilot, "TimelineScreen")


async def failover_record(pilot: Pilot) -> None:
    await timeline(pilot)
    table = pilot.app.screen.query_one("#records")
    failover = max(i for i, r in enumerate(pilot.app.screen.records) if r["kind"] == "failover"
                   and r["data"]["cause"] == "keepalived death")
    table.move_cursor(row=failover)
    await tap(pilot, "enter")
    await on_screen(pilot, "NoticeDialog")


async def everything(pilot: Pilot) -> None:
    await timeline(pilot)
    await tap(pilot, "a")
    await shows(pilot, "last day")


async def files(pilot: Pilot) -> None:
    await details(pilot)
    await tap(pilot, "f")
    await on_screen(pilot, "FilesScreen")


async def push_question(pilot: Pilot) -> None:
    await files(pilot)
    await tap(pilot, "p")
    await on_screen(pilot, "ConfirmDialog")


async def pushed(pilot: Pilot) -> None:
    await push_question(pilot)
    await tap(pilot, "y")
    await steps_done(pilot)


async def readiness(pilot: Pilot) -> None:
    await details(pilot)
    await tap(pilot, "n")
    await on_screen(pilot, "NodesScreen")
    await tap(pilot, "s")
    await on_screen(pilot, "ReadinessScreen")


async def nodes_with(pilot: Pilot, text: str) -> None:
    await details(pilot)
    await tap(pilot, "n")
    await on_screen(pilot, "NodesScreen")
    await shows(pilot, text)


async def drill_question(pilot: Pilot) -> None:
    await details(pilot)
    await tap(pilot, "x")
    await on_screen(pilot, "ConfirmDialog")


async def drilled(pilot: Pilot) -> None:
    await drill_question(pilot)
    await tap(pilot, "y")
    await steps_done(pilot)


async def edit_interval(pilot: Pilot) -> None:
    await details(pilot)
    await tap(pilot, "e")
    await on_screen(pilot, "EditScreen")
    pilot.app.screen.query_one("#check_interval").value = "0.2"
    await shows(pilot, "0.72 s")


SCENES = [
    Scene("timeline", FakeClusterService, timeline, wide=True),
    Scene("timeline_record", FakeClusterService, failover_record),
    Scene("timeline_everything", FakeClusterService, everything, snapshot=False),
    Scene("timeline_unreachable", lambda: FakeClusterService(peer_reachable=False), timeline),
    Scene("files", lambda: FakeClusterService(drift=3), files, wide=True),
    Scene("files_in_step", FakeClusterService, files),
    Scene("files_push", lambda: FakeClusterService(drift=3), push_question),
    Scene("files_pushed", lambda: FakeClusterService(drift=3), pushed, snapshot=False),
    Scene("files_backup", lambda: FakeClusterService(drift=3, master=False), files),
    Scene("readiness", FakeClusterService, readiness, wide=True),
    Scene("readiness_not_ready", lambda: FakeClusterService(backup_conntrackd=False), readiness),
    Scene("nodes_drift", lambda: FakeClusterService(drift=3),
          lambda pilot: nodes_with(pilot, "Config drift: 3 files")),
    Scene("drill", FakeClusterService, drill_question),
    Scene("drilled", FakeClusterService, drilled),
    Scene("drill_refused", lambda: FakeClusterService(backup_conntrackd=False), drilled),
    Scene("edit_timing", FakeClusterService, edit_interval),
]
