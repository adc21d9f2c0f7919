"""One cluster's life, told through the operations API, the same way to any ClusterService:
pre-flight with a wrong password and then the right one, create, the node table, status,
edit (a change, then the same change again), maintenance of each node in and out, destroy.

What each step answered is kept as plain JSON, so the run inside a lab node (see
``runner``) and the run on the UI's fake in this process can be compared by the same tests.
A step that raises ends the journey; its error is kept under ``error``.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import replace
from typing import Any

from skutui.cluster.api import ClusterService
from skutui.cluster.rows import as_dicts
from skutui.domain import codec
from skutui.domain.model import Role
from skutui.domain.wire import CheckResult, CreateRequest, EditRequest, NodeRow

LOCAL_IP, REMOTE_IP = "198.18.0.1", "198.18.0.2"
"""node-a and node-b: the lab's nodes, and the fake's."""
FLOATING_IP = "198.18.0.100/24"
INTERVAL, EDITED_INTERVAL = 0.2, 0.3
SETTLE_TIMEOUT = 20.0
"""Seconds a real cluster may take to show the roles a step leads to (a takeover, the
agent starting the sync on the new master)."""

FINGERPRINT = re.compile(r"SHA256:[A-Za-z0-9+/]{43}")


def request(password: str) -> CreateRequest:
    return CreateRequest(LOCAL_IP, REMOTE_IP, password,
                         {"floating_ips": (FLOATING_IP,), "check_interval": INTERVAL})


def checks(results: list[CheckResult]) -> list[dict[str, Any]]:
    return [{"name": c.name, "passed": c.passed, "detail": c.detail, "hint": c.hint}
            for c in results]


def anonymous(lines: list[str]) -> list[str]:
    """Progress lines without the peer's host key, which only the lab's sshd knows."""
    return [FINGERPRINT.sub("SHA256:<host key>", line) for line in lines]


async def settled(service: ClusterService, roles: dict[str, Role]) -> list[dict[str, str]]:
    """The node table once it shows ``roles`` with every node healthy (or in maintenance),
    or as it is when SETTLE_TIMEOUT has passed."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + SETTLE_TIMEOUT
    while True:
        rows = await service.nodes()
        if _settled(rows, roles) or loop.time() > deadline:
            return as_dicts(rows)
        await asyncio.sleep(0.2)


def _settled(rows: list[NodeRow], roles: dict[str, Role]) -> bool:
    return ({r.node: r.role for r in rows} == roles
            and all(r.status.value in ("ok", "maintenance") for r in rows))


async def journey(service: ClusterService, password: str) -> dict[str, Any]:
    told: dict[str, Any] = {}
    try:
        await _journey(service, password, told)
    except Exception as exc:  # noqa: BLE001 - the tests say which step and why
        told["error"] = f"{type(exc).__name__}: {exc}"
    finally:
        await service.close()
    return told


async def _journey(service: ClusterService, password: str, told: dict[str, Any]) -> None:
    lines: list[str] = []
    fingerprint = await service.fetch_host_key(REMOTE_IP)
    told["fingerprint_shape"] = bool(FINGERPRINT.fullmatch(fingerprint))
    asked = replace(request(password), host_key_fingerprint=fingerprint)

    wrong = await service.preflight(replace(asked, password=password + "-wrong"), lines.append)
    told["wrong_password"] = {"checks": checks(wrong), "progress": anonymous(lines)}
    told["cluster_after_wrong_password"] = await service.cluster()

    lines = []
    told["preflight"] = {"checks": checks(await service.preflight(asked, lines.append)),
                         "progress": anonymous(lines)}

    lines = []
    created = await service.create(asked, lines.append)
    told["create"] = {"config": codec.to_dict(created), "progress": anonymous(lines)}
    config = await service.cluster()
    told["cluster_after_create"] = None if config is None else codec.to_dict(config)
    told["is_master_after_create"] = await service.is_master()
    told["rows_after_create"] = await settled(
        service, {"local": Role.MASTER, "remote": Role.BACKUP})
    status = await service.status()
    told["status"] = {"hostname": status.hostname, "configured": status.config is not None,
                      "nodes": as_dicts(status.nodes)}

    lines = []
    told["edit"] = {"lines": await service.edit(EditRequest({"check_interval": EDITED_INTERVAL}),
                                                lines.append),
                    "progress": lines}
    told["edit_again"] = await service.edit(EditRequest({"check_interval": EDITED_INTERVAL}),
                                            lambda line: None)
    edited = await service.cluster()
    told["interval_after_edit"] = None if edited is None else edited.check_interval

    for node, other in (("local", "remote"), ("remote", "local")):
        told[f"{node}_maintenance_on"] = await service.set_maintenance(node, True)
        told[f"rows_{node}_in_maintenance"] = await settled(
            service, {node: Role.MAINTENANCE, other: Role.MASTER})
        told[f"{node}_maintenance_off"] = await service.set_maintenance(node, False)
        told[f"rows_{node}_back"] = await settled(
            service, {node: Role.BACKUP, other: Role.MASTER})

    lines = []
    told["destroy"] = {"warnings": await service.destroy(lines.append), "progress": lines}
    told["cluster_after_destroy"] = await service.cluster()
    told["rows_after_destroy"] = as_dicts(await service.nodes())
