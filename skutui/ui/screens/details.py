"""Details: the cluster as configured, and the way to the nodes, to Edit and to Destroy."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.widgets import Static

from skutui.domain.settings import Context, shown
from skutui.ui.screens.base import ConsoleScreen
from skutui.ui.screens.dialogs import ConfirmDialog
from skutui.ui.screens.steps import StepsScreen
from skutui.ui.state import ClusterView
from skutui.ui.widgets.fields import LABEL_WIDTH, ActionButton

CONFIGURATION_ACTIONS = frozenset({"edit", "destroy"})


class DetailsScreen(ConsoleScreen):
    SUB_TITLE = "Cluster details"
    DEFAULT_CSS = """
    DetailsScreen {
        .read-only {
            color: $text-warning;
            text-style: bold;
            margin-bottom: 1;
        }
        #actions {
            height: auto;
            margin-top: 1;
        }
    }
    """
    BINDINGS = [
        Binding("n", "nodes", "Show nodes", id="details.nodes"),
        Binding("e", "edit", "Edit", id="details.edit"),
        Binding("d", "destroy", "Destroy", id="details.destroy"),
    ]

    def __init__(self, view: ClusterView):
        super().__init__()
        assert view.cluster is not None
        self.view = view
        self.cluster = view.cluster

    def settings(self) -> list[tuple[str, str]]:
        cluster, view = self.cluster, self.view
        role = "master" if view.is_master else "backup"
        nodes = [
            f"{node.hostname}  {node.ip}" + (f"  (this node, {role})" if node.hostname == view.hostname else "")
            for node in cluster.nodes
        ]
        return [*shown(cluster, Context.of(cluster, view.hostname)), ("Nodes", "\n".join(nodes))]

    def settings_table(self) -> Table:
        """Every setting as a label and its value, in one widget: long values wrap under
        themselves, beside their label."""
        text = self.app.profile.text
        table = Table.grid(expand=True)
        table.add_column(width=LABEL_WIDTH, no_wrap=True)
        table.add_column(ratio=1)
        for name, value in self.settings():
            table.add_row(name, Text(text(value)))
        return table

    def compose_body(self) -> ComposeResult:
        text = self.app.profile.text
        if self.view.read_only_reason:
            yield Static(text(self.view.read_only_reason), classes="read-only", markup=False)
        yield Static(self.settings_table(), id="settings")
        read_only = self.view.read_only_reason is not None
        with Horizontal(id="actions"):
            yield ActionButton("Show nodes", id="nodes", action="screen.nodes")
            yield ActionButton("Edit", id="edit", disabled=read_only, action="screen.edit")
            yield ActionButton(
                "Destroy", id="destroy", disabled=read_only, action="screen.destroy", classes="danger"
            )

    def on_mount(self) -> None:
        if self.view.read_only_reason:
            self.say(f"Show nodes (n) works here; Edit and Destroy work on {self.view.peer_hostname}.")
        else:
            self.say("n shows the nodes, e edits the settings, d destroys the cluster.")

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        return not (action in CONFIGURATION_ACTIONS and self.view.read_only_reason)

    def action_nodes(self) -> None:
        # A screen's module (and its styles) is read when the screen is first shown.
        from skutui.ui.screens.nodes import NodesScreen

        self.app.push_screen(NodesScreen(self.view))

    @work(exclusive=True, group="open-edit", exit_on_error=False)
    async def action_edit(self) -> None:
        # A screen's module (and its styles) is read when the screen is first shown.
        from skutui.ui.screens.edit import EditScreen

        await self.app.preloaded()
        links = await self.app.service.link_names()
        await self.app.push_screen(EditScreen(self.view, links))

    @work(exclusive=True, group="destroy", exit_on_error=False)
    async def action_destroy(self) -> None:
        cluster = self.cluster
        names = " and ".join(f"{n.hostname} ({n.ip})" for n in cluster.nodes)
        floating = ", ".join(cluster.floating_ips)
        released = (
            f"The floating IPs {floating} are released: neither node answers for them."
            if floating
            else "No floating IPs are configured."
        )
        confirmed = await self.app.push_screen_wait(
            ConfirmDialog(
                "Destroy the cluster?",
                f"This ends the cluster between {names}.\n\n"
                "Removed on both nodes:\n"
                "  - the cluster configuration\n"
                "  - the keepalived and conntrackd configuration\n"
                f"{released}\n\n"
                "Each node keeps the rest of its configuration and runs on its own.",
                yes="Destroy the cluster",
                no="Keep it",
                danger=True,
            )
        )
        if not confirmed:
            self.say("Destroy cancelled: the cluster is unchanged.")
            return
        service = self.app.service

        async def destroy(steps: StepsScreen) -> str:
            for warning in await service.destroy(steps.progress):
                steps.line(f"Warning: {warning}")
            return "Cluster destroyed: both nodes now run on their own."

        await self.app.push_screen(StepsScreen("Destroying the cluster", destroy, on_success=self.app.open_home))
