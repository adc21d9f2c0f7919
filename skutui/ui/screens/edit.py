"""Edit: the settings an operator may change on a running cluster, applied to both nodes."""

from __future__ import annotations

import dataclasses

from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import Static
from textual.widgets.selection_list import Selection

from skutui.domain import timing, validation
from skutui.domain.errors import ValidationError
from skutui.domain.model import TRANSPORTS
from skutui.domain.settings import CHECK_INTERVAL, HEARTBEAT_TRANSPORT, METRICS_FILE, WEBHOOK_URL, Context
from skutui.domain.wire import EditRequest
from skutui.ui.forms import FormCheck
from skutui.ui.screens.base import SERVICE_KEYS, FormScreen, service_fields
from skutui.ui.screens.steps import StepsScreen
from skutui.ui.state import ClusterView, failback_options
from skutui.ui.widgets.checklist import Checklist
from skutui.ui.widgets.fields import ActionButton, Choice, Field, TextField

LOOPBACK = "lo"
"""Never offered for tracking: it is always up, so watching it tells keepalived nothing."""


class EditScreen(FormScreen):
    SUB_TITLE = "Edit the cluster"
    DEFAULT_CSS = """
    EditScreen #takeover {
        margin-left: 22;
        color: $text-muted;
    }
    """
    BINDINGS = [
        Binding("f2", "apply", "Apply", id="edit.apply"),
        Binding("escape", "back", "Back", id="edit.back"),
    ]

    def __init__(self, view: ClusterView, links: list[str]):
        super().__init__()
        assert view.cluster is not None
        self.view = view
        self.cluster = view.cluster
        self.links = [name for name in links if name != LOOPBACK]

    def compose_body(self) -> ComposeResult:
        text = self.app.profile.text
        cluster = self.cluster
        yield Static(
            text(f"Changes are applied to both nodes: {' and '.join(n.hostname for n in cluster.nodes)}."),
            id="intro",
            markup=False,
        )
        yield Choice(
            failback_options(text(self.view.hostname), text(self.view.peer_hostname)),
            self.view.failback_side(),
            vertical=True,
            label="Failback",
            id="failback",
        )
        tracked = set(cluster.tracked_interfaces)
        always = Selection(
            f"{cluster.interface}  (cluster interface, always tracked)", cluster.interface, True, disabled=True
        )
        others = [Selection(text(name), name, name in tracked) for name in self.links if name != cluster.interface]
        yield Field("Tracked interfaces", Checklist(always, *others, id="tracked_interfaces"))
        yield TextField(f"{cluster.check_interval:g}", placeholder="seconds, 0.1 to 40", label="Check interval (s)",
                        id="check_interval")
        yield Static(text(timing.summary(cluster, self.view.taker)), id="takeover", markup=False)
        yield Choice([(name, name) for name in TRANSPORTS], cluster.heartbeat_transport,
                     label=HEARTBEAT_TRANSPORT.label, id="heartbeat_transport")
        yield TextField(", ".join(cluster.floating_ips), placeholder="CIDR[@NIC], comma separated",
                        label="Floating IPs", id="floating_ips")
        yield from service_fields(", ".join(cluster.services_on_both), ", ".join(cluster.services),
                                  ", ".join(cluster.synced_paths))
        yield TextField(cluster.webhook_url, placeholder="https://... (empty: none)", label=WEBHOOK_URL.label,
                        id="webhook_url")
        yield TextField(cluster.metrics_file, placeholder="/var/lib/prometheus/node-exporter/skutui.prom",
                        label=METRICS_FILE.label, id="metrics_file")
        yield ActionButton("Apply", id="apply", action="screen.apply")

    def on_text_field_changed(self, event: TextField.Changed) -> None:
        """The timing budget follows the check interval as it is typed."""
        if event.control.id != "check_interval":
            return
        try:
            interval = CHECK_INTERVAL.read(event.value)
        except ValidationError:
            return
        updated = dataclasses.replace(self.cluster, check_interval=interval)
        self.query_one("#takeover", Static).update(
            self.app.profile.text(timing.summary(updated, self.view.taker)))

    def on_mount(self) -> None:
        self.say("Space ticks an interface; F2 or Apply shows what changes; Esc goes back unchanged.")

    def read_request(self) -> EditRequest | None:
        check = FormCheck()
        context = Context.of(self.cluster, self.view.hostname, self.links)
        changes = {key: self.read_setting(check, key, context)
                   for key in ("failback", "tracked_interfaces", "check_interval", "heartbeat_transport",
                               "floating_ips", *SERVICE_KEYS, "webhook_url", "metrics_file")}
        check("services_on_both", lambda: validation.services_listed_once(
            changes["services"] or (), changes["services_on_both"] or ()))
        self.show_errors(check.errors)
        if not check.ok:
            return None
        return EditRequest(changes)

    def action_apply(self) -> None:
        request = self.read_request()
        if request is None:
            return
        service = self.app.service

        async def apply(steps: StepsScreen) -> str:
            changes = await service.edit(request, steps.progress)
            if not changes:
                return "Nothing to be changed."
            steps.line("Changed:")
            for change in changes:
                steps.line(f"  {change}")
            return "The changes are applied on both nodes."

        self.app.push_screen(
            StepsScreen("Applying the changes", apply, on_success=self.app.open_home, back_hint="go back to the form")
        )

    def action_back(self) -> None:
        self.app.pop_screen()
