"""``skutui cluster …``, ``skutui maintenance …`` and ``skutui nodes``: the lifecycle, scriptable.

Every command runs on the operations API the console uses (``skutui.cluster.operations``).
The settings' flags, their checks and the lines of ``cluster show`` come from the settings
table (``skutui.domain.settings``); this module only reads arguments and prints reports.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from skutui.cli.common import EXIT_BAD_INPUT, CommandError, Once, Report, print_json, say
from skutui.cluster.api import ClusterService
from skutui.cluster.operations import ClusterOperations, build_service
from skutui.cluster.rows import as_dicts
from skutui.domain import codec, settings, validation
from skutui.domain.errors import ValidationError
from skutui.domain.model import ClusterConfig
from skutui.domain.paths import Paths
from skutui.domain.wire import CheckResult, CreateRequest, EditRequest, RekeyRequest

ERASE_WARNING = (
    "The peer at {ip} becomes the backup: its existing cluster configuration "
    "(skutui, keepalived and conntrackd) will be ERASED and replaced by this node's."
)
SHOW_WIDTH = 21
"""The column where ``cluster show`` starts its values."""


def _run(work: Callable[[ClusterOperations, argparse.Namespace], Awaitable[int]]
         ) -> Callable[[argparse.Namespace], int]:
    """Run an async command on the operations API and close its peer connection afterwards."""

    def command(args: argparse.Namespace) -> int:
        async def main() -> int:
            service = build_service(Paths.from_env())
            try:
                return await work(service, args)
            finally:
                await service.close()

        return asyncio.run(main())

    return command


# --- the settings' flags ---------------------------------------------------------------------


def _reader(setting: settings.Setting) -> Callable[[str], Any]:
    """The flag's argparse type: what can be checked without the cluster is checked here, so
    a typo is bad input on any node, before anything is touched."""

    def read(text: str) -> Any:
        try:
            return setting.read(text)
        except ValidationError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return read


def _add_setting_flags(parser: argparse.ArgumentParser, chosen: Iterable[settings.Setting]) -> None:
    for setting in chosen:
        parser.add_argument(
            setting.flag, *setting.aliases, dest=setting.key, type=_reader(setting),
            action="append" if setting.repeat else Once, metavar=setting.metavar,
            help=setting.flag_help)


def _given(args: argparse.Namespace, chosen: Iterable[settings.Setting]) -> dict[str, Any]:
    """The settings named on the command line, as the operator gave them."""
    return {setting.key: getattr(args, setting.key) for setting in chosen
            if getattr(args, setting.key) is not None}


# --- check and create --------------------------------------------------------------------------


def _read_password(args: argparse.Namespace) -> str:
    if not args.password_stdin:
        raise CommandError("give the peer's root password on standard input with --password-stdin",
                           EXIT_BAD_INPUT)
    password = sys.stdin.readline().rstrip("\r\n")
    if not password:
        raise CommandError("the password read from standard input is empty", EXIT_BAD_INPUT)
    return password


def _request(args: argparse.Namespace) -> CreateRequest:
    return CreateRequest(
        local_ip=args.local_ip,
        remote_ip=args.remote_ip,
        password=_read_password(args),
        settings=_given(args, settings.creatable()),
        host_key_fingerprint=args.accept_host_key,
        trust_new_host_key=args.trust_new_host_key,
    )


def _print_checks(report: Report, checks: list[CheckResult]) -> bool:
    for check in checks:
        mark = "PASS" if check.passed else "FAIL"
        report.say(f"[{mark}] {check.name}: {check.detail}")
        if not check.passed and check.hint:
            report.say(f"       fix: {check.hint}")
    passed = all(c.passed for c in checks)
    report.done(passed, checks=[{"name": c.name, "passed": c.passed, "detail": c.detail,
                                 "hint": c.hint} for c in checks])
    return passed


async def _check(service: ClusterService, args: argparse.Namespace) -> int:
    report = Report(args)
    return 0 if _print_checks(report, await service.preflight(_request(args), report.say)) else 1


def _confirm_erase(args: argparse.Namespace, report: Report) -> None:
    warning = ERASE_WARNING.format(ip=args.remote_ip)
    if args.yes:
        report.say(warning)
        return
    try:
        with open("/dev/tty", "r+") as tty:
            tty.write(warning + "\nType yes to go on: ")
            tty.flush()
            answer = tty.readline().strip().lower()
    except OSError:
        raise CommandError(warning + " Nothing was changed; add --yes to confirm.", EXIT_BAD_INPUT) from None
    if answer != "yes":
        raise CommandError("Not confirmed; nothing was changed.", EXIT_BAD_INPUT)


async def _create(service: ClusterService, args: argparse.Namespace) -> int:
    report = Report(args)
    request = _request(args)
    await service.validate(request)
    _confirm_erase(args, report)
    config = await service.create(request, report.say)
    report.done(cluster=codec.to_dict(config))
    return 0


# --- show, edit, destroy ----------------------------------------------------------------------


async def _config_or_fail(service: ClusterService) -> ClusterConfig:
    config = await service.cluster()
    if config is None:
        raise CommandError("No cluster is configured on this node.")
    return config


async def _show(service: ClusterService, args: argparse.Namespace) -> int:
    config = await _config_or_fail(service)
    if args.json:
        print_json(codec.to_dict(config))
        return 0
    context = settings.Context.of(config, await service.local_hostname())
    for label, value in settings.shown(config, context):
        say(f"{label + ':':<{SHOW_WIDTH}}{value}")
    say(f"{'Nodes:':<{SHOW_WIDTH}}" + ", ".join(f"{n.hostname} {n.ip}" for n in config.nodes))
    return 0


async def _edit(service: ClusterService, args: argparse.Namespace) -> int:
    report = Report(args)
    lines = await service.edit(EditRequest(_given(args, settings.editable())), report.say)
    for line in lines or ["Nothing to be changed"]:
        report.say(line)
    report.done(changes=lines)
    return 0


async def _destroy(service: ClusterService, args: argparse.Namespace) -> int:
    report = Report(args)
    config = await _config_or_fail(service)
    names = " and ".join(n.hostname for n in config.nodes)
    if not args.yes:
        raise CommandError(
            f"This removes the cluster from {names}: cluster, keepalived and conntrackd "
            "configuration, the floating IPs, and each node's key from the other. Add --yes "
            "to confirm.", EXIT_BAD_INPUT)
    warnings = await service.destroy(report.say)
    for warning in warnings:
        report.say(f"warning: {warning}")
    report.say(f"Cluster destroyed on {names}")
    report.done(warnings=warnings)
    return 0


def _fingerprint(text: str) -> str:
    try:
        return validation.host_key_fingerprint(text)
    except ValidationError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


async def _rekey(service: ClusterOperations, args: argparse.Namespace) -> int:
    request = RekeyRequest(host_key_fingerprint=args.accept_host_key,
                           trust_new_host_key=args.trust_new_host_key,
                           link_address=args.link_address)
    for line in await service.rekey(request, say):
        say(line)
    return 0


# --- maintenance and the node table ----------------------------------------------------------


async def _maintenance(service: ClusterService, args: argparse.Namespace) -> int:
    report = Report(args)
    message = await service.set_maintenance(args.node, args.state == "on", force=args.force)
    report.say(message)
    report.done(node=args.node, maintenance=args.state == "on", message=message)
    return 0


async def _nodes(service: ClusterService, args: argparse.Namespace) -> int:
    await _config_or_fail(service)
    rows = await service.nodes()
    if args.json:
        print_json(as_dicts(rows))
        return 0
    say(f"{'NODE':<7} {'ROLE':<12} {'IP':<16} {'HOSTNAME':<16} {'STATUS':<12} MESSAGE")
    for r in rows:
        say(f"{r.node:<7} {r.role.value:<12} {r.ip:<16} {r.hostname:<16} {r.status.label:<12} {r.message}")
    return 0


# --- the parsers ---------------------------------------------------------------------------------


def _add_json(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true",
                        help='one JSON document at the end: {"ok", "command", "steps", …}')


def register(commands: argparse._SubParsersAction, name: str, help: str) -> None:
    {"cluster": _register_cluster, "maintenance": _register_maintenance,
     "nodes": _register_nodes}[name](commands, name, help)


def _register_cluster(commands: argparse._SubParsersAction, name: str, help: str) -> None:
    cluster = commands.add_parser(name, help=help)
    actions = cluster.add_subparsers(title="actions", metavar="ACTION", required=True)

    for action_name, func, text in (
            ("check", _check, "run the pre-flight checks alone"),
            ("create", _create, "create the cluster; this node becomes master")):
        action = actions.add_parser(action_name, help=text)
        action.add_argument("--local-ip", action=Once, required=True, help="this node's cluster IP")
        action.add_argument("--remote-ip", action=Once, required=True, help="the peer's cluster IP")
        action.add_argument("--password-stdin", action="store_true",
                            help="read the peer's root password (used once) from standard input")
        _add_setting_flags(action, settings.creatable())
        trust = action.add_mutually_exclusive_group()
        trust.add_argument("--accept-host-key", action=Once, metavar="SHA256:…",
                           help="the peer's host-key fingerprint, as checked on its console")
        trust.add_argument("--trust-new-host-key", action="store_true",
                           help="pin whatever host key the peer offers first (scripts)")
        if action_name == "create":
            action.add_argument("--yes", action="store_true",
                                help="confirm that the peer's cluster configuration is erased")
        _add_json(action)
        action.set_defaults(func=_run(func))

    shown = ", ".join(setting.label.lower() for setting in settings.SETTINGS)
    show = actions.add_parser("show", help=f"{shown} and the nodes")
    show.add_argument("--json", action="store_true")
    show.set_defaults(func=_run(_show))

    edit = actions.add_parser("edit", help="change the cluster on both nodes (master only)")
    _add_setting_flags(edit, settings.editable())
    _add_json(edit)
    edit.set_defaults(func=_run(_edit))

    destroy = actions.add_parser("destroy", help="remove the cluster from both nodes")
    destroy.add_argument("--yes", action="store_true")
    _add_json(destroy)
    destroy.set_defaults(func=_run(_destroy))

    rekey = actions.add_parser("rekey", help="replace both nodes' SSH keys, each proved before "
                                             "the old one goes")
    repin = rekey.add_mutually_exclusive_group()
    repin.add_argument("--accept-host-key", action=Once, metavar="SHA256:…", type=_fingerprint,
                       help="also re-pin the peer's new host key, with this fingerprint as "
                            "checked on its console (and send this node's host key to it)")
    repin.add_argument("--trust-new-host-key", action="store_true",
                       help="also re-pin whatever host key the peer offers now (scripts)")
    rekey.add_argument("--link-address", action="store_true",
                       help="also learn and pin both nodes' link-layer addresses on the "
                            "cluster NIC again (a NIC replaced)")
    rekey.set_defaults(func=_run(_rekey))


def _register_maintenance(commands: argparse._SubParsersAction, name: str, help: str) -> None:
    maintenance = commands.add_parser(name, help=help)
    maintenance.add_argument("state", choices=("on", "off"))
    maintenance.add_argument("--node", action=Once, choices=("local", "remote"), default="local")
    maintenance.add_argument("--force", action="store_true",
                             help="on the master: go into maintenance even when the other node "
                                  "cannot take over, leaving the floating IPs unserved")
    _add_json(maintenance)
    maintenance.set_defaults(func=_run(_maintenance))


def _register_nodes(commands: argparse._SubParsersAction, name: str, help: str) -> None:
    nodes = commands.add_parser(name, help=help)
    nodes.add_argument("--json", action="store_true")
    nodes.set_defaults(func=_run(_nodes))
