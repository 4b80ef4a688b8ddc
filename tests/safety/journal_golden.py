"""Turn a run's journal into a stable form for exact comparison: ids, URLs, times and durations are replaced."""

from __future__ import annotations

import re
from typing import Any

_VOLATILE = ("seq", "ts", "run_id", "elapsed_ms", "duration_s", "path", "digest")
_TIMES = {"created_at", "live_at", "requested_at"}  # timestamps: whether present, not when


def normalized(events: list[dict[str, Any]], base_url: str) -> list[dict[str, Any]]:
    names: dict[str, str] = {}

    def name_of(match: re.Match[str]) -> str:
        value = match.group(0)
        prefix = value.split("-")[0].upper()
        names.setdefault(value, f"{prefix}{sum(1 for v in names if v.startswith(value.split('-')[0] + '-')) + 1}")
        return names[value]

    def clean(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: "TIME" if k in _TIMES and v else clean(v) for k, v in value.items() if k not in _VOLATILE}
        if isinstance(value, list):
            return [clean(v) for v in value]
        if isinstance(value, str):
            value = value.replace(base_url, "URL")
            value = re.sub(r"\b(dep|srv)-[a-z0-9]{20}\b", name_of, value)
            return re.sub(r"in \d+ ms", "in N ms", value)
        return value

    return [clean(e) for e in events]
