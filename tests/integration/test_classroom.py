"""The classroom server as a real process, spoken to over real HTTP.

Each test starts ``python -m labkit classroom serve`` on a free loopback port with
its own database, and stops it (by pid) in a ``finally``. Learners are real
subprocesses with their own ``LABKIT_STATE_DIR``, posting through
``labkit.classroom.client``. Figures measured here go to
``test-artifacts/classroom-figures.json``.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from labkit.core import wait

ROOT = Path(__file__).resolve().parents[2]
FIGURES = ROOT / "test-artifacts" / "classroom-figures.json"


def _record_figure(name: str, value: Any) -> None:
    FIGURES.parent.mkdir(exist_ok=True)
    try:
        figures = json.loads(FIGURES.read_text())
    except (OSError, ValueError):
        figures = {}
    figures[name] = value
    FIGURES.write_text(json.dumps(figures, indent=2, sort_keys=True))
    print(f"\n{name}: {value}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """One ``labkit classroom serve`` process; ``stop()`` ends it by pid, whatever happened."""

    def __init__(self, db: Path, port: int | None = None, args: tuple[str, ...] = ()) -> None:
        self.db = db
        self.args = args
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = db.with_suffix(f".{self.port}.log")
        self.proc: subprocess.Popen[bytes] | None = None
        self.join_token = self.instructor_token = ""

    def start(self) -> Server:
        env = dict(os.environ, LABKIT_STATE_DIR=str(self.db.parent / "instructor-state"))
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "labkit", "classroom", "serve", "--port", str(self.port), "--db", str(self.db),
                 *self.args],
                stdout=out, stderr=subprocess.STDOUT, env=env, cwd=ROOT,
            )  # fmt: skip
        banner = wait.until(self._banner, "the classroom server's banner", timeout=20, detail=self.log.read_text)
        self.join_token, self.instructor_token = banner
        wait.until(lambda: self.request("GET", "/api/ping", token=self.join_token)[0] == 200, "the server to answer",
                   timeout=20, retry_on=(OSError,), detail=self.log.read_text)  # fmt: skip
        return self

    def _banner(self) -> tuple[str, str] | None:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"server exited {self.proc.returncode}: {self.log.read_text()}")
        text = self.log.read_text()
        join = re.search(r"classroom join \S+ (\S+) --name", text)
        instructor = re.search(r"\?token=(\S+)", text)
        if join and instructor:
            return join.group(1), instructor.group(1)
        if "tokens kept" in text and self.join_token:  # a restart: the store keeps only hashes, shows nothing
            return self.join_token, self.instructor_token
        return None

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.kill(self.proc.pid, sig)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def request(
        self, method: str, path: str, body: Any = None, token: str | None = None, key: str | None = None,
        raw: bytes | None = None, ctype: str = "application/json",
    ) -> tuple[int, Any]:  # fmt: skip
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        headers = {}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        if key is not None:
            headers["X-Labkit-Learner-Key"] = key
        data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        if data is not None:
            headers["Content-Type"] = ctype
        try:
            conn.request(method, path, body=data, headers=headers)
            response = conn.getresponse()
            payload = response.read()
        finally:
            conn.close()
        try:
            return response.status, json.loads(payload)
        except ValueError:
            return response.status, payload.decode()

    def join(self, name: str) -> str:
        status, body = self.request("POST", "/api/join", {"name": name}, token=self.join_token)
        assert status == 200, body
        return str(body["key"])

    def state(self) -> dict[str, Any]:
        status, body = self.request("GET", "/api/state", token=self.instructor_token)
        assert status == 200, body
        return dict(body)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    srv = Server(tmp_path / "classroom.db")
    try:
        yield srv.start()
    finally:
        srv.stop()


def event(
    learner: str, exercise: str = "welcome.first-container", passed: bool = False, kind: str = "check"
) -> dict[str, Any]:
    from labkit.core.fmt import utc_now as now

    hint = kind == "hint"
    return {
        "v": 1, "id": uuid.uuid4().hex, "kind": kind, "learner": learner, "exercise": exercise, "lesson": "00",
        "passed": passed and not hint, "status": "hint" if hint else ("passed" if passed else "not yet"),
        "message": "test", "hint": None, "hint_level": 1 if hint else 0, "at": now(), "labkit": "test",
    }  # fmt: skip


def attempts(state: dict[str, Any]) -> dict[str, int]:
    """Checks stored per learner, from the instructor's snapshot."""
    return {row["name"]: sum(c["attempts"] for c in row["cells"].values()) for row in state["learners"]}


