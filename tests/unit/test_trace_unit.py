"""labkit.features.trace without a daemon: HTTP framing, hijack pass-through, the views, and lesson 04's checks.

The proxy runs for real here, in a thread, in front of a tiny fake daemon on a unix
socket that speaks exactly the framings the Docker API uses. The fake daemon and the
test client read HTTP with h11 directly, not with the framing code under test.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import h11
import pytest

from labkit.exercises import get
from labkit.exercises import lesson04_client_daemon_api as api
from labkit.exercises.machinery.model import Context
from labkit.features import trace
from labkit.features.trace import Call, Reader

ID = "c0ffee" + "0" * 58


# --- framing ----------------------------------------------------------------------------


class Pieces:
    """A socket stand-in that delivers bytes in exactly the pieces given, then the end."""

    def __init__(self, *pieces: bytes) -> None:
        self.pieces = [p for p in pieces if p]

    def recv(self, bufsize: int, /) -> bytes:
        return self.pieces.pop(0) if self.pieces else b""


def _readers(request: bytes, *response: bytes) -> tuple[Reader, Reader]:
    """A client's reader that has relayed ``request``, and a daemon's reader about to read ``response``."""
    requests, responses = Reader(Pieces(request), "requests"), Reader(Pieces(*response), "responses")
    event = requests.next_event()
    assert isinstance(event, h11.Request)
    responses.mirror(event)
    requests.take()
    trace.relay_body(requests, lambda data: None, responses)
    return requests, responses


def _relay_response(requests: Reader, responses: Reader) -> tuple[h11.Response, list[bytes], bytes]:
    """Relay one response as the proxy does: (its head, the pieces forwarded, the decoded body)."""
    head = responses.next_event()
    assert isinstance(head, h11.Response)
    requests.mirror(head)
    sent = [responses.take()]
    capture = bytearray()
    trace.relay_body(responses, sent.append, requests, capture=capture)
    return head, sent, bytes(capture)


GET = b"GET /v1.41/containers/json HTTP/1.1\r\nHost: docker\r\n\r\n"
CHUNKED = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nX-Trailer: 1\r\n\r\n"
)
NEXT = b"HTTP/1.1 204 No Content\r\n\r\n"


def test_heads_are_read_by_h11() -> None:
    requests = Reader(
        Pieces(b"POST /v1.41/containers/create?name=x HTTP/1.1\r\nHost: docker\r\nContent-Length: 2\r\n\r\n{}"),
        "requests",
    )
    request = requests.next_event()
    assert isinstance(request, h11.Request)
    assert (request.method, request.target, trace.header(request, "Content-Length")) == (
        b"POST",
        b"/v1.41/containers/create?name=x",
        "2",
    )
    assert requests.take().endswith(b"\r\n\r\n")  # the head only: the body is not framed yet
    _, responses = _readers(GET, b"HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n")
    response = responses.next_event()
    assert isinstance(response, h11.Response) and (response.status_code, response.reason) == (200, b"")
    with pytest.raises(trace.ProtocolError):
        Reader(Pieces(b"\x16\x03\x01 garbage\r\n\r\n"), "requests").next_event()


def _splits(wire: bytes) -> list[tuple[bytes, ...]]:
    """The wire in two pieces at every boundary, and one byte at a time."""
    return [(wire[:i], wire[i:]) for i in range(1, len(wire))] + [tuple(wire[i : i + 1] for i in range(len(wire)))]


@pytest.mark.parametrize("pieces", _splits(CHUNKED + NEXT), ids=lambda p: f"{len(p)}:{len(p[0])}")
def test_chunked_response_split_anywhere_is_forwarded_unchanged(pieces: tuple[bytes, ...]) -> None:
    requests, responses = _readers(GET, *pieces)
    head, sent, body = _relay_response(requests, responses)
    assert head.status_code == 200 and body == b"hello world"
    assert b"".join(sent) == CHUNKED  # chunk sizes, extension, trailer and CRLFs as received
    assert requests.next_cycle() and responses.next_cycle()
    assert responses.take_all() == NEXT[: sum(len(p) for p in pieces) - len(CHUNKED)] or not responses.take_all()
    if len(pieces) > 2:  # one byte at a time: the body moved on while it arrived, not only at its end
        assert len([s for s in sent if s]) > 3


def test_length_body_keeps_what_follows_for_the_next_message() -> None:
    requests, responses = _readers(GET, b'HTTP/1.1 201 Created\r\nContent-Length: 10\r\n\r\n{"Id":"x"}' + NEXT)
    head, sent, body = _relay_response(requests, responses)
    assert head.status_code == 201 and body == b'{"Id":"x"}' and sent[-1].endswith(b'{"Id":"x"}')
    assert requests.next_cycle() and responses.next_cycle()
    assert responses.take_all() == NEXT


def test_a_body_without_framing_runs_to_the_close_and_ends_the_connection() -> None:
    requests, responses = _readers(GET, b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n", b"all of ", b"it")
    _, sent, body = _relay_response(requests, responses)
    assert body == b"all of it" and b"".join(sent).endswith(b"\r\n\r\nall of it")
    assert not responses.next_cycle()


def test_a_head_answer_has_no_body_even_with_a_length() -> None:
    # nothing follows the head: reading a body of 2 bytes would find the end instead and fail
    requests, responses = _readers(
        b"HEAD /_ping HTTP/1.1\r\nHost: docker\r\n\r\n", b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n"
    )
    _, sent, body = _relay_response(requests, responses)
    assert body == b"" and b"".join(sent) == b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n"
    assert requests.next_cycle() and responses.next_cycle()


def test_connection_close_ends_the_connection() -> None:
    requests, responses = _readers(GET, b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\n{}")
    _relay_response(requests, responses)
    assert not (requests.next_cycle() and responses.next_cycle())


def test_truncated_length_body_is_a_protocol_error() -> None:
    requests, responses = _readers(GET, b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
    with pytest.raises(trace.ProtocolError):
        _relay_response(requests, responses)


def test_pipelined_requests_are_framed_one_at_a_time() -> None:
    wire = [
        GET,
        b"POST /v1.41/build HTTP/1.1\r\nHost: docker\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
        b"HEAD /_ping HTTP/1.1\r\nHost: docker\r\n\r\n",
    ]
    requests = Reader(Pieces(b"".join(wire)), "requests")  # all three in one piece
    for expected in wire:
        request = requests.next_event()
        assert isinstance(request, h11.Request)
        sent = [requests.take()]
        responses = Reader(Pieces(), "responses")  # each exchange told to a daemon's reader, as the proxy does
        responses.mirror(request)
        trace.relay_body(requests, sent.append, responses)
        assert b"".join(sent) == expected
        requests.mirror(h11.Response(status_code=204, headers=[]))
        requests.mirror(h11.EndOfMessage())
        assert requests.next_cycle()
    assert isinstance(requests.next_event(), h11.ConnectionClosed)


@pytest.mark.parametrize(
    ("status", "headers", "hijacked"),
    [
        (101, [("Connection", "Upgrade"), ("Upgrade", "tcp")], True),
        (200, [("Content-Type", "application/vnd.docker.raw-stream")], True),
        (200, [("Content-Type", "application/vnd.docker.multiplexed-stream")], True),
        # logs use the stream content type but are an ordinary chunked body
        (200, [("Content-Type", "application/vnd.docker.raw-stream"), ("Transfer-Encoding", "chunked")], False),
        (200, [("Content-Type", "application/json")], False),
    ],
)
def test_hijack_detection(status: int, headers: list[tuple[str, str]], hijacked: bool) -> None:
    event = (
        h11.InformationalResponse(status_code=status, headers=headers)
        if status < 200
        else h11.Response(status_code=status, headers=headers)
    )
    assert trace.is_hijack(event) is hijacked


def test_an_upgrade_stops_parsing_and_hands_over_what_was_read_ahead() -> None:
    upgrade = b"POST /v1.41/containers/x/attach?stream=1 HTTP/1.1\r\nHost: docker\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n"
    answer = b"HTTP/1.1 101 UPGRADED\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n"
    requests, responses = _readers(upgrade + b"typed early", answer + b"\x01\x00raw")
    response = responses.next_event()
    assert isinstance(response, h11.InformationalResponse) and trace.is_hijack(response)
    assert requests.take_all() == b"typed early"
    assert responses.take_all() == answer + b"\x01\x00raw"


def test_gate_holds_a_small_body_until_it_is_recorded() -> None:
    sent: list[bytes] = []
    order: list[str] = []

    def send(data: bytes) -> None:
        sent.append(data)
        order.append("sent")

    gate = trace.Gate(send, hold=True, on_release=lambda: order.append("recorded"), limit=20)
    gate(b"1e\r\n{")
    gate(b'"x":1}')
    assert sent == []
    gate.release()
    gate(b"0\r\n\r\n")
    assert order == ["recorded", "sent", "sent"] and b"".join(sent) == b'1e\r\n{"x":1}0\r\n\r\n'
    big: list[bytes] = []
    gate = trace.Gate(big.append, hold=True, limit=10)
    gate(b"0123456789")
    gate(b"X")  # past the limit: no longer a small answer, it streams
    assert big == [b"0123456789X"]
    gate(b"more")
    assert big[-1] == b"more"
    passing: list[bytes] = []
    trace.Gate(passing.append, hold=False)(b"at once")
    assert passing == [b"at once"]


# --- the proxy in front of a fake daemon -----------------------------------------------


def _json(status: str, body: dict[str, object], chunked: bool = False) -> bytes:
    data = json.dumps(body).encode()
    if chunked:
        return f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n".encode() + (
            f"{len(data):x}\r\n".encode() + data + b"\r\n0\r\n\r\n"
        )
    return f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n".encode() + data


#: A chunked pull progress stream, sent by the fake daemon one byte at a time.
PROGRESS = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    + b"".join(
        f"{len(line):x}\r\n".encode() + line + b"\r\n"
        for line in (json.dumps({"status": f"step {n}"}).encode() + b"\r\n" for n in range(3))
    )
    + b"0\r\n\r\n"
)


def _read_request(conn: socket.socket, buffered: bytes) -> tuple[h11.Request | None, bytes, bytes]:
    """(the request, its body, what follows it) read with a fresh h11 server; None when the client closed."""
    parser = h11.Connection(h11.SERVER)
    if buffered:  # b"" would tell h11 the client closed
        parser.receive_data(buffered)
    request, body = None, b""
    while True:
        event = parser.next_event()
        if event is h11.NEED_DATA:
            parser.receive_data(conn.recv(65536))
        elif isinstance(event, h11.ConnectionClosed):
            return None, b"", b""
        elif isinstance(event, h11.Request):
            request = event
        elif isinstance(event, h11.Data):
            body += event.data
        elif isinstance(event, h11.EndOfMessage):
            return request, body, parser.trailing_data[0]


def _fake_daemon_connection(
    conn: socket.socket, gates: dict[str, threading.Event], early: list[bytes], seen: list[str] | None = None
) -> None:
    """Answer like dockerd: keep-alive JSON, chunked streams, a wait, and two kinds of hijack.

    ``early`` collects any bytes that arrived before the request they follow was answered;
    ``seen`` every request's method and target, as the daemon received it.
    """
    buffered = b""
    try:
        while True:
            head, body, buffered = _read_request(conn, buffered)
            if head is None:
                return
            if seen is not None:
                seen.append(f"{head.method.decode()} {head.target.decode()}")
            if buffered and not trace.header(head, "Upgrade") and "/attach" not in head.target.decode():
                early.append(buffered)
            target = head.target.decode()
            path = target if "fromImage" in target else target.split("?", 1)[0]
            if path == "/_ping":
                ok = b"" if head.method == b"HEAD" else b"OK"  # a HEAD answer has the length, not the body
                conn.sendall(b"HTTP/1.1 200 OK\r\nApi-Version: 1.41\r\nContent-Length: 2\r\n\r\n" + ok)
            elif path.endswith("/containers/create") and b"missing" in body:
                conn.sendall(_json("404 Not Found", {"message": "No such image: missing:latest"}))
            elif path.endswith("/containers/create"):
                conn.sendall(_json("201 Created", {"Id": ID, "Warnings": []}, chunked=True))
            elif path.endswith("/images/create?fromImage=x"):
                for byte in range(len(PROGRESS)):
                    conn.sendall(PROGRESS[byte : byte + 1])
            elif path.endswith("/wait"):  # the head at once, the exit code when the container ends
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n")
                gates["exited"].wait(10)
                conn.sendall(b'1e\r\n{"Error":null,"StatusCode":3}\n\r\n0\r\n\r\n')
            elif path.endswith("/start"):
                conn.sendall(b"HTTP/1.1 204 No Content\r\n\r\n")
            elif path.endswith("/attach") or "/exec/" in path:
                if trace.header(head, "Upgrade"):
                    answer = b"HTTP/1.1 101 UPGRADED\r\nContent-Type: application/vnd.docker.raw-stream\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n"
                else:
                    answer = b"HTTP/1.1 200 OK\r\nContent-Type: application/vnd.docker.raw-stream\r\n\r\n"
                conn.sendall(answer + b"ready:")  # the container speaks first, like a shell prompt
                if buffered:
                    conn.sendall(buffered.upper())
                while data := conn.recv(65536):  # echo until the client half-closes
                    conn.sendall(data.upper())
                conn.sendall(b":bye")
                return
            else:
                conn.sendall(_json("404 Not Found", {"message": "page not found"}))
    except OSError:
        pass
    finally:
        conn.close()


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """A folder with a short path: unix socket paths must fit in 107 bytes."""
    path = Path(tempfile.mkdtemp(prefix="lkt-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


Proxied = tuple[Callable[[], socket.socket], Path, dict[str, threading.Event], list[bytes]]


@dataclass
class FakeDaemon:
    """The fake daemon's socket, its gates, and what it saw: bytes sent early, requests, connections."""

    path: Path
    gates: dict[str, threading.Event] = field(default_factory=lambda: {"exited": threading.Event()})
    early: list[bytes] = field(default_factory=list)
    seen: list[str] = field(default_factory=list)
    connections: int = 0


