"""Hooks and the webhook: every event, as JSON, never on the takeover path."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import os
import signal
import stat
import time
from pathlib import Path

import pytest

from skutui.agent import notifications, services
from skutui.agent.main import Agent
from skutui.agent.notifications import Hooks, StepsGate, Undelivered, Webhook
from skutui.domain.model import ClusterConfig, Node, Role
from skutui.domain.paths import Paths
from tests.unit.test_control import Node_
from tests.unit.test_sync import wait_until


def event(kind: str = "role", message: str = "m", **data) -> dict:
    found = {"time": "2025-06-15T15:06:40.000Z", "node": "node-a", "kind": kind, "level": "info",
             "message": message}
    if data:
        found["data"] = data
    return found


def processes_naming(text: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and text.encode() in (entry / "cmdline").read_bytes():
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def hook(folder: Path, name: str, script: str, mode: int = 0o700) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text("#!/bin/sh\n" + script)
    path.chmod(mode)
    return path


# --- the gate ------------------------------------------------------------------------------------


async def test_the_gate_closes_on_keepalived_s_line_until_its_steps_are_done():
    gate = StepsGate()
    gate.event(event("role", role="master", cause="keepalived MASTER"))
    assert gate.closed
    waiting = asyncio.ensure_future(gate.wait())
    await asyncio.sleep(0.05)
    assert not waiting.done()
    gate.event(event("service", cause="keepalived BACKUP"))  # another state's steps
    await asyncio.sleep(0.05)
    assert not waiting.done()
    gate.event(event("service", role="master", cause="keepalived MASTER", failed=[]))
    await asyncio.wait_for(waiting, 1)
    assert not gate.closed


async def test_a_line_the_notify_hook_reported_opens_with_its_steps():
    """An agent that starts after keepalived moved hears of it from the hook: the role's
    cause says so, its steps' outcome names the state alone."""
    gate = StepsGate()
    gate.event(event("role", role="backup", cause="keepalived BACKUP, reported by its notify hook"))
    assert gate.closed
    gate.event(event("service", role="backup", cause="keepalived BACKUP", failed=[]))
    assert not gate.closed


async def test_a_lost_outcome_never_holds_the_gate_for_ever():
    gate = StepsGate(limit=0.1)
    gate.event(event("role", cause="keepalived FAULT"))
    await asyncio.wait_for(gate.wait(), 1)


# --- hooks -------------------------------------------------------------------------------------


async def test_each_hook_gets_the_event_as_json_on_its_standard_input(tmp_path: Path):
    folder = tmp_path / "hooks.d"
    out = tmp_path / "out"
    hook(folder, "10-record", f'cat >> {out}.10\n')
    hook(folder, "20-record", f'cat >> {out}.20\n')
    hook(folder, "30-not-executable", f"cat >> {out}.30\n", mode=0o600)
    hook(folder, ".hidden", f"cat >> {out}.hidden\n")
    hook(folder, "40-backup~", f"cat >> {out}.40\n")
    hooks = Hooks(folder, tmp_path / "queue", StepsGate())
    task = asyncio.create_task(hooks.run())
    try:
        hooks.event(event("role", "keepalived moved this node to MASTER", role="master"))
        hooks.event(event("failover", "node-a -> node-b"))
        await wait_until(lambda: all(Path(f"{out}.{n}").exists()
                                     and len(Path(f"{out}.{n}").read_text().splitlines()) == 2
                                     for n in ("10", "20")))
    finally:
        task.cancel()
    for name in ("10", "20"):
        lines = [json.loads(line) for line in Path(f"{out}.{name}").read_text().splitlines()]
        assert [e["kind"] for e in lines] == ["role", "failover"]
        assert lines[0]["data"] == {"role": "master"}
    for name in ("30", "hidden", "40"):
        assert not Path(f"{out}.{name}").exists()


