"""The inotify adapter on temporary trees: what it reports, and what it leaves out."""

from __future__ import annotations

import os
import select
import struct
import time
from pathlib import Path, PurePosixPath

import pytest

from skutui.domain.syncplan import SyncFilter
from skutui.system.inotify import (
    ATTRIBUTES,
    CREATED,
    DELETED,
    FOUND,
    IN_Q_OVERFLOW,
    MOVED_IN,
    MOVED_OUT,
    OVERFLOW,
    WRITTEN,
    Change,
    TreeWatcher,
)


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "etc" / "skutui"
    (root / "local").mkdir(parents=True)
    (root / "conf.d").mkdir()
    return root


@pytest.fixture
def watcher(tree: Path):
    skip = SyncFilter((PurePosixPath(tree / "local"),)).skips
    w = TreeWatcher([tree], skip=skip)
    yield w
    w.close()


def collect(watcher: TreeWatcher, timeout: float = 1.0) -> list[Change]:
    """Everything reported until the queue stays quiet for a moment."""
    changes: list[Change] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([watcher], [], [], 0.05)
        if ready:
            changes.extend(watcher.read())
        elif changes:
            break
    return changes


def seen(changes: list[Change]) -> set[tuple[str, str]]:
    return {(c.path.name if c.path else "", c.what) for c in changes}


def test_close_write_create_delete_and_moves(tree: Path, watcher: TreeWatcher, tmp_path: Path):
    (tree / "cluster.toml").write_text("a")
    (tree / "conf.d" / "new").mkdir()
    outside = tmp_path / "outside.cfg"
    outside.write_text("x")
    os.rename(outside, tree / "conf.d" / "moved.cfg")
    changes = collect(watcher)
    assert ("cluster.toml", WRITTEN) in seen(changes)
    assert ("new", CREATED) in seen(changes)
    assert ("moved.cfg", MOVED_IN) in seen(changes)
    assert all(c.path.is_absolute() for c in changes)

    (tree / "cluster.toml").unlink()
    os.rename(tree / "conf.d" / "moved.cfg", tmp_path / "away.cfg")
    os.chmod(tree / "conf.d", 0o700)
    changes = collect(watcher)
    assert {("cluster.toml", DELETED), ("moved.cfg", MOVED_OUT), ("conf.d", ATTRIBUTES)} <= seen(changes)


def test_hidden_backup_temp_and_local_files_are_not_reported(tree: Path, watcher: TreeWatcher):
    for name in (".cluster.toml.x1.tmp", "cluster.toml~", "haproxy.cfg.swp", "4913",
                 "#draft#", "upload.part"):
        (tree / name).write_text("noise")
    (tree / "local" / "role").write_text("master\n")
    (tree / ".hidden").mkdir()
    (tree / ".hidden" / "inside").write_text("x")
    (tree / "real.cfg").write_text("y")
    names = {c.path.name for c in collect(watcher)}
    assert names == {"real.cfg"}
    assert tree / "local" not in watcher.watched
    assert tree / ".hidden" not in watcher.watched


def test_an_atomic_save_reads_as_one_move_in(tree: Path, watcher: TreeWatcher):
    """skutui's own writes (hidden temp, then rename) show up under the real name only."""
    from skutui.system.files import write_text_atomic

    write_text_atomic(tree / "cluster.toml", "schema_version = 1\n")
    assert seen(collect(watcher)) == {("cluster.toml", MOVED_IN)}


def test_new_directories_are_watched_and_what_they_already_hold_is_reported(
        tree: Path, watcher: TreeWatcher, tmp_path: Path):
    staged = tmp_path / "staged"
    (staged / "deep").mkdir(parents=True)
    (staged / "deep" / "a.cfg").write_text("a")
    os.rename(staged, tree / "conf.d" / "staged")
    changes = collect(watcher)
    assert ("staged", MOVED_IN) in seen(changes)
    assert ("a.cfg", FOUND) in seen(changes)  # written before any watch could see it
    assert tree / "conf.d" / "staged" / "deep" in watcher.watched

    (tree / "conf.d" / "staged" / "deep" / "b.cfg").write_text("b")
    assert ("b.cfg", WRITTEN) in seen(collect(watcher))


def test_a_directory_moved_within_the_tree_keeps_being_watched_under_its_new_name(
        tree: Path, watcher: TreeWatcher):
    (tree / "conf.d" / "sub").mkdir()
    collect(watcher)
    os.rename(tree / "conf.d" / "sub", tree / "renamed")
    collect(watcher)
    assert tree / "renamed" in watcher.watched
    assert tree / "conf.d" / "sub" not in watcher.watched
    (tree / "renamed" / "x.cfg").write_text("x")
    changes = collect(watcher)
    assert Change(tree / "renamed" / "x.cfg", WRITTEN) in changes


def test_a_removed_subtree_is_forgotten(tree: Path, watcher: TreeWatcher):
    (tree / "conf.d" / "x.cfg").write_text("x")
    collect(watcher)
    (tree / "conf.d" / "x.cfg").unlink()
    (tree / "conf.d").rmdir()
    changes = collect(watcher)
    assert Change(tree / "conf.d", DELETED, True) in changes
    assert tree / "conf.d" not in watcher.watched


def test_a_missing_root_is_watched_once_it_appears(tmp_path: Path):
    root = tmp_path / "etc" / "haproxy"
    watcher = TreeWatcher([root])
    try:
        assert watcher.watched == set()
        root.mkdir(parents=True)
        assert watcher.watch_missing_roots() == [root]
        (root / "haproxy.cfg").write_text("global\n")
        assert ("haproxy.cfg", WRITTEN) in seen(collect(watcher))
        root.joinpath("haproxy.cfg").unlink()
        collect(watcher)
        root.rmdir()
        assert Change(root, DELETED, True) in collect(watcher)
        assert watcher.watched == set()
    finally:
        watcher.close()


def test_queue_overflow_is_reported(tree: Path, watcher: TreeWatcher):
    """An overflow means events were lost: the sync must compare whole trees."""
    changes: list[Change] = []
    watcher._parse(struct.pack("iIII", -1, IN_Q_OVERFLOW, 0, 0), changes)  # as the kernel sends it
    assert changes == [Change(None, OVERFLOW)]


def test_read_never_blocks_and_close_is_final(tree: Path):
    watcher = TreeWatcher([tree])
    assert watcher.read() == []
    watcher.close()
    assert watcher.closed
    watcher.close()
