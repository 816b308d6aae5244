"""labkit.features.trace without a daemon: HTTP framing, hijack pass-through, the views, and lesson 04's checks.

The proxy runs for real here, in a thread, in front of a tiny fake daemon on a unix
socket that speaks exactly the framings the Docker API uses.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from labkit.features import trace
from labkit.exercises import get
from labkit.exercises import lesson04_client_daemon_api as api
from labkit.exercises.machinery.model import Context
from labkit.features.trace import Call, Framing, Stream, parse_head

ID = "c0ffee" + "0" * 58


# --- framing ----------------------------------------------------------------------------


def test_parse_request_and_response_heads() -> None:
    request = parse_head(b"POST /v1.41/containers/create?name=x HTTP/1.1\r\nHost: docker\r\nContent-Length: 2\r\n\r\n")
    assert (request.method, request.target, request.get("content-length")) == ("POST", "/v1.41/containers/create?name=x", "2")
    response = parse_head(b"HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\n\r\n", response=True)
    assert (response.status, response.reason) == (404, "Not Found")
    assert parse_head(b"HTTP/1.1 200\r\n\r\n", response=True).reason == ""
    with pytest.raises(trace.ProtocolError):
        parse_head(b"\x16\x03\x01 garbage\r\n\r\n")


@pytest.mark.parametrize(
    ("method", "head", "expected"),
    [
        ("HEAD", "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n", Framing("none")),
        ("POST", "HTTP/1.1 204 No Content\r\n\r\n", Framing("none")),
        ("POST", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", Framing("chunked")),
        ("GET", "HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\n", Framing("length", 12)),
        ("GET", "HTTP/1.1 200 OK\r\n\r\n", Framing("close")),
    ],
)
def test_response_framing(method: str, head: str, expected: Framing) -> None:
    assert trace.response_framing(method, parse_head(head.encode(), response=True)) == expected


def test_request_framing() -> None:
    assert trace.request_framing(parse_head(b"GET /_ping HTTP/1.1\r\n\r\n")) == Framing("none")
    assert trace.request_framing(parse_head(b"POST /build HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n")) == Framing("chunked")


@pytest.mark.parametrize(
    ("head", "hijacked"),
    [
        ("HTTP/1.1 101 UPGRADED\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n", True),
        ("HTTP/1.1 200 OK\r\nContent-Type: application/vnd.docker.raw-stream\r\n\r\n", True),
        ("HTTP/1.1 200 OK\r\nContent-Type: application/vnd.docker.multiplexed-stream\r\n\r\n", True),
        # logs use the stream content type but are an ordinary chunked body
        ("HTTP/1.1 200 OK\r\nContent-Type: application/vnd.docker.raw-stream\r\nTransfer-Encoding: chunked\r\n\r\n", False),
        ("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n", False),
    ],
)
def test_hijack_detection(head: str, hijacked: bool) -> None:
    assert trace.is_hijack(parse_head(head.encode(), response=True)) is hijacked


def _pair() -> tuple[socket.socket, socket.socket]:
    a, b = socket.socketpair()
    a.settimeout(5)
    b.settimeout(5)
    return a, b


def test_chunked_body_is_forwarded_unchanged_and_recorded_before_its_end() -> None:
    src_w, src_r = _pair()
    dst_w, dst_r = _pair()
    wire = b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nX-Trailer: 1\r\n\r\nNEXT"
    src_w.sendall(wire)
    seen: list[bytes] = []
    capture = bytearray()
    stream = Stream(src_r)

    def before_end() -> None:  # the receiver must not have the final chunk yet
        dst_r.setblocking(False)
        try:
            seen.append(dst_r.recv(65536))
        finally:
            dst_r.setblocking(True)

    trace.relay_body(stream, dst_w, Framing("chunked"), capture=capture, before_end=before_end)
    assert bytes(capture) == b"hello world"
    assert b"0\r\n" not in seen[0]
    dst_r.settimeout(5)
    forwarded = seen[0] + dst_r.recv(65536)
    assert forwarded == wire[: -len(b"NEXT")]
    assert stream.take_buffer() == b"NEXT"  # the next message stays for the next read


def test_held_body_reaches_the_receiver_only_after_it_is_recorded() -> None:
    src_w, src_r = _pair()
    dst_w, dst_r = _pair()
    # a wait answer: the JSON in one chunk, the end of the body later
    src_w.sendall(b'1e\r\n{"Error":null,"StatusCode":3}\n\r\n0\r\n\r\n')
    capture = bytearray()
    early: list[bytes] = []

    def before_end() -> None:
        dst_r.setblocking(False)
        try:
            early.append(dst_r.recv(65536))
        except BlockingIOError:
            early.append(b"")
        finally:
            dst_r.setblocking(True)

    trace.relay_body(Stream(src_r), dst_w, Framing("chunked"), capture=capture, before_end=before_end, hold=True)
    assert early == [b""]  # nothing was forwarded before the record
    assert trace.body_fields(200, bytes(capture), "/v1.41/containers/x/wait") == {"exit": 3}
    assert dst_r.recv(65536).endswith(b"0\r\n\r\n")


def test_length_body_and_close_body() -> None:
    src_w, src_r = _pair()
    dst_w, dst_r = _pair()
    src_w.sendall(b'{"Id":"x"}extra')
    capture = bytearray()
    stream = Stream(src_r)
    trace.relay_body(stream, dst_w, Framing("length", 10), capture=capture)
    assert dst_r.recv(100) == b'{"Id":"x"}' and bytes(capture) == b'{"Id":"x"}'
    src_w.shutdown(socket.SHUT_WR)
    trace.relay_body(stream, dst_w, Framing("close"))
    assert dst_r.recv(100) == b"extra"


def test_truncated_length_body_is_a_protocol_error() -> None:
    src_w, src_r = _pair()
    dst_w, _ = _pair()
    src_w.sendall(b"abc")
    src_w.close()
    with pytest.raises(trace.ProtocolError):
        trace.relay_body(Stream(src_r), dst_w, Framing("length", 10))


# --- the proxy in front of a fake daemon -----------------------------------------------


def _json(status: str, body: dict[str, object], chunked: bool = False) -> bytes:
    data = json.dumps(body).encode()
    if chunked:
        return f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n".encode() + (
            f"{len(data):x}\r\n".encode() + data + b"\r\n0\r\n\r\n"
        )
    return f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n".encode() + data


def _fake_daemon_connection(conn: socket.socket) -> None:
    """Answer like dockerd: keep-alive JSON, chunked streams, and two kinds of hijack."""
    stream = Stream(conn)
    try:
        while (raw := stream.read_head()) is not None:
            head = parse_head(raw)
            framing = trace.request_framing(head)
            body = stream.read_some(framing.size) if framing.kind == "length" and framing.size else b""
            path = head.target if "fromImage" in head.target else head.target.split("?", 1)[0]
            if path == "/_ping":
                ok = b"" if head.method == "HEAD" else b"OK"  # a HEAD answer has the length, not the body
                conn.sendall(b"HTTP/1.1 200 OK\r\nApi-Version: 1.41\r\nContent-Length: 2\r\n\r\n" + ok)
            elif path.endswith("/containers/create") and b"missing" in body:
                conn.sendall(_json("404 Not Found", {"message": "No such image: missing:latest"}))
            elif path.endswith("/containers/create"):
                conn.sendall(_json("201 Created", {"Id": ID, "Warnings": []}, chunked=True))
            elif path.endswith("/images/create?fromImage=x"):
                conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
                for n in range(3):
                    line = json.dumps({"status": f"step {n}"}).encode() + b"\r\n"
                    conn.sendall(f"{len(line):x}\r\n".encode() + line + b"\r\n")
                conn.sendall(b"0\r\n\r\n")
            elif path.endswith("/start"):
                conn.sendall(b"HTTP/1.1 204 No Content\r\n\r\n")
            elif path.endswith("/attach") or "/exec/" in path:
                if head.get("Upgrade"):
                    conn.sendall(b"HTTP/1.1 101 UPGRADED\r\nContent-Type: application/vnd.docker.raw-stream\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n")
                else:
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/vnd.docker.raw-stream\r\n\r\n")
                conn.sendall(b"ready:")  # the container speaks first, like a shell prompt
                while data := conn.recv(65536):  # echo until the client half-closes
                    conn.sendall(data.upper())
                conn.sendall(b":bye")
                return
            else:
                conn.sendall(_json("404 Not Found", {"message": "page not found"}))
    except (OSError, trace.ProtocolError):
        pass
    finally:
        conn.close()


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """A folder with a short path: unix socket paths must fit in 107 bytes."""
    path = Path(tempfile.mkdtemp(prefix="lkt-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def proxied(short_dir: Path) -> Iterator[tuple[Callable[[], socket.socket], Path, trace.Proxy]]:
    daemon_path = short_dir / "daemon.sock"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(daemon_path))
    server.listen(8)

    def serve() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            threading.Thread(target=_fake_daemon_connection, args=(conn,), daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    log = short_dir / "trace.jsonl"
    proxy = trace.Proxy(f"unix://{short_dir / 'proxy.sock'}", f"unix://{daemon_path}", log)
    proxy.bind()
    threading.Thread(target=proxy.serve_forever, daemon=True).start()

    def connect() -> socket.socket:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(5)
        sock.connect(str(short_dir / "proxy.sock"))
        return sock

    yield connect, log, proxy
    proxy.close()
    server.close()


def _response(stream: Stream, method: str = "GET") -> tuple[int, bytes]:
    raw = stream.read_head()
    assert raw is not None
    head = parse_head(raw, response=True)
    sink_a, sink_b = socket.socketpair()
    trace.relay_body(stream, sink_a, trace.response_framing(method, head))
    sink_a.close()
    body = b""
    while data := sink_b.recv(65536):
        body += data
    return head.status, body


def test_keep_alive_requests_are_each_recorded(proxied: tuple[Callable[[], socket.socket], Path, trace.Proxy]) -> None:
    connect, log, _ = proxied
    sock = connect()
    stream = Stream(sock)
    sock.sendall(b"HEAD /_ping HTTP/1.1\r\nHost: docker\r\n\r\n")
    assert _response(stream, "HEAD") == (200, b"")
    body = b'{"Image":"missing"}'
    sock.sendall(b"POST /v1.41/containers/create HTTP/1.1\r\nHost: docker\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
    assert _response(stream, "POST")[0] == 404
    sock.sendall(b"POST /v1.41/images/create?fromImage=x HTTP/1.1\r\nHost: docker\r\nContent-Length: 0\r\n\r\n")
    status, progress = _response(stream, "POST")
    assert status == 200 and progress.count(b'"status"') == 3  # the chunked stream arrived whole
    sock.sendall(b"POST /v1.41/containers/create HTTP/1.1\r\nHost: docker\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n")
    assert _response(stream, "POST")[0] == 201
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


@pytest.mark.parametrize("upgrade", [True, False], ids=["101-upgrade", "200-raw-stream"])
def test_hijacked_stream_passes_both_ways_untouched(
    proxied: tuple[Callable[[], socket.socket], Path, trace.Proxy], upgrade: bool
) -> None:
    connect, log, _ = proxied
    sock = connect()
    extra = b"Connection: Upgrade\r\nUpgrade: tcp\r\n" if upgrade else b""
    sock.sendall(b"POST /v1.41/containers/" + ID.encode() + b"/attach?stream=1&stdin=1 HTTP/1.1\r\nHost: docker\r\n" + extra + b"\r\n")
    stream = Stream(sock)
    raw = stream.read_head()
    assert raw is not None and parse_head(raw, response=True).status == (101 if upgrade else 200)
    received = stream.take_buffer()
    sock.sendall(b"echo this\r\n\x00\x01binary")
    sock.shutdown(socket.SHUT_WR)  # stdin ends; output must still arrive
    while data := sock.recv(65536):
        received += data
    assert received == b"ready:ECHO THIS\r\n\x00\x01BINARY:bye"
    (call,) = trace.load(log)
    assert call.hijacked and call.route == "/containers/{id}/attach"


def test_tcp_listener_is_loopback_only(short_dir: Path) -> None:
    with pytest.raises(trace.LabkitError, match="127.0.0.1 only"):
        trace.Proxy("tcp://0.0.0.0:0", "unix:///nonexistent", short_dir / "log").bind()
    proxy = trace.Proxy("tcp://127.0.0.1:0", "unix:///nonexistent", short_dir / "log")
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
    proc = subprocess.run([sys.executable, "-m", "labkit", "trace", "start"], capture_output=True, text=True, env=env, timeout=30, check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().count("\n") == 0 and "socket not found" in proc.stderr
    proc = subprocess.run([sys.executable, "-m", "labkit", "trace", "host"], capture_output=True, text=True, env=env, timeout=30, check=False)
    assert proc.returncode == 2 and "no trace proxy is running" in proc.stderr


# --- views ------------------------------------------------------------------------------


def _run_calls(start_first: bool = False) -> list[Call]:
    cid = "/v1.41/containers/" + ID
    wait = Call(1, 5, 0.50, "POST", cid + "/wait?condition=removed", "1.41", 200, "OK")
    start = Call(3, 1, 0.49 if start_first else 0.51, "POST", cid + "/start", "1.41", 204, "No Content")
    return [
        Call(1, 1, 0.01, "HEAD", "/_ping", None, 200, "OK"),
        Call(1, 2, 0.02, "POST", "/v1.41/containers/create", "1.41", 404, "Not Found", message="No such image: hello-world:latest"),
        Call(1, 3, 0.03, "POST", "/v1.41/images/create?fromImage=docker.io%2Flibrary%2Fhello-world&tag=latest", "1.41", 200, "OK"),
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
    ["POST /containers/create", "post /v1.41/containers/create", "  POST   /containers/create?name=web ", "POST http://localhost/v1.43/containers/create/"],
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
        (calls[:4] + [calls[6]], "never asked to wait"),
    ]
    for recorded, says in cases:
        _write(log, recorded)
        verdict = _trace_verdict(log)
        assert not verdict.passed and says in verdict.message, (says, verdict)
        assert verdict.hint
    _write(log, calls[:4] + [calls[6]])
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
        out = subprocess.run(["bash", "-c", f"echo {api.SOCKET_IN_SHELL}"], env={**env, **extra}, capture_output=True, text=True, check=False).stdout.strip()
        assert out == str(expected / "trace" / "docker.sock")