class SSE:
    """Reads ``/api/stream`` in a thread, noting when each ``result`` arrived."""

    def __init__(self, srv: Server) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=30)
        self.conn.request("GET", "/api/stream", headers={"Authorization": f"Bearer {srv.instructor_token}"})
        self.response = self.conn.getresponse()
        assert self.response.status == 200
        self.snapshots: list[dict[str, Any]] = []
        self.results: list[tuple[float, dict[str, Any]]] = []
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()
        wait.until(lambda: self.snapshots, "the SSE snapshot", timeout=10)

    def _read(self) -> None:
        name = None
        try:
            for raw in self.response:
                line = raw.decode().rstrip("\n")
                if line.startswith("event: "):
                    name = line[7:]
                elif line.startswith("data: "):
                    data = json.loads(line[6:])
                    if name == "snapshot":
                        self.snapshots.append(data)
                    elif name == "result":
                        self.results.append((time.time(), data))
        except (OSError, ValueError, AttributeError, http.client.HTTPException):
            pass  # close() pulled the socket from under the reader (http.client then trips on None)

    def close(self) -> None:
        self.conn.sock and self.conn.sock.shutdown(socket.SHUT_RDWR)  # type: ignore[func-returns-value]
        self.conn.close()


def learner_env(tmp_path: Path, name: str) -> dict[str, str]:
    env = dict(os.environ, LABKIT_STATE_DIR=str(tmp_path / f"learner-{name}"))
    env.pop("LABKIT_LEARNER", None)
    return env


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "labkit", "classroom", *args], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=60)  # fmt: skip


# The learner process: make real events with labkit.progress, hand each to client.submit,
# print when submit was called and how long it took, then wait for the background thread
# to empty the queue (no atexit flush involved).
LEARNER_SCRIPT = r"""
import json, sys, time
from labkit.exercises.machinery import record as progress
from labkit.classroom import client
from labkit.exercises.machinery.model import CheckResult
for n, passed in enumerate(json.loads(sys.argv[1])):
    result = CheckResult("welcome.first-container", "Your first container", passed, "msg", None if passed else "hint")
    event = progress.make_event("check", result)
    started = time.time(); t = time.perf_counter()
    client.submit(event)
    print(json.dumps({"id": event["id"], "at": started, "submit_ms": (time.perf_counter() - t) * 1000}), flush=True)
    time.sleep(0.3)  # spread the posts out, as a learner's checks are
deadline = time.time() + 10
while client.queued() and time.time() < deadline:
    time.sleep(0.05)
print(json.dumps({"queued": client.queued()}))
"""


