"""Details: the cluster as configured, and the way to the nodes, to Edit and to Destroy."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.widgets import Static

from skutui.domain import timing
from skutui.domain.history import seconds_text
from skutui.domain.settings import Context, shown
from skutui.ui.screens.base import ConsoleScreen
from skutui.ui.screens.dialogs import ConfirmDialog
from skutui.ui.screens.steps import StepsScreen
from skutui.ui.state import ClusterView
from skutui.ui.widgets.fields import LABEL_WIDTH, ActionButton

CONFIGURATION_ACTIONS = frozenset({"edit", "destroy", "drill"})
TAKEOVER_LABEL = "Takeover time"


class DetailsScreen(ConsoleScreen):
    SUB_TITLE = "Cluster details"
    DEFAULT_CSS = """
    DetailsScreen {
        #actions {
            height: auto;
            margin-top: 1;
        }
        #changes {
            height: auto;
        }
    }
    """
    BINDINGS = [
        Binding("n", "nodes", "Nodes", id="details.nodes"),
        Binding("t", "timeline", "Timeline", id="details.timeline"),
        Binding("f", "files", "Files", id="details.files"),
        Binding("x", "drill", "Drill", id="details.drill"),
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
        return [*shown(cluster, Context.of(cluster, view.hostname)), ("Nodes", "\n".join(nodes)),
                (TAKEOVER_LABEL, timing.details(cluster, view.taker))]

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
        yield Static(self.settings_table(), id="settings")
        read_only = self.view.read_only_reason is not None
        with Horizontal(id="actions"):
            yield ActionButton("Show nodes", id="nodes", action="screen.nodes")
            yield ActionButton("Timeline", id="timeline", action="screen.timeline")
            yield ActionButton("Files", id="files", action="screen.files")
        with Horizontal(id="changes"):
            yield ActionButton("Drill", id="drill", disabled=read_only, action="screen.drill")
            yield ActionButton("Edit", id="edit", disabled=read_only, action="screen.edit")
            yield ActionButton(
                "Destroy", id="destroy", disabled=read_only, action="screen.destroy", classes="danger"
            )

    def on_mount(self) -> None:
        if self.view.read_only_reason:
            # On the status line, not above the settings: the backup's screen fits 80x24 too.
            self.say(self.view.read_only_reason, kind="warning")
        else:
            self.say("n nodes, t timeline, f synced files, x drill, e edit, d destroy.")

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        return not (action in CONFIGURATION_ACTIONS and self.view.read_only_reason)

    def action_nodes(self) -> None:
        # A screen's module (and its styles) is read when the screen is first shown.
        from skutui.ui.screens.nodes import NodesScreen

        self.app.push_screen(NodesScreen(self.view))

    def action_timeline(self) -> None:
        # A screen's module (and its styles) is read when the screen is first shown.
        from skutui.ui.screens.timeline import TimelineScreen

        self.app.push_screen(TimelineScreen())

    def action_files(self) -> None:
        # A screen's module (and its styles) is read when the screen is first shown.
        from skutui.ui.screens.files import FilesScreen

        self.app.push_screen(FilesScreen(self.view))

    @work(exclusive=True, group="drill", exit_on_error=False)
    async def action_drill(self) -> None:
        view = self.view
        confirmed = await self.app.push_screen_wait(
            ConfirmDialog(
                "Run a drill?",
                f"{view.hostname} hands the floating IPs to {view.peer_hostname} (it goes into "
                f"maintenance), then takes them back, while both nodes probe a floating IP.\n\n"
                "Clients see the gap it measures, each way. It is refused if "
                f"{view.peer_hostname} could not take over now.",
                yes="Run the drill",
                no="Cancel",
            )
        )
        if not confirmed:
            self.say("Drill cancelled: nothing was handed over.")
            return
        service = self.app.service

        async def drill(steps: StepsScreen) -> str:
            result = await service.drill(steps.progress)
            for leg in result["legs"]:
                steps.line(f"  {leg['from']} -> {leg['to']}: probes unanswered "
                           f"{seconds_text(leg.get('probe_gap'))}, keepalived's gap "
                           f"{seconds_text(leg.get('gap'))}")
            return f"Drill done; in both nodes' history as {result['id']}."

        await self.app.push_screen(StepsScreen("Drill", drill, on_success=self.app.pop_screen))

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