async def test_a_hook_other_users_could_change_is_not_run(tmp_path: Path):
    """Hooks run as root: one writable by another user would hand that user root."""
    folder = tmp_path / "hooks.d"
    out = tmp_path / "out"
    hook(folder, "10-open", f"cat >> {out}\n", mode=0o777)
    assert notifications.hook_problem(folder / "10-open", (folder / "10-open").stat())
    hooks = Hooks(folder, tmp_path / "queue", StepsGate())
    assert hooks.found() == []
    os.chmod(folder / "10-open", 0o755)
    assert hooks.found() == [folder / "10-open"]
    assert "not owned by root" in notifications.hook_problem(
        folder / "10-open", os.stat_result((stat.S_IFREG | 0o755, 0, 0, 1, 1000, 0, 0, 0, 0, 0)))


async def test_a_hook_that_takes_too_long_is_stopped_with_what_it_started(tmp_path: Path):
    folder = tmp_path / "hooks.d"
    marker = tmp_path / "child"
    hook(folder, "10-slow", f"sh -c 'sleep 30; touch {marker}' &\nsleep 30\n")
    hooks = Hooks(folder, tmp_path / "queue", StepsGate(), timeout=0.3)
    started = time.monotonic()
    await hooks.run_one(folder / "10-slow", b"{}\n")
    assert time.monotonic() - started < 5
    await asyncio.sleep(0.2)
    assert processes_naming(str(marker)) == [], "the hook's whole session is stopped"


async def test_hooks_wait_while_a_transition_s_steps_run(tmp_path: Path):
    folder = tmp_path / "hooks.d"
    out = tmp_path / "out"
    hook(folder, "10-record", f"cat >> {out}\n")
    gate = StepsGate()
    hooks = Hooks(folder, tmp_path / "queue", gate)
    task = asyncio.create_task(hooks.run())
    try:
        for one in (event("role", role="master", cause="keepalived MASTER"),):
            gate.event(one)
            hooks.event(one)
        await asyncio.sleep(0.3)
        assert not out.exists(), "no hook starts before the commit of the connections"
        outcome = event("service", role="master", cause="keepalived MASTER", failed=[])
        gate.event(outcome)
        hooks.event(outcome)
        await wait_until(lambda: out.exists() and len(out.read_text().splitlines()) == 2)
    finally:
        task.cancel()


def recorded(out: Path) -> list[str]:
    return [json.loads(line)["message"] for line in out.read_text().splitlines()] if out.exists() else []


async def stop(task: asyncio.Task) -> None:
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def test_hook_events_outlive_a_restart_and_run_once_each_in_order(tmp_path: Path):
    """The agent stops while a slow hook holds the queue: what waited runs at its next start,
    before what comes then."""
    folder, queue, out = tmp_path / "hooks.d", tmp_path / "queue", tmp_path / "out"
    hook(folder, "10-record", "sleep 30\n")
    first = Hooks(folder, queue, StepsGate())
    task = asyncio.create_task(first.run())
    for number in range(3):
        first.event(event("role", f"event {number}"))
    await wait_until(lambda: len(first.spool.waiting()) == 3)
    await stop(task)
    first.event(event("agent", "agent stopping"))
    await first.close()
    hook(folder, "10-record", f"cat >> {out}\n")
    second = Hooks(folder, queue, StepsGate())
    task = asyncio.create_task(second.run())
    try:
        second.event(event("agent", "agent started"))
        await wait_until(lambda: len(recorded(out)) == 5 and second.spool.waiting() == [])
        await asyncio.sleep(0.2)
    finally:
        await stop(task)
    assert recorded(out) == ["event 0", "event 1", "event 2", "agent stopping", "agent started"]


async def test_an_event_leaves_the_disk_only_once_the_hooks_ran_for_it(tmp_path: Path):
    """On disk at once, even while a transition's steps hold the hooks back."""
    folder, queue = tmp_path / "hooks.d", tmp_path / "queue"
    started, release = tmp_path / "started", tmp_path / "release"
    hook(folder, "10-wait", f"touch {started}\nwhile [ ! -e {release} ]; do sleep 0.02; done\n")
    gate = StepsGate()
    hooks = Hooks(folder, queue, gate)
    task = asyncio.create_task(hooks.run())
    try:
        gate.event(event("role", role="master", cause="keepalived MASTER"))
        hooks.event(event("failover", "node-a -> node-b"))
        await wait_until(lambda: len(hooks.spool.waiting()) == 1)
        [kept] = hooks.spool.waiting()
        assert json.loads(kept.read_text())["kind"] == "failover"
        assert stat.S_IMODE(kept.stat().st_mode) == 0o600
        assert stat.S_IMODE(queue.stat().st_mode) == 0o700
        assert not started.exists()
        gate.event(event("service", role="master", cause="keepalived MASTER", failed=[]))
        await wait_until(started.exists)
        await asyncio.sleep(0.2)
        assert hooks.spool.waiting() == [kept], "still on disk while the hook runs"
        release.touch()
        await wait_until(lambda: hooks.spool.waiting() == [])
    finally:
        await stop(task)


