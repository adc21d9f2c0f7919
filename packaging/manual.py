"""skutui's man page and bash completion, generated from its argument parser.

Both are made at package build time from ``skutui.cli.main.build_parser()``, so a command,
an option or a help line is written once, in the parser, and the manual, the completion and
``skutui --help`` never disagree. The commands the nodes run on each other (``node``,
``agent``) are plumbing: left out of both, as they are out of ``--help``.

    python packaging/manual.py man VERSION > skutui.8
    python packaging/manual.py completion > skutui
"""

from __future__ import annotations

import argparse
import datetime
import os
import sys
from collections.abc import Iterator

from skutui.cli.main import COMMANDS, build_parser
from skutui.domain.paths import Paths
from skutui.system.logs import IDENTIFIER
from skutui.system.units import AGENT_UNIT, CONNTRACKD_UNIT, DROP_IN, KEEPALIVED_UNIT, LAUNCHER

Path_ = tuple[str, ...]
HIDDEN = {name for name, group in COMMANDS.items() if group.hidden}


def public_parsers(parser: argparse.ArgumentParser, path: Path_ = (), help_text: str = ""
                   ) -> Iterator[tuple[Path_, argparse.ArgumentParser, str]]:
    """Every parser an operator uses, by its command words, with the help line its parent
    gives it; hidden commands and their subcommands left out."""
    yield path, parser, help_text
    for action in parser._actions:
        if not isinstance(action, argparse._SubParsersAction):
            continue
        helps = {choice.dest: choice.help or "" for choice in action._choices_actions}
        for name, sub in action.choices.items():
            if not path and name in HIDDEN:
                continue
            yield from public_parsers(sub, (*path, name), helps.get(name, ""))


def subcommands(parser: argparse.ArgumentParser, top: bool = False) -> list[str]:
    return [name for action in parser._actions if isinstance(action, argparse._SubParsersAction)
            for name in action.choices if not (top and name in HIDDEN)]


