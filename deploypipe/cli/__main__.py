"""``python -m deploypipe.cli``: the installed ``deploypipe`` command."""

from deploypipe.cli.entry import main

main()
