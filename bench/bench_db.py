"""Benchmark of deploypipe's database safety against the bare PostgreSQL tools it wraps.

    python bench/bench_db.py [--size-gb 1.0] [--rounds 1] [--keep-dir DIR]

Generates a database of about ``--size-gb`` (several tables with indexes, rows
made server-side with generate_series) in an embedded PostgreSQL, then times:

- ``create_backup`` (pg_dump -Fc streamed to a 0600 file + row counts in the same snapshot + sha256),
  without and with verification, against a bare ``pg_dump -Fc -f`` of the same database (target: within 1.10x);
- ``dry_run`` (ephemeral staging server, restore, ``alembic upgrade head`` of a small migration, schema diff)
  against a bare ``pg_restore`` into a fresh database plus the same command (target: within 1.10x);
- the peak RSS of this Python process (target: < 150 MB; the dump never passes through Python).

Prints the figures; nothing is asserted (speed is not a test).
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from deploypipe.core.embedded_pg import pg_bin, start_embedded
from deploypipe.db.backup import Backup, create_backup, retain, verify_backup
from deploypipe.db.dryrun import DryRunResult, dry_run
from deploypipe.db.scratch import ScratchServer

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


def _runs(values: list[float]) -> str:
    return "[" + ", ".join(f"{v:.1f}" for v in values) + "]"


def _scalar(conn: psycopg.Connection, query: str) -> Any:
    row = conn.execute(query).fetchone()
    assert row is not None
    return row[0]


def timed(fn):
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-gb", type=float, default=1.0)
    parser.add_argument("--rounds", type=int, default=1, help="repeat the timings; medians are printed")
    parser.add_argument("--keep-dir", help="work directory to reuse/keep (default: a temp dir, removed)")
    args = parser.parse_args()
    work = Path(args.keep_dir or tempfile.mkdtemp(prefix="bench-db-"))
    work.mkdir(parents=True, exist_ok=True)
    env = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp")}
    server = start_embedded(work / "pg")
    scratch = ScratchServer(work / "scratch-pg")
    try:
        url = server.create_database("bench")
        with psycopg.connect(url) as conn:
            exists = _scalar(conn, "select to_regclass('events')")
        if not exists:
            seconds, _ = timed(lambda: generate(url, args.size_gb))
            print(f"generated in {seconds:.1f}s")
        with psycopg.connect(url) as conn:
            size = _scalar(conn, "select pg_database_size(current_database())")
            rows = _scalar(conn, "select (select count(*) from accounts) + (select count(*) from orders) + "
                                 "(select count(*) from events)")  # also warms the cache
        print(f"database: {size / 1e9:.2f} GB, {rows:,} rows in 3 tables + 4 secondary indexes")

        dumps = work / "dumps"
        dumps.mkdir(exist_ok=True)
        project = work / "app"
        shutil.rmtree(project, ignore_errors=True)
        command = alembic_project(project)
        jobs = max(1, min(4, os.cpu_count() or 1))

        def bare_dump() -> None:
            subprocess.run([pg_bin("pg_dump"), "-Fc", "-d", url, "-f", str(dumps / "bare.dump")], check=True)

        def bare_dry(*extra: str) -> None:
            assert backup is not None
            target = scratch.create("bare_restore")
            subprocess.run([pg_bin("pg_restore"), "--no-owner", "--no-acl", *extra, "-d", target, backup.path],
                           check=True)
            subprocess.run(command, shell=True, cwd=project, check=True, env={**env, "DATABASE_URL": target})
            scratch.drop("bare_restore")

        times: dict[str, list[float]] = {k: [] for k in ("bare_dump", "ours", "bare_dry", "bare_dry_j", "ours_dry")}
        backup: Backup | None = None
        result: DryRunResult | None = None

        def ours_dump() -> None:
            nonlocal backup
            backup = create_backup(url, work / "backups", run_id="bench")

        def ours_dry() -> None:
            nonlocal result
            assert backup is not None
            result = dry_run(backup=backup, production_url=url, command=command, cwd=project, env=env,
                             log_path=work / "dry.log")

        for round_no in range(args.rounds):  # alternate the order so neither side always gets the warm cache
            pair = [("bare_dump", bare_dump), ("ours", ours_dump)]
            for name, fn in (pair if round_no % 2 == 0 else pair[::-1]):
                times[name].append(timed(fn)[0])
            retain(work / "backups", keep=1)
            trio = [("bare_dry", bare_dry), ("bare_dry_j", lambda: bare_dry(f"-j{jobs}")), ("ours_dry", ours_dry)]
            for name, fn in (trio if round_no % 2 == 0 else trio[::-1]):
                times[name].append(timed(fn)[0])
        assert backup is not None and result is not None
        med = {k: statistics.median(v) for k, v in times.items()}
        verified = backup
        ours_verified, _ = timed(lambda: verify_backup(verified, scratch.create, scratch.drop))
        print(f"medians of {args.rounds} round(s), order alternated:")
        print(f"bare pg_dump -Fc:                  {med['bare_dump']:7.1f}s  "
              f"({os.path.getsize(dumps / 'bare.dump') / 1e6:.0f} MB)  {_runs(times['bare_dump'])}")
        print(f"create_backup (no verification):   {med['ours']:7.1f}s  = {med['ours'] / med['bare_dump']:.3f}x bare  "
              f"(target <= 1.10x)  {_runs(times['ours'])}")
        print(f"create_backup + verify_backup:     {med['ours'] + ours_verified:7.1f}s  = "
              f"{(med['ours'] + ours_verified) / med['bare_dump']:.3f}x bare (verification restores into scratch)")
        print(f"bare pg_restore + alembic upgrade: {med['bare_dry']:7.1f}s  {_runs(times['bare_dry'])}")
        print(f"bare pg_restore -j{jobs} + alembic:     {med['bare_dry_j']:7.1f}s  {_runs(times['bare_dry_j'])}")
        print(f"dry_run (ephemeral staging, -j{jobs}):  {med['ours_dry']:7.1f}s  = "
              f"{med['ours_dry'] / med['bare_dry']:.3f}x bare, "
              f"{med['ours_dry'] / med['bare_dry_j']:.3f}x bare -j{jobs} "
              f"(target <= 1.10x)  {_runs(times['ours_dry'])}")
        restore_s, migrate_s = result.restore_s, result.run.duration_s
        print(f"  last dry_run: restore {restore_s:.1f}s, migration {migrate_s:.1f}s, staging server + checks "
              f"{times['ours_dry'][-1] - restore_s - migrate_s:.1f}s; revision {result.run.revision_after}, "
              f"changes {result.run.schema_changes}")
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"peak RSS of this Python process:   {peak_mb:7.1f} MB  (target < 150 MB)")
    finally:
        scratch.server.stop() if scratch._server is not None else None
        server.stop()
        if not args.keep_dir:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
