"""A real webhook receiver on 127.0.0.1 for the notify tests (imported by conftest.py and the test modules)."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Iterator

import pytest

__all__ = ["SECRET_PATH", "Receiver", "receiver"]

SECRET_PATH = "/services/T0001/B0002/s3cr3tW3bh00kT0ken"


class Receiver:
    """A tiny webhook receiver: records each POST and answers from a script of statuses (then 200)."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.statuses: list[int] = []
        self.headers: dict[str, str] = {}
        self.hang = threading.Event()  # set = answer; cleared = hold the request until released
        self.hang.set()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", 0))
                receiver.requests.append({"path": self.path, "content_type": self.headers.get("content-type"),
                                          "body": json.loads(self.rfile.read(length))})
                if not receiver.hang.is_set():
                    receiver.hang.wait(5)
                    return
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                self.send_response(status)
                for key, value in receiver.headers.items():
                    self.send_header(key, value)
                payload = b"ok" if status < 300 else b"invalid_token"
                self.send_header("content-length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}{SECRET_PATH}"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    rec = Receiver()
    thread = threading.Thread(target=rec.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield rec
    rec.hang.set()
    rec.server.shutdown()
    rec.server.server_close()
    thread.join(5)
