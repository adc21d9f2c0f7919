"""keepalived's notify hook and the mark the agent leaves for it after a transition.

keepalived runs ``notify_hook.sh`` on every transition; the hook leaves the transition to the
agent when the agent marks it done, and runs it (``skutui agent notify STATE``) when not.
"""

from __future__ import annotations

import time
from pathlib import Path

from skutui.system.files import write_text_atomic

HOOK = Path(__file__).with_name("notify_hook.sh")
"""keepalived's notify hook: it leaves the transition to the agent when the agent marks it
done, and runs it (``skutui agent notify STATE``) when not."""


def hook_command(skutui: str, mark: Path) -> str:
    """keepalived's notify command line, without the state keepalived's config appends."""
    return f"/bin/sh {HOOK} {skutui} {mark}"


def mark_done(mark: Path, state: str) -> None:
    """Tell keepalived's hook that the transition to ``state`` has run."""
    write_text_atomic(mark, f"{state} {time.time_ns()}\n")
