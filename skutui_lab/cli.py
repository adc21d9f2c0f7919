"""``skutui lab …``: bring the two-node lab up and down, reboot a node, look at it, run
commands in a node.

Exit codes: 0 success, 1 the action failed, 2 bad input, 3 (``status``) the lab is down;
``exec`` returns the command's own exit code. Expected failures print one line, no traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from functools import wraps

from skutui.cli.common import Once
from skutui_lab.lab import Lab, check_advert
from skutui_lab.system import LabError
from skutui_lab.topology import (
    BRIDGE,
    BRIDGE_IP,
    DEFAULT_ADVERT,
    FLOATING_IP,
    NODE_NAMES,
    NODES,
    PASSWORD,
    PREFIXLEN,
)

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_DOWN = 3
EXIT_INTERRUPTED = 130
DEFAULT_SHELL = ("/bin/bash", "-l")

Command = Callable[[argparse.Namespace], int]


def _guarded(func: Command) -> Command:
    """The CLI boundary: an expected failure becomes one line on stderr and an exit code."""

    @wraps(func)
    def wrapper(args: argparse.Namespace) -> int:
        try:
            return func(args)
        except LabError as exc:
            print(f"skutui lab: {exc}", file=sys.stderr)
            return EXIT_FAILED
        except KeyboardInterrupt:
            print("skutui lab: interrupted", file=sys.stderr)
            return EXIT_INTERRUPTED
        except BrokenPipeError:
            # The reader (e.g. ``| head``) left: stay quiet, also when Python flushes at exit.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return EXIT_FAILED

    return wrapper


def _advert(text: str) -> float:
    try:
        return check_advert(float(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    except LabError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _print_json(data: object) -> None:
    json.dump(data, sys.stdout, indent=2)
    print()


def _seconds(value: float) -> str:
    return f"{value:g} s"


@_guarded
def cmd_up(args: argparse.Namespace) -> int:
    lab = Lab()
    started = time.monotonic()
    built = lab.up(advert=args.advert)
    advert = lab.status().advert
    if not built:
        print(f"lab is already up (advert {_seconds(advert)}); 'skutui lab down' removes it")
        return EXIT_OK
    nodes = ", ".join(f"{n.name} {n.ip}" for n in NODES)
    print(f"lab up in {time.monotonic() - started:.2f} s: {nodes} "
          f"on {BRIDGE} ({BRIDGE_IP}/{PREFIXLEN})")
    print(f"floating IP {FLOATING_IP}, advert {_seconds(advert)}, root password: {PASSWORD}")
    print(f"enter a node: skutui lab exec {NODES[0].name}   or   ssh root@{NODES[0].ip}")
    return EXIT_OK


@_guarded
def cmd_down(args: argparse.Namespace) -> int:
    started = time.monotonic()
    if Lab().down():
        print(f"lab down in {time.monotonic() - started:.2f} s")
    else:
        print("lab was not up: nothing to remove")
    return EXIT_OK


@_guarded
def cmd_reboot(args: argparse.Namespace) -> int:
    started = time.monotonic()
    Lab().reboot(args.node)
    print(f"{args.node} rebooted in {time.monotonic() - started:.2f} s (every process ended, "
          "booted again from its disk)")
    return EXIT_OK


@_guarded
def cmd_status(args: argparse.Namespace) -> int:
    status = Lab().status()
    if args.json:
        _print_json({"up": status.up, "advert": status.advert, "bridge": status.bridge,
                     "nodes": [vars(n) for n in status.nodes]})
    else:
        state = "up" if status.up else ("broken (run 'skutui lab up' to rebuild)"
                                        if status.built else "down")
        print(f"lab: {state}, advert {_seconds(status.advert)}, "
              f"bridge {BRIDGE} {'present' if status.bridge else 'absent'}")
        print(f"{'NODE':<8} {'STATE':<6} {'PID':<8} {'IP':<12} SSHD")
        for node in status.nodes:
            print(f"{node.name:<8} {'up' if node.up else 'down':<6} "
                  f"{node.pid or '-'!s:<8} {node.ip:<12} "
                  f"{'running' if node.sshd else 'not running'}")
    return EXIT_OK if status.up else EXIT_DOWN


@_guarded
def cmd_exec(args: argparse.Namespace) -> int:
    argv = list(args.command)
    if argv[:1] == ["--"]:
        argv = argv[1:]
    command = Lab().command(args.node, argv or DEFAULT_SHELL)
    # The terminal sends Ctrl-C and Ctrl-\ to the whole foreground group: let the command
    # alone decide what they mean. Handlers (unlike SIG_IGN) are reset in the child.
    previous = {sig: signal.signal(sig, lambda *_: None) for sig in (signal.SIGINT, signal.SIGQUIT)}
    try:
        code = subprocess.run(command, env=Lab.environment(), check=False).returncode
    except OSError as exc:
        raise LabError(f"cannot run nsenter: {exc.strerror}") from None
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 128 - code if code < 0 else code


@_guarded
def cmd_info(args: argparse.Namespace) -> int:
    info = Lab().info()
    if args.json:
        _print_json(info)
        return EXIT_OK
    print(f"lab: {'up' if info['up'] else 'down'} (folder {info['lab_dir']})")
    for node in info["nodes"]:
        print(f"  {node['name']}: {node['cidr']} on {node['interface']}, "
              f"hostname {node['hostname']}")
    print(f"  bridge {info['bridge']} {info['bridge_ip']}/{PREFIXLEN}, "
          f"floating IP {info['floating_ip']}, advert {_seconds(info['advert'])}")
    print(f"  root password: {info['password']}")
    return EXIT_OK


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``lab`` and its subcommands to a parent parser's subcommands."""
    lab = subparsers.add_parser(
        "lab", help="the two-node lab on this machine (needs root)",
        description="Two real cluster nodes on this machine: node-a and node-b, each with its "
                    "own network, hostname, processes, /etc and sshd, on one bridge.",
    )
    lab.set_defaults(func=lambda _args: _usage(lab))
    commands = lab.add_subparsers(title="lab commands", metavar="COMMAND")

    up = commands.add_parser("up", help="build the lab (does nothing if it is up)")
    up.add_argument("--advert", action=Once, type=_advert, metavar="S",
                    help=f"advert interval to suggest for the cluster (default "
                         f"{_seconds(DEFAULT_ADVERT)}); 'lab info' reports it")
    up.set_defaults(func=cmd_up)

    down = commands.add_parser("down", help="remove the lab: processes, namespaces, links, mounts")
    down.set_defaults(func=cmd_down)

    reboot = commands.add_parser(
        "reboot", help="end every process of a node at once and boot it again",
        description="A power cut and a boot: every process of the node ends at once (no "
                    "daemon stops cleanly), its network stack, /run and /tmp start empty, and "
                    "its systemd boots it again from its disk, starting what is enabled there.")
    reboot.add_argument("node", choices=NODE_NAMES)
    reboot.set_defaults(func=cmd_reboot)

    status = commands.add_parser("status", help="is each node up, is its sshd running "
                                                "(exit 0 up, 3 down)")
    status.add_argument("--json", action="store_true")
    status.set_defaults(func=cmd_status)

    run = commands.add_parser(
        "exec", help="run a command inside a node (default: a login shell)",
        description="Run a command inside a node; stdin, stdout, stderr and the exit code "
                    "pass through. Put -- before a command that has options.",
    )
    run.add_argument("node", choices=NODE_NAMES)
    run.add_argument("command", nargs=argparse.REMAINDER, metavar="-- COMMAND")
    run.set_defaults(func=cmd_exec)

    info = commands.add_parser("info", help="addresses, password, floating IP, advert")
    info.add_argument("--json", action="store_true")
    info.set_defaults(func=cmd_info)


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return EXIT_BAD_INPUT


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="skutui")
    register(parser.add_subparsers(metavar="COMMAND"))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """``skutui lab …`` (skutui's entry hands it here), or stand-alone:
    ``python -m skutui_lab.cli [lab] up|down|status|exec|info``."""
    args_in = list(sys.argv[1:] if argv is None else argv)
    if args_in[:1] != ["lab"]:
        args_in.insert(0, "lab")
    args = build_parser().parse_args(args_in)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
