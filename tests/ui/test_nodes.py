"""The node table: roles and statuses in colour and words, maintenance, live events."""

from __future__ import annotations

from textual.widgets import DataTable

from skutui.cluster import lifecycle
from skutui.domain.wire import Event
from tests.fakes import HANDOVER_SECONDS, FakeClusterService
from tests.ui.snapshot_apps.common import build, log_text, on_screen, screen_text, shows, tap, until


async def open_nodes(pilot, expect: str = "OK") -> DataTable:
    await on_screen(pilot, "DetailsScreen")
    await tap(pilot, "n")
    await on_screen(pilot, "NodesScreen")
    await shows(pilot, expect)
    return pilot.app.screen.query_one(DataTable)


def row(table: DataTable, key: str) -> list[str]:
    return [str(cell) for cell in table.get_row(key)]


async def test_the_table_lists_both_nodes_local_first():
    app = build(FakeClusterService())
    async with app.run_test(size=(80, 24)) as pilot:
        table = await open_nodes(pilot)
        assert [r.key.value for r in table.ordered_rows] == ["local", "remote"]
        assert row(table, "local") == ["local", "master", "198.18.0.1", "node-a", "OK", "Node online and active"]
        assert row(table, "remote") == ["remote", "backup", "198.18.0.2", "node-b", "OK", "Node online and passive"]
        assert "green" in str(table.get_cell("local", "status").style)


async def test_maintenance_on_the_master_says_who_takes_over_and_calls_the_service():
    service = FakeClusterService()
    app = build(service)
    async with app.run_test(size=(80, 24)) as pilot:
        table = await open_nodes(pilot)
        await tap(pilot, "m")
        await on_screen(pilot, "ConfirmDialog")
        assert ("node-b will commit the connection state and take over the floating IPs (198.18.0.100/24); "
                "node-a stops serving only once node-b holds them.") in app.screen.body
        await tap(pilot, "y")
        await until(pilot, lambda: row(table, "local")[4] == "MAINTENANCE", "the MAINTENANCE status")
        assert service.called("set_maintenance") == [("set_maintenance", "local", True, False)]
        assert row(table, "remote")[1] == "master"
        said = lifecycle.maintenance_handed_over(service.config, "node-a is in maintenance", "node-b",
                                                 HANDOVER_SECONDS)
        assert said in " ".join(screen_text(app).split())
        assert "orange" in str(table.get_cell("local", "status").style)

        await tap(pilot, "m")
        await on_screen(pilot, "ConfirmDialog")
        assert "node-a will rejoin as backup" in app.screen.body
        await tap(pilot, "y")
        await until(pilot, lambda: row(table, "local")[4] == "OK", "the OK status")
        assert service.called("set_maintenance")[-1] == ("set_maintenance", "local", False, False)


async def test_maintenance_on_the_backup_row_and_cancel():
    service = FakeClusterService()
    app = build(service)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_nodes(pilot)
        await tap(pilot, "down", "m")
        await on_screen(pilot, "ConfirmDialog")
        assert "node-b will stop standing by; node-a keeps serving" in app.screen.body
        await tap(pilot, "escape")
        await on_screen(pilot, "NodesScreen")
        assert service.called("set_maintenance") == []
        await tap(pilot, "m")
        await on_screen(pilot, "ConfirmDialog")
        await tap(pilot, "y")
        await until(pilot, lambda: service.called("set_maintenance") == [
            ("set_maintenance", "remote", True, False)])


async def test_maintenance_on_the_master_whose_peer_cannot_take_over_asks_twice():
    """The first answer is refused by the service; only a second, explicit yes forces it."""
    service = FakeClusterService(peer_services_down=("haproxy",))
    app = build(service)
    async with app.run_test(size=(80, 24)) as pilot:
        table = await open_nodes(pilot, "FAILURE")
        assert row(table, "remote")[4:] == ["FAILURE", "not ready to take over: haproxy is down"]
        await tap(pilot, "m")
        await on_screen(pilot, "ConfirmDialog")
        assert ("WARNING: node-a is the master and node-b cannot take over (backup, FAILURE: not ready to "
                "take over: haproxy is down): nobody would serve the floating IPs") in app.screen.body
        await tap(pilot, "y")
        await until(pilot, lambda: getattr(app.screen, "title_text", "") == "Leave the floating IPs UNSERVED?",
                    "the second question")
        assert app.screen.body.startswith("Maintenance refused: node-a is the master and node-b cannot take over")
        assert "--force" not in app.screen.body
        await tap(pilot, "n")
        await on_screen(pilot, "NodesScreen")
        assert service.called("set_maintenance") == [("set_maintenance", "local", True, False)]
        assert row(table, "local")[1] == "master"

        await tap(pilot, "m")
        await on_screen(pilot, "ConfirmDialog")
        await tap(pilot, "y")
        await until(pilot, lambda: getattr(app.screen, "title_text", "") == "Leave the floating IPs UNSERVED?",
                    "the second question")
        await tap(pilot, "y")
        await until(pilot, lambda: row(table, "local")[4] == "MAINTENANCE", "the MAINTENANCE status")
        assert service.called("set_maintenance")[-1] == ("set_maintenance", "local", True, True)
        assert "are UNSERVED until one of the nodes can hold them again" in " ".join(screen_text(app).split())


