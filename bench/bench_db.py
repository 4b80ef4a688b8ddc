"""Benchmark of deploypipe's database safety path against the bare PostgreSQL tools it wraps.

    python bench/bench_db.py [--size-gb 1.0] [--rounds 3] [--keep-dir DIR]

Generates a database of about ``--size-gb`` (3 tables, 4 primary keys, 4 secondary indexes; rows made server-side
with generate_series) in an embedded PostgreSQL (reused when ``--keep-dir`` already holds it), then runs each
comparison in adjacent pairs, deploypipe and bare alternating which goes first, and prints the median of the
per-pair ratios with every ratio:

A  the verified backup + dry run (db.backup's one pass, then db.dry_run on the same copy) against
   ``pg_dump -Fc -f``; ``pg_restore -j N`` into a fresh database; the migration          target <= 1.10x, stretch 0.85x
B  ``invoke backup`` (dump + verification on a throwaway server) against ``pg_dump -Fc``    target <= 1.9x
C  the dump alone (create_backup, -Z1, no verification) against ``pg_dump -Fc``
D  peak RSS of this process (deploypipe runs in-process) and files left in the backups dir   target < 150 MB
E  progress events during A and how far the dump's ETA at 50 % was off
F  a corrupt and a truncated dump on the combined path: verdicts, production unchanged

Figures vary with the machine's load; nothing is asserted (speed is not a test).
"""

from __future__ import annotations

import argparse
import logging
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import psycopg
import structlog

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from deploypipe.core.embedded_pg import EmbeddedPostgres, pg_bin, start_embedded
from deploypipe.db.backup import create_backup, retain
from deploypipe.db.commands import backup_command
from deploypipe.db.dryrun import dry_run
from deploypipe.db.progress import Progress
from deploypipe.db.staging import Staging, template_dir
from deploypipe.db.verified import take_verified_backup
from deploypipe.errors import StageFailed
from deploypipe.testing import damaging

BYTES_PER_ROW = 172  # heap + indexes per generated row (measured on PG 16; the actual size is printed)

MIGRATION = '''"""add a nullable column and a small table"""
from alembic import op
import sqlalchemy as sa

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade():
    op.add_column("accounts", sa.Column("nickname", sa.Text))
    op.create_table("feature_flags", sa.Column("id", sa.Integer, primary_key=True), sa.Column("name", sa.Text))


def downgrade():
    op.drop_table("feature_flags")
    op.drop_column("accounts", "nickname")
'''

BASE = '''"""baseline"""
revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade():
    pass


def downgrade():
    pass
'''

ENV_PY = '''import os
from alembic import context
from sqlalchemy import create_engine, pool

url = os.environ["DATABASE_URL"].replace("postgresql://", "postgresql+psycopg://", 1)
with create_engine(url, poolclass=pool.NullPool).connect() as connection:
    context.configure(connection=connection)
    with context.begin_transaction():
        context.run_migrations()
'''


def generate(url: str, size_gb: float) -> None:
    rows = int(size_gb * 1e9 / BYTES_PER_ROW)
    accounts, orders, events = rows // 10, rows * 3 // 10, rows * 6 // 10
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("""
            create table accounts (id bigint primary key, email text not null, plan text, created_at timestamptz);
            create table orders (id bigint primary key, account_id bigint not null, total numeric(12, 2),
                                 status text, created_at timestamptz);
            create table events (id bigint primary key, account_id bigint, kind text, payload text,
                                 created_at timestamptz);
            create table alembic_version (version_num varchar(32) primary key);
            insert into alembic_version values ('0001');
        """)
        conn.execute(f"""insert into accounts select g, 'user' || g || '@example.test',
            (array['free', 'team', 'pro'])[1 + g % 3], now() - g * interval '1 second'
            from generate_series(1, {accounts}) g""")
        conn.execute(f"""insert into orders select g, 1 + g % {accounts}, (g % 10000) / 7.0,
            (array['paid', 'open', 'refunded'])[1 + g % 3], now() - g * interval '1 second'
            from generate_series(1, {orders}) g""")
        conn.execute(f"""insert into events select g, 1 + g % {accounts}, 'kind' || (g % 40),
            md5(g::text) || ' ' || md5((g * 7)::text), now() - g * interval '1 second'
            from generate_series(1, {events}) g""")
        conn.execute("""
            create unique index accounts_email on accounts (email);
            create index orders_account on orders (account_id, created_at);
            create index events_account on events (account_id);
            create index events_kind on events (kind, created_at);
        """)
        conn.execute("vacuum analyze")


