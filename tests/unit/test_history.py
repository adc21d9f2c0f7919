"""The history: records that survive, merged into one timeline, a failover once."""

from __future__ import annotations

import asyncio
import stat
import threading
import time
from datetime import datetime
from pathlib import Path

import pytest

from skutui.agent.history import HistoryWriter
from skutui.domain import history
from skutui.domain.paths import DEFAULT_STATE_DIR, Paths
from skutui.system import history as store_module
from skutui.system.history import HistoryError, HistoryStore

NOW = 1_750_000_000.0


def event(kind: str, at: float, node: str = "node-a", **data) -> dict:
    found = {"time": history.iso(at), "node": node, "kind": kind, "level": "info",
             "message": f"{kind} at {at}"}
    if data:
        found["data"] = data
    return found


def failover(old: str, new: str, held: float, *, complete: bool = True, gap: float = 1.0) -> dict:
    data = history.failover_data(old=old, new=new, cause=history.CAUSE_KEEPALIVED, detail="",
                                 released=held - gap if complete else None, held=held,
                                 conntrack={"ok": True, "seconds": 0.05, "failed": []},
                                 complete=complete)
    return event(history.FAILOVER, held + 1, node=new, id=history.failover_id(new, held), **data)


# --- where it lives -------------------------------------------------------------------------


def test_the_history_is_under_var_lib_skutui_and_a_moved_root_keeps_its_own():
    assert Paths().history_file == DEFAULT_STATE_DIR / "history.sqlite"
    assert DEFAULT_STATE_DIR == Path("/var/lib/skutui")
    moved = Paths(config_root=Path("/tmp/x/etc/skutui"))
    assert moved.history_file == Path("/tmp/x/etc/skutui/local/state/history.sqlite")


def test_the_file_and_its_folder_are_root_only(tmp_path: Path):
    store = HistoryStore(tmp_path / "state" / "history.sqlite")
    store.add([history.record_of(event("role", NOW), 0)])
    assert stat.S_IMODE((tmp_path / "state").stat().st_mode) == 0o700
    for path in (tmp_path / "state").iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    assert not [p for p in (tmp_path / "state").iterdir() if p.name.startswith(".")], \
        "no temporary file is left behind"


# --- records on disk ------------------------------------------------------------------------


def test_records_survive_a_new_store_and_come_back_oldest_first(tmp_path: Path):
    path = tmp_path / "history.sqlite"
    HistoryStore(path).add([history.record_of(event("role", NOW + i), i) for i in (2, 0, 1)])
    found = HistoryStore(path).records()
    assert [r["time"] for r in found] == [history.iso(NOW + i) for i in (0, 1, 2)]
    assert found[0]["message"] == f"role at {NOW}"


def test_since_kinds_node_and_limit_choose_records(tmp_path: Path):
    store = HistoryStore(tmp_path / "h.sqlite")
    store.add([history.record_of(event(kind, NOW + i, node=node), i)
               for i, (kind, node) in enumerate([("role", "node-a"), ("sync", "node-a"),
                                                 ("role", "node-b"), ("peer", "node-b")])])
    assert len(store.records(since=NOW + 2)) == 2
    assert [r["kind"] for r in store.records(kinds=["role"])] == ["role", "role"]
    assert [r["node"] for r in store.records(node="node-b")] == ["node-b", "node-b"]
    assert [r["kind"] for r in store.records(limit=2)] == ["role", "peer"], "the newest ones"


def test_a_record_with_a_known_id_replaces_it(tmp_path: Path):
    store = HistoryStore(tmp_path / "h.sqlite")
    first = history.record_of(failover("node-a", "node-b", NOW, complete=False), 0)
    store.add([first])
    completed = history.record_of(failover("node-a", "node-b", NOW), 0)
    store.add([completed])
    found = store.records(kinds=[history.FAILOVER])
    assert len(found) == 1 and found[0]["data"]["complete"] is True
    assert found[0]["time"] == history.iso(NOW), "a failover stands at the moment it was held"
    assert store.get(first["id"])["data"]["gap"] == 1.0


def test_the_history_is_bounded_and_keeps_failovers_longer(tmp_path: Path, monkeypatch):
    monkeypatch.setattr(store_module, "TRIM_EVERY", 1)
    store = HistoryStore(tmp_path / "h.sqlite", keep_events=5, keep_failovers=3)
    store.add([history.record_of(failover("node-a", "node-b", NOW + i), i) for i in range(4)])
    store.add([history.record_of(event("sync", NOW + 100 + i), i) for i in range(50)])
    events = store.records(kinds=["sync"])
    assert [r["time"] for r in events] == [history.iso(NOW + 100 + i) for i in range(45, 50)]
    assert len(store.records(kinds=[history.FAILOVER])) == 3, "bounded apart from the events"


def test_a_reader_never_finds_a_half_made_file(tmp_path: Path):
    """The writer makes the file whole under another name first: a reader racing it finds no
    file (no history yet) or the whole one, never "no such table"."""
    current = [tmp_path / "0" / "h.sqlite"]
    problems: list[BaseException] = []
    done = threading.Event()

    def read() -> None:
        while not done.is_set():
            try:
                HistoryStore(current[0]).records()
            except HistoryError as exc:
                problems.append(exc)

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for round_ in range(30):
            current[0] = tmp_path / str(round_) / "h.sqlite"
            HistoryStore(current[0]).add([history.record_of(event("role", NOW + round_), 0)])
    finally:
        done.set()
        reader.join()
    assert problems == []


def test_an_unreadable_history_is_one_clear_error(tmp_path: Path):
    path = tmp_path / "h.sqlite"
    path.write_bytes(b"this is not a database, but long enough to have a header" * 20)
    with pytest.raises(HistoryError, match=str(path)):
        HistoryStore(path).records()


