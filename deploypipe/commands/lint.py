"""``lint``: lint render.yaml files, migrations and pipelines like a linter: one finding per line, exit 0/1/2.

Each PATH, by name and content: a YAML file with ``version:`` and ``stages:`` is a pipeline (a mistake is one
``pipeline-invalid`` finding at its file:line; else its ``lint.blueprint`` Blueprint and ``db.lint`` migrations are
linted offline: rules needing the production server, such as extension versions, are skipped with an info finding
saying so); another YAML file (``services:``, or named render*.yaml) is a Render Blueprint; ``.sql`` a migration
(deploypipe's rules, plus squawk when installed, and its phase as an info line: ``expand`` or ``contract: ...``,
deploypipe.db.phases); ``.py`` an Alembic revision (its phase is shown where a pipeline's ``db.lint`` names its
alembic.ini); a directory holds migrations (every ``*.sql``, Prisma's ``*/migration.sql`` and ``versions/*.py``).
No PATH: the pipeline. Lint writes nothing: no run
directory, no journal, no lock, no database connection. Exit 0 when no finding reaches ``--fail-on`` (error by
default), 1 when one does, 2 for usage errors and unreadable input.

Ignore comments, in the linted file (``#`` in YAML and Python, ``--`` in SQL)::

    # deploypipe: ignore[or-true] the build tolerates a missing cache on purpose
    -- deploypipe: ignore[squawk:adding-required-field,not-null-without-default] the table is empty everywhere
    # deploypipe: ignore-file[missing-health-check] workers only, nothing serves HTTP

``ignore[...]`` silences the listed rule ids (``*``: all) on its line and the next; for a finding inside a multi-line
YAML value (``startCommand: |``) put it on the key's line or the line above the key. ``ignore-file[...]`` anywhere
silences them in the whole file. The reason is required: an ignore without one silences nothing and is a warning
(``ignore-without-reason``). Ignored findings stay in the output as info with the reason and never fail the run.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from deploypipe.commands.invocation import Invocation
from deploypipe.commands.lint_migrations import lint_revision, lint_sql_file, stage_migrations
from deploypipe.core.findings import SEVERITIES, Finding, apply_ignores, at_least
from deploypipe.core.yamlio import load_yaml
from deploypipe.errors import SpecError, UsageError
from deploypipe.spec.interpolate import VARIABLE_PATTERN, Interpolator

__all__ = ["FORMATS", "LintResult", "lint_command", "lint_paths", "offline_env"]

FORMATS = ("text", "json", "github", "sarif")
_BLUEPRINT_KEYS = {"services", "databases", "envVarGroups", "projects"}
_SKIP_DIRS = {".git", ".venv", "node_modules", "__pycache__", ".deploypipe"}
_IGNORE = re.compile(r"(?:#|--)\s*deploypipe:\s*ignore(?P<file>-file)?\[(?P<rules>[^\]]*)\](?P<reason>[^\n]*)")
_LOCATED = re.compile(r"(?P<file>.+):(?P<line>\d+)")


@dataclass
class LintResult:
    """Every finding (absolute paths) and every file that was linted."""

    base: Path = field(default_factory=Path.cwd)
    findings: list[Finding] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)
    texts: dict[str, str] = field(default_factory=dict, repr=False)

    def name(self, path: Path) -> str:
        """``path`` as the user would write it: relative to the base directory when inside it."""
        try:
            return str(path.resolve().relative_to(self.base.resolve()))
        except ValueError:
            return str(path)

    def read(self, path: Path) -> str:
        """The file's text (remembered for ignore comments); UsageError (exit 2) when it cannot be read."""
        key = str(path)
        if key not in self.texts:
            try:
                self.texts[key] = path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                raise UsageError(f"cannot read it: {exc.strerror if isinstance(exc, OSError) else exc}",
                                 where=self.name(path), hint="pass a readable UTF-8 file or directory") from None
            self.files.append(path)
        return self.texts[key]


