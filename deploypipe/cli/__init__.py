"""The command line: the installed ``deploypipe`` command (argparse) and this repository's invoke tasks.

    entry.py       ``deploypipe``'s main: parse, then run the command inside the boundary
    parser.py      the one parser: every command, its options with defaults, an example each
    suggest.py     argparse's usage errors as one line with the closest valid spelling (exit 2)
    completion.py  bash and zsh completion scripts generated from the parser
    actions.py     one function per command (options -> Invocation -> deploypipe.commands); both front ends call it
    boundary.py    the error boundary: DeployPipeError -> one line and its exit code; SIGTERM/SIGINT -> Interrupted
    tasks.py       the invoke tasks (``invoke deploy``), thin calls into actions
"""

from deploypipe.cli.entry import main

__all__ = ["main"]
