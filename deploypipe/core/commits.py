"""Compare git commit ids, full or abbreviated."""

from __future__ import annotations

__all__ = ["MIN_ABBREVIATION", "same_commit"]

#: the shortest abbreviation accepted as naming the same commit as a longer id
MIN_ABBREVIATION = 7


def same_commit(a: object, b: object) -> bool:
    """Whether two commit ids name the same commit: equal, or one abbreviates the other (at least 7 characters)."""
    if not isinstance(a, str) or not isinstance(b, str) or not a or not b:
        return False
    a, b = a.lower(), b.lower()
    if a == b:
        return True
    shorter, longer = sorted((a, b), key=len)
    return len(shorter) >= MIN_ABBREVIATION and longer.startswith(shorter)
