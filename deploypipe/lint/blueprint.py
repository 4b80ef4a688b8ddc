"""Lint a Render Blueprint (render.yaml) for the start-up patterns that turned the seed incidents into outages.

Rules (id, severity, what it catches):

    or-true                     error    ``|| true`` / ``|| :`` / ``|| exit 0`` in a build, pre-deploy or start
                                         command: the failure is hidden and the next step runs on a broken state
    migrate-resolve             error    ``migrate resolve`` in a command: migration state rewritten on every deploy,
                                         unverified (seed 000's ``--rolled-back`` re-ran a half-applied migration)
    migration-in-start-command  error    ``prisma migrate``, ``migrate deploy``, ``alembic upgrade``, ``upgrade
                                         head``, ... in startCommand, also inside a script it runs (seed 002's
                                         ``bash ./prestart.sh``): every start and restart migrates, a failure is a
                                         crash loop instead of a cancelled deploy
    long-start-chain            warning  more than 2 commands chained with ``&&``/``;`` in startCommand
    missing-health-check        warning  a web service without ``healthCheckPath`` (Render then only checks the port)
    auto-deploy-on              error    ``autoDeploy`` true/absent or ``autoDeployTrigger`` not ``off`` on a service
                                         the pipeline deploys: a push would deploy without backup or migration

A file that is not YAML or not a Blueprint raises :class:`SpecError` (``file:line: what; expected``).
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any, Iterator

from deploypipe.core.findings import Finding, Severity
from deploypipe.core.yamlio import LoadedYaml, load_yaml
from deploypipe.errors import SpecError

__all__ = ["RULES", "Finding", "lint_blueprint", "service_names", "split_commands"]

SERVICE_TYPES = ("web", "pserv", "worker", "cron", "keyvalue", "redis")
COMMAND_FIELDS = ("buildCommand", "preDeployCommand", "startCommand", "dockerCommand")
START_FIELDS = ("startCommand", "dockerCommand")

_MIGRATE_STAGE = ("run migrations in the pipeline's db.migrate stage (after db.backup and db.dry_run) or in "
                  "preDeployCommand, which fails the deploy cleanly while the previous release keeps serving")

#: rule id -> (severity, the safer alternative)
RULES: dict[str, tuple[Severity, str]] = {
    "or-true": ("error", "let the command fail: a failing build, pre-deploy or start command fails the deploy and "
                         "the previous release keeps serving; fix the cause instead of hiding it"),
    "migrate-resolve": ("error", "resolve a failed migration once, deliberately, after checking the schema (the "
                                 "db.migration_status stage with resolve: true verifies the objects first), never "
                                 "on every deploy"),
    "migration-in-start-command": ("error", _MIGRATE_STAGE),
    "long-start-chain": ("warning", "make startCommand only start the app; move setup into buildCommand, "
                                    "preDeployCommand or pipeline stages"),
    "missing-health-check": ("warning", "set healthCheckPath (e.g. /health checking the database) so Render keeps "
                                        "the old release serving until the new one is healthy"),
    "auto-deploy-on": ("error", "set autoDeployTrigger: 'off' (or autoDeploy: false) so only the pipeline deploys; "
                                "an API rollback does not turn auto-deploy off"),
}

_OR_TRUE = (("true",), (":",), ("/bin/true",), ("exit", "0"), ("echo",))
_RESOLVE = re.compile(r"\bmigrate\s+resolve\b", re.I)
_MIGRATIONS = [re.compile(p, re.I) for p in (
    r"\bprisma\s+migrate\b", r"\bmigrate\s+deploy\b", r"\bprisma\s+db\s+push\b", r"\balembic\b[^\n;&|]*\bupgrade\b",
    r"\bupgrade\s+head\b", r"\bflask\s+db\s+upgrade\b", r"\bmanage\.py\s+migrate\b", r"\bdb:migrate\b",
    r"\bknex\s+migrate:latest\b", r"\bmigration:run\b", r"\bdrizzle-kit\s+(?:migrate|push)\b",
)]
_SCRIPT_MAX_BYTES = 256_000
_WHEN = {"buildCommand": "build", "preDeployCommand": "deploy", "startCommand": "start and restart",
         "dockerCommand": "start and restart"}


def _tokens(command: str) -> list[str]:
    """Shell tokens with ``&&``/``||``/``;``/``|`` as tokens; a newline not ending in an operator separates commands."""
    text = re.sub(r"\\\n", " ", command)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    joined = ""
    for line in lines:
        if joined and not re.search(r"(&&|\|\||\||;)\s*$", joined):
            joined += " ;"
        joined += " " + line
    lexer = shlex.shlex(joined, posix=True, punctuation_chars=";&|")
    lexer.whitespace_split = True
    lexer.commenters = ""
    try:
        return list(lexer)
    except ValueError:  # unbalanced quotes: fall back to a plain split around operators
        return re.findall(r"&&|\|\||[;|]|[^\s;&|]+", joined)


def split_commands(command: str) -> list[list[str]]:
    """The commands of a chain joined by ``&&`` or ``;`` (``a || true`` stays one command)."""
    commands: list[list[str]] = [[]]
    for token in _tokens(command):
        if token in ("&&", ";", ";;"):
            commands.append([])
        else:
            commands[-1].append(token)
    return [c for c in commands if c]


def _or_true(tokens: list[str]) -> str | None:
    for i, token in enumerate(tokens):
        if token == "||":
            rest = tokens[i + 1:]
            if any(tuple(rest[:len(p)]) == p for p in _OR_TRUE):
                return " ".join(tokens[: i + 1 + (2 if rest[:1] == ["exit"] else 1)])
    return None


def _migration(text: str) -> str | None:
    if _RESOLVE.search(text):
        return None
    for pattern in _MIGRATIONS:
        match = pattern.search(text)
        if match:
            return match.group(0)
    return None


def _script(tokens: list[str], base_dirs: list[Path]) -> Path | None:
    """The script file a command runs (``bash ./prestart.sh``, ``./start.sh``), if it exists."""
    candidates = tokens[1:2] if tokens[0] in ("bash", "sh", "source", ".") else tokens[:1]
    for name in candidates:
        if name.endswith(".sh") or name.startswith("./"):
            for base in base_dirs:
                path = base / name
                if path.is_file() and path.stat().st_size <= _SCRIPT_MAX_BYTES:
                    return path
    return None


def _script_migration(path: Path) -> tuple[str, int] | None:
    for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        code = line.split("#", 1)[0] if not line.lstrip().startswith("#") else ""
        found = _migration(code)
        if found:
            return found, number
    return None


class _Linter:
    def __init__(self, loaded: LoadedYaml, source_lines: list[str], deployed: set[str] | None):
        self.loaded = loaded
        self.source_lines = source_lines
        self.deployed = deployed
        self.findings: list[Finding] = []
        self.root = Path(loaded.source).parent

    def add(self, rule: str, service: str, message: str, path: tuple[Any, ...], field: str = "",
            snippet: str | None = None) -> None:
        severity, alternative = RULES[rule]
        line, col = self._position(path, snippet)
        self.findings.append(Finding(rule, severity, message, remedy=alternative, subject=f"service {service}",
                                     field=field, path=self.loaded.source, line=line, col=col))

    def _position(self, path: tuple[Any, ...], snippet: str | None) -> tuple[int | None, int | None]:
        """(line, column) of ``path``; inside a block scalar, of the text ``snippet`` when it can tell."""
        line = self.loaded.line_of(path)
        column = self.loaded.column_of(path)
        if line is None or not snippet or not snippet.split():
            return line, column
        pattern = re.compile(r"\s+".join(map(re.escape, snippet.split())))
        for index in range(line - 1, min(len(self.source_lines), line + 200)):
            if index > line - 1 and self._ends_block(index, line - 1):
                break
            match = pattern.search(self.source_lines[index])
            if match:
                return index + 1, match.start() + 1
        return line, column

    def _ends_block(self, index: int, key_index: int) -> bool:
        text = self.source_lines[index]
        key_indent = len(self.source_lines[key_index]) - len(self.source_lines[key_index].lstrip())
        return bool(text.strip()) and len(text) - len(text.lstrip()) <= key_indent

    def service(self, service: dict[str, Any], path: tuple[Any, ...]) -> None:
        name = str(service["name"])
        base_dirs = [self.root / str(service.get("rootDir") or "."), self.root]
        for field in COMMAND_FIELDS:
            command = service.get(field)
            if not isinstance(command, str) or not command.strip():
                continue
            where = path + (field,)
            for tokens in split_commands(command):
                text = " ".join(tokens)
                hidden = _or_true(tokens)
                if hidden:
                    self.add("or-true", name, f"`{hidden}` hides a failure and the next step runs anyway", where, field,
                             hidden)
                if _RESOLVE.search(text):
                    self.add("migrate-resolve", name, f"`{text}` rewrites migration state on every "
                             f"{_WHEN[field]} without checking the schema", where, field, text)
                if field not in START_FIELDS:
                    continue
                found = _migration(text)
                if found:
                    self.add("migration-in-start-command", name, f"`{text}` migrates on every start and restart; a "
                             "failure becomes a crash loop (502) instead of a cancelled deploy", where, field, text)
                    continue
                script = _script(tokens, base_dirs)
                hit = _script_migration(script) if script else None
                if script and hit:
                    self.add("migration-in-start-command", name, f"`{text}` runs {script.name}, which migrates "
                             f"(`{hit[0]}` at {script.name}:{hit[1]}) on every start and restart; a failure becomes "
                             "a crash loop (502) instead of a cancelled deploy", where, field, text)
            if field in START_FIELDS:
                chain = split_commands(command)
                if len(chain) > 2:
                    self.add("long-start-chain", name, f"{len(chain)} chained commands "
                             f"({' && '.join(' '.join(c[:3]) for c in chain)}); the app starts only if every step "
                             "succeeds "
                             "on every start and restart", where, field)
        if service.get("type") == "web" and service.get("runtime") != "static" and not service.get("healthCheckPath"):
            self.add("missing-health-check", name, "no healthCheckPath: Render only checks that the port is open, "
                     "so a release that answers 500 goes live", path)
        if self.deployed is None or name in self.deployed:
            self._auto_deploy(service, name, path)

    def _auto_deploy(self, service: dict[str, Any], name: str, path: tuple[Any, ...]) -> None:
        if service.get("type") in ("keyvalue", "redis"):
            return
        if "autoDeployTrigger" in service:
            trigger = service["autoDeployTrigger"]
            if trigger is not False and str(trigger).lower() != "off":  # an unquoted `off` is YAML 1.1's False
                self.add("auto-deploy-on", name, f"autoDeployTrigger is {service['autoDeployTrigger']!r}: a push "
                         "deploys without the pipeline's backup, migration and health checks",
                         path + ("autoDeployTrigger",), "autoDeployTrigger")
        elif service.get("autoDeploy", True) not in (False, "no", "false"):
            field = "autoDeploy" if "autoDeploy" in service else ""
            state = "is true" if field else "is not set (Render's default is to deploy every commit)"
            self.add("auto-deploy-on", name, f"autoDeploy {state}: a push deploys without the pipeline's backup, "
                     "migration and health checks", path + ((field,) if field else ()), field)


def _services(loaded: LoadedYaml) -> Iterator[tuple[dict[str, Any], tuple[Any, ...]]]:
    """Every service mapping with its key path, top level and under projects[].environments[]."""
    data = loaded.data
    lists: list[tuple[Any, tuple[Any, ...]]] = [(data.get("services"), ("services",))]
    projects = data.get("projects")
    for p, project in enumerate(projects if isinstance(projects, list) else []):
        environments = project.get("environments") if isinstance(project, dict) else None
        for e, environment in enumerate(environments if isinstance(environments, list) else []):
            if isinstance(environment, dict):
                lists.append((environment.get("services"), ("projects", p, "environments", e, "services")))
    for services, path in lists:
        if services is None:
            continue
        if not isinstance(services, list):
            raise SpecError(f"{'.'.join(map(str, path))} is a {type(services).__name__}; expected a list of services",
                            where=loaded.where(path))
        for i, service in enumerate(services):
            where = loaded.where(path + (i,))
            if not isinstance(service, dict):
                raise SpecError(f"{'.'.join(map(str, path))}[{i}] is a {type(service).__name__}; expected a mapping "
                                "with type and name", where=where)
            if not isinstance(service.get("name"), str) or not service["name"]:
                raise SpecError(f"{'.'.join(map(str, path))}[{i}] has no name; expected name: <service name>",
                                where=where)
            if service.get("type") not in SERVICE_TYPES:
                raise SpecError(f"service {service['name']}: type is {service.get('type')!r}; expected one of "
                                f"{', '.join(SERVICE_TYPES)}", where=loaded.where(path + (i, "type")))
            yield service, path + (i,)


def _load(path: Path) -> LoadedYaml:
    try:
        loaded = load_yaml(path)
    except SpecError as exc:
        raise SpecError(f"{exc.message}; expected a Render Blueprint (YAML)", where=exc.where) from None
    kinds = {"services", "databases", "envVarGroups", "projects"}
    if not isinstance(loaded.data, dict) or not (kinds & set(loaded.data)):
        got = "empty" if loaded.data is None else (
            f"a {type(loaded.data).__name__}" if not isinstance(loaded.data, dict) else
            f"a mapping with {', '.join(map(str, loaded.data)) or 'no keys'}")
        raise SpecError(f"not a Render Blueprint: the file is {got}; expected a mapping with services and/or "
                        "databases (envVarGroups, projects)", where=loaded.where(()) if loaded.data else str(path))
    return loaded


def service_names(path: Path) -> set[str]:
    """The names of every service the Blueprint at ``path`` describes (SpecError if it is not a Blueprint)."""
    loaded = _load(path)
    return {str(service["name"]) for service, _ in _services(loaded)}


def lint_blueprint(path: Path, *, deployed_services: set[str] | None = None) -> list[Finding]:
    """Findings for the Blueprint at ``path``, in file order; ``deployed_services`` limits auto-deploy-on
    to the services the pipeline deploys (None: every service)."""
    loaded = _load(path)
    linter = _Linter(loaded, Path(path).read_text(encoding="utf-8").splitlines(), deployed_services)
    for service, where in _services(loaded):
        linter.service(service, where)
    return sorted(linter.findings, key=lambda f: (f.line or 0, f.rule))
