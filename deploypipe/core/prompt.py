"""Ask the operator a yes/no question on the terminal; without a terminal the answer is no."""

from __future__ import annotations

import sys
from typing import TextIO

__all__ = ["ask_yes_no"]


def ask_yes_no(question: str, *, interactive: bool, out: TextIO | None = None, answers: TextIO | None = None) -> bool:
    """True only when someone at a terminal answers y or yes; ``interactive=False`` answers no without asking."""
    if not interactive:
        return False
    stream = out or sys.stderr
    stream.write(f"{question} [y/N] ")
    stream.flush()
    return (answers or sys.stdin).readline().strip().lower() in ("y", "yes")