async def test_the_hooks_queue_drops_the_oldest_beyond_its_bound(tmp_path: Path, caplog):
    folder, queue, out = tmp_path / "hooks.d", tmp_path / "queue", tmp_path / "out"
    hook(folder, "10-record", f"cat >> {out}\n")
    gate = StepsGate()
    hooks = Hooks(folder, queue, gate, limit=3)
    task = asyncio.create_task(hooks.run())
    try:
        gate.event(event("role", cause="keepalived MASTER"))
        for number in range(6):
            hooks.event(event("role", f"event {number}"))
        await wait_until(lambda: caplog.text.count("the hooks' queue is full: dropped") == 3)
        assert len(hooks.spool.waiting()) == 3
        gate.event(event("service", cause="keepalived MASTER"))
        await wait_until(lambda: len(recorded(out)) == 3)
    finally:
        await stop(task)
    assert recorded(out) == ["event 3", "event 4", "event 5"]


async def test_a_hook_that_fails_is_logged_and_the_queue_goes_on(tmp_path: Path, caplog):
    folder, queue, out = tmp_path / "hooks.d", tmp_path / "queue", tmp_path / "out"
    folder.mkdir()
    (folder / "10-no-interpreter").write_text("#!/nonexistent/sh\n")
    (folder / "10-no-interpreter").chmod(0o700)
    hook(folder, "20-fails", "echo 'no route to the pager' >&2\nexit 3\n")
    hook(folder, "30-slow", "sleep 30\n")
    hook(folder, "40-record", f"cat >> {out}\n")
    hooks = Hooks(folder, queue, StepsGate(), timeout=0.3)
    task = asyncio.create_task(hooks.run())
    try:
        for number in range(3):
            hooks.event(event("role", f"event {number}"))
        await wait_until(lambda: len(recorded(out)) == 3 and hooks.spool.waiting() == [])
    finally:
        await stop(task)
    assert recorded(out) == ["event 0", "event 1", "event 2"]
    assert "10-no-interpreter cannot be started" in caplog.text
    assert "20-fails exited with 3: no route to the pager" in caplog.text
    assert "30-slow ran longer than 0.3 s" in caplog.text


async def test_hooks_run_from_memory_when_their_queue_cannot_be_written(tmp_path: Path, caplog):
    """A full or read-only disk does not silence the hooks (they may be what reports it)."""
    folder, out = tmp_path / "hooks.d", tmp_path / "out"
    hook(folder, "10-record", f"cat >> {out}\n")
    (tmp_path / "state").write_text("a file where the folder should be\n")
    hooks = Hooks(folder, tmp_path / "state" / "hooks", StepsGate())
    task = asyncio.create_task(hooks.run())
    try:
        for number in range(3):
            hooks.event(event("role", f"event {number}"))
        await wait_until(lambda: len(recorded(out)) == 3)
    finally:
        await stop(task)
    assert recorded(out) == ["event 0", "event 1", "event 2"]
    assert "they wait in memory" in caplog.text


async def test_an_event_that_cannot_leave_the_disk_is_not_run_again(tmp_path: Path, monkeypatch,
                                                                    caplog):
    """A file system gone read-only: each event still reaches the hooks once."""
    folder, queue, out = tmp_path / "hooks.d", tmp_path / "queue", tmp_path / "out"
    hook(folder, "10-record", f"cat >> {out}\n")
    hooks = Hooks(folder, queue, StepsGate())
    unlink = Path.unlink

    def read_only(path: Path, missing_ok: bool = False) -> None:
        if path.parent == queue:
            raise OSError(errno.EROFS, "Read-only file system")
        unlink(path, missing_ok)

    monkeypatch.setattr(Path, "unlink", read_only)
    task = asyncio.create_task(hooks.run())
    try:
        for number in range(3):
            hooks.event(event("role", f"event {number}"))
        await wait_until(lambda: len(recorded(out)) == 3)
        await asyncio.sleep(0.3)
    finally:
        await stop(task)
    assert recorded(out) == ["event 0", "event 1", "event 2"]
    assert "ran but cannot leave the disk" in caplog.text


