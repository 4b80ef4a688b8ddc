"""argparse with the house's usage errors: one line on stderr, exit 2, and the closest valid spelling when there is one.

    deploypipe: unknown command 'depoy'; did you mean 'deploy'? (`deploypipe --help` lists the commands)
    deploypipe deploy: unknown option '--bogus'; did you mean '--force'? (`deploypipe deploy --help` lists them)

argparse already exits 2 on a usage error; this adds the suggestion (difflib,
as click does) and keeps the message to one line.
"""

from __future__ import annotations

import argparse
import difflib
from typing import Any, Iterable, NoReturn, Sequence

__all__ = ["COMMAND_DESTS", "Formatter", "Parser", "did_you_mean"]

COMMAND_DESTS = ("command", "topic")  # positionals whose choices are command names


def did_you_mean(word: str, candidates: Iterable[str]) -> str:
    """``"; did you mean 'deploy'?"`` for the closest candidate, or ``""`` when none is close."""
    matches = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return f"; did you mean '{matches[0]}'?" if matches else ""


class Formatter(argparse.RawDescriptionHelpFormatter):
    """Descriptions and examples as written; each option's default after its help when it has one worth showing."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if default not in (None, False, [], (), argparse.SUPPRESS) and "default" not in text:
            text += " (default: %(default)s)"
        return text


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one line with a suggestion, and whose extra arguments are errors.

    ``intermixed=True``: positionals and options in any order (``lint a.yaml --format json b.sql``).
    """

    def __init__(self, *args: Any, intermixed: bool = False, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", Formatter)
        kwargs.setdefault("allow_abbrev", False)  # `--pipe` is a mistake, not `--pipeline`
        super().__init__(*args, **kwargs)
        self.commands: dict[str, Parser] = {}  # a command line's own parser for each of its commands, by name
        self._intermixed = intermixed
        self._mixing = False

    def parse_known_args(self, args: Sequence[str] | None = None,  # type: ignore[override]
                         namespace: argparse.Namespace | None = None) -> tuple[argparse.Namespace, list[str]]:
        if not self._intermixed or self._mixing:  # parse_known_intermixed_args calls back here for its two passes
            return super().parse_known_args(args, namespace)
        self._mixing = True
        try:
            return self.parse_known_intermixed_args(args, namespace)
        finally:
            self._mixing = False

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (`{self.prog} --help` lists what it takes)\n")

    def _check_value(self, action: argparse.Action, value: Any) -> None:
        # argparse's one check of `choices` (commands and options alike): the message names the closest choice
        if action.choices is None or value in action.choices:
            return
        choices = [str(choice) for choice in action.choices]
        if action.dest in COMMAND_DESTS:
            raise argparse.ArgumentError(None, f"unknown command '{value}'{did_you_mean(str(value), choices)}")
        raise argparse.ArgumentError(action, f"invalid choice '{value}' (expected one of: {', '.join(choices)})"
                                             f"{did_you_mean(str(value), choices)}")

    def reject(self, extras: Sequence[str]) -> NoReturn:
        """Arguments no option or positional took: the first one, with the closest option when it is one."""
        token = extras[0]
        if not token.startswith("-") or token == "-":
            self.error(f"unexpected argument '{token}'")
        name = token.partition("=")[0]
        options = [o for action in self._actions for o in action.option_strings if o.startswith("--")]
        self.error(f"unknown option '{name}'{did_you_mean(name, options)}")
