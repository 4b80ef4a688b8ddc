"""The incident replays: what each seed's team (or the reporter of an issue) lived through, and what the replay must
show.

Facts below are taken from the incident reports in ``shared/seeds/`` (file named per entry) or from the issue named
as the entry's ``seed``.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["REPLAYS", "Replay"]


@dataclass(frozen=True)
class Replay:
    name: str
    seed: str  # the incident report in shared/seeds/, or the issue
    title: str
    before: str  # what the team lived through, from the seed
    seed_minutes: float | None  # how long production was hurt or blocked in the seed (None: not a time loss)
    expected_exit: int
    expected_stage: str  # the stage type that stops, undoes or (exit 0) judges it
    traffic: bool = False  # the local default sends its traffic mix during the replay (so row counts grow)


REPLAYS: dict[str, Replay] = {r.name: r for r in (
    Replay(
        name="pgvector-version",
        seed="001_bb4407b1f7d81dcc.txt",
        title='migration pins CREATE EXTENSION vector WITH VERSION "0.5.1"',
        before=("Backend API and MCP server answered 502 for ~33 minutes: the migration asked for pgvector 0.5.1, "
                "Render's PostgreSQL had no such version (P3018 / 22023), the migration was marked failed and "
                "blocked every later deploy; found from logs, fixed by hand, redeployed."),
        seed_minutes=33, expected_exit=1, expected_stage="db.lint",
    ),
    Replay(
        name="failed-migration-state",
        seed="000_3b7ce0baaa326eea.txt",
        title="_prisma_migrations row marked failed while its tables exist",
        before=("Backend 502 for 35 minutes: migration 20251017171256_init was marked failed in _prisma_migrations "
                "although its tables existed; every start re-ran it (42P07 relation already exists); the fix was a "
                "startCommand chain `migrate resolve --applied ... || true && ...`."),
        seed_minutes=35, expected_exit=1, expected_stage="db.migration_status",
    ),
    Replay(
        name="data-dependent-migration",
        seed="002_6906a93a6e0c4fb8.txt",
        title="Alembic migration that fails only on production's data",
        before=("Five backend deploys in a row ended update_failed between 07:16 and 11:43 UTC and nobody noticed; "
                "production stayed frozen on commit 834fa20 for ~5 hours until someone investigated at 12:10."),
        seed_minutes=294, expected_exit=1, expected_stage="db.dry_run",
    ),
    Replay(
        name="broken-release",
        seed="003_760050b9ee1a4eb1.txt",
        title="release whose import fails at start / endpoints answer 500",
        before=("A release removed an export still in use: every API request answered 500; two incidents over "
                "4 hours 14 minutes (14:18–18:32 UTC), each detected and fixed by hand."),
        seed_minutes=254, expected_exit=3, expected_stage="verify.health",
    ),
    Replay(
        name="partial-outage",
        seed="003_760050b9ee1a4eb1.txt",
        title="one endpoint broken (POST /notes answers 500) while /health stays green",
        before=("The removed export broke routes, not the process: health checks stayed green while API requests "
                "answered 500 for 4 hours 14 minutes; nobody's check covered the broken path."),
        seed_minutes=254, expected_exit=3, expected_stage="verify.traffic", traffic=True,
    ),
    Replay(
        name="drop-column",
        seed="issue 20 (a new user's release)",
        title="drop notes.author together with the code that stops reading it",
        before=("The migration ran before the deploy and the live release, which still selected author, served 12 "
                "of 983 GET /notes with 500 until the switch (on Render: a build and a boot of 500s); the run said "
                "deployed and verified, because the errors fell into the traffic baseline."),
        seed_minutes=None, expected_exit=0, expected_stage="db.migrate", traffic=True,
    ),
    Replay(
        name="rename-column",
        seed="issue 20 (the unsafe single-step rename)",
        title="rename notes.author to written_by in one migration, marked expand, with the code that reads it",
        before=("A rename in one step breaks whichever release runs on the other name: the live one from the "
                "migration to the switch, and again after a code rollback; its /health never reads the column."),
        seed_minutes=None, expected_exit=1, expected_stage="db.dry_run",
    ),
    Replay(
        name="transaction-cascade",
        seed="004_5f0097d6bdb7e80b.txt",
        title="monkey-patched op.* helpers in an Alembic migration",
        before=("Monkey-patching op.create_index & co. made one failed statement abort the transaction, then every "
                "later operation failed with `current transaction is aborted`; the deploy failed at ~13:10 and the "
                "fix went live at 14:15 UTC (~65 minutes)."),
        seed_minutes=65, expected_exit=1, expected_stage="db.lint",
    ),
    Replay(
        name="flaky-endpoint",
        seed="issue 17",
        title="a healthy release (only VERSION changes) of an app whose GET /flaky always fails 1 request in 20",
        before=("Three releases that only bumped VERSION, under steady traffic on the local default; two were rolled "
                'back (exit 3) on "GET /flaky: 12 of 211 answered 500 ... (baseline 1 of 74)" although the path had '
                "failed that often before every release: it was judged against the absolute floor on a baseline too "
                "short to show it was already below it."),
        seed_minutes=None, expected_exit=0, expected_stage="verify.traffic", traffic=True,
    ),
    Replay(
        name="slow-path",
        seed="issue 17",
        title="GET /notes takes 600 ms longer (a new query per listing); nothing answers 5xx",
        before=('A release that made GET /notes take 600 ms instead of about 5 ms was deployed and verified (exit 0): '
                '"p99 608 ms; the previous release had no traffic to compare with"; the local Render had forgotten '
                "the previous run's requests and 608 ms is under the absolute 1,000 ms bound."),
        seed_minutes=None, expected_exit=3, expected_stage="verify.traffic", traffic=True,
    ),
)}