@pytest.fixture
def fast(monkeypatch):
    monkeypatch.setattr(services, "SERVICE_CHECK_INTERVAL", 0.05)


async def test_a_hook_that_sleeps_10_s_does_not_delay_a_takeover(tmp_path: Path, fast):
    """The agent with a hook that sleeps 10 s on every event: keepalived's MASTER line comes
    while the hook still sleeps on the agent's first events; the transition runs and its
    outcome is reported while that hook has not ended."""
    paths = Paths(config_root=tmp_path / "etc" / "skutui", run_dir=tmp_path / "run")
    paths.local_dir.mkdir(parents=True)
    paths.role_file.write_text("backup\n")
    started, ended = tmp_path / "started", tmp_path / "ended"
    hook(paths.hooks_dir, "10-sleepy", f"echo x >> {started}\nsleep 10\necho x >> {ended}\n")
    config = ClusterConfig(interface="eth0", nodes=(Node("node-a", "198.18.0.1"),
                                                    Node("node-b", "198.18.0.2")))
    ran: list[float] = []
    agent = Agent(paths, node=Node_(paths, config), hostname="node-a", guard=False,
                  transition=lambda node, state: ran.append(time.monotonic()) or [])
    events = agent.events.subscribe()
    task = asyncio.create_task(agent.run())
    try:
        await wait_until(lambda: started.exists())
        assert not ended.exists()
        agent.roles.fifo_line('INSTANCE "SKUTUI" MASTER 120')
        while True:
            got = await asyncio.wait_for(events.get(), 5)
            if got["kind"] == "service" and (got.get("data") or {}).get("cause") == "keepalived MASTER":
                break
        assert ran, "the MASTER steps ran"
        assert not ended.exists(), "the takeover finished while the hook still slept"
        assert agent.roles.role is Role.MASTER
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        for pid in processes_naming(str(paths.hooks_dir)):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)


# --- the webhook ---------------------------------------------------------------------------------


class Receiver:
    """A webhook that refuses until ``up``; it keeps what it took, in order."""

    def __init__(self) -> None:
        self.up = False
        self.taken: list[dict] = []
        self.refuse_for_good = False

    def post(self, url: str, data: bytes) -> None:
        if self.refuse_for_good:
            raise Undelivered("HTTP 400 Bad Request", retry=False)
        if not self.up:
            raise Undelivered("connection refused")
        self.taken.append(json.loads(data))


@pytest.fixture
def quick_backoff(monkeypatch):
    monkeypatch.setattr(notifications, "WEBHOOK_BACKOFF", (0.05, 0.1))


async def test_the_webhook_queues_on_disk_while_unreachable_and_delivers_in_order(tmp_path: Path):
    receiver = Receiver()
    spool = tmp_path / "webhook"
    webhook = Webhook(spool, lambda: "https://hooks.example/x", StepsGate(), post=receiver.post,
                      backoff=(0.05, 0.1))
    task = asyncio.create_task(webhook.run())
    try:
        for number in range(5):
            webhook.event(event("role", f"event {number}"))
        await wait_until(lambda: len(webhook.spool.waiting()) == 5)
        for path in webhook.spool.waiting():
            assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert stat.S_IMODE(spool.stat().st_mode) == 0o700
        webhook.event(event("role", "event 5"))
        receiver.up = True
        await wait_until(lambda: len(receiver.taken) == 6)
    finally:
        task.cancel()
    assert [e["message"] for e in receiver.taken] == [f"event {n}" for n in range(6)]
    assert webhook.spool.waiting() == []


