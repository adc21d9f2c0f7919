"""Nodes: healthy, with the peer unreachable, in split brain, with a backup whose service is
down, and the maintenance dialogs (the second one asks before the floating IPs go unserved)."""

from __future__ import annotations

from textual.pilot import Pilot

from tests.fakes import FakeClusterService
from tests.ui.snapshot_apps.common import Scene, on_screen, shows, tap


async def nodes_seen(pilot: Pilot, text: str) -> None:
    await on_screen(pilot, "DetailsScreen")
    await tap(pilot, "n")
    await on_screen(pilot, "NodesScreen")
    await shows(pilot, text)


async def nodes(pilot: Pilot) -> None:
    await nodes_seen(pilot, "Node online and passive")


async def unreachable(pilot: Pilot) -> None:
    await nodes_seen(pilot, "UNREACHABLE")


async def split_brain(pilot: Pilot) -> None:
    await nodes_seen(pilot, "SPLIT BRAIN")


async def maintenance_question(pilot: Pilot) -> None:
    await nodes(pilot)
    await tap(pilot, "m")
    await on_screen(pilot, "ConfirmDialog")


async def in_maintenance(pilot: Pilot) -> None:
    await maintenance_question(pilot)
    await tap(pilot, "y")
    await shows(pilot, "MAINTENANCE")


async def not_ready(pilot: Pilot) -> None:
    await nodes_seen(pilot, "FAILURE")


async def unserved_question(pilot: Pilot) -> None:
    """Maintenance on the master whose peer is not ready: the second, explicit question."""
    await not_ready(pilot)
    await tap(pilot, "m")
    await on_screen(pilot, "ConfirmDialog")
    await tap(pilot, "y")
    await shows(pilot, "UNSERVED?")


async def with_events(pilot: Pilot) -> None:
    await nodes(pilot)
    service = pilot.app.service
    service.master = False
    service.emit("role", "local", "became backup: node-b has the higher priority")
    service.emit("role", "remote", "became master")
    await shows(pilot, "became master")
    await shows(pilot, "Node online and passive")


SCENES = [
    Scene("nodes", FakeClusterService, nodes, wide=True),
    Scene("nodes_unreachable", lambda: FakeClusterService(peer_reachable=False), unreachable, wide=True),
    Scene("nodes_split_brain", lambda: FakeClusterService(split_brain=True), split_brain),
    Scene("maintenance", FakeClusterService, maintenance_question),
    Scene("nodes_not_ready", lambda: FakeClusterService(peer_services_down=("haproxy",)), not_ready),
    Scene("maintenance_unserved", lambda: FakeClusterService(peer_services_down=("haproxy",)),
          unserved_question),
    Scene("nodes_maintenance", FakeClusterService, in_maintenance, snapshot=False),
    Scene("nodes_events", FakeClusterService, with_events, snapshot=False),
]