def arguments(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    return [action for action in parser._actions
            if not isinstance(action, (argparse._SubParsersAction, argparse._HelpAction))
            and action.help is not argparse.SUPPRESS]


# --- the man page --------------------------------------------------------------------------

def roff(text: str) -> str:
    """Text for a man page line: backslashes and hyphens escaped, characters beyond ASCII
    named (groff reads ASCII), no line read as a request."""
    text = text.replace("\\", "\\e").replace("-", "\\-")
    text = "".join(ch if ord(ch) < 128 else f"\\[u{ord(ch):04X}]" for ch in text)
    return "\n".join(("\\&" + line) if line[:1] in (".", "'") else line
                     for line in text.split("\n"))


def _usage(parser: argparse.ArgumentParser) -> str:
    return " ".join(parser.format_usage().removeprefix("usage: ").split())


def _argument(action: argparse.Action) -> str:
    if action.option_strings:
        names = ", ".join(f"\\fB{roff(name)}\\fR" for name in action.option_strings)
        if action.nargs != 0:
            names += f" \\fI{roff(action.metavar or action.dest.upper())}\\fR"
    else:
        names = f"\\fI{roff(action.metavar or action.dest)}\\fR"
    text = action.help or ""
    if action.choices and "{" not in text:
        text = (text + "; " if text else "") + "one of " + ", ".join(map(str, action.choices))
    return f".TP\n{names}\n{roff(text)}"


def _build_date() -> datetime.date:
    """SOURCE_DATE_EPOCH when a reproducible build sets it, else today."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    if epoch and epoch.isdigit():
        return datetime.datetime.fromtimestamp(int(epoch), datetime.UTC).date()
    return datetime.date.today()


def man_page(version: str, date: datetime.date | None = None) -> str:
    parser = build_parser()
    paths = Paths()
    day = (date or _build_date()).isoformat()
    lines = [
        f'.TH SKUTUI 8 "{day}" "skutui {roff(version)}" "System Administration"',
        ".SH NAME",
        "skutui \\- console and command line for a two\\-node active\\-passive cluster",
        ".SH SYNOPSIS",
        ".B skutui", "[\\fB\\-\\-ascii\\fR]", ".br",
        ".B skutui", "\\fICOMMAND\\fR [\\fIOPTIONS\\fR]",
        ".SH DESCRIPTION",
        roff(parser.description or ""),
        roff("Without a command, skutui opens its full-screen console; every action of the "
             "console is also a command. keepalived (VRRP), conntrackd (connection tracking) "
             "and skutui's agent (configuration sync, command replication, role events) run "
             "as systemd units on both nodes."),
        ".SH COMMANDS",
    ]
    for path, sub, help_text in public_parsers(parser):
        if not path or subcommands(sub):
            continue
        lines += [f'.SS "{roff(_usage(sub))}"']
        description = sub.description or help_text
        if description:
            lines.append(roff(description))
        for action in arguments(sub):
            lines.append(_argument(action))
    lines += [
        ".SH OPTIONS",
        *(_argument(action) for action in arguments(parser)),
        ".SH SYSTEMD",
        roff(f"{AGENT_UNIT} runs the agent ({LAUNCHER} agent run) on a node in a cluster, after "
             f"{CONNTRACKD_UNIT} and {KEEPALIVED_UNIT}. While the node is in a cluster, skutui "
             f"adds a drop-in to each of Debian's two units "
             f"(/etc/systemd/system/UNIT.d/{DROP_IN}) that gives it skutui's configuration, "
             "orders conntrackd before keepalived and starts either again when it dies; "
             "skutui cluster destroy removes both drop-ins."),
        ".SH FILES",
        *(f".TP\n{roff(str(path))}\n{roff(text)}" for path, text in (
            (paths.cluster_file, "the cluster, synced from the master to the backup"),
            (paths.local_dir, "never synced: role, maintenance flag, keys, pinned host keys"),
            (paths.keepalived_conf, "rendered by skutui"),
            (paths.conntrackd_conf, "rendered by skutui"),
            (paths.run_dir, "the agent's state and control socket, keepalived's notify FIFO"),
            (paths.log_file, "skutui's log where systemd's journal is not running"),
        )),
        ".SH LOGS",
        roff(f"skutui logs shows them: under systemd, the journal lines of {IDENTIFIER} (the "
             f"agent, keepalived's notify hook), {KEEPALIVED_UNIT}, {CONNTRACKD_UNIT} and "
             f"systemd's own about the three units; elsewhere {paths.log_file}."),
        ".SH EXIT STATUS",
        ".TP\n0\ndone", ".TP\n1\nthe action failed (the message says why)",
        ".TP\n2\nbad input: an argument, or a cluster.toml whose contents are wrong",
        ".TP\n130\ninterrupted; a cluster change interrupted with Ctrl+C is rolled back on "
        "both nodes first",
        ".SH SEE ALSO",
        "keepalived(8), conntrackd(8), systemctl(1), journalctl(1)",
    ]
    return "\n".join(lines) + "\n"


# --- bash completion -----------------------------------------------------------------------

def _bash_word_list(words: list[str]) -> str:
    return " ".join(sorted(set(words)))


def _values(action: argparse.Action) -> list[str]:
    """The values an option takes, where there are few: its choices, or the words of a
    metavar like ``disabled|local|remote|HOSTNAME`` (a placeholder in capitals is not one)."""
    if action.choices:
        return [str(choice) for choice in action.choices]
    metavar = action.metavar if isinstance(action.metavar, str) else ""
    return [word for word in metavar.split("|") if "|" in metavar and not word.isupper()]


def completion() -> str:
    """A bash completion script: the command words, then at each level its subcommands and
    options; after an option that takes one of a few values (or a positional with choices),
    those values."""
    words: dict[str, list[str]] = {}
    subs: dict[str, list[str]] = {}
    values: dict[str, list[str]] = {}
    for path, sub, _ in public_parsers(build_parser()):
        key = " ".join(("skutui", *path))
        subs[key] = subcommands(sub, top=not path)
        words[key] = subs[key] + ["--help"]
        for action in arguments(sub):
            if action.option_strings:
                words[key] += action.option_strings
                if action.nargs != 0:
                    values[f"{key}|{action.option_strings[0]}"] = _values(action)
                    for alias in action.option_strings[1:]:
                        values[f"{key}|{alias}"] = values[f"{key}|{action.option_strings[0]}"]
            elif action.choices:
                words[key] += [str(c) for c in action.choices]
    lines = [
        "# bash completion for skutui; generated from its argument parser.",
        "declare -A _skutui_subs=(",
        *(f'    ["{key}"]="{_bash_word_list(value)}"' for key, value in sorted(subs.items())),
        ")",
        "declare -A _skutui_words=(",
        *(f'    ["{key}"]="{_bash_word_list(value)}"' for key, value in sorted(words.items())),
        ")",
        "declare -A _skutui_values=(",
        *(f'    ["{key}"]="{_bash_word_list(value)}"' for key, value in sorted(values.items())),
        ")",
        "",
        "_skutui() {",
        "    local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]}",
        "    local path=skutui word i",
        "    for ((i = 1; i < COMP_CWORD; i++)); do",
        "        word=${COMP_WORDS[i]}",
        '        if [[ " ${_skutui_subs[$path]} " == *" $word "* ]]; then',
        '            path="$path $word"',
        "        fi",
        "    done",
        '    if [[ -n ${_skutui_values["$path|$prev"]+set} ]]; then',
        '        COMPREPLY=($(compgen -W "${_skutui_values["$path|$prev"]}" -- "$cur"))',
        "        return",
        "    fi",
        '    COMPREPLY=($(compgen -W "${_skutui_words[$path]}" -- "$cur"))',
        "}",
        "complete -F _skutui skutui",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    if argv[:1] == ["man"] and len(argv) == 2:
        sys.stdout.write(man_page(argv[1]))
        return 0
    if argv == ["completion"]:
        sys.stdout.write(completion())
        return 0
    print("usage: manual.py man VERSION | manual.py completion", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
