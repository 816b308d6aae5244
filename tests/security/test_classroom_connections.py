"""Below HTTP: half-open floods, slow heads and bodies, Nagle, and a clean SIGTERM (labkit.classroom.guard, server)."""

from __future__ import annotations

import http.client
import json
import select
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_classroom import SSE, Server, _record_figure

from labkit.classroom import guard

pytestmark = pytest.mark.security

HALF_HEAD = b"POST /api/events HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n"


def _ping_s(server: Server) -> float:
    """Seconds a fresh client's ``/api/ping`` takes (it must answer 200)."""
    started = time.perf_counter()
    status, body = server.request("GET", "/api/ping", token=server.join_token)
    assert status == 200, body
    return time.perf_counter() - started


def _closed_by_server(socks: list[socket.socket], within: float) -> int:
    """How many of ``socks`` the server closed (or reset) within ``within`` seconds (poll: fds past 1024 are fine)."""
    by_fd = {s.fileno(): s for s in socks}
    closed: set[int] = set()
    deadline = time.monotonic() + within
    while len(closed) < len(by_fd) and time.monotonic() < deadline:
        poller = select.poll()
        for fd in by_fd.keys() - closed:
            poller.register(fd, select.POLLIN | select.POLLHUP | select.POLLERR)
        for fd, _ in poller.poll(100):
            try:
                data = by_fd[fd].recv(1, socket.MSG_DONTWAIT)
            except BlockingIOError:
                continue
            except OSError:
                data = b""
            if not data:
                closed.add(fd)
    return len(closed)


def test_a_thousand_half_open_connections_do_not_lock_out_a_fresh_client(server: Server, many_files: None) -> None:
    held: list[socket.socket] = []
    try:
        for _ in range(1000):
            sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
            sock.sendall(HALF_HEAD)
            held.append(sock)
        pings = [_ping_s(server) for _ in range(5)]  # from the same address as the flood: 127.0.0.1
        assert max(pings) < 1.0, pings
        # The server pushed the oldest out: at most PER_ADDRESS of them still wait for their head.
        closed = _closed_by_server(held, within=2)
        assert closed >= 1000 - guard.PER_ADDRESS, closed
        _record_figure("ping_under_1000_half_open_s", {"max": round(max(pings), 3), "first": round(pings[0], 3)})
    finally:
        for sock in held:
            sock.close()
    assert _ping_s(server) < 1.0


def test_a_head_or_a_body_that_trickles_is_cut_off(server: Server) -> None:
    slow_head = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    slow_body = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    started = time.monotonic()
    slow_head.sendall(b"GET /api/ping HTTP/1.1\r\n")
    # A complete head the server answers (401) without reading the body, then a body one byte at a time.
    slow_body.sendall(b"POST /api/events HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n")
    cut: dict[str, float] = {}
    try:
        while len(cut) < 2 and time.monotonic() - started < guard.BODY_TIMEOUT + 4:
            for name, sock in (("head", slow_head), ("body", slow_body)):
                if name in cut:
                    continue
                try:
                    sock.sendall(b"X-A: b\r\n" if name == "head" else b"x")  # a trickle does not reset the clock
                except OSError:
                    cut[name] = time.monotonic() - started
                    continue
                readable = select.select([sock], [], [], 0)[0]
                if readable:
                    try:
                        data = sock.recv(65536)
                    except OSError:
                        data = b""
                    if not data:
                        cut[name] = time.monotonic() - started
            time.sleep(0.25)
    finally:
        slow_head.close()
        slow_body.close()
    assert guard.HEAD_TIMEOUT - 0.5 <= cut.get("head", 99) <= guard.HEAD_TIMEOUT + 1.5, cut
    assert cut.get("body", 99) <= guard.BODY_TIMEOUT + 1.5, cut
    assert _ping_s(server) < 1.0


def test_keep_alive_requests_do_not_wait_for_a_delayed_ack(server: Server) -> None:
    """TCP_NODELAY on accepted sockets: each keep-alive request took 42-44 ms before (Nagle + delayed ACK)."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    headers = {"Authorization": f"Bearer {server.join_token}"}
    times = []
    try:
        for _ in range(20):
            started = time.perf_counter()
            conn.request("GET", "/api/ping", headers=headers)
            response = conn.getresponse()
            assert response.status == 200 and json.loads(response.read())["role"] == "learner"
            times.append(time.perf_counter() - started)
    finally:
        conn.close()
    median_ms = statistics.median(times[1:]) * 1000
    assert median_ms < 20, times
    _record_figure("keep_alive_ping_median_ms", round(median_ms, 2))


def test_sigterm_stops_cleanly_within_a_second(tmp_path: Path) -> None:
    srv = Server(tmp_path / "classroom.db")
    try:
        srv.start()
        key = srv.join("ada")
        assert srv.request("POST", "/api/events", _event(), token=srv.join_token, key=key)[0] == 200
        stream = SSE(srv)  # an open page: its stream must end, not hold the stop
        lazy = socket.create_connection(("127.0.0.1", srv.port))
        lazy.sendall(HALF_HEAD)
        assert srv.proc is not None
        started = time.perf_counter()
        srv.proc.send_signal(signal.SIGTERM)
        code = srv.proc.wait(5)
        took = time.perf_counter() - started
        stream.close()
        lazy.close()
    finally:
        srv.stop()
    assert code == 0, srv.log.read_text()
    assert took < 1.0, took
    assert "stopped" in srv.log.read_text() and "Traceback" not in srv.log.read_text()
    # Closed: sqlite folded the WAL back into the file and removed it.
    assert not Path(f"{srv.db}-wal").exists()
    _record_figure("sigterm_to_exit_s", round(took, 3))
    # And it starts again with what it stored.
    again = Server(srv.db, args=())
    again.join_token, again.instructor_token = srv.join_token, srv.instructor_token
    try:
        again.start()
        assert [row["name"] for row in again.state()["learners"]] == ["ada"]
    finally:
        again.stop()


def _event() -> dict[str, object]:
    from test_classroom import event  # the integration tests' event maker (a real, valid event)

    return event("ada")


def test_a_sustained_flood_from_the_same_address_leaves_pings_answered(server: Server) -> None:
    """Another process opens half-open connections as fast as it can while a client pings from the same address."""
    script = (
        "import collections, socket, sys\n"
        "held = collections.deque()\n"
        "print('flooding', flush=True)\n"
        "while True:\n"
        f"    s = socket.create_connection(('127.0.0.1', {server.port})); s.sendall({HALF_HEAD!r}); held.append(s)\n"
        "    if len(held) > 800: held.popleft().close()\n"
    )
    flood = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert flood.stdout is not None and flood.stdout.readline().strip() == "flooding"
        time.sleep(0.5)
        pings = [_ping_s(server) for _ in range(10)]
        assert flood.poll() is None  # still flooding while we pinged
    finally:
        flood.kill()
        flood.wait(10)
    assert max(pings) < 1.0, pings
    _record_figure("ping_under_sustained_flood_s", {"max": round(max(pings), 3)})
