"""The start-up baseline: a bare Textual app holding one DataTable (the node table's shape)."""

from textual.app import App, ComposeResult
from textual.widgets import DataTable

COLUMNS = ("Node", "Role", "IP", "Hostname", "Status", "Message")
ROWS = (
    ("local", "master", "198.18.0.1", "node-a", "OK", "Node online and active"),
    ("remote", "backup", "198.18.0.2", "node-b", "OK", "Node online and passive"),
)
LAST_CELL = ROWS[-1][-1]
"""Drawn last: once it is on the screen, the whole table is."""


class BareApp(App[None]):
    def compose(self) -> ComposeResult:
        yield DataTable()

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.add_columns(*COLUMNS)
        table.add_rows(ROWS)


if __name__ == "__main__":
    BareApp().run()