async def test_maintenance_on_the_master_warns_when_the_peer_is_unreachable():
    app = build(FakeClusterService(peer_reachable=False))
    async with app.run_test(size=(80, 24)) as pilot:
        await open_nodes(pilot, "UNREACHABLE")
        await tap(pilot, "m")
        await on_screen(pilot, "ConfirmDialog")
        assert "node-b cannot take over (unknown, UNREACHABLE: Node unreachable): nobody would serve" in (
            " ".join(app.screen.body.split()))


async def test_a_refused_maintenance_change_is_one_readable_message():
    app = build(FakeClusterService(errors={"set_maintenance": "The Cluster Interface 'eth0' is not UP"}))
    async with app.run_test(size=(80, 24)) as pilot:
        await open_nodes(pilot)
        await tap(pilot, "m")
        await on_screen(pilot, "ConfirmDialog")
        await tap(pilot, "y")
        await on_screen(pilot, "NoticeDialog")
        assert "The Cluster Interface 'eth0' is not UP" in screen_text(app)
        await tap(pilot, "enter")
        await on_screen(pilot, "NodesScreen")


async def test_an_unreachable_peer_is_grey_and_says_unreachable():
    for plain, grey in ((False, "grey50"), (True, "bright_black")):
        app = build(FakeClusterService(peer_reachable=False), plain=plain)
        async with app.run_test(size=(80, 24)) as pilot:
            table = await open_nodes(pilot, "UNREACHABLE")
            assert row(table, "remote")[4:] == ["UNREACHABLE", "Node unreachable"]
            assert grey in str(table.get_cell("remote", "status").style)


async def test_split_brain_is_called_out():
    app = build(FakeClusterService(split_brain=True))
    async with app.run_test(size=(80, 24)) as pilot:
        table = await open_nodes(pilot, "SPLIT BRAIN")
        assert row(table, "local")[1] == row(table, "remote")[1] == "master"
        text = " ".join(screen_text(app).split())
        assert "SPLIT BRAIN: node-a and node-b are both master" in text


async def test_an_event_rereads_the_nodes_and_changes_only_what_changed():
    service = FakeClusterService()
    app = build(service)
    async with app.run_test(size=(80, 24)) as pilot:
        table = await open_nodes(pilot)
        screen = app.screen
        redraws: list[str] = []
        original_update, original_rebuild = table.update_cell, screen.rebuild
        table.update_cell = lambda row_key, column_key, *a, **k: (
            redraws.append(f"{row_key}.{column_key}"), original_update(row_key, column_key, *a, **k)
        )
        screen.rebuild = lambda *a: (redraws.append("table"), original_rebuild(*a))

        reads = len(service.called("nodes"))
        service.emit("sync", "remote", "configuration pushed")
        await until(pilot, lambda: len(service.called("nodes")) > reads, "the nodes to be read again")
        await shows(pilot, "node-b: configuration pushed")
        assert redraws == []

        service.master = False
        service.queue.put_nowait(Event("role", "remote", "became master"))
        await until(pilot, lambda: row(table, "remote")[1] == "master", "node-b to show as master")
        assert sorted(redraws) == ["local.message", "local.role", "remote.message", "remote.role"]
        assert row(table, "local")[1:2] + row(table, "local")[5:] == ["backup", "Node online and passive"]

        service.split_brain = True
        service.emit("role", "local", "became master")
        await until(pilot, lambda: row(table, "local")[4] == "FAILURE", "split brain to show")
        assert redraws[-1] == "table"
        assert "node-b: became master" in log_text(app, "#events")


async def test_a_quiet_cluster_sends_nothing_to_the_terminal():
    service = FakeClusterService()
    app = build(service)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_nodes(pilot)
        await pilot.pause()
        written: list[str] = []
        app._driver.write = written.append
        for _ in range(3):
            reads = len(service.called("nodes"))
            service.emit("refresh", "local", "")
            await until(pilot, lambda reads=reads: len(service.called("nodes")) > reads, "the nodes to be read again")
        await tap(pilot, "r")
        await until(pilot, lambda: len(service.called("nodes")) > reads + 1, "the nodes to be read again")
        await pilot.pause(0.1)
        assert written == []


async def test_a_burst_of_events_with_a_slow_peer_still_reaches_the_last_state():
    service = FakeClusterService(nodes_delay=0.05)
    app = build(service)
    async with app.run_test(size=(80, 24)) as pilot:
        table = await open_nodes(pilot)
        reads = len(service.called("nodes"))
        for number in range(20):
            service.emit("sync", "remote", f"push {number}")
        service.master = False
        service.emit("role", "remote", "became master")
        await until(pilot, lambda: row(table, "remote")[1] == "master", "the last state")
        assert len(service.called("nodes")) - reads <= 3


async def test_a_lost_event_stream_is_said_and_r_reads_again():
    service = FakeClusterService()

    async def broken_events():
        raise ConnectionError("control socket closed")
        yield

    service.events = broken_events
    app = build(service)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_nodes(pilot)
        await shows(pilot, "Live updates stopped")
        reads = len(service.called("nodes"))
        await tap(pilot, "r")
        await until(pilot, lambda: len(service.called("nodes")) > reads)
