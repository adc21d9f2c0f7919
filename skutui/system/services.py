"""The operator's services on this node (haproxy, nginx…): whether one runs, starting and
stopping it through the init system, and the marks keepalived's service checks read.

Whether a service runs is answered by ``service_check.sh``, the very script keepalived runs
for its checks, so the node table, the agent and keepalived never disagree about it.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterable
from pathlib import Path

from skutui.system.files import write_text_atomic

SERVICE_CHECK = Path(__file__).with_name("service_check.sh")
CHECK_TIMEOUT = 10.0
"""Seconds a check may take (an init script asked for the status)."""
ACTION_TIMEOUT = 60.0
"""Seconds a service start or stop may take before it is reported as failed."""
STARTING = ".starting"
FAILED = ".failed"


def check_command() -> str:
    """keepalived's vrrp_script command line, without the arguments the renderer adds."""
    return f"/bin/sh {SERVICE_CHECK}"


def running(name: str) -> bool:
    try:
        result = subprocess.run(["/bin/sh", str(SERVICE_CHECK), "running", name],
                                capture_output=True, timeout=CHECK_TIMEOUT)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return result.returncode == 0


def act(name: str, action: str, timeout: float = ACTION_TIMEOUT) -> str | None:
    """``service NAME ACTION``; None when it worked, else what went wrong, for a report."""
    try:
        result = subprocess.run(["service", name, action], capture_output=True, text=True,
                                timeout=timeout, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return f"service {name} {action}: not done after {timeout:g} s"
    except OSError as exc:
        return f"service {name} {action}: {exc}"
    if result.returncode != 0:
        detail = (result.stderr or result.stdout).strip().splitlines()
        return f"service {name} {action}: {detail[-1] if detail else f'exit {result.returncode}'}"
    return None


def failed_here(state_dir: Path, names: Iterable[str]) -> list[str]:
    """The master-only services that failed on this node while it was master."""
    return [name for name in names if (state_dir / f"{name}{FAILED}").exists()]


def mark_failed(state_dir: Path, names: Iterable[str]) -> None:
    """These master-only services went down while this node was master: until they are seen
    running here again, keepalived's check keeps this node ranked below a ready peer."""
    for name in names:
        state_dir.mkdir(parents=True, exist_ok=True)
        write_text_atomic(state_dir / f"{name}{FAILED}", "")


def forget_failures(state_dir: Path) -> None:
    """The operator says the node is fixed (it left maintenance): it is ready again."""
    if state_dir.is_dir():
        for mark in state_dir.glob(f"*{FAILED}"):
            mark.unlink(missing_ok=True)


def starting(state_dir: Path, name: str, on: bool) -> None:
    """While the agent starts ``name``, keepalived's check does not count it down."""
    mark = state_dir / f"{name}{STARTING}"
    if on:
        state_dir.mkdir(parents=True, exist_ok=True)
        write_text_atomic(mark, "")
    else:
        mark.unlink(missing_ok=True)
