"""Entry point: ``python -m skutui`` and the ``skutui`` console script.

The composition root: it hands the command line the way to open the console, so neither
front end imports the other, and passes ``skutui lab …`` to the lab, which is a package of
its own (tests and demos) that the operator's ``skutui --help`` does not list.
"""

from __future__ import annotations

import sys

LAB_COMMAND = "lab"


def _open_console(ascii_profile: bool) -> int:
    # Only the console pays for Textual; only a command pays for its own group.
    from skutui.domain.paths import Paths
    from skutui.ui.launch import launch_console

    return launch_console(ascii_profile=ascii_profile, paths=Paths.from_env())


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == [LAB_COMMAND]:
        try:
            # The lab is not part of an appliance's installation; it is looked for only here.
            from skutui_lab.cli import main as lab_main
        except ModuleNotFoundError as exc:
            if exc.name != "skutui_lab":
                raise
            print("skutui: the two-node lab is not part of this installation (the appliance "
                  "package leaves it out); it comes with skutui's source: ./run console",
                  file=sys.stderr)
            return 1
        return lab_main(args)
    # Kept out of `skutui lab`, which has a parser of its own.
    from skutui.cli.main import run

    return run(args, open_console=_open_console)


if __name__ == "__main__":
    sys.exit(main())
