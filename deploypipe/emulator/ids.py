"""Render-shaped ids (``srv-`` + 20 lowercase alphanumerics, ...) and ISO timestamps."""

from __future__ import annotations

import secrets
import string
from datetime import UTC, datetime

__all__ = ["iso", "new_id"]

_ALPHABET = string.ascii_lowercase + string.digits


def new_id(prefix: str) -> str:
    return f"{prefix}-" + "".join(secrets.choice(_ALPHABET) for _ in range(20))


def iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")
