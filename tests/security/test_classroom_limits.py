"""What one learner may ask of the server: events a minute, a place in the class, JSON depth; a post's cost."""

from __future__ import annotations

import http.client
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_classroom import ROOT, SSE, Server, _record_figure, cli, event, learner_env

from labkit.classroom.limits import BURST_MINUTES, EVENTS_PER_MINUTE
from labkit.classroom.store import Store

pytestmark = pytest.mark.security

BURST = BURST_MINUTES * EVENTS_PER_MINUTE

# A learner's kernel that checks far too often: 400 events handed to the client at once, then
# wait until the sender has been told to wait (429), and say what is queued.
FLOOD_SCRIPT = r"""
import json, time
from labkit.classroom import client
from labkit.exercises.machinery import record as progress
from labkit.exercises.machinery.model import CheckResult
for n in range(400):
    client.submit(progress.make_event("check", CheckResult("welcome.first-container", "t", n % 2 == 0, "m", None)))
deadline = time.time() + 15
while time.time() < deadline and "asks to wait" not in (client._last_failure or ""):
    time.sleep(0.05)
print(json.dumps({"queued": client.queued(), "failure": client._last_failure}))
"""


def test_an_event_flood_gets_429_and_the_client_keeps_every_event(tmp_path: Path) -> None:
    srv = Server(tmp_path / "classroom.db")
    env = learner_env(tmp_path, "ada")
    try:
        srv.start()
        assert cli(env, "join", srv.url, srv.join_token, "--name", "ada").returncode == 0
        done = subprocess.run([sys.executable, "-c", FLOOD_SCRIPT], env=env, cwd=ROOT, capture_output=True,
                              text=True, timeout=60)  # fmt: skip
        assert done.returncode == 0, done.stderr
        report = json.loads(done.stdout.splitlines()[-1])
        assert "asks to wait" in report["failure"], report
        stored = sum(c["attempts"] for row in srv.state()["learners"] for c in row["cells"].values())
        assert stored <= BURST + 10 and stored + report["queued"] == 400, (stored, report)
        # The server says how long to wait; nothing went to the rejected file.
        key = json.loads((Path(env["LABKIT_STATE_DIR"]) / "classroom.json").read_text())["key"]
        status, body = srv.request("POST", "/api/events", [event("ada") for _ in range(50)], token=srv.join_token,
                                   key=key)  # fmt: skip
        assert status == 429 and "a minute" in body["error"], body
        flush = cli(env, "flush")
        assert flush.returncode == 2 and "asks to wait" in flush.stderr, flush.stderr
        assert f"{report['queued']} result(s) stay queued" in flush.stderr
        assert not (Path(env["LABKIT_STATE_DIR"]) / "classroom-rejected.jsonl").exists()
        # A restart refills the buckets: the queue goes out whole, and nothing was lost.
        srv.stop()
        srv.start()
        flushed = cli(env, "flush")
        assert flushed.returncode == 0, flushed.stderr
        assert "0 still queued" in flushed.stdout
        total = sum(c["attempts"] for row in srv.state()["learners"] for c in row["cells"].values())
        assert total == 400
    finally:
        srv.stop()


