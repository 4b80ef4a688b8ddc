"""The installed ``deploypipe`` command: parse the command line, then run the chosen command inside the boundary."""

from __future__ import annotations

import sys
from typing import NoReturn, Sequence

from deploypipe.cli.boundary import run_action
from deploypipe.cli.completion import completion_script
from deploypipe.cli.parser import build_parser

__all__ = ["main", "run"]


def main(argv: Sequence[str] | None = None) -> NoReturn:
    """The ``deploypipe`` script: run the command line (default: ``sys.argv``) and exit with its code."""
    raise SystemExit(run(argv))


def run(argv: Sequence[str] | None = None) -> int:
    """``deploypipe [COMMAND] [OPTIONS]``; returns the exit code (usage errors exit 2 from the parser)."""
    parser = build_parser()
    args, extras = parser.parse_known_args(list(sys.argv[1:] if argv is None else argv))
    if extras:
        args._parser.reject(extras)
    if args.command in (None, "help"):
        shown = parser.commands.get(getattr(args, "topic", None) or "", parser)
        shown.print_help()
        return 0
    if args.command == "completion":
        sys.stdout.write(completion_script(parser, args.shell))
        return 0
    options = {name: value for name, value in vars(args).items() if not name.startswith("_") and name != "command"}
    return run_action(args._action, **options)
