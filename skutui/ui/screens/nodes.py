"""Nodes: who is master, who is backup, and whether each is healthy, kept live by events.

The table is read once when the screen opens and again after each event; only cells whose
value changed are rewritten, so a quiet cluster sends nothing down a slow serial line.
"""

from __future__ import annotations

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, RichLog, Static
from textual.worker import Worker, WorkerState

from skutui.cluster.lifecycle import takeover_refusal
from skutui.domain.errors import Refused
from skutui.domain.model import Role, Status
from skutui.domain.wire import NodeRow
from skutui.ui.colours import status_style
from skutui.ui.errors import describe
from skutui.ui.messages import ClusterEventArrived, EventsStopped, NodesRead, NodesStale
from skutui.ui.screens.base import ConsoleScreen
from skutui.ui.screens.dialogs import ConfirmDialog
from skutui.ui.state import ClusterView

COLUMNS = (
    ("node", "Node"),
    ("role", "Role"),
    ("ip", "IP"),
    ("hostname", "Hostname"),
    ("status", "Status"),
    ("message", "Message"),
)
RECENT_EVENTS = 50
STATUS_WIDTH = max(len(status.label) for status in Status)


def in_maintenance(row: NodeRow) -> bool:
    return row.role == Role.MAINTENANCE or row.status == Status.MAINTENANCE


def maintenance_question(row: NodeRow, peer: NodeRow | None, floating_ips: tuple[str, ...]) -> tuple[str, str]:
    """The dialog title and what will happen, in the operator's words, for this row."""
    name = row.hostname
    peer_name = peer.hostname if peer else "the peer"
    if in_maintenance(row):
        return (
            f"Take {name} out of maintenance?",
            f"{name} will rejoin as backup; {peer_name} keeps the floating IPs.",
        )
    if row.role == Role.MASTER:
        ips = f" ({', '.join(floating_ips)})" if floating_ips else ""
        refusal = takeover_refusal(peer) if peer else f"{peer_name} cannot take over (it did not answer)"
        if refusal:
            return f"Put {name} in maintenance?", (
                f"WARNING: {name} is the master and {refusal}: nobody would serve the floating "
                f"IPs{ips}. skutui refuses unless you confirm a second time.")
        return f"Put {name} in maintenance?", (
            f"{peer_name} will commit the connection state and take over the floating IPs{ips}; "
            f"{name} stops serving only once {peer_name} holds them.")
    return (
        f"Put {name} in maintenance?",
        f"{name} will stop standing by; {peer_name} keeps serving, with no backup until "
        f"{name} leaves maintenance.",
    )


def unserved_question(name: str, refused: Refused) -> tuple[str, str]:
    """The second, explicit question before maintenance leaves the floating IPs unserved."""
    return ("Leave the floating IPs UNSERVED?", f"{refused.reason}\n\nPut {name} in maintenance "
            "anyway? The floating IPs stay unserved until one of the nodes can hold them again.")


