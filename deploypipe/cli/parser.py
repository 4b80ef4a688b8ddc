"""The one parser of the installed ``deploypipe`` command: every command with one line, options with defaults and
an example; each command runs the function of deploypipe.cli.actions that the invoke task of the same name runs."""

from __future__ import annotations

from typing import Any, Callable

from deploypipe import __version__
from deploypipe.cli import actions
from deploypipe.cli.suggest import Parser

__all__ = ["LINT_FORMATS", "LINT_SEVERITIES", "build_parser"]

LINT_FORMATS = ("text", "json", "github", "sarif")
LINT_SEVERITIES = ("error", "warning", "info")

_PIPELINE = "pipeline file (default: $DEPLOYPIPE_PIPELINE, else pipelines/local.yaml)"
_JSON = "print the report as JSON on stdout; log lines go to stderr as JSON"
_FROM_REVISION = ("production's migration revision for the phase-order check, where the run history does not know it "
                  "(CI): REV, or DATABASE=REV[,DATABASE=REV]; base: none applied")
_VERBOSE = "also show info log lines on the terminal (default: progress, warnings and errors)"
_DESCRIPTION = """\
Declarative, staged deploy pipelines for Render: verified backup, migration dry run, deploy, health and traffic
verification, automatic rollback.

exit codes: 0 ok, 1 blocked before production changed, 2 invalid usage or pipeline, 3 failed after production
changed and rolled back (verified), 4 rollback failed: a human must act."""


def _command(commands: Any, name: str, action: Callable[..., int] | None, summary: str, example: str, *,
             details: str = "", intermixed: bool = False) -> Parser:
    sub: Parser = commands.add_parser(name, help=summary, description=f"{summary}\n\n{details}".strip(),
                                      epilog=f"example:\n  {example}", intermixed=intermixed)
    sub.set_defaults(_action=action, _parser=sub)
    return sub


def _pipeline(sub: Parser) -> None:
    sub.add_argument("-p", "--pipeline", metavar="FILE", help=_PIPELINE)


def _release_commands(commands: Any) -> None:
    sub = _command(commands, "deploy", actions.deploy,
                   "run the pipeline: checks, backup, dry run, migrate, deploy, verify; roll back on failure",
                   "deploypipe deploy --pipeline pipelines/production.yaml --json > report.json")
    _pipeline(sub)
    sub.add_argument("--json", action="store_true", help=_JSON)
    sub.add_argument("--wait-lock", type=float, metavar="SECONDS",
                     help="wait this long when another deploy of the same target holds the lock (default: the "
                          "pipeline's lock.wait_s, else fail at once)")
    sub.add_argument("--resume", metavar="RUN_ID",
                     help="continue the interrupted run RUN_ID from its journal (finished stages are not repeated)")
    sub.add_argument("--dry-run", action="store_true", help="only show what would run (same as `plan`)")
    sub.add_argument("--force", action="store_true",
                     help="release even when the commit is already live and no migration is pending")
    sub.add_argument("--keep-running", action="store_true",
                     help="local default only: keep the embedded database and local Render running afterwards")
    sub.add_argument("-v", "--verbose", action="store_true", help=_VERBOSE)

    sub = _command(commands, "plan", actions.plan,
                   "show what each stage would do, with resolved parameters (secrets masked); runs nothing",
                   "deploypipe plan --pipeline pipelines/production.yaml")
    _pipeline(sub)
    sub.add_argument("--json", action="store_true", help="print the plan as JSON")
    sub.add_argument("--types", action="store_true", help="list the stage types (parameters, outputs) instead")
    sub.add_argument("--from-revision", metavar="REV", help=_FROM_REVISION)

    sub = _command(commands, "rollback", actions.rollback,
                   "roll a service back to an earlier deploy, or undo a run; verify health; write a run record",
                   "deploypipe rollback --service api --yes --json",
                   details="--run RUN_ID undoes what that run changed, in reverse order (instead of --to).")
    _pipeline(sub)
    sub.add_argument("--service", help="service to roll back (target key or Render name); needed when the "
                                       "pipeline has several")
    target = sub.add_mutually_exclusive_group()
    target.add_argument("--to", metavar="DEPLOY_ID", help="deploy to roll back to (default: the previous "
                                                           "successful deploy)")
    target.add_argument("--run", metavar="RUN_ID", help="undo what run RUN_ID changed (from its journal)")
    sub.add_argument("--yes", action="store_true", help="do not ask for confirmation (required off a terminal)")
    sub.add_argument("--json", action="store_true", help=_JSON)
    sub.add_argument("-v", "--verbose", action="store_true", help=_VERBOSE)
    sub.add_argument("--wait-lock", type=float, metavar="SECONDS", help="wait this long for a release that holds "
                                                                         "the lock")

    sub = _command(commands, "status", actions.status,
                   "what is live on each service, how far behind its branch, the last deploys; exit 1 when frozen",
                   "deploypipe status --pipeline pipelines/production.yaml --json --notify-env NOTIFY_WEBHOOK_URL")
    _pipeline(sub)
    sub.add_argument("--json", action="store_true", help="print the status as JSON on stdout")
    sub.add_argument("--failed", metavar="N", help="frozen when the last N deploys all failed (default 2)")
    sub.add_argument("--max-behind-commits", metavar="N",
                     help="frozen when the live commit trails the branch by more commits (default: off)")
    sub.add_argument("--max-behind-hours", metavar="H",
                     help="frozen when the oldest commit not live is older than this (default: off)")
    sub.add_argument("--history", metavar="N", help="recent deploys read per service (default 10)")
    sub.add_argument("--notify-env", metavar="VAR", help="watch mode: post a new problem (once) and its recovery "
                                                         "(once) to the webhook URL in this environment variable")
    sub.add_argument("--state", metavar="FILE", help="watch mode: file keeping the last notified problem "
                                                     "(default .deploypipe/watch/<pipeline>.json)")
    sub.add_argument("--slack", action="store_true", help="watch mode: post Slack's {text} instead of the JSON")

    sub = _command(commands, "history", actions.history,
                   "list recent runs (newest first), show one run with --run, or open its report.html with --open",
                   "deploypipe history --run 20260101T120000-ab12cd")
    _pipeline(sub)
    sub.add_argument("--run", metavar="RUN_ID", help="show one run in full")
    sub.add_argument("--limit", type=int, default=20, metavar="N", help="how many runs to list")
    sub.add_argument("--json", action="store_true", help="print JSON")
    sub.add_argument("--open", metavar="RUN_ID", help="open run RUN_ID's report.html in the browser")