# --- the agent's writer -----------------------------------------------------------------------


async def test_the_writer_queues_and_a_flush_waits_for_the_disk(tmp_path: Path):
    store = HistoryStore(tmp_path / "h.sqlite")
    writer = HistoryWriter(store)
    writer.start()
    try:
        for i in range(30):
            writer.event(event("sync", NOW + i))
        await writer.flush()
        assert len(store.records()) == 30
    finally:
        await writer.stop()


async def test_the_writer_never_blocks_the_event_loop_on_the_disk(tmp_path: Path, monkeypatch):
    """A slow disk (an fsync of a second) holds the writer's thread only: queuing an event
    returns at once."""
    slow = threading.Event()
    original = HistoryStore.add

    def add(self, records):
        slow.wait(5)
        return original(self, records)

    monkeypatch.setattr(HistoryStore, "add", add)
    writer = HistoryWriter(HistoryStore(tmp_path / "h.sqlite"))
    writer.start()
    try:
        started = time.monotonic()
        for i in range(100):
            writer.event(event("role", NOW + i))
        queued = time.monotonic() - started
        assert queued < 1, "queuing waited for the disk"
        assert not (tmp_path / "h.sqlite").exists()
    finally:
        slow.set()
        await writer.stop()
    assert len(HistoryStore(tmp_path / "h.sqlite").records()) == 100


def test_an_event_becomes_a_record_with_an_id_and_a_failover_keeps_its_own():
    plain = history.record_of(event("role", NOW, role="master"), 7)
    assert plain["id"].startswith("node-a-") and plain["data"] == {"role": "master"}
    record = history.record_of(failover("node-a", "node-b", NOW), 0)
    assert record["id"] == history.failover_id("node-b", NOW)
    assert "id" not in record["data"] and "updated" in record


# --- one timeline -----------------------------------------------------------------------------


def test_both_nodes_merge_into_one_timeline_with_each_failover_once():
    a = [history.record_of(event("role", NOW, "node-a"), 0),
         history.record_of(failover("node-a", "node-b", NOW + 5, complete=False), 0)]
    b = [history.record_of(event("role", NOW + 1, "node-b"), 0),
         history.record_of(failover("node-a", "node-b", NOW + 5), 0)]
    merged = history.merge(a, b)
    assert [r["kind"] for r in merged] == ["role", "role", history.FAILOVER]
    assert merged[-1]["data"]["complete"] is True, "the complete copy wins"
    assert history.merge(b, a)[-1]["data"]["complete"] is True


@pytest.mark.parametrize("text,back", [("90s", 90), ("15m", 900), ("2h", 7200), ("3d", 3 * 86400),
                                       ("1w", 7 * 86400), ("1.5h", 5400)])
def test_since_takes_a_duration(text: str, back: float):
    assert history.parse_since(text, NOW) == NOW - back


def test_since_takes_a_date_and_a_time_local_unless_zoned():
    assert history.parse_since("2025-06-15T15:06:40Z", 0) == NOW
    assert history.parse_since("2025-06-15 17:06:40+02:00", 0) == NOW
    local = datetime(2025, 6, 15, 10, 30).astimezone().timestamp()
    assert history.parse_since("2025-06-15T10:30", 0) == local
    assert history.parse_since("2025-06-15", 0) == datetime(2025, 6, 15).astimezone().timestamp()


@pytest.mark.parametrize("text", ["", "yesterday", "5x", "-5m", "2025-13-01", "0001-01-01T00:00"])
def test_since_refuses_what_is_neither(text: str):
    with pytest.raises(ValueError, match="neither a duration nor a date"):
        history.parse_since(text, NOW)


def test_a_failover_reads_in_one_line_and_in_full():
    data = failover("node-a", "node-b", NOW, gap=3.05)["data"]
    line = history.failover_message(data)
    assert line.startswith("node-a -> node-b: keepalived death; floating IPs answered again after 3.05 s")
    assert "committed in 50 ms" in line
    labels = dict(history.failover_lines(data))
    assert labels["Gap"] == "3.05 s" and labels["Old master's side"] == "in"
    unknown = failover("node-a", "node-b", NOW, complete=False)["data"]
    assert "gap unknown" in history.failover_message(unknown)


@pytest.mark.parametrize("facts,cause", [
    ({"keepalived_died": True}, history.CAUSE_KEEPALIVED),
    ({"fifo_state": "FAULT", "drill": "drill-1", "maintenance": True}, history.CAUSE_DRILL),
    ({"fifo_state": "FAULT", "maintenance": True}, history.CAUSE_MAINTENANCE),
    ({"fifo_state": "FAULT", "links_down": ["eth1"]}, history.CAUSE_LINK),
    ({"fifo_state": "BACKUP", "failback_to_peer": True}, history.CAUSE_FAILBACK),
    ({"fifo_state": "FAULT"}, history.CAUSE_STEPPED_DOWN),
    ({"fifo_state": "BACKUP"}, history.CAUSE_STEPPED_DOWN),
])
def test_why_a_master_stopped(facts: dict, cause: str):
    given = {"fifo_state": None, "keepalived_died": False, "maintenance": False, "drill": None,
             "links_down": [], "failback_to_peer": False, "hostname": "node-a", **facts}
    found, detail = history.release_cause(**given)
    assert found == cause
    assert detail
    if cause == history.CAUSE_LINK:
        assert "eth1 is down on node-a" in detail


def test_writer_thread_is_gone_after_stop(tmp_path: Path):
    writer = HistoryWriter(HistoryStore(tmp_path / "h.sqlite"))
    writer.start()
    thread = writer._thread
    assert thread is not None and thread.is_alive()
    asyncio.run(writer.stop())
    assert not thread.is_alive() and thread not in threading.enumerate()
