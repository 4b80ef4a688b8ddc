"""A real webhook receiver on 127.0.0.1 for the notify tests (imported by conftest.py and the test modules)."""

from __future__ import annotations

import json
import threading
from typing import Any, Iterator

import pytest
from helpers import LoopbackApp

__all__ = ["SECRET_PATH", "Receiver", "receiver"]

SECRET_PATH = "/services/T0001/B0002/s3cr3tW3bh00kT0ken"


class Receiver:
    """A tiny webhook receiver: records each POST and answers from a script of statuses (then 200)."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.statuses: list[int] = []
        self.hang = threading.Event()  # set = answer; cleared = hold the request until released
        self.hang.set()
        self.app = LoopbackApp(self._respond)
        self.url = f"{self.app.base}{SECRET_PATH}"

    @property
    def headers(self) -> dict[str, str]:
        """Headers added to every answer."""
        return self.app.headers

    @headers.setter
    def headers(self, value: dict[str, str]) -> None:
        self.app.headers = dict(value)

    def _respond(self, request: Any) -> tuple[int, bytes] | None:
        length = int(request.headers.get("content-length", 0))
        self.requests.append({"path": request.path, "content_type": request.headers.get("content-type"),
                              "body": json.loads(request.rfile.read(length))})
        if not self.hang.is_set():
            self.hang.wait(5)
            return None
        status = self.statuses.pop(0) if self.statuses else 200
        return status, b"ok" if status < 300 else b"invalid_token"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    rec = Receiver()
    yield rec
    rec.hang.set()
    rec.app.close()