def _check_commands(commands: Any) -> None:
    sub = _command(commands, "lint", actions.lint,
                   "lint render.yaml files, migrations and pipelines: one finding per line",
                   "deploypipe lint render.yaml migrations/ --format github",
                   details="Each PATH is a render.yaml, a pipeline, a .sql or Alembic .py migration, or a directory "
                           "of migrations\n(told by name and content; a pipeline's migrations are found from its "
                           "place, so lint reads files, not stdin).\nOptions may come before or after the paths.",
                   intermixed=True)
    sub.add_argument("paths", nargs="*", metavar="PATH", help="what to lint (default: the pipeline)")
    _pipeline(sub)
    sub.add_argument("-f", "--format", choices=LINT_FORMATS,
                     help="text (default), json, github (default when GITHUB_ACTIONS=true) or sarif")
    sub.add_argument("--fail-on", choices=LINT_SEVERITIES,
                     help="exit 1 for findings at or above this severity (default: error)")
    sub.add_argument("--json", action="store_true", help="same as --format json")

    sub = _command(commands, "schema", actions.schema,
                   "print the JSON Schema of the pipeline format (for editors), with each stage type's outputs",
                   "deploypipe schema --output pipeline.schema.json")
    sub.add_argument("--output", metavar="FILE", help="write the schema to FILE instead of stdout")


def _database_commands(commands: Any) -> None:
    sub = _command(commands, "backup", actions.backup,
                   "take a verified backup of a database now (pg_dump, 0600, sha256; restored and compared)",
                   "deploypipe backup --database app --pipeline pipelines/production.yaml")
    _pipeline(sub)
    sub.add_argument("--database", metavar="KEY", help="database target key (needed when the pipeline has several)")
    sub.add_argument("--list", action="store_true", help="list backups instead of taking one")
    sub.add_argument("--no-verify", action="store_true", help="skip the verification (restore and compare)")
    sub.add_argument("--dir", default=actions.BACKUPS_DIR, metavar="DIR", help="backups directory")
    sub.add_argument("--json", action="store_true", help="print JSON")

    sub = _command(commands, "restore", actions.restore,
                   "restore a backup into a database; production needs --yes-i-mean-production and --reason",
                   "deploypipe restore --backup app-20260101T120000 --target staging")
    sub.add_argument("--backup", required=True, metavar="ID", help="backup id (see `backup --list`)")
    sub.add_argument("--target", required=True, metavar="KEY|URL", help="database target key or URL to restore into")
    sub.add_argument("--yes-i-mean-production", action="store_true", help="required to restore into production")
    sub.add_argument("--reason", help="why (required for production; recorded with who and when)")
    _pipeline(sub)
    sub.add_argument("--dir", default=actions.BACKUPS_DIR, metavar="DIR", help="backups directory")
    sub.add_argument("--json", action="store_true", help="print JSON")

    sub = _command(commands, "apply-migrations", actions.apply_migrations,
                   "apply a directory's pending Prisma or SQL-file migrations to $DATABASE_URL (db.migrate runs it)",
                   "DATABASE_URL=postgresql://... deploypipe apply-migrations sql migrations --through 0003_add.sql",
                   details="Prisma's are recorded in _prisma_migrations as `prisma migrate deploy` records them; "
                           "SQL files in deploypipe's ledger deploypipe_sql_migrations. Each migration runs in one "
                           "transaction. Exit 0 applied, 1 a migration failed, 2 no DATABASE_URL.")
    sub.add_argument("tool", choices=("prisma", "sql"), help="prisma: prisma/migrations/<name>/migration.sql; "
                                                             "sql: the .sql files of DIR, in file-name order")
    sub.add_argument("directory", metavar="DIR", help="prisma/migrations, or the directory of .sql files")
    sub.add_argument("--through", metavar="NAME", help="the last migration to apply (default: every pending one)")


