"""labkit.core.http against tiny real servers in threads: answers, failures, proxies ignored."""

from __future__ import annotations

import http.server
import socket
import threading
from collections.abc import Iterator
from typing import ClassVar

import pytest

from labkit.core import http as labkit_http
from labkit.core.errors import HttpUnreachable, LabkitError


class Answers(http.server.BaseHTTPRequestHandler):
    seen: ClassVar[list[dict[str, str]]] = []

    def log_message(self, *args: object) -> None:
        pass

    def _reply(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        Answers.seen.append(
            {"method": self.command, "path": self.path, "body": self.rfile.read(length).decode(), **dict(self.headers)}
        )
        status = {"/missing": 404, "/broken": 500}.get(self.path, 200)
        body = b"x" * 100_000 if self.path == "/big" else b'{"path": "%s"}' % self.path.encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_GET = do_POST = do_HEAD = do_DELETE = _reply


@pytest.fixture
def server() -> Iterator[str]:
    Answers.seen = []
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Answers)
    threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{srv.server_address[1]}"
    finally:
        srv.shutdown()
        srv.server_close()


def test_an_answer_is_status_headers_and_body(server: str) -> None:
    answer = labkit_http.request("GET", f"{server}/v2/")
    assert answer.status == 200 and answer.content_type == "application/json"
    assert answer.header("content-type") == "application/json; charset=utf-8" and answer.header("X-None") == ""
    assert answer.json() == {"path": "/v2/"}


@pytest.mark.parametrize(("path", "status"), [("/missing", 404), ("/broken", 500)])
def test_error_statuses_are_answers_not_exceptions(server: str, path: str, status: int) -> None:
    assert labkit_http.request("GET", server + path).status == status
    assert labkit_http.status(server + path) == status


def test_headers_and_body_are_sent_and_no_accept_unless_asked(server: str) -> None:
    labkit_http.request("POST", f"{server}/api", headers={"Authorization": "Bearer t"}, data=b'{"a":1}')
    labkit_http.request("HEAD", f"{server}/v2/x")
    post, head = Answers.seen
    assert (post["method"], post["body"], post["Authorization"]) == ("POST", '{"a":1}', "Bearer t")
    # A registry answers a request without Accept with schema 1: none may be added behind the caller's back.
    assert "Accept" not in head and head["Connection"] == "close"


def test_limit_reads_only_the_start_of_a_body(server: str) -> None:
    assert len(labkit_http.request("GET", f"{server}/big", limit=1000).body) == 1000
    assert len(labkit_http.request("GET", f"{server}/big").body) == 100_000


def test_proxies_from_the_environment_are_not_used(server: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # A proxy that does not exist: were it used, the request would fail.
    for name in ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    assert labkit_http.request("GET", f"{server}/v2/").status == 200


def test_refused_is_one_labkit_error_that_says_so() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))  # bound but not listening: connections are refused
        url = f"http://127.0.0.1:{s.getsockname()[1]}/v2/"
        with pytest.raises(HttpUnreachable) as caught:
            labkit_http.request("GET", url, timeout=2)
        assert labkit_http.status(url) is None
    e = caught.value
    assert isinstance(e, LabkitError) and e.refused and e.url == url
    assert "Connection refused" in e.cause and "\n" not in str(e) and "HTTPConnectionPool" not in str(e)


def test_something_that_is_not_http_is_unreachable_but_not_refused() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()

        def speak_ssh() -> None:
            conn, _ = listener.accept()
            with conn:
                conn.recv(1024)
                conn.sendall(b"SSH-2.0-OpenSSH_9.2\r\n")

        threading.Thread(target=speak_ssh, daemon=True).start()
        with pytest.raises(HttpUnreachable) as caught:
            labkit_http.request("GET", f"http://127.0.0.1:{listener.getsockname()[1]}/v2/", timeout=2)
    assert not caught.value.refused and "SSH-2.0" in caught.value.cause


def test_a_silent_server_times_out_as_unreachable() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()  # accepts (the kernel does) but never answers
        with pytest.raises(HttpUnreachable) as caught:
            labkit_http.request("GET", f"http://127.0.0.1:{listener.getsockname()[1]}/", timeout=0.3)
    assert not caught.value.refused and "timed out" in caught.value.cause


def test_a_malformed_url_is_unreachable_not_a_crash() -> None:
    with pytest.raises(HttpUnreachable):
        labkit_http.request("GET", "http://")