def test_retry_after_says_when_the_post_fits(server: Server) -> None:
    key = server.join("ada")
    for _ in range(BURST // 100):
        assert server.request("POST", "/api/events", [event("ada") for _ in range(100)], token=server.join_token,
                              key=key)[0] == 200  # fmt: skip
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    conn.request("POST", "/api/events", json.dumps([event("ada") for _ in range(100)]),
                 {"Authorization": f"Bearer {server.join_token}", "X-Labkit-Learner-Key": key,
                  "Content-Type": "application/json"})  # fmt: skip
    response = conn.getresponse()
    response.read()
    conn.close()
    assert response.status == 429
    retry = int(response.getheader("Retry-After") or "0")
    # 100 events, with BURST % 100 left and one a second coming back: about a minute.
    assert 100 - BURST % 100 - 5 <= retry * EVENTS_PER_MINUTE / 60 <= 100, retry
    # Another learner is not slowed down by ada's flood.
    bob = server.join("bob")
    assert server.request("POST", "/api/events", event("bob"), token=server.join_token, key=bob)[0] == 200


def test_the_class_takes_max_learners(tmp_path: Path) -> None:
    srv = Server(tmp_path / "classroom.db", args=("--max-learners", "3"))
    try:
        srv.start()
        keys = {name: srv.join(name) for name in ("ada", "bob", "cyd")}
        status, body = srv.request("POST", "/api/join", {"name": "dee"}, token=srv.join_token)
        assert status == 403 and body["code"] == "classroom-full" and "3 learners" in body["error"], body
        # Joining again is not a new learner.
        assert srv.request("POST", "/api/join", {"name": "ada", "key": keys["ada"]}, token=srv.join_token)[0] == 200
        forgot = subprocess.run([sys.executable, "-m", "labkit", "classroom", "forget", "cyd", "--db", str(srv.db)],
                                cwd=ROOT, capture_output=True, text=True, timeout=60)  # fmt: skip
        assert forgot.returncode == 0, forgot.stderr
        assert srv.request("POST", "/api/join", {"name": "dee"}, token=srv.join_token)[0] == 200
    finally:
        srv.stop()


def test_a_forgotten_learner_is_refused_within_a_second(tmp_path: Path) -> None:
    """The server remembers keys it looked up (no database read per post), for one token refresh at most."""
    srv = Server(tmp_path / "classroom.db")
    try:
        srv.start()
        key = srv.join("eve")
        assert srv.request("POST", "/api/events", event("eve"), token=srv.join_token, key=key)[0] == 200
        forgot = subprocess.run([sys.executable, "-m", "labkit", "classroom", "forget", "eve", "--db", str(srv.db)],
                                cwd=ROOT, capture_output=True, text=True, timeout=60)  # fmt: skip
        assert forgot.returncode == 0, forgot.stderr
        gone = time.monotonic()
        while srv.request("POST", "/api/events", event("eve"), token=srv.join_token, key=key)[0] != 403:
            assert time.monotonic() - gone < 2.5, "a forgotten learner's key still posts"
            time.sleep(0.1)
    finally:
        srv.stop()


def test_json_nested_too_deep_is_400_not_a_crash(server: Server) -> None:
    key = server.join("ada")
    for body in (b"[" * 60_000, b"[" * 30_000 + b"]" * 30_000, json.dumps([[[[[[[[[[1]]]]]]]]]]).encode()):
        for path, learner_key in (("/api/events", key), ("/api/join", None)):
            status, answer = server.request("POST", path, raw=body, token=server.join_token, key=learner_key)
            assert status == 400 and "nested deeper" in answer["error"], (path, status, answer)
    assert "Traceback" not in server.log.read_text() and "RecursionError" not in server.log.read_text()
    assert server.request("POST", "/api/events", event("ada"), token=server.join_token, key=key)[0] == 200


def test_a_post_costs_the_same_with_twenty_thousand_events_behind_it(tmp_path: Path) -> None:
    """With the page open, each post used to re-read the learner's history: 28 ms grew to 259 ms."""
    figures = {}
    for history in (0, 20_000):
        db = tmp_path / f"h{history}" / "classroom.db"
        store = Store(db)
        issued = store.issue_tokens()
        assert issued is not None
        key = store.join("ada", None)
        assert key is not None
        for _ in range(history // 2000):
            store.add([event("ada") for _n in range(2000)])
        store.close()
        srv = Server(db)
        srv.join_token, srv.instructor_token = issued
        try:
            srv.start()
            stream = SSE(srv)
            conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=10)
            headers = {"Authorization": f"Bearer {srv.join_token}", "X-Labkit-Learner-Key": key,
                       "Content-Type": "application/json"}  # fmt: skip
            times = []
            for _ in range(40):
                started = time.perf_counter()
                conn.request("POST", "/api/events", json.dumps(event("ada")), headers)
                response = conn.getresponse()
                response.read()
                assert response.status == 200
                times.append(time.perf_counter() - started)
            conn.close()
            stream.close()
            figures[history] = statistics.median(times) * 1000
        finally:
            srv.stop()
    _record_figure("post_ms_with_page_open_by_history", {str(k): round(v, 2) for k, v in figures.items()})
    assert figures[20_000] < 20 and figures[20_000] < 3 * figures[0] + 5, figures