def offline_env(path: Path, env: Mapping[str, str]) -> dict[str, str]:
    """``env`` plus placeholders for the secret variables it lacks: lint and status need no database URL."""
    try:
        text = path.read_text(encoding="utf-8")
        raw = load_yaml(path).data
    except (OSError, UnicodeDecodeError, SpecError):
        return dict(env)
    variables = raw.get("variables") if isinstance(raw, dict) else None
    declared = {str(k): (v.get("default"), bool(v.get("secret"))) for k, v in (variables or {}).items()
                if isinstance(v, dict)}
    interp = Interpolator(env=env, declared=declared)
    names = {m["name"] for m in VARIABLE_PATTERN.finditer(text)
             if m["name"] and m["default"] is None and declared.get(m["name"], (None,))[0] is None}
    return {**{n: f"unset-secret-{n.lower()}" for n in names if n not in env and interp.is_secret(n)}, **env}


def _spec_finding(rule: str, exc: SpecError, path: Path) -> Finding:
    match = _LOCATED.fullmatch(exc.where or "")
    return Finding(rule, "error", exc.detail(), path=str(path), line=int(match["line"]) if match else None)


def _blueprint(path: Path, result: LintResult, deployed: set[str] | None = None) -> list[Finding]:
    from deploypipe.lint.blueprint import lint_blueprint

    result.read(path)
    try:
        return lint_blueprint(path, deployed_services=deployed)
    except SpecError as exc:
        return [_spec_finding("blueprint-invalid", exc, path)]


def _migrations_dir(directory: Path, result: LintResult) -> list[Path]:
    files = [p for p in sorted(directory.rglob("*"))
             if p.is_file() and not _SKIP_DIRS & set(p.relative_to(directory).parts[:-1])
             and (p.suffix == ".sql" or (p.suffix == ".py" and p.parent.name == "versions"))]
    if not files:
        raise UsageError("no migrations in this directory; expected *.sql, */migration.sql (Prisma) or "
                         "versions/*.py (Alembic)", where=result.name(directory))
    return files


def _pipeline(path: Path, result: LintResult, base: Path, env: Mapping[str, str]) -> list[Finding]:
    from deploypipe.engine.loader import load_pipeline

    result.read(path)
    try:
        loaded = load_pipeline(path, offline_env(path, env))
    except SpecError as exc:
        return [_spec_finding("pipeline-invalid", exc, path)]
    findings: list[Finding] = []
    names = {t.name for t in loaded.spec.targets.services.values() if t.name} or None
    for index, stage in enumerate(loaded.spec.stages):
        params: Any = loaded.params[stage.id]
        where = _LOCATED.fullmatch(loaded.where("stages", index))
        line = int(where["line"]) if where else None
        if stage.type == "lint.blueprint":
            blueprint = base / params.path
            if blueprint.is_file():
                findings += _blueprint(blueprint, result, set(params.services) if params.services else names)
            else:
                findings.append(Finding("blueprint-missing", "error", f"stage {stage.id}: {params.path} not found",
                                        path=str(path), line=line))
        elif stage.type == "db.lint":
            findings += apply_ignores(stage_migrations(stage.id, params, base, result.read, str(path), line),
                                      params.ignore)
    return findings


def _kind(path: Path, result: LintResult) -> str:
    if path.is_dir():
        return "directory"
    if path.suffix in (".sql", ".py"):
        return "migration"
    if path.suffix not in (".yaml", ".yml"):
        raise UsageError("cannot tell what to lint; expected a render.yaml, a pipeline (YAML with version: and "
                         "stages:), a .sql migration, an Alembic revision (.py) or a directory of migrations",
                         where=result.name(path))
    try:
        data = load_yaml(path).data
    except SpecError:  # reported as a finding by the loader that fits the name
        data = None
    keys = set(data) if isinstance(data, dict) else set()
    blueprint = not {"version", "stages"} <= keys and (keys & _BLUEPRINT_KEYS or path.name.startswith("render"))
    return "blueprint" if blueprint else "pipeline"


