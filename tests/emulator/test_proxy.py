"""The stable per-service URL: each request goes to the instance live when it arrives, answers in flight finish on
the old one, messages keep their framing, and every request is recorded with who answered it."""

from __future__ import annotations

import hashlib
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from deploypipe.core.processes import free_port
from deploypipe.emulator.proxy import Served, ServiceProxy

HALF = 1024 * 1024
WAIT_S = 10.0  # a safety bound on waiting for an event, never a timed assertion


class Backend:
    """A tiny HTTP/1.1 instance; ``/slow`` and ``/big`` wait for the test's events half way through."""

    def __init__(self, name: str):
        self.name = name
        self.arrived, self.release = threading.Event(), threading.Event()  # /slow
        self.first_half_read, self.rest_was_awaited = threading.Event(), [False]  # /big
        backend = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def answer(self, status: int, body: bytes = b"", **headers: str) -> None:
                self.send_response(status)
                for name, value in {"Content-Length": str(len(body)), **headers}.items():
                    self.send_header(name, value)
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def do_GET(self) -> None:
                if self.path == "/slow":
                    backend.arrived.set()
                    backend.release.wait(WAIT_S)
                if self.path == "/big":
                    self.send_response(200)
                    self.send_header("Content-Length", str(2 * HALF))
                    self.end_headers()
                    self.wfile.write(b"a" * HALF)
                    self.wfile.flush()
                    backend.rest_was_awaited[0] = backend.first_half_read.wait(WAIT_S)
                    self.wfile.write(b"b" * HALF)
                elif self.path == "/chunked":
                    self.send_response(200)
                    self.send_header("Transfer-Encoding", "chunked")
                    self.end_headers()
                    for part in (b"one ", b"two ", b"three"):
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
                    self.wfile.write(b"0\r\n\r\n")
                elif self.path == "/empty":
                    self.answer(204, Connection="keep-alive")
                elif self.path == "/same":
                    self.answer(304)
                elif self.path == "/hang-up":
                    self.close_connection = True  # closes without a word
                else:
                    self.answer(200, f"{backend.name}{self.path}".encode())

            do_HEAD = do_GET

            def do_POST(self) -> None:
                if self.headers.get("Transfer-Encoding") == "chunked":
                    body = b""
                    while size := int(self.rfile.readline().split(b";")[0], 16):
                        body += self.rfile.read(size)
                        self.rfile.readline()
                    self.rfile.readline()
                else:
                    body = self.rfile.read(int(self.headers["Content-Length"]))
                self.answer(201, b"%s got %d bytes %s" % (backend.name.encode(), len(body),
                                                          hashlib.sha256(body).hexdigest()[:8].encode()))

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, args=(0.02,), daemon=True).start()

    def stop(self) -> None:
        self.release.set()
        self.first_half_read.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def two():
    one, other = Backend("one"), Backend("two")
    served: list[Served] = []
    proxy = ServiceProxy(on_request=served.append)
    yield proxy, one, other, served
    proxy.close()
    one.stop()
    other.stop()


def _sent(http: httpx.Client, method: str, path: str) -> tuple[httpx.Response, tuple[str, int]]:
    """The answer and the client's end of the connection it came on (read while that connection is open)."""
    answer = http.request(method, path)
    return answer, answer.extensions["network_stream"].get_extra_info("client_addr")


def test_a_kept_alive_client_reaches_the_new_instance_with_the_first_request_after_the_switch(two):
    proxy, one, other, served = two
    proxy.switch(one.port, instance="srv-1-aaaaa", deploy="dep-1")
    with httpx.Client(base_url=proxy.url, trust_env=False) as http:
        before, first = _sent(http, "GET", "/")
        proxy.switch(other.port, instance="srv-1-bbbbb", deploy="dep-2")
        after, second = _sent(http, "GET", "/")
    assert (before.text, after.text) == ("one/", "two/")
    assert first == second  # the same kept-alive connection
    assert [(s.instance, s.deploy) for s in served] == [("srv-1-aaaaa", "dep-1"), ("srv-1-bbbbb", "dep-2")]


def test_an_answer_in_flight_during_a_switch_is_finished_by_the_old_instance_which_then_drains(two):
    proxy, one, other, served = two
    proxy.switch(one.port, instance="old")
    result: list[str] = []
    slow = threading.Thread(target=lambda: result.append(httpx.get(proxy.url + "/slow", trust_env=False).text))
    slow.start()
    assert one.arrived.wait(WAIT_S)
    proxy.switch(other.port, instance="new")
    assert not proxy.wait_drained(one.port, 0)  # still answering
    assert httpx.get(proxy.url + "/", trust_env=False).text == "two/"  # meanwhile new requests go to the new one
    one.release.set()
    slow.join(WAIT_S)
    assert result == ["one/slow"] and proxy.wait_drained(one.port, WAIT_S)
    assert [(s.exchange.path, s.instance) for s in served] == [("/", "new"), ("/slow", "old")]


