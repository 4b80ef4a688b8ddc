"""A finding of a static check: rule id, severity, where in which file, what it means and the safer alternative.

One type serves every linter in deploypipe (the Blueprint lint, the migration
lint, the migration state checks), so the command line, the JSON report, CI
annotations and SARIF print them all the same way.
"""

from __future__ import annotations

import fnmatch
from dataclasses import asdict, dataclass, replace
from typing import Any, Iterable, Literal, Protocol, Sequence

__all__ = ["SEVERITIES", "Finding", "IgnoreLike", "Severity", "apply_ignores", "at_least", "summarize"]

Severity = Literal["error", "warning", "info"]
#: most severe first
SEVERITIES: tuple[Severity, ...] = ("error", "warning", "info")


@dataclass(frozen=True)
class Finding:
    """One problem: ``rule`` and ``severity``; ``subject`` (e.g. ``service api``, ``migration 0002_x``) and
    ``field`` say what it is about; ``path``/``line``/``col`` where (1-based, None when unknown)."""

    rule: str
    severity: Severity
    message: str
    remedy: str = ""
    subject: str = ""
    field: str = ""
    path: str = ""
    line: int | None = None
    col: int | None = None
    ignored_because: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v not in ("", None)}

    def location(self) -> str:
        """``path:line:col`` as far as known."""
        return ":".join(str(part) for part in (self.path, self.line, self.col) if part not in ("", None))

    def render(self) -> str:
        """``render.yaml:12:5: error [or-true] service api startCommand: ...; instead: ...``."""
        about = " ".join(part for part in (self.subject, self.field) if part)
        text = f"{self.severity} [{self.rule}] " + (f"{about}: " if about else "") + self.message
        if self.remedy:
            text += f"; instead: {self.remedy}"
        if self.ignored_because:
            text += f" (ignored: {self.ignored_because})"
        where = self.location()
        return f"{where}: {text}" if where else text


class IgnoreLike(Protocol):
    """What an ignore rule offers: the rule id (``*`` for all), a glob of subjects, and why."""

    @property
    def rule(self) -> str: ...

    @property
    def migration(self) -> str: ...

    @property
    def reason(self) -> str: ...


def apply_ignores(findings: Iterable[Finding], ignores: Sequence[IgnoreLike]) -> list[Finding]:
    """Downgrade findings a pipeline ignores (rule + subject glob + reason) to info, keeping the reason."""
    out = []
    for finding in findings:
        name = finding.subject.split(" ", 1)[-1]
        rule = next((i for i in ignores if i.rule in (finding.rule, "*") and fnmatch.fnmatchcase(name, i.migration)),
                    None)
        if rule is not None and finding.severity != "info":
            finding = replace(finding, severity="info", ignored_because=rule.reason)
        out.append(finding)
    return out


def at_least(findings: Iterable[Finding], severity: Severity) -> list[Finding]:
    """The findings at ``severity`` or worse."""
    rank = SEVERITIES.index(severity)
    return [f for f in findings if SEVERITIES.index(f.severity) <= rank]


def summarize(findings: Sequence[Finding]) -> str:
    """``2 errors, 1 warning`` (or ``no findings``)."""
    counts = {s: sum(1 for f in findings if f.severity == s) for s in SEVERITIES}
    return ", ".join(f"{n} {s}{'s' if n != 1 else ''}" for s, n in counts.items() if n) or "no findings"
