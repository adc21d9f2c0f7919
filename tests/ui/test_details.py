"""Details, Edit and Destroy on the master; the read-only console on the backup."""

from __future__ import annotations

from skutui.domain.wire import EditRequest
from skutui.ui.widgets.fields import TextField
from tests.fakes import FLOATING_IP, FakeClusterService
from tests.ui.snapshot_apps.common import build, log_text, on_screen, screen_text, shows, steps_done, tap


async def test_details_show_the_configured_cluster():
    app = build(FakeClusterService())
    async with app.run_test(size=(80, 24)) as pilot:
        await on_screen(pilot, "DetailsScreen")
        text = screen_text(app)
        for expected in ("Interface", "eth0", "Failback", "disabled", "Check interval", "1 s",
                         "Tracked interfaces", "eth0, eth1", "Floating IPs", FLOATING_IP):
            assert expected in text
        assert "Read-only" not in text


async def test_details_fit_80x24_without_scrolling_on_both_nodes():
    for master in (True, False):
        app = build(FakeClusterService(master=master))
        async with app.run_test(size=(80, 24)) as pilot:
            await on_screen(pilot, "DetailsScreen")
            await pilot.pause()
            assert app.screen.query_one("#body").max_scroll_y == 0, f"master={master}"


async def open_edit(pilot) -> None:
    await on_screen(pilot, "DetailsScreen")
    await tap(pilot, "e")
    await on_screen(pilot, "EditScreen")


async def test_edit_applies_what_changed_and_lists_it():
    service = FakeClusterService()
    app = build(service)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_edit(pilot)
        assert app.focused.id == "failback"
        await tap(pilot, "down")  # this node (node-a)
        await tap(pilot, "tab")  # tracked interfaces: eth0 (fixed), eth1 highlighted, eth2
        await tap(pilot, "down", "space")  # tick eth2
        interval = app.screen.query_one("#check_interval", TextField)
        interval.value = "2"
        await tap(pilot, "f2")
        assert await steps_done(pilot) == "succeeded"
        [(_, request)] = service.called("edit")
        assert request == EditRequest({
            "failback": "node-a", "tracked_interfaces": ("eth1", "eth2"), "check_interval": 2.0,
            "heartbeat_transport": "unicast", "floating_ips": (FLOATING_IP,), "services_on_both": (),
            "services": (), "synced_paths": (), "webhook_url": "", "metrics_file": ""})
        log = log_text(app)
        assert "Changed:" in log and "Check interval: 1 s -> 2 s" in log
        assert "Failback: disabled -> node-a (this node)" in log
        await tap(pilot, "enter")
        await on_screen(pilot, "DetailsScreen")
        text = screen_text(app)
        assert "2 s" in text and "node-a (this node)" in text


async def test_edit_changes_the_services_and_refuses_one_listed_twice():
    service = FakeClusterService()
    app = build(service)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_edit(pilot)
        screen = app.screen
        screen.query_one("#services_on_both", TextField).value = "haproxy"
        screen.query_one("#services", TextField).value = "haproxy"
        await tap(pilot, "f2")
        await shows(pilot, "listed in both")
        assert app.focused.id == "services_on_both"
        assert service.called("edit") == []
        screen.query_one("#services", TextField).value = "nginx"
        screen.query_one("#floating_ips", TextField).value = f"{FLOATING_IP}, 203.0.113.9/24@eth1"
        await tap(pilot, "f2")
        assert await steps_done(pilot) == "succeeded"
        log = log_text(app)
        assert "Services on both: none -> haproxy" in log and "Services: none -> nginx" in log
        assert f"Floating IPs: {FLOATING_IP} -> {FLOATING_IP}, 203.0.113.9/24@eth1" in log


async def test_edit_with_no_change_says_nothing_to_be_changed():
    service = FakeClusterService()
    app = build(service)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_edit(pilot)
        await tap(pilot, "f2")
        assert await steps_done(pilot) == "succeeded"
        assert "Nothing to be changed." in screen_text(app)
        assert service.config.check_interval == 1.0


async def test_edit_marks_an_invalid_interval_and_applies_nothing():
    service = FakeClusterService()
    app = build(service)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_edit(pilot)
        app.screen.query_one("#check_interval", TextField).value = "fast"
        await tap(pilot, "f2")
        await shows(pilot, "is not a number")
        assert service.called("edit") == []
        await tap(pilot, "escape")
        await on_screen(pilot, "DetailsScreen")


async def test_loopback_is_not_offered_for_tracking_and_the_cluster_nic_is_fixed():
    app = build(FakeClusterService())
    async with app.run_test(size=(80, 24)) as pilot:
        await open_edit(pilot)
        checklist = app.screen.query_one("#tracked_interfaces")
        values = [checklist.get_option_at_index(i).value for i in range(checklist.option_count)]
        assert values == ["eth0", "eth1", "eth2"]
        assert checklist.get_option_at_index(0).disabled


async def test_destroy_asks_naming_both_nodes_then_cancel_changes_nothing_and_yes_destroys():
    service = FakeClusterService()
    app = build(service)
    async with app.run_test(size=(80, 24)) as pilot:
        await on_screen(pilot, "DetailsScreen")
        await tap(pilot, "d")
        await on_screen(pilot, "ConfirmDialog")
        body = app.screen.body
        for expected in ("node-a (198.18.0.1)", "node-b (198.18.0.2)", "the cluster configuration",
                         "keepalived and conntrackd configuration", f"floating IPs {FLOATING_IP} are released"):
            assert expected in body
        await tap(pilot, "n")
        await on_screen(pilot, "DetailsScreen")
        assert service.called("destroy") == []
        assert "Destroy cancelled" in screen_text(app)
        await tap(pilot, "d")
        await on_screen(pilot, "ConfirmDialog")
        await tap(pilot, "y")
        assert await steps_done(pilot) == "succeeded"
        assert service.called("destroy") == [("destroy",)]
        await tap(pilot, "enter")
        await on_screen(pilot, "ConfigureScreen")
        assert len(app.screen_stack) == 2


async def test_the_backup_is_read_only():
    service = FakeClusterService(master=False)
    app = build(service)
    async with app.run_test(size=(80, 24)) as pilot:
        await on_screen(pilot, "DetailsScreen")
        text = " ".join(screen_text(app).split())
        assert "Read-only backup: Drill, Edit and Destroy work on the master node-b." in text
        assert app.screen.query_one("#edit").disabled and app.screen.query_one("#destroy").disabled
        await tap(pilot, "e", "d")
        await pilot.pause()
        assert type(app.screen).__name__ == "DetailsScreen"
        assert service.called("destroy") == []
        await tap(pilot, "n")
        await on_screen(pilot, "NodesScreen")
