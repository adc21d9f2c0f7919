"""``skutui cluster …``, ``skutui maintenance …`` and ``skutui nodes``: the lifecycle, scriptable."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Awaitable, Callable

from skutui.cli.common import Once
from skutui.domain.wire import CreateRequest, EditRequest
from skutui.domain.paths import Paths

ERASE_WARNING = (
    "The peer at {ip} becomes the backup: its existing cluster configuration "
    "(skutui, keepalived and conntrackd) will be ERASED and replaced by this node's."
)


def _say(line: str) -> None:
    print(line, flush=True)


def _lifecycle():
    from skutui.cluster.lifecycle import Lifecycle

    return Lifecycle(Paths.from_env())


def _run(work: Callable[..., Awaitable[int]]) -> Callable[[argparse.Namespace], int]:
    """Run an async command on one lifecycle and close its peer connection afterwards."""

    def command(args: argparse.Namespace) -> int:
        import asyncio

        async def main() -> int:
            lifecycle = _lifecycle()
            try:
                return await work(lifecycle, args)
            finally:
                await lifecycle.close()

        return asyncio.run(main())

    return command


def _read_password(args: argparse.Namespace) -> str:
    from skutui.cli.common import CommandError, EXIT_BAD_INPUT

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
        floating_ips=tuple(args.floating_ip or ()),
        check_interval=args.check_interval,
        failback=args.failback,
        host_key_fingerprint=args.accept_host_key,
        trust_new_host_key=args.trust_new_host_key,
    )


def _print_checks(checks) -> bool:
    for check in checks:
        mark = "PASS" if check.passed else "FAIL"
        _say(f"[{mark}] {check.name}: {check.detail}")
        if not check.passed and check.hint:
            _say(f"       fix: {check.hint}")
    return all(c.passed for c in checks)


async def _check(lifecycle, args) -> int:
    return 0 if _print_checks(await lifecycle.preflight(_request(args), _say)) else 1


def _confirm_erase(args: argparse.Namespace) -> None:
    from skutui.cli.common import CommandError, EXIT_BAD_INPUT

    warning = ERASE_WARNING.format(ip=args.remote_ip)
    if args.yes:
        _say(warning)
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


async def _create(lifecycle, args) -> int:
    request = _request(args)
    await lifecycle.validate(request)
    _confirm_erase(args)
    await lifecycle.create(request, _say)
    return 0


def _config_or_fail(lifecycle):
    from skutui.cli.common import CommandError

    config = lifecycle.configured()
    if config is None:
        raise CommandError("No cluster is configured on this node.")
    return config


def _show(args: argparse.Namespace) -> int:
    from skutui.cli.common import print_json
    from skutui.domain import codec

    config = _config_or_fail(_lifecycle())
    if args.json:
        print_json(codec.to_dict(config))
        return 0
    from skutui.domain.render import format_seconds

    _say(f"Interface:           {config.interface}")
    _say(f"Failback:            {config.failback}")
    _say(f"Check interval:      {format_seconds(config.check_interval)} s")
    _say(f"Tracked interfaces:  {', '.join(config.all_tracked_interfaces)}")
    _say(f"Floating IPs:        {', '.join(config.floating_ips) or 'none'}")
    _say(f"Synced paths:        {', '.join(config.synced_paths) or 'none'}")
    _say("Nodes:               " + ", ".join(f"{n.hostname} {n.ip}" for n in config.nodes))
    return 0


async def _edit(lifecycle, args) -> int:
    from skutui.domain import validation

    # What can be checked without the cluster is, so that a typo is bad input on any node.
    tracked = floating = None
    if args.track is not None:
        tracked = validation.tracked_interfaces([t for t in args.track.split(",") if t], None)
    if args.floating_ip is not None:
        floating = validation.floating_ips(args.floating_ip)
    request = EditRequest(
        check_interval=args.check_interval,
        failback=args.failback,
        tracked_interfaces=tracked,
        floating_ips=floating,
    )
    lines = await lifecycle.edit(request, _say)
    for line in lines or ["Nothing to be changed"]:
        _say(line)
    return 0


async def _destroy(lifecycle, args) -> int:
    from skutui.cli.common import CommandError, EXIT_BAD_INPUT

    config = _config_or_fail(lifecycle)
    names = " and ".join(n.hostname for n in config.nodes)
    if not args.yes:
        raise CommandError(
            f"This removes the cluster from {names}: cluster, keepalived and conntrackd "
            "configuration, and the floating IPs. Add --yes to confirm.", EXIT_BAD_INPUT)
    for warning in await lifecycle.destroy(_say):
        _say(f"warning: {warning}")
    _say(f"Cluster destroyed on {names}")
    return 0


async def _maintenance(lifecycle, args) -> int:
    _say(await lifecycle.set_maintenance(args.node, args.state == "on"))
    return 0


def rows_as_dicts(rows) -> list[dict]:
    return [
        {"node": r.node, "role": r.role.value, "ip": r.ip, "hostname": r.hostname,
         "status": r.status.value, "colour": r.colour, "message": r.message}
        for r in rows
    ]


async def _nodes(lifecycle, args) -> int:
    from skutui.cli.common import print_json

    _config_or_fail(lifecycle)
    rows = await lifecycle.nodes()
    if args.json:
        print_json(rows_as_dicts(rows))
        return 0
    _say(f"{'NODE':<7} {'ROLE':<12} {'IP':<16} {'HOSTNAME':<16} {'STATUS':<12} MESSAGE")
    for r in rows:
        _say(f"{r.node:<7} {r.role.value:<12} {r.ip:<16} {r.hostname:<16} {r.status.label:<12} {r.message}")
    return 0


def _interval(text: str) -> float:
    from skutui.domain.validation import ValidationError, check_interval

    try:
        return check_interval(text)
    except ValidationError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def register(commands: argparse._SubParsersAction, name: str, help: str) -> None:
    {"cluster": _register_cluster, "maintenance": _register_maintenance,
     "nodes": _register_nodes}[name](commands, name, help)


def _register_cluster(commands: argparse._SubParsersAction, name: str, help: str) -> None:
    cluster = commands.add_parser(name, help=help)
    actions = cluster.add_subparsers(title="actions", metavar="ACTION", required=True)

    for name, func, text in (("check", _check, "run the pre-flight checks alone"),
                             ("create", _create, "create the cluster; this node becomes master")):
        action = actions.add_parser(name, help=text)
        action.add_argument("--local-ip", action=Once, required=True, help="this node's cluster IP")
        action.add_argument("--remote-ip", action=Once, required=True, help="the peer's cluster IP")
        action.add_argument("--password-stdin", action="store_true",
                            help="read the peer's root password (used once) from standard input")
        action.add_argument("--floating-ip", action="append", metavar="CIDR")
        action.add_argument("--check-interval", action=Once, type=_interval, metavar="SECONDS")
        action.add_argument("--failback", action=Once, choices=("disabled", "local", "remote"),
                            default="disabled")
        trust = action.add_mutually_exclusive_group()
        trust.add_argument("--accept-host-key", action=Once, metavar="SHA256:…",
                           help="the peer's host-key fingerprint, as checked on its console")
        trust.add_argument("--trust-new-host-key", action="store_true",
                           help="pin whatever host key the peer offers first (scripts)")
        if name == "create":
            action.add_argument("--yes", action="store_true",
                                help="confirm that the peer's cluster configuration is erased")
        action.set_defaults(func=_run(func))

    show = actions.add_parser("show", help="interface, failback, check interval, tracked interfaces")
    show.add_argument("--json", action="store_true")
    show.set_defaults(func=_show)

    edit = actions.add_parser("edit", help="change the cluster on both nodes (master only)")
    edit.add_argument("--check-interval", action=Once, type=_interval, metavar="SECONDS")
    edit.add_argument("--failback", action=Once, metavar="disabled|local|remote|HOSTNAME")
    edit.add_argument("--track", action=Once, metavar="IF,…",
                      help="tracked interfaces besides the cluster NIC")
    edit.add_argument("--floating-ip", action="append", metavar="CIDR",
                      help="the whole new list of floating IPs (repeat the option)")
    edit.set_defaults(func=_run(_edit))

    destroy = actions.add_parser("destroy", help="remove the cluster from both nodes")
    destroy.add_argument("--yes", action="store_true")
    destroy.set_defaults(func=_run(_destroy))



def _register_maintenance(commands: argparse._SubParsersAction, name: str, help: str) -> None:
    maintenance = commands.add_parser(name, help=help)
    maintenance.add_argument("state", choices=("on", "off"))
    maintenance.add_argument("--node", action=Once, choices=("local", "remote"), default="local")
    maintenance.set_defaults(func=_run(_maintenance))



def _register_nodes(commands: argparse._SubParsersAction, name: str, help: str) -> None:
    nodes = commands.add_parser(name, help=help)
    nodes.add_argument("--json", action="store_true")
    nodes.set_defaults(func=_run(_nodes))
