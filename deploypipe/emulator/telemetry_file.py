"""The local Render's requests and log lines kept across runs: one JSON-lines file, appended and compacted.

Every recorded request and log line is appended as one line the moment it is
recorded (opened, written, closed: nothing sits in a buffer, so a SIGKILLed
local Render loses at most the line being written). At start the file is read
back, a torn or unreadable line is skipped, and ``Telemetry`` rewrites the file
with only what its stores keep (their count and age bounds applied). It
rewrites it the same way (to a temporary file, then renamed over it) whenever
the file holds twice as many lines as the stores can keep, so the file never
holds more than ``2 × (max_requests + max_logs)`` lines.

    {"q": [at, resource, method, path, status, latency_ms, host, instance, deploy]}   a request
    {"l": [id, at_us, message, [[label, value], ...]]}                                a log line
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterable, Iterator

from deploypipe.emulator.telemetry import LogRec, RequestRec

__all__ = ["Record", "TelemetryFile"]

Record = RequestRec | LogRec


def _encode(rec: Record) -> str:
    if isinstance(rec, RequestRec):
        body: dict[str, list] = {"q": [rec.at, rec.resource, rec.method, rec.path, rec.status, rec.latency_ms,
                                       rec.host, rec.instance, rec.deploy]}
    else:
        body = {"l": [rec.id, rec.at_us, rec.message, [list(pair) for pair in rec.labels]]}
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")) + "\n"


def _decode(line: str) -> Record | None:
    try:
        body = json.loads(line)
        if "q" in body:
            at, resource, method, path, status, latency, host, instance, deploy = body["q"]
            return RequestRec(at=float(at), resource=str(resource), method=str(method), path=str(path),
                              status=int(status), latency_ms=float(latency), host=str(host),
                              instance=str(instance), deploy=str(deploy))
        log_id, at_us, message, labels = body["l"]
        return LogRec(id=str(log_id), at_us=int(at_us), message=str(message),
                      labels=tuple((str(key), str(value)) for key, value in labels))
    except (ValueError, TypeError, KeyError, AttributeError):
        return None


class TelemetryFile:
    """One append-only file of records; the caller serialises calls (``Telemetry`` holds its lock)."""

    def __init__(self, path: Path):
        self.path = path
        self.lines = 0  # lines in the file since the last rewrite

    def read(self) -> Iterator[Record]:
        """Every readable record, in the order it was written (nothing when the file does not exist)."""
        try:
            handle = self.path.open(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return
        with handle:
            for line in handle:
                rec = _decode(line)
                if rec is not None:
                    yield rec

    def append(self, rec: Record) -> None:
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(_encode(rec))
        self.lines += 1

    def rewrite(self, records: Iterable[Record]) -> None:
        """Replace the file by ``records`` (atomically: a crash leaves the old file or the new one)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_name(self.path.name + ".tmp")
        count = 0
        with temporary.open("w", encoding="utf-8") as handle:
            for rec in records:
                handle.write(_encode(rec))
                count += 1
        os.replace(temporary, self.path)
        self.lines = count
