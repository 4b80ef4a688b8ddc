"""The stable per-service URL: switching backends never cuts an answer and moves kept-alive clients over."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from deploypipe.emulator.proxy import ServiceProxy


def _backend(name: str) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self):
            if self.path == "/slow":
                time.sleep(0.5)
            body = f"{name}{self.path}".encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture
def two():
    one, other = _backend("one"), _backend("two")
    proxy = ServiceProxy()
    yield proxy, one.server_address[1], other.server_address[1]
    proxy.close()
    one.shutdown()
    other.shutdown()


def test_without_a_live_instance_the_stable_url_answers_503(two):
    proxy, *_ = two
    assert httpx.get(proxy.url + "/").status_code == 503


def test_a_kept_alive_client_is_moved_to_the_new_backend_after_a_switch_without_an_error(two):
    proxy, one, other = two
    proxy.switch(one)
    with httpx.Client(base_url=proxy.url) as http:
        assert http.get("/").text == "one/"
        proxy.switch(other)
        assert proxy.wait_drained(one, 5.0)  # its idle connection was retired
        assert http.get("/").text == "two/"


def test_an_answer_in_flight_during_a_switch_is_finished_by_the_old_backend(two):
    proxy, one, other = two
    proxy.switch(one)
    result: list[str] = []
    slow = threading.Thread(target=lambda: result.append(httpx.get(proxy.url + "/slow", timeout=5).text))
    slow.start()
    deadline = time.monotonic() + 5
    while proxy.wait_drained(one, 0) and time.monotonic() < deadline:  # until the request reached the proxy
        time.sleep(0.01)
    proxy.switch(other)
    assert not proxy.wait_drained(one, 0.1)  # still answering
    slow.join(5)
    assert result == ["one/slow"] and proxy.wait_drained(one, 5.0)
    assert httpx.get(proxy.url + "/").text == "two/"