async def test_events_queued_on_disk_outlive_the_agent(tmp_path: Path):
    receiver = Receiver()
    spool = tmp_path / "webhook"
    first = Webhook(spool, lambda: "https://hooks.example/x", StepsGate(), post=receiver.post,
                    backoff=(10.0,))
    task = asyncio.create_task(first.run())
    first.event(event("failover", "node-a -> node-b"))
    await wait_until(lambda: len(first.spool.waiting()) == 1)
    task.cancel()
    receiver.up = True
    second = Webhook(spool, lambda: "https://hooks.example/x", StepsGate(), post=receiver.post)
    task = asyncio.create_task(second.run())
    try:
        await wait_until(lambda: len(receiver.taken) == 1)
    finally:
        task.cancel()
    assert receiver.taken[0]["kind"] == "failover"


async def test_a_refusal_for_good_drops_the_event_and_goes_on(tmp_path: Path):
    receiver = Receiver()
    receiver.refuse_for_good = True
    webhook = Webhook(tmp_path / "webhook", lambda: "https://hooks.example/x", StepsGate(),
                      post=receiver.post)
    task = asyncio.create_task(webhook.run())
    try:
        webhook.event(event())
        await asyncio.sleep(0.2)
        assert webhook.spool.waiting() == []
        receiver.refuse_for_good, receiver.up = False, True
        webhook.event(event("role", "after"))
        await wait_until(lambda: receiver.taken)
    finally:
        task.cancel()
    assert [e["message"] for e in receiver.taken] == ["after"]


async def test_no_url_no_webhook(tmp_path: Path):
    receiver = Receiver()
    webhook = Webhook(tmp_path / "webhook", lambda: "", StepsGate(), post=receiver.post)
    webhook.event(event())
    assert len(webhook.queue) == 0


async def test_the_disk_queue_is_bounded(tmp_path: Path):
    receiver = Receiver()
    webhook = Webhook(tmp_path / "webhook", lambda: "https://hooks.example/x", StepsGate(),
                      post=receiver.post, backoff=(10.0,), limit=3)
    task = asyncio.create_task(webhook.run())
    try:
        for number in range(6):
            webhook.event(event("role", f"event {number}"))

        def kept() -> list[str]:
            """What waits on disk; the last event may be between the queue and the disk."""
            try:
                return [json.loads(p.read_text())["message"] for p in webhook.spool.waiting()]
            except FileNotFoundError:
                return []

        await wait_until(lambda: len(kept()) == 3 and len(webhook.queue) == 0
                         and "event 5" in kept(), 30)
    finally:
        task.cancel()
    assert kept() == ["event 3", "event 4", "event 5"], "the oldest go first"


def test_a_new_event_goes_behind_those_left_waiting_when_the_clock_was_set_back(tmp_path: Path):
    spool = notifications.Spool(tmp_path / "queue", 10, "the queue")
    spool.folder.mkdir()
    later = time.time_ns() + 3600 * 10**9
    (spool.folder / f"{later:020d}-1-000001.json").write_text('{"message": "before the reboot"}\n')
    spool.keep(event("agent", "after the reboot"))
    assert [json.loads(p.read_text())["message"] for p in spool.waiting()] == [
        "before the reboot", "after the reboot"]


def test_a_post_is_json_to_the_url(tmp_path: Path):
    """urllib's own request, against a real server on the loopback address."""
    import http.server
    import threading

    taken: list[tuple[str, str, bytes]] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - the standard library's name
            length = int(self.headers["Content-Length"])
            taken.append((self.path, self.headers["Content-Type"], self.rfile.read(length)))
            self.send_response(204 if self.path == "/ok" else 500)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        base = f"http://127.0.0.1:{server.server_port}"
        notifications.post_json(f"{base}/ok", b'{"kind": "role"}\n')
        with pytest.raises(Undelivered, match="HTTP 500") as refused:
            notifications.post_json(f"{base}/broken", b"{}\n")
        assert refused.value.retry
    finally:
        server.shutdown()
    assert taken[0] == ("/ok", "application/json", b'{"kind": "role"}\n')
    with pytest.raises(Undelivered):
        notifications.post_json(f"http://127.0.0.1:{server.server_port}/gone", b"{}", timeout=1)
