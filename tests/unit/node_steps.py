"""A ``skutui node`` step run in this process, as the peer runs it: its own cluster.toml
under ``paths``, standard input given, its JSON answers read back."""

from __future__ import annotations

import argparse
import io
import json
import sys
from collections.abc import Iterable

from skutui.domain.paths import Paths


def node_step(argv: list[str], stdin: str, monkeypatch, paths: Paths) -> tuple[int, dict]:
    """A step that answers once."""
    code, out = _run(argv, io.StringIO(stdin), monkeypatch, paths)
    return code, json.loads(out)


def node_lines(argv: list[str], lines: Iterable[str], monkeypatch,
               paths: Paths) -> list[dict]:
    """A step kept running, one answer a line: ``lines`` are read as the step reaches
    them, so a test can change the node between two requests."""
    code, out = _run(argv, (line + "\n" for line in lines), monkeypatch, paths)
    assert code == 0, out
    return [json.loads(answer) for answer in out.splitlines()]


def _run(argv: list[str], stdin: Iterable[str], monkeypatch, paths: Paths) -> tuple[int, str]:
    from skutui.cli.node import register_node_steps  # the command line, for these tests only

    parser = argparse.ArgumentParser()
    register_node_steps(parser.add_subparsers())
    args = parser.parse_args(argv)
    monkeypatch.setenv("SKUTUI_ROOT", str(paths.config_root))
    monkeypatch.setattr(sys, "stdin", stdin)
    out = io.StringIO()
    monkeypatch.setattr(sys, "stdout", out)
    return args.func(args), out.getvalue()


def make_master(paths: Paths, monkeypatch) -> None:
    """This machine a master as keepalived made it: the role file, the agent's MASTER mark,
    and a keepalived that runs and started before that mark (no keepalived runs here, and
    the mark is not written: a step reads its run folder from the machine, not ``paths``)."""
    from skutui.system import node
    from skutui.system.daemons import Keepalived
    from skutui.system.hook import Mark, Moment

    mark = Mark("master", "done", Moment.now())
    monkeypatch.setattr(Keepalived, "running", lambda self: True)
    monkeypatch.setattr(Keepalived, "running_since", lambda self: 0.0)
    monkeypatch.setattr(node, "read_mark", lambda path: mark)
    paths.role_file.parent.mkdir(parents=True, exist_ok=True)
    paths.role_file.write_text("master\n")