def run_learner(env: dict[str, str], outcomes: list[bool]) -> list[dict[str, Any]]:
    done = subprocess.run([sys.executable, "-c", LEARNER_SCRIPT, json.dumps(outcomes)], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert lines[-1] == {"queued": 0}, lines
    return lines[:-1]


def test_two_learners_live(server: Server, tmp_path: Path) -> None:
    envs = {name: learner_env(tmp_path, name) for name in ("ada", "linus")}
    for name, env in envs.items():
        joined = cli(env, "join", server.url, server.join_token, "--name", name)
        assert joined.returncode == 0, joined.stderr
        assert f"as {name}" in joined.stdout
    stream = SSE(server)
    try:
        sent: dict[str, list[dict[str, Any]]] = {}
        threads = [
            threading.Thread(target=lambda n=name, e=env: sent.__setitem__(n, run_learner(e, [False, False, True])))
            for name, env in envs.items()
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(90)
        wait.until(lambda: len(stream.results) >= 6, "six results on the stream", timeout=5)
    finally:
        stream.close()
    arrived = {r["event"]["id"]: when for when, r in stream.results}
    latencies = [arrived[s["id"]] - s["at"] for lines in sent.values() for s in lines]
    assert max(latencies) < 2.0, latencies
    submit_ms = [s["submit_ms"] for lines in sent.values() for s in lines]
    assert max(submit_ms) < 50, submit_ms
    _record_figure(
        "submit_to_sse_latency_s", {"max": round(max(latencies), 3), "mean": round(sum(latencies) / len(latencies), 3)}
    )
    _record_figure(
        "submit_call_ms", {"max": round(max(submit_ms), 2), "mean": round(sum(submit_ms) / len(submit_ms), 2)}
    )

    state = server.state()
    assert attempts(state) == {"ada": 3, "linus": 3}
    for row in state["learners"]:
        cell = row["cells"]["welcome.first-container"]
        assert cell["passed"] is True and cell["attempts"] == 3
    assert state["exercises"][0]["id"] == "welcome.first-container"  # course order
    last_row = stream.results[-1][1]["row"]
    assert last_row["cells"]["welcome.first-container"]["attempts"] == 3

    status, csv_text = server.request("GET", "/api/gradebook.csv", token=server.instructor_token)
    assert status == 200
    lines = csv_text.splitlines()
    assert lines[0].startswith("learner,welcome.first-container")
    assert {line.split(",")[0] for line in lines[1:]} == {"ada", "linus"}
    assert all(line.split(",")[1] == "1" for line in lines[1:])

    status_out = cli(envs["ada"], "status")
    assert "reachable" in status_out.stdout and "queued:    0" in status_out.stdout


def test_100_concurrent_posts_all_stored(server: Server) -> None:
    keys = {f"learner-{n:03d}": server.join(f"learner-{n:03d}") for n in range(100)}
    barrier = threading.Barrier(100)
    statuses: list[int] = []

    def post(name: str, key: str) -> None:
        barrier.wait()
        statuses.append(
            server.request("POST", "/api/events", event(name, passed=True), token=server.join_token, key=key)[0]
        )

    threads = [threading.Thread(target=post, args=item) for item in keys.items()]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    elapsed = time.perf_counter() - started
    assert statuses == [200] * 100
    counts = attempts(server.state())
    assert len(counts) == 100 and set(counts.values()) == {1}
    _record_figure("100_concurrent_posts_s", round(elapsed, 3))


def test_tokens_are_checked(server: Server) -> None:
    key = server.join("ada")
    ok = event("ada")
    assert server.request("POST", "/api/events", ok, key=key)[0] == 401
    status, body = server.request("POST", "/api/events", ok, token="wrong", key=key)
    assert status == 403 and "wrong join token" in body["error"]
    assert server.request("POST", "/api/events", ok, token=server.instructor_token, key=key)[0] == 403
    assert server.request("POST", "/api/events", ok, token=server.join_token)[0] == 401  # no learner key
    assert server.request("POST", "/api/events", ok, token=server.join_token, key="nope")[0] == 403
    for path in ("/api/state", "/api/stream", "/api/gradebook.csv", "/"):
        assert server.request("GET", path)[0] == 401, path
        assert server.request("GET", path, token=server.join_token)[0] == 403, path
    assert server.request("GET", "/api/ping")[0] == 401
    assert server.request("GET", "/api/ping", token="nope")[0] == 403
    # Forged: a learner posting under another learner's name.
    server.join("bob")
    status, body = server.request("POST", "/api/events", event("bob"), token=server.join_token, key=key)
    assert status == 403 and "belongs to 'ada'" in body["error"]
    # Taking a name that is bound to someone else's key.
    status, body = server.request("POST", "/api/join", {"name": "ada"}, token=server.join_token)
    assert status == 409 and "already taken" in body["error"]
    assert server.request("POST", "/api/events", ok, token=server.join_token, key=key)[0] == 200
    assert attempts(server.state()) == {"ada": 1, "bob": 0}


def test_bad_bodies_get_4xx_and_the_server_keeps_answering(server: Server) -> None:
    key = server.join("ada")

    def post(**kw: Any) -> tuple[int, Any]:
        return server.request("POST", "/api/events", token=server.join_token, key=key, **kw)

    status, body = post(raw=b'{"v": 1,')
    assert status == 400 and "malformed JSON" in body["error"]
    assert post(raw=b"x" * (70 * 1024))[0] == 413
    assert post(raw=json.dumps(event("ada")).encode(), ctype="text/plain")[0] == 415
    status, body = post(body={**event("ada"), "kind": "cheat"})
    assert status == 422 and "kind" in body["error"]
    status, body = post(body={**event("ada"), "extra": 1})
    assert status == 422 and "extra" in body["error"]
    assert post(body=[event("ada") for _ in range(101)])[0] == 413
    assert post(body=[])[0] == 422
    assert post(body=[event("ada"), {**event("ada"), "id": "x"}])[0] == 422  # all or nothing
    # A chunked body with no Content-Length that grows past the cap.
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    conn.putrequest("POST", "/api/events")
    for name, value in (("Authorization", f"Bearer {server.join_token}"), ("X-Labkit-Learner-Key", key),
                        ("Content-Type", "application/json"), ("Transfer-Encoding", "chunked")):  # fmt: skip
        conn.putheader(name, value)
    conn.endheaders()
    try:
        for _ in range(10):
            chunk = b"[" + b" " * 10000
            conn.send(b"%x\r\n%s\r\n" % (len(chunk), chunk))
    except OSError:
        pass  # the server may close as soon as it has answered 413
    assert conn.getresponse().status == 413
    conn.close()
    # A client that opens a connection and never finishes its headers stalls nobody.
    with socket.create_connection(("127.0.0.1", server.port)) as lazy:
        lazy.sendall(b"POST /api/events HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n")
        started = time.perf_counter()
        assert server.request("GET", "/api/ping", token=server.join_token)[0] == 200
        assert time.perf_counter() - started < 1
    e = event("ada")
    assert post(body=e) == (200, {"stored": 1, "duplicates": 0})
    assert post(body=[e, e]) == (200, {"stored": 0, "duplicates": 2})  # dedupe by id
    assert attempts(server.state()) == {"ada": 1}


def test_kill_9_and_restart_keep_every_result(tmp_path: Path) -> None:
    srv = Server(tmp_path / "classroom.db")
    try:
        srv.start()
        tokens = (srv.join_token, srv.instructor_token)
        key = srv.join("ada")
        events = [event("ada", passed=n == 49) for n in range(50)]
        for batch in (events[:25], events[25:]):
            assert srv.request("POST", "/api/events", batch, token=srv.join_token, key=key)[0] == 200
        before = srv.state()
        srv.stop(signal.SIGKILL)
        started = time.perf_counter()
        srv.start()
        restart = time.perf_counter() - started
        assert (srv.join_token, srv.instructor_token) == tokens
        after = srv.state()
        assert after["learners"] == before["learners"] or attempts(after) == attempts(before)
        assert attempts(after) == attempts(before) == {"ada": 50}
        assert after["learners"][0]["cells"]["welcome.first-container"]["passed"] is True
        assert after["seq"] == before["seq"]
        # The learner key survived too, and a resent batch is not stored twice.
        assert srv.request("POST", "/api/events", events[:25], token=srv.join_token, key=key)[1] == {
            "stored": 0,
            "duplicates": 25,
        }
        _record_figure("restart_after_kill_9_s", round(restart, 3))
    finally:
        srv.stop()


def test_offline_learner_queues_then_flushes(tmp_path: Path) -> None:
    srv = Server(tmp_path / "classroom.db")
    env = learner_env(tmp_path, "ada")
    try:
        srv.start()
        assert cli(env, "join", srv.url, srv.join_token, "--name", "ada").returncode == 0
        srv.stop()
        script = (
            "from labkit.exercises.machinery import record as progress\nfrom labkit.exercises.machinery.model import CheckResult\n"
            "for p in (False, False, True):\n"
            "    progress.record(progress.make_event('check', CheckResult('welcome.first-container', 't', p, 'm', None)))\n"
        )
        done = subprocess.run(
            [sys.executable, "-c", script], env=env, cwd=ROOT, capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, done.stderr
        queue = Path(env["LABKIT_STATE_DIR"]) / "classroom-queue.jsonl"
        assert len(queue.read_text().splitlines()) == 3
        offline = cli(env, "flush")
        assert (
            offline.returncode == 2 and "cannot reach" in offline.stderr and "3 result(s) stay queued" in offline.stderr
        )
        status = cli(env, "status")
        assert "not reachable" in status.stdout and "queued:    3" in status.stdout
        srv.start()
        flushed = cli(env, "flush")
        assert flushed.returncode == 0, flushed.stderr
        assert "sent 3 result(s); 0 still queued" in flushed.stdout
        assert queue.read_text() == ""
        state = srv.state()
        assert attempts(state) == {"ada": 3}
        assert state["learners"][0]["cells"]["welcome.first-container"]["passed"] is True
    finally:
        srv.stop()


def test_join_says_what_is_wrong(server: Server, tmp_path: Path) -> None:
    env = learner_env(tmp_path, "ada")
    wrong = cli(env, "join", server.url, "not-the-token", "--name", "ada")
    assert wrong.returncode == 2 and "refused the token" in wrong.stderr
    instructor = cli(env, "join", server.url, server.instructor_token, "--name", "ada")
    assert instructor.returncode == 2 and "instructor's token" in instructor.stderr
    nowhere = cli(env, "join", f"http://127.0.0.1:{free_port()}", server.join_token, "--name", "ada")
    assert nowhere.returncode == 2 and "cannot reach" in nowhere.stderr
    assert cli(env, "join", "ftp://x", server.join_token, "--name", "ada").returncode == 2
    assert not (Path(env["LABKIT_STATE_DIR"]) / "classroom.json").exists()
    assert cli(env, "join", server.url, server.join_token, "--name", "ada").returncode == 0
    assert cli(env, "join", server.url, server.join_token, "--name", "ada").returncode == 0  # again: same key
    left = cli(env, "leave")
    assert left.returncode == 0 and "left the classroom" in left.stdout


def test_serve_refuses_public_host_and_taken_port(server: Server, tmp_path: Path) -> None:
    db = str(tmp_path / "other.db")
    public = subprocess.run([sys.executable, "-m", "labkit", "classroom", "serve", "--host", "0.0.0.0", "--db", db],
                            capture_output=True, text=True, timeout=30)  # fmt: skip
    assert public.returncode == 2 and "without --public" in public.stderr
    taken = subprocess.run([sys.executable, "-m", "labkit", "classroom", "serve", "--port", str(server.port), "--db", db],
                           capture_output=True, text=True, timeout=30)  # fmt: skip
    assert taken.returncode == 2
    assert taken.stderr.strip().count("\n") == 0 and f"port {server.port} is already in use" in taken.stderr