@pytest.fixture
def fake_daemon(short_dir: Path) -> Iterator[FakeDaemon]:
    daemon = FakeDaemon(short_dir / "daemon.sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(daemon.path))
    server.listen(8)

    def serve() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            daemon.connections += 1
            args = (conn, daemon.gates, daemon.early, daemon.seen)
            threading.Thread(target=_fake_daemon_connection, args=args, daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    yield daemon
    daemon.gates["exited"].set()
    server.close()


@pytest.fixture
def proxied(short_dir: Path, fake_daemon: FakeDaemon) -> Iterator[Proxied]:
    log = short_dir / "trace.jsonl"
    proxy = trace.Proxy(f"unix://{short_dir / 'proxy.sock'}", f"unix://{fake_daemon.path}", log)
    proxy.bind()
    threading.Thread(target=proxy.serve_forever, daemon=True).start()

    def connect() -> socket.socket:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(5)
        sock.connect(str(short_dir / "proxy.sock"))
        return sock

    yield connect, log, fake_daemon.gates, fake_daemon.early
    fake_daemon.gates["exited"].set()
    proxy.close()


class _Client:
    """Reads the proxy's answers with h11, keeping the raw bytes too."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffered = b""
        self.raw = b""  # the bytes of the last answer, as received

    def head(self, method: str = "GET") -> tuple[h11.Connection, h11.Response]:
        self.raw = self.buffered
        parser = h11.Connection(h11.CLIENT)
        parser.send(h11.Request(method=method, target="/", headers=[("Host", "docker")]))
        parser.send(h11.EndOfMessage())
        if self.buffered:
            parser.receive_data(self.buffered)
        while not isinstance(event := parser.next_event(), h11.Response):
            assert event is h11.NEED_DATA, event
            data = self.sock.recv(65536)
            self.raw += data
            parser.receive_data(data)
        return parser, event

    def response(self, method: str = "GET") -> tuple[int, bytes]:
        parser, head = self.head(method)
        body = b""
        while not isinstance(event := parser.next_event(), h11.EndOfMessage):
            if event is h11.NEED_DATA:
                data = self.sock.recv(65536)
                self.raw += data
                parser.receive_data(data)
            elif isinstance(event, h11.Data):
                body += event.data
        self.buffered = parser.trailing_data[0]
        return head.status_code, body


def test_keep_alive_requests_are_each_recorded(proxied: Proxied) -> None:
    connect, log, _, _ = proxied
    sock = connect()
    client = _Client(sock)
    sock.sendall(b"HEAD /_ping HTTP/1.1\r\nHost: docker\r\n\r\n")
    assert client.response("HEAD") == (200, b"")
    body = b'{"Image":"missing"}'
    sock.sendall(
        b"POST /v1.41/containers/create HTTP/1.1\r\nHost: docker\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
    )
    assert client.response("POST")[0] == 404
    sock.sendall(b"POST /v1.41/images/create?fromImage=x HTTP/1.1\r\nHost: docker\r\nContent-Length: 0\r\n\r\n")
    status, progress = client.response("POST")
    assert status == 200 and progress.count(b'"status"') == 3  # the chunked stream arrived whole
    assert client.raw == PROGRESS  # sent a byte at a time, forwarded unchanged
    sock.sendall(
        b"POST /v1.41/containers/create HTTP/1.1\r\nHost: docker\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n"
    )
    assert client.response("POST")[0] == 201
    sock.close()
    calls = trace.load(log)
    assert [(c.method, c.route, c.status) for c in calls] == [
        ("HEAD", "/_ping", 200),
        ("POST", "/containers/create", 404),
        ("POST", "/images/create", 200),
        ("POST", "/containers/create", 201),
    ]
    assert {c.conn for c in calls} == {1} and [c.seq for c in calls] == [1, 2, 3, 4]
    assert calls[1].message == "No such image: missing:latest" and calls[3].id == ID
    assert calls[1].api == "1.41" and calls[0].api is None


def test_pipelined_requests_are_answered_in_order_and_each_recorded(proxied: Proxied) -> None:
    connect, log, _, early = proxied
    sock = connect()
    client = _Client(sock)
    sock.sendall(
        b"GET /_ping HTTP/1.1\r\nHost: docker\r\n\r\n"
        b"POST /v1.41/containers/create HTTP/1.1\r\nHost: docker\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n"
        b'POST /v1.41/containers/create HTTP/1.1\r\nHost: docker\r\nContent-Length: 19\r\n\r\n{"Image":"missing"}'
        b"GET /v1.41/nowhere HTTP/1.1\r\nHost: docker\r\n\r\n"
    )
    assert [client.response()[0] for _ in range(4)] == [200, 201, 404, 404]
    assert early == []  # the daemon had each request only once the one before was answered
    sock.close()
    calls = trace.load(log)
    assert [(c.seq, c.method, c.route, c.status) for c in calls] == [
        (1, "GET", "/_ping", 200),
        (2, "POST", "/containers/create", 201),
        (3, "POST", "/containers/create", 404),
        (4, "GET", "/nowhere", 404),
    ]
    assert calls[1].id == ID and calls[2].message == "No such image: missing:latest"


def test_a_wait_head_passes_at_once_and_its_exit_code_is_recorded_before_the_body(proxied: Proxied) -> None:
    connect, log, gates, _ = proxied
    sock = connect()
    client = _Client(sock)
    sock.sendall(
        b"POST /v1.41/containers/"
        + ID.encode()
        + b"/wait?condition=next-exit HTTP/1.1\r\nHost: docker\r\nContent-Length: 0\r\n\r\n"
    )
    parser, head = client.head("POST")  # the CLI waits for this head before it starts the container
    assert head.status_code == 200 and trace.load(log) == []
    gates["exited"].set()
    while not isinstance(event := parser.next_event(), h11.Data):
        parser.receive_data(sock.recv(65536))
    (call,) = trace.load(log)  # the moment the client has the exit code, the log has it too
    assert json.loads(event.data)["StatusCode"] == 3 and call.exit == 3 and call.status == 200
    sock.close()


@pytest.mark.parametrize("upgrade", [True, False], ids=["101-upgrade", "200-raw-stream"])
def test_hijacked_stream_passes_both_ways_untouched(proxied: Proxied, upgrade: bool) -> None:
    connect, log, _, _ = proxied
    sock = connect()
    extra = b"Connection: Upgrade\r\nUpgrade: tcp\r\n" if upgrade else b""
    # a ping first on the same connection, and stdin typed before the answer to the attach
    sock.sendall(b"GET /_ping HTTP/1.1\r\nHost: docker\r\n\r\n")
    client = _Client(sock)
    assert client.response() == (200, b"OK")
    sock.sendall(
        b"POST /v1.41/containers/"
        + ID.encode()
        + b"/attach?stream=1&stdin=1 HTTP/1.1\r\nHost: docker\r\n"
        + extra
        + b"\r\nearly "
    )
    received = b""
    while b"\r\n\r\n" not in received:
        received += sock.recv(65536)
    head, received = received.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 101" if upgrade else b"HTTP/1.1 200")
    sock.sendall(b"echo this\r\n\x00\x01binary")
    sock.shutdown(socket.SHUT_WR)  # stdin ends; output must still arrive
    while data := sock.recv(65536):
        received += data
    assert received == b"ready:EARLY ECHO THIS\r\n\x00\x01BINARY:bye"
    ping, call = trace.load(log)
    assert ping.route == "/_ping" and not ping.hijacked
    assert call.hijacked and call.route == "/containers/{id}/attach" and call.seq == 2


def test_a_client_that_breaks_http_is_dropped_and_its_calls_so_far_kept(proxied: Proxied) -> None:
    connect, log, _, _ = proxied
    sock = connect()
    client = _Client(sock)
    sock.sendall(b"GET /_ping HTTP/1.1\r\nHost: docker\r\n\r\n")
    assert client.response()[0] == 200
    sock.sendall(b"\x16\x03\x01 not http\r\n\r\n")
    assert sock.recv(100) == b""  # closed
    assert [c.route for c in trace.load(log)] == ["/_ping"]


def test_tcp_listener_is_loopback_only_and_tls_only(short_dir: Path, credentials: Path) -> None:
    with pytest.raises(trace.LabkitError, match=r"127\.0\.0\.1 only"):
        trace.Proxy("tcp://0.0.0.0:0", "unix:///nonexistent", short_dir / "log", tls=credentials).bind()
    with pytest.raises(trace.LabkitError, match="only with TLS"):
        trace.Proxy("tcp://127.0.0.1:0", "unix:///nonexistent", short_dir / "log").bind()
    proxy = trace.Proxy("tcp://127.0.0.1:0", "unix:///nonexistent", short_dir / "log", tls=credentials)
    proxy.bind()
    try:
        assert proxy.address.startswith("tcp://127.0.0.1:")
    finally:
        proxy.close()


def test_unix_socket_is_private_and_removed_on_close(short_dir: Path) -> None:
    path = short_dir / "p.sock"
    proxy = trace.Proxy(f"unix://{path}", "unix:///nonexistent", short_dir / "log")
    proxy.bind()
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    proxy.close()
    assert not path.exists()


def test_busy_socket_path_is_one_readable_error(short_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    busy = short_dir / "busy.sock"
    holder = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    holder.bind(str(busy))
    holder.listen(1)
    try:
        with pytest.raises(trace.LabkitError, match="in use by another program"):
            trace._prepare_unix(busy)
    finally:
        holder.close()
    trace._prepare_unix(busy)  # nobody listens any more: a stale file is cleared
    assert not busy.exists()


def test_cli_errors_are_one_line(short_dir: Path) -> None:
    env = {**os.environ, "LABKIT_STATE_DIR": str(short_dir / "state"), "DOCKER_HOST": "unix:///nonexistent.sock"}
    proc = subprocess.run(
        [sys.executable, "-m", "labkit", "trace", "start"],
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
        check=False,
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().count("\n") == 0 and "socket not found" in proc.stderr
    proc = subprocess.run(
        [sys.executable, "-m", "labkit", "trace", "host"],
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
        check=False,
    )
    assert proc.returncode == 2 and "no trace proxy is running" in proc.stderr


# --- who may use the proxy: TLS on TCP, and no browser's requests -----------------------


@pytest.fixture(scope="module")
def credentials(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One start's TLS files (openssl makes them in a fraction of a second)."""
    return trace.tls.make_credentials(tmp_path_factory.mktemp("trace") / "tls")


TlsProxied = tuple[Callable[..., ssl.SSLSocket], int, Path, FakeDaemon]


@pytest.fixture
def tls_proxied(short_dir: Path, fake_daemon: FakeDaemon, credentials: Path) -> Iterator[TlsProxied]:
    log = short_dir / "trace.jsonl"
    proxy = trace.Proxy("tcp://127.0.0.1:0", f"unix://{fake_daemon.path}", log, tls=credentials)
    proxy.bind()
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    port = int(proxy.address.rsplit(":", 1)[1])

    def connect(certs: Path | None = credentials, hostname: str = "127.0.0.1") -> ssl.SSLSocket:
        context = ssl.create_default_context(cafile=str(credentials / "ca.pem"))  # the server's name is checked
        if certs is not None:
            context.load_cert_chain(str(certs / "cert.pem"), str(certs / "key.pem"))
        return context.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=5), server_hostname=hostname)

    yield connect, port, log, fake_daemon
    proxy.close()


