"""A finding of a database check: rule id, severity, what it means and the safe remedy."""

from __future__ import annotations

import fnmatch
from dataclasses import asdict, dataclass
from typing import Any, Iterable, Sequence

__all__ = ["Finding", "apply_ignores", "summarize"]

SEVERITIES = ("error", "warning", "info")


@dataclass(frozen=True)
class Finding:
    rule: str
    severity: str  # error blocks; warning and info are reported
    message: str
    remedy: str = ""
    migration: str = ""
    location: str = ""
    ignored_because: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v}

    def line(self) -> str:
        where = f"{self.location or self.migration}: " if (self.location or self.migration) else ""
        remedy = f" — {self.remedy}" if self.remedy else ""
        return f"[{self.severity}] {self.rule}: {where}{self.message}{remedy}"


def apply_ignores(findings: Iterable[Finding], ignores: Sequence[Any]) -> list[Finding]:
    """Downgrade findings the pipeline ignores (rule + migration glob + reason) to info, keeping the reason."""
    out = []
    for finding in findings:
        rule = next((i for i in ignores if i.rule in (finding.rule, "*")
                     and fnmatch.fnmatchcase(finding.migration or "", i.migration)), None)
        if rule is not None and finding.severity != "info":
            finding = Finding(finding.rule, "info", finding.message, finding.remedy, finding.migration,
                              finding.location, ignored_because=rule.reason)
        out.append(finding)
    return out


def summarize(findings: Sequence[Finding]) -> str:
    counts = {s: sum(1 for f in findings if f.severity == s) for s in SEVERITIES}
    return ", ".join(f"{n} {s}{'s' if n != 1 else ''}" for s, n in counts.items() if n) or "no findings"