def _local_commands(commands: Any) -> None:
    sub = _command(commands, "emulator", actions.emulator,
                   "run the local Render (Render's API on 127.0.0.1) until Ctrl-C; needs deploypipe[local]",
                   "RENDER_API_KEY=rnd_local_dev deploypipe emulator --port 10000 --faults faults.yaml",
                   details="The API key: --api-key, else $DEPLOYPIPE_EMULATOR_API_KEY, else $RENDER_API_KEY, else "
                           "rnd_test_key (prefer the environment: a command line is visible to every user).")
    sub.add_argument("--port", type=int, default=10000, help="port on 127.0.0.1 (0 picks a free one)")
    sub.add_argument("--blueprint", default="render.yaml", metavar="FILE", help="Blueprint file")
    sub.add_argument("--repo", default=".", metavar="DIR", help="git repository the services build from")
    sub.add_argument("--data-dir", default=".deploypipe/emulator", metavar="DIR",
                     help="where builds, logs and state go")
    sub.add_argument("--faults", metavar="FILE", help="YAML/JSON file of fault rules")
    sub.add_argument("--database", action="append", default=[], metavar="NAME=URL",
                     help="use an existing database for a Blueprint database (repeatable)")
    sub.add_argument("--api-key", metavar="KEY", help="accepted API key")
    sub.add_argument("--health-grace-s", type=float, default=30.0, metavar="S",
                     help="how long a new instance may take to pass its health check")
    sub.add_argument("--health-interval-s", type=float, default=0.25, metavar="S", help="health check interval")
    sub.add_argument("--auto-deploy-poll-s", type=float, default=1.0, metavar="S",
                     help="how often new commits on a branch are looked for (auto-deploy); 0 turns it off")
    sub.add_argument("--ingest-delay-s", type=float, default=0.0, metavar="S",
                     help="metrics and logs become visible this long after the fact (Render's arrive late)")
    sub.add_argument("--recovery-min-age-s", type=float, default=600.0, metavar="S",
                     help="point-in-time recovery refuses restore times newer than this; 0 allows any")
    sub.add_argument("--recovery-window-days", type=float, default=7.0, metavar="D",
                     help="how far back point-in-time recovery reaches (Render: 3 Hobby, 7 Professional)")
    sub.add_argument("--recovery-creating-s", type=float, default=2.0, metavar="S",
                     help="how long a point-in-time recovery clone stays 'creating'")

    sub = _command(commands, "replay", actions.replay,
                   "replay a seed incident against the local default; no NAME (or `list`) lists them",
                   "deploypipe replay broken-release")
    sub.add_argument("name", nargs="?", metavar="NAME", help="replay to run, or `list`")
    sub.add_argument("--json", action="store_true", help="print the run reports as JSON")
    sub.add_argument("--keep-running", action="store_true", help="keep the local default running afterwards")

    sub = _command(commands, "clean", actions.clean, "stop and remove the embedded local default (.deploypipe/local/)",
                   "deploypipe clean --all")
    sub.add_argument("--all", action="store_true", help="also remove run records and backups")


def _tool_commands(commands: Any) -> None:
    sub = _command(commands, "ci-summary", actions.ci_summary,
                   "render a run report (JSON) as a Markdown summary for CI ($GITHUB_STEP_SUMMARY)",
                   'deploypipe ci-summary report.json --exit-code "$code" --output "$GITHUB_STEP_SUMMARY"')
    sub.add_argument("report", metavar="REPORT", help="report JSON (what `deploy --json` printed); - reads stdin")
    sub.add_argument("--exit-code", type=int, metavar="N", help="deploypipe's exit code, shown when no report")
    sub.add_argument("--output", metavar="FILE", help="append to FILE instead of printing")

    sub = _command(commands, "completion", None, "print the shell completion script for bash or zsh",
                   'eval "$(deploypipe completion bash)"   # in ~/.bashrc (zsh: ~/.zshrc, after compinit)')
    sub.add_argument("shell", choices=("bash", "zsh"), help="the shell")

    sub = _command(commands, "help", None, "show the help of a command (or of deploypipe)", "deploypipe help deploy")
    sub.add_argument("topic", nargs="?", choices=[*commands.choices], metavar="COMMAND", help="the command")


def build_parser() -> Parser:
    """The whole command line; parsing it builds no Invocation and imports nothing heavy."""
    parser = Parser(prog="deploypipe", description=_DESCRIPTION,
                    epilog="`deploypipe COMMAND --help` shows a command's options, their defaults and an example.")
    parser.add_argument("--version", action="version", version=f"deploypipe {__version__}")
    parser.set_defaults(_action=None, _parser=parser)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands", parser_class=Parser)
    _release_commands(commands)
    _check_commands(commands)
    _database_commands(commands)
    _local_commands(commands)
    _tool_commands(commands)
    parser.commands = dict(commands.choices)
    return parser
