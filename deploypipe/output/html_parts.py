"""Small escaped building blocks of the HTML report: escaping, CSS class names, durations, tables and sections.

Everything that puts a value into the page goes through :func:`esc`; helpers that take HTML (``table`` rows,
``section`` bodies) say so, and their callers escape.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from html import escape
from typing import Any

__all__ = ["esc", "fmt_seconds", "mono", "section", "slug", "swatch", "table"]


def esc(value: object) -> str:
    """Text or attribute value, HTML-escaped (quotes included)."""
    return escape("" if value is None else str(value), quote=True)


def slug(value: object) -> str:
    """A CSS class fragment from a status or phase: lowercase letters, digits, ``_`` and ``-`` only."""
    return re.sub(r"[^a-z0-9_-]", "", str(value).lower())[:40] or "other"


def fmt_seconds(value: float) -> str:
    """``4.5`` -> ``4.5 s``; ``95`` -> ``1m 35s``; ``4000`` -> ``1h 06m``."""
    if abs(value) < 60:
        return f"{value:.1f} s" if abs(value) < 10 and value != int(value) else f"{value:.0f} s"
    minutes, secs = divmod(int(round(value)), 60)
    return f"{minutes}m {secs:02d}s" if minutes < 60 else f"{minutes // 60}h {minutes % 60:02d}m"


def section(anchor: str, title: str, body: str) -> str:
    """``<section id=anchor>`` with its heading; ``body`` is HTML."""
    return f'<section id="{esc(anchor)}"><h2>{esc(title)}</h2>{body}</section>'


def mono(value: Any) -> str:
    return f'<span class="mono">{esc(value)}</span>'


def swatch(cls: str, label: str) -> str:
    return f'<span><i class="swatch {esc(cls)}"></i>{esc(label)}</span>'


def table(head: Sequence[str], rows: Sequence[Sequence[str]], cls: str) -> str:
    """A table; ``rows`` cells are HTML already escaped by the caller."""
    return (f'<table class="{esc(cls)}"><thead><tr>{"".join(f"<th>{esc(h)}</th>" for h in head)}</tr></thead>'
            f'<tbody>{"".join("<tr>" + "".join(row) + "</tr>" for row in rows)}</tbody></table>')