def test_a_large_answer_is_streamed_through_not_held_until_it_is_complete(two):
    proxy, one, _other, _served = two
    proxy.switch(one.port)
    with httpx.stream("GET", proxy.url + "/big", trust_env=False) as answer:
        chunks = answer.iter_bytes()
        body = next(chunks)
        one.first_half_read.set()  # the instance sends the second half only now
        body += b"".join(chunks)
    assert one.rest_was_awaited == [True]
    assert body == b"a" * HALF + b"b" * HALF


@pytest.mark.parametrize("content, headers", [
    (b"x" * (3 * HALF + 7), {}),
    (iter([b"chunk one,", b"chunk two"]), {}),  # an iterator goes chunked
], ids=["content-length", "chunked"])
def test_request_bodies_reach_the_instance_whole_in_either_framing(two, content, headers):
    proxy, one, _other, _served = two
    proxy.switch(one.port)
    whole = content if isinstance(content, bytes) else b"chunk one,chunk two"
    answer = httpx.post(proxy.url + "/notes", content=content, headers=headers, trust_env=False)
    assert answer.status_code == 201
    assert answer.text == f"one got {len(whole)} bytes {hashlib.sha256(whole).hexdigest()[:8]}"


def test_answers_without_a_body_and_chunked_answers_keep_their_framing_on_one_connection(two):
    proxy, one, _other, served = two
    proxy.switch(one.port)
    with httpx.Client(base_url=proxy.url, trust_env=False) as http:
        sent = [_sent(http, method, path) for method, path in [
            ("HEAD", "/page"), ("GET", "/empty"), ("GET", "/same"), ("GET", "/chunked"), ("GET", "/x")]]
    answers = [answer for answer, _ in sent]
    assert [(a.status_code, a.content) for a in answers] == [
        (200, b""), (204, b""), (304, b""), (200, b"one two three"), (200, b"one/x")]
    assert answers[0].headers["content-length"] == "8"  # what a GET would have carried
    assert len({connection for _, connection in sent}) == 1
    assert [(s.exchange.method, s.exchange.status) for s in served] == [
        ("HEAD", 200), ("GET", 204), ("GET", 304), ("GET", 200), ("GET", 200)]


def test_every_request_is_recorded_with_method_path_host_status_latency_instance_and_deploy(two):
    proxy, one, _other, served = two
    proxy.switch(one.port, instance="srv-1-aaaaa", deploy="dep-1")
    assert httpx.get(proxy.url + "/notes?page=2", trust_env=False).status_code == 200
    (seen,) = served  # recorded before the answer's last bytes went out: no waiting needed
    assert (seen.instance, seen.deploy) == ("srv-1-aaaaa", "dep-1")
    assert (seen.exchange.method, seen.exchange.path, seen.exchange.host, seen.exchange.status) == (
        "GET", "/notes", f"127.0.0.1:{proxy.port}", 200)
    assert seen.exchange.latency_ms > 0 and seen.exchange.started > 0


def test_without_a_live_instance_the_stable_url_answers_and_records_503_and_keeps_the_connection(two):
    proxy, one, _other, served = two
    with httpx.Client(base_url=proxy.url, trust_env=False) as http:
        refused, first = _sent(http, "GET", "/notes")
        proxy.switch(one.port)
        served_now, second = _sent(http, "GET", "/notes")
    assert (refused.status_code, served_now.status_code) == (503, 200)
    assert first == second
    assert [(s.exchange.status, s.instance) for s in served] == [(503, ""), (200, "")]


def test_an_instance_that_refuses_or_hangs_up_gets_a_recorded_502(two):
    proxy, one, _other, served = two
    with httpx.Client(base_url=proxy.url, trust_env=False) as http:
        proxy.switch(free_port(), instance="gone", deploy="dep-0")
        refused, first = _sent(http, "GET", "/")
        proxy.switch(one.port, instance="rude", deploy="dep-1")
        sent = [_sent(http, "GET", path) for path in ("/hang-up", "/after")]
    assert [refused.status_code, *(answer.status_code for answer, _ in sent)] == [502, 502, 200]
    assert {first, *(connection for _, connection in sent)} == {first}  # the client's connection stays usable
    assert [(s.exchange.path, s.exchange.status, s.instance) for s in served] == [
        ("/", 502, ""), ("/hang-up", 502, "rude"), ("/after", 200, "rude")]


def test_bytes_that_are_not_http_get_a_400_and_reach_no_instance(two):
    proxy, one, _other, served = two
    proxy.switch(one.port)
    with socket.create_connection(("127.0.0.1", proxy.port)) as raw:
        raw.sendall(b"HELLO THERE\r\n\r\n")
        assert raw.makefile("rb").readline().startswith(b"HTTP/1.1 400 ")
    assert served == []
