"""deploypipe.lint.blueprint: one Blueprint per rule, each asserting the exact finding; the repo's render.yaml is clean."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from helpers import SEED_000

from deploypipe.core.findings import Finding
from deploypipe.errors import SpecError
from deploypipe.lint.blueprint import RULES, lint_blueprint, service_names, split_commands

ROOT = Path(__file__).resolve().parents[2]

CLEAN_SERVICE = """\
  - type: web
    name: api
    runtime: python
    healthCheckPath: /health
    autoDeployTrigger: "off"
"""


def blueprint(tmp_path: Path, text: str, name: str = "render.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def finding(rule: str, severity: str, service: str, message: str, remedy: str, field: str, path: str, line: int,
            col: int) -> Finding:
    """The finding a Blueprint rule gives for ``service`` (what, how to fix it, where)."""
    return Finding(rule, severity, message, remedy=remedy, subject=f"service {service}", field=field,  # type: ignore[arg-type]
                   path=path, line=line, col=col)


def brief(findings: list[Finding]) -> list[tuple[str, str, str, int | None]]:
    return [(f.rule, f.severity, f.field, f.line) for f in findings]


def test_the_seed_000_start_command_chain_gets_every_finding_on_its_own_line(tmp_path):
    findings = lint_blueprint(blueprint(tmp_path, SEED_000))
    assert brief(findings) == [
        ("long-start-chain", "warning", "startCommand", 7),
        ("migrate-resolve", "error", "startCommand", 9),
        ("or-true", "error", "startCommand", 9),
        ("migration-in-start-command", "error", "startCommand", 10),
    ]
    path = tmp_path / "render.yaml"
    assert findings[2].render() == (
        f"{path}:9:7: error [or-true] service sentia-backend-prod startCommand: "
        "`pnpm exec prisma migrate resolve --rolled-back 20251017171256_init || true` hides a failure and the next "
        "step runs anyway; instead: " + RULES["or-true"][1])
    assert findings[1].message == ("`pnpm exec prisma migrate resolve --rolled-back 20251017171256_init || true` "
                                   "rewrites migration state on every start and restart without checking the schema")
    assert findings[3].message == ("`pnpm exec prisma migrate deploy` migrates on every start and restart; a failure "
                                   "becomes a crash loop (502) instead of a cancelled deploy")
    assert findings[3].remedy.startswith("run migrations in the pipeline's db.migrate stage")
    assert findings[0].message.startswith("4 chained commands (corepack enable && pnpm exec prisma && ")


def test_or_true_in_pre_deploy_command_is_an_error(tmp_path):
    findings = lint_blueprint(blueprint(tmp_path, CLEAN_SERVICE.join(["services:\n", ""]) +
                                        "    preDeployCommand: ./scripts/check-migrations.sh || true\n"))
    assert findings == [finding(
        "or-true", "error", "api", "`./scripts/check-migrations.sh || true` hides a failure and the next step runs "
        "anyway", RULES["or-true"][1], "preDeployCommand", str(tmp_path / "render.yaml"), 7, 23)]


@pytest.mark.parametrize("suffix", ["|| :", "|| exit 0", "||true", "|| echo 'install failed'"])
def test_every_spelling_of_ignoring_a_failure_is_caught(tmp_path, suffix):
    path = blueprint(tmp_path, "services:\n" + CLEAN_SERVICE + f'    buildCommand: "pip install -r requirements.txt {suffix}"\n')
    assert brief(lint_blueprint(path)) == [("or-true", "error", "buildCommand", 7)]


def test_or_true_inside_quotes_is_not_a_finding(tmp_path):
    path = blueprint(tmp_path, "services:\n" + CLEAN_SERVICE + """    startCommand: python -c 'print("a || true")'\n""")
    assert lint_blueprint(path) == []


def test_migrate_resolve_in_pre_deploy_command_is_an_error(tmp_path):
    path = blueprint(tmp_path, "services:\n" + CLEAN_SERVICE
                     + "    preDeployCommand: npx prisma migrate resolve --applied 20251017171256_init\n")
    [found] = lint_blueprint(path)
    assert (found.rule, found.severity, found.field, found.line) == ("migrate-resolve", "error", "preDeployCommand", 7)
    assert found.message == ("`npx prisma migrate resolve --applied 20251017171256_init` rewrites migration state on "
                             "every deploy without checking the schema")
    assert "db.migration_status stage with resolve: true" in found.remedy


def test_migrations_in_pre_deploy_command_are_the_safe_place(tmp_path):
    path = blueprint(tmp_path, "services:\n" + CLEAN_SERVICE + "    preDeployCommand: alembic upgrade head\n")
    assert lint_blueprint(path) == []


@pytest.mark.parametrize("command", [
    "alembic upgrade head && uvicorn app:app",
    "npx prisma migrate deploy && node dist/server.js",
    "python manage.py migrate && gunicorn app.wsgi",
    "bundle exec rails db:migrate && bundle exec puma",
])
def test_a_migration_in_the_start_command_is_an_error(tmp_path, command):
    path = blueprint(tmp_path, "services:\n" + CLEAN_SERVICE + f"    startCommand: {command}\n")
    findings = lint_blueprint(path)
    first = command.split(" && ")[0]
    assert findings == [finding("migration-in-start-command", "error", "api",
                                f"`{first}` migrates on every start and restart; a failure becomes a crash loop (502) "
                                "instead of a cancelled deploy", RULES["migration-in-start-command"][1],
                                "startCommand", str(path), 7, 19)]


def test_a_migration_inside_a_script_the_start_command_runs_is_found(tmp_path):
    """Seed 002: `bash ./prestart.sh && cd backend && uvicorn ...` where prestart.sh runs `alembic upgrade head`."""
    (tmp_path / "prestart.sh").write_text('#!/bin/bash\necho "Applying database migrations..."\n'
                                          "# alembic upgrade head used to be here\nalembic upgrade head\n")
    path = blueprint(tmp_path, "services:\n" + CLEAN_SERVICE
                     + "    startCommand: bash ./prestart.sh && cd backend && uvicorn app.main:app --host 0.0.0.0 --port $PORT\n")
    findings = lint_blueprint(path)
    assert brief(findings) == [("long-start-chain", "warning", "startCommand", 7),
                               ("migration-in-start-command", "error", "startCommand", 7)]
    assert findings[1].message == ("`bash ./prestart.sh` runs prestart.sh, which migrates (`alembic upgrade` at "
                                   "prestart.sh:4) on every start and restart; a failure becomes a crash loop (502) "
                                   "instead of a cancelled deploy")


def test_a_start_script_without_migrations_is_fine(tmp_path):
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "start.sh").write_text("#!/bin/sh\nexec gunicorn app:app\n")
    path = blueprint(tmp_path, "services:\n" + CLEAN_SERVICE + "    rootDir: app\n    startCommand: ./start.sh\n")
    assert lint_blueprint(path) == []


def test_three_chained_start_commands_are_a_warning_and_two_are_not(tmp_path):
    path = blueprint(tmp_path, "services:\n" + CLEAN_SERVICE + "    startCommand: cd web; npm run build:css && node server.js\n")
    [found] = lint_blueprint(path)
    assert found == finding("long-start-chain", "warning", "api",
                            "3 chained commands (cd web && npm run build:css && node server.js); the app starts only "
                            "if every step succeeds on every start and restart", RULES["long-start-chain"][1],
                            "startCommand", str(path), 7, 5)
    path.write_text(path.read_text().replace("cd web; ", ""))
    assert lint_blueprint(path) == []


def test_a_web_service_without_health_check_path_is_a_warning(tmp_path):
    path = blueprint(tmp_path, """\
        services:
          - type: web
            name: frontend
            runtime: node
            autoDeploy: false
          - type: web
            name: docs
            runtime: static
            autoDeploy: false
          - type: worker
            name: jobs
            runtime: python
            autoDeploy: false
        """)
    assert lint_blueprint(path) == [finding(
        "missing-health-check", "warning", "frontend", "no healthCheckPath: Render only checks that the port is open, "
        "so a release that answers 500 goes live", RULES["missing-health-check"][1], "", str(path), 2, 5)]


@pytest.mark.parametrize(("setting", "message", "field", "line"), [
    ("", "autoDeploy is not set (Render's default is to deploy every commit)", "", 2),
    ("    autoDeploy: true\n", "autoDeploy is true", "autoDeploy", 6),
    ("    autoDeployTrigger: commit\n", "autoDeployTrigger is 'commit'", "autoDeployTrigger", 6),
    ("    autoDeploy: false\n    autoDeployTrigger: checksPass\n", "autoDeployTrigger is 'checksPass'",
     "autoDeployTrigger", 7),
])
def test_auto_deploy_left_on_for_a_deployed_service_is_an_error(tmp_path, setting, message, field, line):
    path = blueprint(tmp_path, "services:\n  - type: web\n    name: api\n    runtime: python\n"
                               "    healthCheckPath: /health\n" + setting)
    assert lint_blueprint(path, deployed_services={"api"}) == [finding(
        "auto-deploy-on", "error", "api", f"{message}: a push deploys without the pipeline's backup, migration and "
        "health checks", RULES["auto-deploy-on"][1], field, str(path), line, 5)]


def test_auto_deploy_is_only_checked_for_services_the_pipeline_deploys(tmp_path):
    path = blueprint(tmp_path, "services:\n" + CLEAN_SERVICE + "  - type: worker\n    name: jobs\n    runtime: python\n")
    assert [f.subject for f in lint_blueprint(path)] == ["service jobs"]
    assert lint_blueprint(path, deployed_services={"api"}) == []


def test_auto_deploy_off_either_way_is_clean(tmp_path):
    path = blueprint(tmp_path, "services:\n  - type: web\n    name: a\n    healthCheckPath: /h\n    autoDeploy: false\n"
                               "  - type: web\n    name: b\n    healthCheckPath: /h\n    autoDeployTrigger: 'off'\n"
                               "  - type: web\n    name: c\n    healthCheckPath: /h\n    autoDeployTrigger: off\n")
    assert lint_blueprint(path) == []


def test_services_inside_projects_are_linted_too(tmp_path):
    path = blueprint(tmp_path, """\
        projects:
          - name: shop
            environments:
              - name: production
                services:
                  - type: web
                    name: shop-api
                    healthCheckPath: /health
                    startCommand: npx prisma migrate deploy && node server.js
        """)
    assert brief(lint_blueprint(path)) == [("auto-deploy-on", "error", "", 6),
                                           ("migration-in-start-command", "error", "startCommand", 9)]
    assert service_names(path) == {"shop-api"}


def test_the_repository_render_yaml_is_clean():
    assert lint_blueprint(ROOT / "render.yaml") == []
    assert lint_blueprint(ROOT / "render.yaml", deployed_services={"sampleapp"}) == []
    assert service_names(ROOT / "render.yaml") == {"sampleapp"}


def test_split_commands_keeps_an_or_alternative_with_its_command_and_respects_quotes():
    assert split_commands("a x || true && b; c 'd && e'\nf") == [["a", "x", "||", "true"], ["b"], ["c", "d && e"], ["f"]]
    assert split_commands("a &&\n  b") == [["a"], ["b"]]


@pytest.mark.parametrize(("text", "message"), [
    ("services:\n  - type: web\n    name: [a\n", ":4: invalid YAML: expected ',' or ']', but got '<stream end>'; "
                                                 "expected a Render Blueprint (YAML)"),
    ("services:\n  - type: web\n\tname: a\n", ":3: invalid YAML: found character '\\t' that cannot start any token; "
                                              "expected a Render Blueprint (YAML)"),
    ("", ": not a Render Blueprint: the file is empty; expected a mapping with services and/or databases "
         "(envVarGroups, projects)"),
    ("- type: web\n", ":1: not a Render Blueprint: the file is a list; expected a mapping with services and/or "
                      "databases (envVarGroups, projects)"),
    ("version: 1\nstages: []\n", ":1: not a Render Blueprint: the file is a mapping with version, stages; expected a "
                                 "mapping with services and/or databases (envVarGroups, projects)"),
    ("services:\n  web: {}\n", ":1: services is a dict; expected a list of services"),
    ("services:\n  - type: web\n    runtime: node\n", ":2: services[0] has no name; expected name: <service name>"),
    ("services:\n  - type: webservice\n    name: api\n", ":2: service api: type is 'webservice'; expected one of web, "
                                                          "pserv, worker, cron, keyvalue, redis"),
])
def test_a_file_that_is_not_a_blueprint_is_a_spec_error_naming_file_and_line(tmp_path, text, message):
    path = blueprint(tmp_path, text)
    with pytest.raises(SpecError) as info:
        lint_blueprint(path)
    assert str(info.value) == f"{path}{message}"