def _refused_at_handshake(sock: ssl.SSLSocket, port: int) -> bool:
    """True when the server ends a TLS connection instead of answering a request on it.

    In TLS 1.3 the client's handshake ends before the server has checked the client's
    certificate, so the refusal (an alert, or the connection closed) comes on the first read.
    """
    try:
        sock.sendall(f"GET /_ping HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
        return sock.recv(100) == b""
    except (ssl.SSLError, ConnectionError):
        return True
    finally:
        sock.close()


def test_credentials_are_private_and_the_ca_key_is_gone(credentials: Path) -> None:
    assert oct(credentials.stat().st_mode & 0o777) == "0o700"
    names = sorted(p.name for p in credentials.iterdir())
    assert names == ["ca.pem", "cert.pem", "key.pem", "server-cert.pem", "server-key.pem"]
    assert {oct(p.stat().st_mode & 0o777) for p in credentials.iterdir()} == {"0o600"}


def test_tls_client_with_the_certificate_is_relayed_and_names_are_checked(tls_proxied: TlsProxied) -> None:
    connect, port, log, daemon = tls_proxied
    for hostname in ("127.0.0.1", "localhost"):  # both are in the server's certificate
        with connect(hostname=hostname) as sock:
            client = _Client(sock)  # type: ignore[arg-type]
            sock.sendall(f"GET /_ping HTTP/1.1\r\nHost: {hostname}:{port}\r\n\r\n".encode())
            assert client.response() == (200, b"OK")
    assert [c.route for c in trace.load(log)] == ["/_ping", "/_ping"] and daemon.seen == ["GET /_ping"] * 2


def test_tls_hijacked_stream_passes_both_ways_and_half_closes(tls_proxied: TlsProxied) -> None:
    connect, port, log, _ = tls_proxied
    sock = connect()
    sock.sendall(
        f"POST /v1.41/containers/{ID}/attach?stream=1&stdin=1 HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n".encode()
        + b"Connection: Upgrade\r\nUpgrade: tcp\r\n\r\nearly "
    )
    received = b""
    while b"\r\n\r\n" not in received:
        received += sock.recv(65536)
    head, received = received.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 101")
    sock.sendall(b"echo this\r\n\x00\x01binary" * 1000)  # many records, while the answer streams back
    socket.socket.shutdown(sock, socket.SHUT_WR)  # stdin ends at TCP level, as the docker CLI does under TLS
    while data := sock.recv(65536):
        received += data
    sock.close()
    assert received == b"ready:EARLY " + b"ECHO THIS\r\n\x00\x01BINARY" * 1000 + b":bye"
    (call,) = trace.load(log)
    assert call.hijacked and call.route == "/containers/{id}/attach"


def test_tls_without_a_client_certificate_is_refused_before_the_daemon(tls_proxied: TlsProxied) -> None:
    connect, port, log, daemon = tls_proxied
    assert _refused_at_handshake(connect(certs=None), port)
    assert daemon.connections == 0 and trace.load(log) == []


def test_a_certificate_from_another_start_is_refused(tls_proxied: TlsProxied, short_dir: Path) -> None:
    connect, port, _, daemon = tls_proxied
    other = trace.tls.make_credentials(short_dir / "other")
    assert _refused_at_handshake(connect(certs=other), port)
    assert daemon.connections == 0


def test_plain_http_on_the_tls_port_gets_no_answer(tls_proxied: TlsProxied) -> None:
    _, port, log, daemon = tls_proxied
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(f"GET /_ping HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
        answer = b""
        with contextlib.suppress(ConnectionError):
            while data := sock.recv(65536):
                answer += data
    assert not answer.startswith(b"HTTP/") and daemon.connections == 0 and trace.load(log) == []


def test_a_silent_client_does_not_hold_up_the_others(tls_proxied: TlsProxied) -> None:
    connect, port, _, _ = tls_proxied
    # the first connects and never says hello; the second is served all the same
    with socket.create_connection(("127.0.0.1", port), timeout=5), connect() as sock:
        sock.sendall(f"GET /_ping HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
        assert _Client(sock).response() == (200, b"OK")  # type: ignore[arg-type]


_START = f"POST /v1.41/containers/{ID}/start HTTP/1.1\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n"


@pytest.mark.parametrize(
    ("headers", "why"),
    [
        ("Origin: http://evil.example\r\n", "web browser's request (it carries Origin)"),
        ("Origin: null\r\n", "web browser's request (it carries Origin)"),
        ("Sec-Fetch-Site: cross-site\r\n", "it carries Sec-Fetch-Site"),
        ("Host: evil.example:{port}\r\n", "Host evil.example:{port} is not the proxy's address"),
        ("Host: 127.0.0.1\r\n", "Host 127.0.0.1 is not the proxy's address"),
    ],
    ids=["origin", "origin-null", "sec-fetch", "rebinding", "no-port"],
)
def test_tls_proxy_refuses_browsers_and_other_hosts(tls_proxied: TlsProxied, headers: str, why: str) -> None:
    connect, port, log, daemon = tls_proxied
    host = "" if headers.startswith("Host") else f"Host: 127.0.0.1:{port}\r\n"
    with connect() as sock:
        sock.sendall((_START + host + headers.format(port=port) + "\r\n{}").encode())
        status, body = _Client(sock).response("POST")  # type: ignore[arg-type]
        assert sock.recv(100) == b""  # and the connection is closed
    assert status == 403 and why.format(port=port) in json.loads(body)["message"]
    assert daemon.seen == []  # nothing reached the daemon
    (call,) = trace.load(log)
    assert call.refused and call.status == 403 and call.route == "/containers/{id}/start"
    assert trace.step_of(call) == (None, "refused by the proxy")


def test_unix_socket_refuses_browsers_but_takes_any_host(proxied: Proxied, fake_daemon: FakeDaemon) -> None:
    connect, log, _, _ = proxied
    for host in ("docker", "api.moby.localhost", "localhost"):  # what the CLI, newer CLIs and curl send
        with connect() as sock:
            sock.sendall(f"GET /_ping HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
            assert _Client(sock).response() == (200, b"OK")
    with connect() as sock:
        sock.sendall((_START + "Host: docker\r\nOrigin: http://evil.example\r\n\r\n{}").encode())
        assert _Client(sock).response("POST")[0] == 403
    assert fake_daemon.seen == ["GET /_ping"] * 3
    assert [c.status for c in trace.load(log)] == [200, 200, 200, 403]


def test_starting_from_a_shell_that_points_at_the_tcp_proxy_is_one_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """After `eval "$(labkit trace env)"`, a second start would relay to the proxy itself."""
    monkeypatch.setenv("DOCKER_HOST", "tcp://127.0.0.1:23750")
    monkeypatch.setenv("DOCKER_TLS_VERIFY", "1")
    monkeypatch.setenv("DOCKER_CERT_PATH", str(trace.tls_folder()))
    with pytest.raises(trace.LabkitError, match="points at the trace proxy itself") as caught:
        trace.start(tcp=23751)
    assert "DOCKER_CERT_PATH" in caught.value.fix


def test_refusal_is_decided_from_the_head_alone() -> None:
    hosts = frozenset({"127.0.0.1:2375", "localhost:2375"})

    def request(*headers: tuple[str, str]) -> h11.Request:
        return h11.Request(method="GET", target="/version", headers=list(headers))

    assert trace.refusal(request(("Host", "127.0.0.1:2375")), hosts) is None
    assert trace.refusal(request(("Host", "LocalHost:2375")), hosts) is None
    assert trace.refusal(request(("Host", "docker")), None) is None
    assert trace.refusal(request(("Host", "docker"), ("Origin", "http://x")), None) is not None
    assert "Host" in str(trace.refusal(request(("Host", "127.0.0.1:2376")), hosts))


def test_status_names_every_variable_the_cli_needs() -> None:
    unix = trace.TraceStatus(True, "unix:///s/trace/docker.sock", upstream="unix:///var/run/docker.sock")
    assert unix.env == {"DOCKER_HOST": "unix:///s/trace/docker.sock"}
    # what lesson 04 shows, unchanged
    assert str(unix) == "recording proxy running: DOCKER_HOST=unix:///s/trace/docker.sock → unix:///var/run/docker.sock"
    tcp = trace.TraceStatus(True, "tcp://127.0.0.1:23750", upstream="unix:///d.sock", cert_path="/my state/tls")
    assert tcp.shell_env == "DOCKER_HOST=tcp://127.0.0.1:23750 DOCKER_TLS_VERIFY=1 DOCKER_CERT_PATH='/my state/tls'"
    assert str(tcp).startswith(f"recording proxy running: {tcp.shell_env} → ")
    assert tcp.to_dict()["env"]["DOCKER_TLS_VERIFY"] == "1" and trace.TraceStatus(False).env == {}


# --- views ------------------------------------------------------------------------------


def _run_calls(start_first: bool = False) -> list[Call]:
    cid = "/v1.41/containers/" + ID
    wait = Call(1, 5, 0.50, "POST", cid + "/wait?condition=removed", "1.41", 200, "OK")
    start = Call(3, 1, 0.49 if start_first else 0.51, "POST", cid + "/start", "1.41", 204, "No Content")
    return [
        Call(1, 1, 0.01, "HEAD", "/_ping", None, 200, "OK"),
        Call(
            1,
            2,
            0.02,
            "POST",
            "/v1.41/containers/create",
            "1.41",
            404,
            "Not Found",
            message="No such image: hello-world:latest",
        ),
        Call(
            1,
            3,
            0.03,
            "POST",
            "/v1.41/images/create?fromImage=docker.io%2Flibrary%2Fhello-world&tag=latest",
            "1.41",
            200,
            "OK",
        ),
        Call(1, 4, 0.40, "POST", "/v1.41/containers/create", "1.41", 201, "Created", id=ID),
        Call(2, 1, 0.45, "POST", cid + "/attach?stderr=1&stdout=1&stream=1", "1.41", 101, "UPGRADED", hijacked=True),
        wait,
        start,
    ]


def test_calls_map_onto_the_six_steps() -> None:
    steps = [trace.step_of(c)[0] for c in _run_calls()]
    assert steps == [2, 3, 4, 5, 6, 6, 6]
    assert trace.step_of(Call(1, 1, 0, "GET", "/v1.41/info"))[0] is None
    assert trace.normalize_path(f"/v1.41/exec/{ID}/start") == "/exec/{id}/start"


def test_stable_view_does_not_depend_on_the_wait_start_race() -> None:
    one, other = trace.Trace(_run_calls()), trace.Trace(_run_calls(start_first=True))
    assert str(one) == str(other)
    assert one._repr_html_() == other._repr_html_()
    assert one.diagram()._repr_html_() == other.diagram()._repr_html_()
    text = str(one)
    assert ID not in text and "/v1.41" not in text and "(API version 1.41)" in text
    assert "POST /containers/{id}/start" in text and "101 UPGRADED ⇄ raw stream" in text
    raw = str(trace.Trace(_run_calls(), stable=False))
    assert ID[:12] in raw and ID not in raw and "/v1.41/containers/create" in raw


def test_diagram_svg_is_well_formed() -> None:
    import xml.etree.ElementTree as ET

    svg = trace.Trace(_run_calls()).diagram()._repr_html_()
    root = ET.fromstring(svg)
    texts = ["".join(t.itertext()) for t in root.iter("{http://www.w3.org/2000/svg}text")]
    assert "POST /containers/create" in texts and "404 Not Found" in texts


def test_load_skips_damaged_lines(tmp_path: Path) -> None:
    log = tmp_path / "t.jsonl"
    log.write_text('{"conn": 1, "seq": 1, "t": 0.1, "method": "GET", "path": "/_ping", "status": 200}\n{not json\n')
    assert [c.route for c in trace.load(log)] == ["/_ping"]
    assert trace.load(tmp_path / "missing.jsonl") == []


# --- lesson 04's checks on recorded traces -------------------------------------------------


@pytest.mark.parametrize(
    "answer",
    [
        "POST /containers/create",
        "post /v1.41/containers/create",
        "  POST   /containers/create?name=web ",
        "POST http://localhost/v1.43/containers/create/",
    ],
)
def test_endpoint_accepts_every_spelling(answer: str) -> None:
    assert api._endpoint(Context(get("api.endpoint"), None, answer=answer)).passed  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("answer", "says"),
    [
        ("/containers/create", "HTTP method"),
        ("GET /containers/create", "method is not GET"),
        ("POST /containers/{id}/start", "start call"),
        ("POST /images/create", "pull"),
        ("docker container create", "CLI command"),
        ("DELETE /containers/x", "not the call"),
    ],
)
def test_endpoint_near_misses_are_named(answer: str, says: str) -> None:
    verdict = api._endpoint(Context(get("api.endpoint"), None, answer=answer))  # type: ignore[arg-type]
    assert not verdict.passed and says in verdict.message and verdict.hint


def _write(log: Path, calls: list[Call]) -> None:
    from dataclasses import asdict

    log.write_text("".join(json.dumps(asdict(c)) + "\n" for c in calls))


def _trace_verdict(log: Path):  # type: ignore[no-untyped-def]
    return api._trace(Context(get("api.trace"), None, setup={"log": str(log)}))  # type: ignore[arg-type]


def test_trace_check_passes_on_create_start_wait(tmp_path: Path) -> None:
    log = tmp_path / "t.jsonl"
    _write(log, _run_calls())
    verdict = _trace_verdict(log)
    assert verdict.passed and verdict.evidence["container"] == ID[:12]


def test_trace_check_names_each_near_miss(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    log = tmp_path / "t.jsonl"
    monkeypatch.setenv("LABKIT_STATE_DIR", str(tmp_path / "state"))
    calls = _run_calls()
    cases = [
        ([], "not running"),
        ([calls[0], Call(1, 2, 0.1, "GET", "/v1.41/containers/json", "1.41", 200, "OK")], "none created a container"),
        (calls[:2], "404 No such image"),
        (calls[:4], "never started"),
        ([*calls[:4], calls[6]], "never asked to wait"),
    ]
    for recorded, says in cases:
        _write(log, recorded)
        verdict = _trace_verdict(log)
        assert not verdict.passed and says in verdict.message, (says, verdict)
        assert verdict.hint
    _write(log, [*calls[:4], calls[6]])
    assert "-d" in (_trace_verdict(log).hint or "")


def test_trace_check_accepts_a_start_by_name(tmp_path: Path) -> None:
    log = tmp_path / "t.jsonl"
    _write(
        log,
        [
            Call(1, 1, 0.1, "POST", "/v1.41/containers/create?name=web", "1.41", 201, "Created", id=ID),
            Call(2, 1, 0.2, "POST", "/v1.41/containers/web/attach?stream=1", "1.41", 101, "UPGRADED", hijacked=True),
            Call(1, 2, 0.3, "POST", "/v1.41/containers/web/wait", "1.41", 200, "OK"),
            Call(3, 1, 0.3, "POST", "/v1.41/containers/c0ffee00/start", "1.41", 204, "No Content"),
        ],
    )
    assert _trace_verdict(log).passed


def test_solution_names_the_socket_like_state_dir(tmp_path: Path) -> None:
    """The shell expression in the reference solution finds the same socket labkit uses."""
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path), "LABKIT_STATE_DIR": str(tmp_path / "s")}
    for extra, expected in (({}, tmp_path / "s"), ({"LABKIT_STATE_DIR": ""}, tmp_path / ".local/state/labkit")):
        out = subprocess.run(
            ["bash", "-c", f"echo {api.SOCKET_IN_SHELL}"],
            env={**env, **extra},
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
        assert out == str(expected / "trace" / "docker.sock")