def lint_paths(paths: list[Path], *, base: Path, env: Mapping[str, str]) -> LintResult:
    """Lint each path (kind told by name and content), then apply the files' ignore comments."""
    result = LintResult(base)
    for path in paths:
        if not path.exists():
            raise UsageError("no such file or directory", where=result.name(path))
        kind = _kind(path, result)
        if kind in ("directory", "migration"):
            for file in _migrations_dir(path, result) if kind == "directory" else [path]:
                text = result.read(file)
                result.findings += lint_revision(file) if file.suffix == ".py" else lint_sql_file(file, text)
        elif kind == "blueprint":
            result.findings += _blueprint(path, result)
        else:
            result.findings += _pipeline(path, result, base, env)
    order = {str(p): i for i, p in enumerate(result.files)}
    result.findings = sorted(_apply_comments(result.findings, result.texts),
                             key=lambda f: (order.get(f.path, len(order)), f.line or 0, f.col or 0))
    return result


@dataclass(frozen=True)
class _Ignore:
    """An ignore comment, shaped like a pipeline's ``db.lint`` ignore rule (for ``apply_ignores``)."""

    rule: str
    reason: str
    line: int | None  # None: the whole file
    migration: str = "*"


def _comments(text: str, path: str) -> tuple[list[_Ignore], list[Finding]]:
    """The file's ignore comments, and a warning for each one that lacks rule ids or a reason."""
    ignores: list[_Ignore] = []
    problems = []
    for number, line in enumerate(text.splitlines(), 1):
        for match in _IGNORE.finditer(line):
            rules = [r.strip() for r in match["rules"].split(",") if r.strip()]
            reason = match["reason"].strip().removesuffix("*/").strip()
            if not (rules and reason):
                problems.append(Finding("ignore-without-reason", "warning", "this ignore comment silences nothing: "
                                        "it needs rule ids and a reason", "write `deploypipe: ignore[rule-id] why "
                                        "it is safe here`", path=path, line=number, col=match.start() + 1))
            else:
                ignores += [_Ignore(rule, reason, None if match["file"] else number) for rule in rules]
    return ignores, problems


def _near(finding: Finding, text: str) -> set[int | None]:
    """Lines whose ignore comments apply: the finding's and the one above; in YAML its key's and the one above."""
    lines: set[int | None] = {None}
    if finding.line is not None:
        lines |= {finding.line, finding.line - 1}
        source = text.splitlines()
        key = re.compile(rf"^\s*(?:-\s+)?{re.escape(finding.field)}\s*:")
        if finding.field and finding.path.endswith((".yaml", ".yml")):
            above = next((n for n in range(min(finding.line, len(source)), max(0, finding.line - 200), -1)
                          if key.match(source[n - 1])), None)
            lines |= {above, above - 1} if above else set()
    return lines


def _apply_comments(findings: list[Finding], texts: Mapping[str, str]) -> list[Finding]:
    parsed = {path: _comments(text, path) for path, text in texts.items() if "deploypipe:" in text}
    out: list[Finding] = []
    for finding in findings:
        ignores = parsed.get(finding.path, ([], []))[0]
        near = _near(finding, texts[finding.path]) if ignores else set()
        out += apply_ignores([finding], [i for i in ignores if i.line in near])
    return out + [p for _, problems in parsed.values() for p in problems]


def lint_command(inv: Invocation, paths: list[str], *, fmt: str | None = None, fail_on: str | None = None) -> int:
    """Lint ``paths`` (default: the pipeline), print the findings in ``fmt`` and return the exit code."""
    from deploypipe.output.lint_formats import render

    fmt = fmt or ("github" if inv.env.get("GITHUB_ACTIONS") == "true" else "text")
    if fmt not in FORMATS:
        raise UsageError(f"--format {fmt}: expected one of {', '.join(FORMATS)}", where="lint")
    level = fail_on or "error"
    if level not in SEVERITIES:
        raise UsageError(f"--fail-on {level}: expected one of {', '.join(SEVERITIES)}", where="lint")
    targets = [inv.project_dir / p for p in paths] if paths else [inv.pipeline_path()]
    result = lint_paths(targets, base=inv.project_dir, env=inv.env)
    inv.out.write(render(fmt, result.findings, len(result.files), cwd=inv.project_dir))
    inv.out.flush()
    failing = next(s for s in SEVERITIES if s == level)
    return 1 if at_least([f for f in result.findings if not f.ignored_because], failing) else 0