class NodesScreen(ConsoleScreen):
    SUB_TITLE = "Nodes"
    DEFAULT_CSS = """
    NodesScreen {
        .section {
            margin-top: 1;
            text-style: bold;
        }
        #nodes {
            height: auto;
            max-height: 8;
        }
        #split-brain {
            margin-bottom: 1;
        }
        #selected {
            margin-top: 1;
            height: auto;
        }
        #events {
            height: 1fr;
            min-height: 3;
            overflow-y: auto;
        }
    }
    """
    BINDINGS = [
        Binding("m", "maintenance", "Maintenance on/off", id="nodes.maintenance"),
        Binding("s", "readiness", "Readiness", id="nodes.readiness"),
        Binding("r", "refresh", "Refresh", id="nodes.refresh"),
        Binding("escape", "back", "Back", id="nodes.back"),
    ]

    def __init__(self, view: ClusterView):
        super().__init__()
        self.view = view
        self.rows: dict[str, NodeRow] = {}
        self.widths: dict[str, int] = {}
        self.reader: Worker | None = None
        self.read_again = False

    def compose_body(self) -> ComposeResult:
        yield Static("", id="split-brain", classes="problem", markup=False)
        yield DataTable(id="nodes", cursor_type="row", zebra_stripes=False)
        yield Static("", id="selected", markup=False)
        yield Static("Recent events", classes="section")
        yield RichLog(id="events", wrap=True, min_width=20, max_lines=RECENT_EVENTS, markup=False)

    def on_mount(self) -> None:
        self.query_one("#split-brain").display = False
        self.say("m turns maintenance on or off for the selected node; the table follows live events.")
        self.request_read()
        self.watch_events()

    # Reading -----------------------------------------------------------------------------

    def request_read(self) -> None:
        """Read the nodes now, or once more after the read under way: a read is never
        cancelled, so a slow peer cannot starve the table when events come quickly."""
        if self.reader is not None and self.reader.is_running:
            self.read_again = True
        else:
            self.reader = self.read_nodes()

    @work(group="read-nodes", exit_on_error=False)
    async def read_nodes(self) -> None:
        await self.app.preloaded()
        while True:
            self.read_again = False
            rows = await self.app.service.nodes()
            self.post_message(NodesRead(rows))
            if not self.read_again:
                return

    @work(exclusive=True, group="events", exit_on_error=False)
    async def watch_events(self) -> None:
        await self.app.preloaded()
        async for event in self.app.service.events():
            self.post_message(ClusterEventArrived(event))
            self.post_message(NodesStale())
        self.post_message(EventsStopped("the event stream ended"))

    def on_nodes_stale(self, message: NodesStale) -> None:
        self.request_read()

    def on_cluster_event_arrived(self, message: ClusterEventArrived) -> None:
        """Events with something to say go to the log; a bare "refresh" only re-reads."""
        event = message.event
        if not event.message:
            return
        row = self.rows.get(event.node)
        who = row.hostname if row else event.node
        self.query_one("#events", RichLog).write(self.app.profile.text(f"{who}: {event.message}"))

    def on_events_stopped(self, message: EventsStopped) -> None:
        self.say(f"Live updates stopped ({message.reason}); press r to read the nodes again.", kind="warning")

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.worker.group == "read-nodes" and event.state == WorkerState.SUCCESS and self.read_again:
            self.request_read()
        if event.state != WorkerState.ERROR:
            return
        if event.worker.group == "events":
            event.prevent_default()
            self.post_message(EventsStopped(describe(event.worker.error)))
        elif event.worker.group == "read-nodes":
            event.prevent_default()
            self.say(f"Could not read the nodes: {describe(event.worker.error)}", kind="error")

    # Showing -----------------------------------------------------------------------------

    def cells(self, row: NodeRow) -> dict[str, str | Text]:
        text = self.app.profile.text
        plain = self.app.profile.plain
        return {
            "node": row.node,
            "role": row.role.value,
            "ip": text(row.ip),
            "hostname": text(row.hostname),
            "status": Text(row.status.label, style=status_style(row.status, plain)),
            "message": text(row.message),
        }

    def column_widths(self, rows: list[NodeRow]) -> dict[str, int]:
        """Every column as wide as its widest cell or its heading; Status as wide as the
        widest status, so that a status change, the common event, rewrites one cell and
        moves no column."""
        cells = [self.cells(row) for row in rows]
        widths = {
            key: max([len(label), *(Text(str(c[key])).cell_len for c in cells)]) for key, label in COLUMNS
        }
        widths["status"] = max(widths["status"], STATUS_WIDTH)
        return widths

    def on_nodes_read(self, message: NodesRead) -> None:
        table = self.query_one(DataTable)
        fresh: dict[str, NodeRow] = {row.node: row for row in message.rows}
        widths = self.column_widths(message.rows)
        if widths != self.widths or list(fresh) != list(self.rows):
            self.rebuild(table, fresh, widths)
        else:
            for key, row in fresh.items():
                old = self.rows[key]
                if old == row:
                    continue
                before, after = self.cells(old), self.cells(row)
                for column, value in after.items():
                    if value != before[column]:
                        table.update_cell(key, column, value)
            self.rows = fresh
        self.show_split_brain()
        self.show_selected()

    def rebuild(self, table: DataTable, rows: dict[str, NodeRow], widths: dict[str, int]) -> None:
        """Draw the table anew with explicit column widths, when a row or a column's width
        changes. (Textual's own width update after ``update_cell`` can leave a cell drawn
        at the old width, cut short, when a refresh comes first.)"""
        cursor = table.cursor_row
        table.clear(columns=True)
        for key, label in COLUMNS:
            table.add_column(label, key=key, width=widths[key])
        for key, row in rows.items():
            table.add_row(*self.cells(row).values(), key=key)
        if rows:
            table.move_cursor(row=min(max(cursor, 0), len(rows) - 1))
        self.rows = rows
        self.widths = widths

    def show_split_brain(self) -> None:
        banner = self.query_one("#split-brain", Static)
        masters = [row.hostname for row in self.rows.values() if row.role == Role.MASTER]
        if len(masters) > 1:
            interface = self.view.cluster.interface if self.view.cluster else "the cluster interface"
            banner.update(
                self.app.profile.text(
                    f"SPLIT BRAIN: {' and '.join(masters)} are both master and may both answer for "
                    f"the floating IPs. Check the cluster link ({interface}) and that VRRP "
                    "(IP protocol 112) passes between the nodes."
                )
            )
        banner.display = len(masters) > 1

    def selected_row(self) -> NodeRow | None:
        table = self.query_one(DataTable)
        if not 0 <= table.cursor_row < table.row_count:
            return None
        return self.rows.get(table.ordered_rows[table.cursor_row].key.value or "")

    def show_selected(self) -> None:
        row = self.selected_row()
        line = "" if row is None else f"{row.hostname} ({row.node}, {row.ip}): {row.message}"
        self.query_one("#selected", Static).update(self.app.profile.text(line))

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self.show_selected()

    # Actions -----------------------------------------------------------------------------

    def action_refresh(self) -> None:
        self.request_read()
        if not any(w.group == "events" and w.is_running for w in self.workers):
            self.watch_events()

    def action_back(self) -> None:
        self.app.pop_screen()

    def action_readiness(self) -> None:
        # A screen's module (and its styles) is read when the screen is first shown.
        from skutui.ui.screens.readiness import ReadinessScreen

        self.app.push_screen(ReadinessScreen())

    @work(exclusive=True, group="maintenance", exit_on_error=False)
    async def action_maintenance(self) -> None:
        row = self.selected_row()
        if row is None:
            self.say("No node is selected: move to a row with the arrow keys first.", kind="warning")
            return
        peer = next((r for r in self.rows.values() if r.node != row.node), None)
        floating = self.view.cluster.floating_ips if self.view.cluster else ()
        title, body = maintenance_question(row, peer, floating)
        leaving = in_maintenance(row)
        confirmed = await self.app.push_screen_wait(
            ConfirmDialog(
                title,
                body,
                yes="Leave maintenance" if leaving else "Enter maintenance",
                no="Cancel",
                danger=not leaving,
            )
        )
        if not confirmed:
            self.say(f"Cancelled: {row.hostname} is unchanged.")
            return
        self.say(f"{'Taking' if leaving else 'Putting'} {row.hostname} {'out of' if leaving else 'in'} maintenance...")
        forced = False
        try:
            try:
                message = await self.app.service.set_maintenance(row.node, not leaving)
            except Refused as refused:
                title, body = unserved_question(row.hostname, refused)
                forced = await self.app.push_screen_wait(
                    ConfirmDialog(title, body, yes="Leave them unserved", no="Keep serving", danger=True))
                if not forced:
                    self.say(f"Cancelled: {row.hostname} keeps serving the floating IPs.")
                    return
                message = await self.app.service.set_maintenance(row.node, True, force=True)
        except Exception:
            self.say(f"{row.hostname} is unchanged.", kind="error")
            raise
        self.say(message, kind="warning" if forced else "success")
        self.request_read()