def _scalar(url: str, query: str) -> Any:
    with psycopg.connect(url) as conn:
        row = conn.execute(query).fetchone()
    assert row is not None
    return row[0]


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    value = fn()
    return time.perf_counter() - started, value


def alembic_project(root: Path) -> str:
    (root / "migrations" / "versions").mkdir(parents=True)
    (root / "alembic.ini").write_text("[alembic]\nscript_location = migrations\n")
    (root / "migrations" / "env.py").write_text(ENV_PY)
    (root / "migrations" / "versions" / "0001.py").write_text(BASE)
    (root / "migrations" / "versions" / "0002.py").write_text(MIGRATION)
    return f"{sys.executable} -m alembic upgrade head"


def paired(rounds: int, ours: Callable[[], Any], bare: Callable[[], Any]) -> tuple[list[float], list[float]]:
    """Run both ``rounds`` times in adjacent pairs, alternating which goes first; wall seconds of each."""
    mine: list[float] = []
    theirs: list[float] = []
    for n in range(rounds):
        order = [(mine, ours), (theirs, bare)]
        for sink, fn in order if n % 2 == 0 else order[::-1]:
            sink.append(timed(fn)[0])
    return mine, theirs


def line(label: str, mine: list[float], theirs: list[float], target: str) -> str:
    ratios = [m / t for m, t in zip(mine, theirs, strict=True)]
    return (f"{label:<46} {statistics.median(mine):6.1f}s  {statistics.median(ratios):.2f}x bare "
            f"[{' '.join(f'{r:.2f}' for r in ratios)}]  {target}\n"
            f"{'':<6}bare median {statistics.median(theirs):.1f}s, min {min(theirs):.1f}s; ours min {min(mine):.1f}s")


