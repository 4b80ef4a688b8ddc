"""The second half of the verified backup: prove the staging copy equals the dump's snapshot, then describe it.

    verify_copy(backup, staging, url, checks, counts, hashes, ...) -> VerifiedCopy
        after a clean stream, in parallel: the file's sha256, ``pg_restore --list``, the post-data build
        (``-j N``), and the staging copy's row counts and small-table hashes against the snapshot's; any
        difference (a table missing from the copy included) raises StageFailed and keeps the dump unverified.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import structlog

from deploypipe.db.backup import Backup, file_sha256
from deploypipe.db.pg import connect, row_counts, table_hashes, tool_target
from deploypipe.db.progress import ItemCounter, Progress, Sampler
from deploypipe.db.restore_stream import Restore, pg_tool, post_data_items
from deploypipe.db.staging import Staging
from deploypipe.errors import StageFailed

__all__ = ["VerifiedCopy", "compare", "mismatch_text", "verify_copy"]

log = structlog.get_logger(__name__)


@dataclass
class VerifiedCopy:
    """A verified backup and the staging copy it was verified on (close it when done with it)."""

    backup: Backup
    staging: Staging
    url: str
    checks: list[dict[str, Any]]
    timings: dict[str, float] = field(default_factory=dict)
    row_counts: dict[str, int] = field(default_factory=dict)

    def close(self) -> None:
        self.staging.close()


def mismatch_text(mismatched: dict[str, dict[str, int | None]]) -> str:
    """``public.events 8000 -> 0, public.big 120000 -> missing``: the tables whose restored counts differ."""
    return ", ".join(f"{t} {m['recorded']} -> {'missing' if m['restored'] is None else m['restored']}"
                     for t, m in sorted(mismatched.items()))


def verify_copy(backup: Backup, staging: Staging, url: str, checks: list[dict[str, Any]], counts: dict[str, int],
                hashes: dict[str, str], *, jobs: int, report: Callable[[Progress], None], interval_s: float,
                timings: dict[str, float], started: float) -> VerifiedCopy:
    """After a clean stream: hash, list, build indexes and compare the copy with the snapshot, in parallel."""
    path = Path(backup.path)
    problems: list[str] = []
    with ThreadPoolExecutor(max_workers=3) as pool:
        digest = pool.submit(file_sha256, path)
        compared = pool.submit(compare, url, counts, hashes)
        items = post_data_items(path)
        counter = ItemCounter(items)
        target, env = tool_target(url)
        post = Restore(pg_tool("pg_restore", ["--no-password", "--no-owner", "--no-acl", "--exit-on-error", "-v",
                                               "--section=post-data", f"-j{jobs}", "-d", target, str(path)]),
                       env, on_line=counter.feed)
        try:
            with Sampler("indexes", "items", lambda: (counter.done, counter.total), report, interval_s=interval_s):
                post_code = post.wait()
        except BaseException:
            post.stop()
            raise
        timings["post_data_s"] = round(time.monotonic() - started, 3)
        backup.sha256 = digest.result()
        checks.append({"check": "sha256", "ok": True, "sha256": backup.sha256})
        checks.append({"check": "pg_restore_list", "ok": True, "post_data_entries": items})
        if post_code != 0:
            problems.append(f"building indexes and constraints on staging failed: {post.message()}")
        checks.append({"check": "post_data", "ok": post_code == 0, "entries": items, "jobs": jobs})
        staged_counts, mismatched, differing = compared.result()
    checks.append({"check": "row_counts", "ok": not mismatched, "tables": len(counts), "mismatched": mismatched})
    checks.append({"check": "table_hashes", "ok": not differing, "tables": len(hashes), "differing": differing})
    if mismatched:
        problems.append(f"restored row counts differ from the snapshot's: {mismatch_text(mismatched)}")
    if differing:
        problems.append("restored rows differ from the snapshot's in " + ", ".join(sorted(differing)))
    backup.verified = not problems
    backup.extra["verified_on"] = "staging copy"
    backup.save()
    timings["verified_s"] = round(time.monotonic() - started, 3)
    if problems:
        raise StageFailed(f"backup {backup.id} failed verification: {'; '.join(problems)}", where="db.backup",
                          hint=f"production is untouched; the dump is kept unverified at {path}")
    log.info("backup_verified", backup_id=backup.id, tables=len(counts), hashed=len(hashes), **timings)
    return VerifiedCopy(backup=backup, staging=staging, url=url, checks=checks, timings=timings,
                        row_counts=staged_counts)


def compare(url: str, counts: dict[str, int], hashes: dict[str, str]
            ) -> tuple[dict[str, int], dict[str, dict[str, int | None]], list[str]]:
    """Staging's row counts, the tables whose count differs from (or is missing against) the snapshot's, and the
    hashed tables whose rows differ."""
    with connect(url) as conn:
        staged = row_counts(conn)
        staged_hashes = table_hashes(conn, [name for name in hashes if name in staged])
    mismatched = {t: {"recorded": n, "restored": staged.get(t)} for t, n in counts.items() if staged.get(t) != n}
    differing = [t for t, h in hashes.items() if t not in mismatched and staged_hashes.get(t) != h]
    return staged, mismatched, differing
