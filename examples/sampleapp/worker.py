"""The sample app's background worker: every few seconds it counts the notes and logs a heartbeat line.

It listens on nothing, so Render (and deploypipe) judge it by whether it keeps running: a crash is a
``server_failed`` event and its traceback is in the app log. Configuration: DATABASE_URL (required),
RENDER_GIT_COMMIT (set by Render), WORKER_INTERVAL_S (default 5).
"""

from __future__ import annotations

import os
import time

import psycopg


def count_notes(url: str) -> int | None:
    """How many notes there are, or None when the database cannot be reached right now."""
    try:
        with psycopg.connect(url, connect_timeout=2) as conn:
            row = conn.execute("select count(*) from notes").fetchone()
    except psycopg.Error:
        return None
    return int(row[0]) if row else 0


def main() -> None:
    url = os.environ["DATABASE_URL"]
    interval_s = float(os.environ.get("WORKER_INTERVAL_S", "5"))
    commit = os.environ.get("RENDER_GIT_COMMIT", "unknown")[:12]
    print(f"sampleapp worker started at commit {commit}", flush=True)
    while True:
        count = count_notes(url)
        print(f"heartbeat: {count} notes" if count is not None else "heartbeat: database not reachable, retrying",
              flush=True)
        time.sleep(interval_s)


if __name__ == "__main__":
    main()