def damage_checks(server: EmbeddedPostgres, work: Path) -> str:
    url = server.create_database("bench_damage")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("create table notes (id serial primary key, body text); "
                     "insert into notes (body) select md5(g::text) || repeat('x', 200) "
                     "from generate_series(1, 20000) g")
    verdicts = []
    for kind in ("corrupt", "truncated"):
        with Staging.start(None, url) as staging:
            try:
                take_verified_backup(url, work / "damaged", run_id=kind, staging=staging, dump_argv=damaging(kind))
                verdicts.append(f"{kind} dump -> VERIFIED (wrong)")
            except StageFailed as exc:
                verdicts.append(f"{kind} dump -> exit {exc.exit_code} ({exc.message.split(': ', 2)[-1][:60]})")
    rows = _scalar(url, "select count(*) from notes")
    server.drop_database("bench_damage")
    shutil.rmtree(work / "damaged", ignore_errors=True)
    return ", ".join(verdicts) + f"; production rows {rows} of 20000"


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--size-gb", type=float, default=1.0)
    parser.add_argument("--rounds", type=int, default=3, help="pairs per comparison (medians of ratios)")
    parser.add_argument("--keep-dir", help="work directory to reuse/keep (default: a temp dir, removed)")
    args = parser.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    work = Path(args.keep_dir or tempfile.mkdtemp(prefix="bench-db-"))
    work.mkdir(parents=True, exist_ok=True)
    env = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp")}
    load_start = os.getloadavg()[0]
    template_dir()  # made once per machine; not part of any timing
    server = start_embedded(work / "pg")
    bare_server = start_embedded(work / "bare-pg")
    try:
        url = server.create_database("bench")
        if not _scalar(url, "select to_regclass('events') is not null"):
            seconds, _ = timed(lambda: generate(url, args.size_gb))
            print(f"generated in {seconds:.1f}s")
        size = _scalar(url, "select pg_database_size(current_database())")
        rows = _scalar(url, "select (select count(*) from accounts) + (select count(*) from orders) + "
                            "(select count(*) from events)")  # also warms the cache
        print(f"database: {size / 1e9:.2f} GB, {rows / 1e6:.2f} M rows (3 tables, 8 indexes)    "
              f"machine: {os.cpu_count()} cores, load avg {load_start:.1f} at start")
        dumps, backups = work / "dumps", work / "backups"
        dumps.mkdir(exist_ok=True)
        project = work / "app"
        shutil.rmtree(project, ignore_errors=True)
        command = alembic_project(project)
        jobs = max(1, min(4, os.cpu_count() or 1))
        bare_dump_file = dumps / "bare.dump"

        def bare_dump() -> None:
            subprocess.run([pg_bin("pg_dump"), "-Fc", "-d", url, "-f", str(bare_dump_file)], check=True)

        def bare_path() -> None:
            bare_dump()
            target = bare_server.create_database("bare_restore")
            subprocess.run([pg_bin("pg_restore"), "--no-owner", "--no-acl", f"-j{jobs}", "-d", target,
                            str(bare_dump_file)], check=True)
            subprocess.run(command, shell=True, cwd=project, check=True, env={**env, "DATABASE_URL": target})
            bare_server.drop_database("bare_restore")

        progress: list[Progress] = []
        last: dict[str, Any] = {}

        def ours_path() -> None:
            progress.clear()
            started = time.perf_counter()
            with Staging.start(None, url) as staging:
                copy = take_verified_backup(url, backups, run_id="bench", staging=staging, report=progress.append)
                result = dry_run(backup=copy.backup, production_url=url, command=command, cwd=project, env=env,
                                 log_path=work / "dry.log", copy=copy)
                done = time.perf_counter()
            last.update(copy=copy, result=result, teardown_s=time.perf_counter() - done,
                        total_s=time.perf_counter() - started)
            retain(backups, keep=1)

        print(f"paired rounds: {args.rounds} (order alternates); figure = median of per-pair ratios [all ratios]")
        mine, theirs = paired(args.rounds, ours_path, bare_path)
        print(line("A  verified backup + dry run (one restore)", mine, theirs, "target <= 1.10x, stretch <= 0.85x"))
        print(f"{'':<6}bare: pg_dump -Fc; pg_restore -j{jobs}; alembic upgrade head")
        timings, result = last["copy"].timings, last["result"]
        print(f"{'':<6}phases (last round, seconds from the start): snapshot counted {timings['counted_s']:.1f} | "
              f"dump {timings['dump_s']:.1f} | stream done {timings['stream_done_s']:.1f} | "
              f"indexes {timings['post_data_s']:.1f} | verified {timings['verified_s']:.1f} | "
              f"migration {result.run.duration_s:.1f}s | teardown {last['teardown_s']:.1f}s")
        dump_events = [p for p in progress if p.phase == "dump"]
        index_events = [p for p in progress if p.phase == "indexes"]
        half = next((p for p in dump_events if p.fraction >= 0.5), None)
        eta_error = "n/a (the dump took less than two reports)"
        if half is not None and timings["dump_s"] > half.elapsed_s:
            actual = timings["dump_s"] - half.elapsed_s
            eta_error = f"{100 * ((half.eta_s or 0) - actual) / actual:+.0f} %"

        mine_b, theirs_b = paired(args.rounds, lambda: backup_command(url=url, backups_dir=backups, run_id="bench",
                                                                      keep=1), bare_dump)
        print(line("B  invoke backup (dump + verification)", mine_b, theirs_b, "target <= 1.9x bare pg_dump -Fc"))
        mine_c, theirs_c = paired(args.rounds, lambda: create_backup(url, backups, run_id="bench"), bare_dump)
        newest = sorted(backups.glob("*.dump"))[-1]
        print(line("C  dump alone (create_backup, -Z1)", mine_c, theirs_c,
                   f"{newest.stat().st_size / 1e6:.0f} MB vs {bare_dump_file.stat().st_size / 1e6:.0f} MB at -Z6"))
        retain(backups, keep=1)
        extra = [p.name for p in backups.iterdir() if p.suffix not in (".dump", ".json")]
        staging_left = list(Path(tempfile.gettempdir()).glob("deploypipe-staging-*"))
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"D  peak RSS of this process (deploypipe in-process): {peak_mb:.0f} MB  target < 150 MB\n"
              f"{'':<6}files in the backups dir besides <id>.dump/.json: {len(extra)}; staging directories left: "
              f"{len(staging_left)}")
        print(f"E  progress (last A round): {len(progress)} db_progress events (dump {len(dump_events)}, "
              f"indexes {len(index_events)}, every 2 s); the dump's ETA at 50 % was off by {eta_error}")
        print(f"F  damage on the combined path: {damage_checks(server, work)}")
        print(f"load avg at end: {os.getloadavg()[0]:.1f}")
    finally:
        server.stop()
        bare_server.stop()
        if not args.keep_dir:
            shutil.rmtree(work, ignore_errors=True)
        else:
            shutil.rmtree(work / "bare-pg", ignore_errors=True)


if __name__ == "__main__":
    main()
