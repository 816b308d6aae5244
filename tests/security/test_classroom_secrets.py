"""Secrets at rest and in the browser, names that impersonate, exports that run formulas."""

from __future__ import annotations

import csv
import http.client
import io
import json
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from test_classroom import ROOT, Server, cli, event, learner_env

from labkit.classroom.store import hash_secret
from labkit.core import wait

pytestmark = pytest.mark.security


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _page(server: Server, query: str = "", cookie: str | None = None) -> http.client.HTTPResponse:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    conn.request("GET", "/" + query, headers={"Cookie": cookie} if cookie else {})
    response = conn.getresponse()
    response.read()
    conn.close()
    return response


def _session(server: Server) -> tuple[str, str]:
    """Open the page as the instructor: (the Set-Cookie header, the cookie's value)."""
    response = _page(server, f"?token={server.instructor_token}")
    assert response.status == 200
    header = response.getheader("Set-Cookie") or ""
    match = re.match(r"labkit_instructor=([^;]+);", header)
    assert match, header
    return header, match.group(1)


def _state_with_cookie(server: Server, value: str) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    conn.request("GET", "/api/state", headers={"Cookie": f"labkit_instructor={value}"})
    response = conn.getresponse()
    response.read()
    conn.close()
    return response.status


def test_state_files_are_0600_in_0700_folders(tmp_path: Path) -> None:
    srv = Server(tmp_path / "private" / "classroom.db")
    srv.log = tmp_path / "server.log"  # not inside the folder under test, which the store makes itself
    env = learner_env(tmp_path, "ada")
    try:
        srv.start()
        assert cli(env, "join", srv.url, srv.join_token, "--name", "ada").returncode == 0
        key = json.loads((Path(env["LABKIT_STATE_DIR"]) / "classroom.json").read_text())["key"]
        assert srv.request("POST", "/api/events", event("ada"), token=srv.join_token, key=key)[0] == 200
        srv.stop()  # a learner offline: the next result waits in the queue file
        script = (
            "from labkit.exercises.machinery import record as p\n"
            "from labkit.exercises.machinery.model import CheckResult\n"
            "p.record(p.make_event('check', CheckResult('welcome.first-container', 't', False, 'm', None)))\n"
        )
        subprocess.run([sys.executable, "-c", script], env=env, cwd=ROOT, check=True, timeout=60)
        srv.start()
        _session(srv)
        server_files = [srv.db, Path(f"{srv.db}-wal"), Path(f"{srv.db}-shm")]
        learner = Path(env["LABKIT_STATE_DIR"])
        learner_files = [learner / n for n in ("classroom.json", "classroom-queue.jsonl", "classroom-queue.lock")]
        modes = {str(p): oct(_mode(p)) for p in server_files + learner_files}
        assert all(_mode(p) == 0o600 for p in server_files + learner_files), modes
        assert _mode(srv.db.parent) == 0o700 and _mode(learner) == 0o700, (
            oct(_mode(srv.db.parent)),
            oct(_mode(learner)),
        )
    finally:
        srv.stop()
    # The default database's folder is labkit's own: made 0700 even when it was there before.
    state = tmp_path / "instructor-state"
    (state / "classroom").mkdir(parents=True, mode=0o755)
    env = {**env, "LABKIT_STATE_DIR": str(state)}
    subprocess.run([sys.executable, "-m", "labkit", "classroom", "rotate"], env=env, cwd=ROOT, check=True,
                   capture_output=True, timeout=60)  # fmt: skip
    assert _mode(state / "classroom") == 0o700 and _mode(state / "classroom" / "classroom.db") == 0o600


def test_no_token_key_or_session_is_stored_in_clear(server: Server) -> None:
    key = server.join("ada")
    assert server.request("POST", "/api/events", event("ada"), token=server.join_token, key=key)[0] == 200
    _, session = _session(server)
    secrets = {"join token": server.join_token, "instructor token": server.instructor_token, "learner key": key,
               "session": session}  # fmt: skip

    def leaks() -> dict[str, list[str]]:
        found: dict[str, list[str]] = {}
        for path in (server.db, Path(f"{server.db}-wal"), Path(f"{server.db}-shm")):
            data = path.read_bytes() if path.exists() else b""
            for name, secret in secrets.items():
                if secret.encode() in data or secret.upper().encode() in data or bytes.fromhex(secret) in data:
                    found.setdefault(path.name, []).append(name)
        return found

    assert leaks() == {}
    server.stop()  # the WAL folds back into the file: still nothing
    assert leaks() == {}
    assert hash_secret(server.join_token).encode() in server.db.read_bytes()  # what is kept instead (and where)


def test_rotate_ends_the_old_tokens_and_sessions(server: Server, tmp_path: Path) -> None:
    key = server.join("ada")
    _, session = _session(server)
    assert _state_with_cookie(server, session) == 200
    rotated = subprocess.run([sys.executable, "-m", "labkit", "classroom", "rotate", "--db", str(server.db)],
                             cwd=ROOT, capture_output=True, text=True, timeout=60)  # fmt: skip
    assert rotated.returncode == 0, rotated.stderr
    join = re.search(r"new join token: +(\w+)", rotated.stdout)
    instructor = re.search(r"new instructor token: +(\w+)", rotated.stdout)
    assert join and instructor, rotated.stdout
    new_join, new_instructor = join.group(1), instructor.group(1)
    assert {new_join, new_instructor}.isdisjoint({server.join_token, server.instructor_token})

    def old_refused() -> bool:
        return server.request("GET", "/api/ping", token=server.join_token)[0] == 403

    wait.until(old_refused, "the running server to take the new tokens", timeout=5)
    assert server.request("GET", "/api/state", token=server.instructor_token)[0] == 403
    assert _state_with_cookie(server, session) == 403
    assert server.request("GET", "/api/ping", token=new_join)[1]["role"] == "learner"
    assert server.request("GET", "/api/state", token=new_instructor)[0] == 200
    # The learner keeps their key and name: posting works with the new join token.
    assert server.request("POST", "/api/events", event("ada"), token=new_join, key=key)[0] == 200
    assert server.request("POST", "/api/events", event("ada"), token=server.join_token, key=key)[0] == 403
    # A restart keeps the new tokens (as hashes) and says so without printing them.
    server.stop()
    server.join_token, server.instructor_token = new_join, new_instructor
    server.start()
    assert "tokens kept" in server.log.read_text() and new_join not in server.log.read_text()
    assert server.request("GET", "/api/ping", token=new_join)[0] == 200


def test_the_cookie_is_a_session_not_the_token(server: Server) -> None:
    header, value = _session(server)
    assert value != server.instructor_token and server.instructor_token not in header
    assert len(value) >= 64  # 256 random bits
    flags = {part.strip().split("=")[0].lower() for part in header.split(";")[1:]}
    assert {"httponly", "samesite", "path", "max-age"} <= flags and "samesite=strict" in header.lower()
    assert _state_with_cookie(server, value) == 200
    assert _state_with_cookie(server, server.instructor_token) == 403  # the token is no cookie
    assert _state_with_cookie(server, "0" * 64) == 403
    assert _page(server, cookie=f"labkit_instructor={value}").status == 200  # a reload without ?token=
    assert _page(server).status == 401


def test_the_gradebook_csv_cannot_run_formulas(server: Server, tmp_path: Path) -> None:
    names = ['=HYPERLINK("http://x","y")', "+1+2", "-2+3", "@SUM(1)", "\uff1d1+1", "ada"]
    for name in names:
        key = server.join(name)
        learner = server.request("POST", "/api/join", {"name": name, "key": key}, token=server.join_token)[1]["learner"]
        assert (
            server.request("POST", "/api/events", event(learner, passed=True), token=server.join_token, key=key)[0]
            == 200
        )
    status, text = server.request("GET", "/api/gradebook.csv", token=server.instructor_token)
    assert status == 200
    first_cells = [row[0] for row in csv.reader(io.StringIO(text))][1:]
    assert sorted(first_cells) == sorted(['\'=HYPERLINK("http://x","y")', "'+1+2", "'-2+3", "'@SUM(1)", "'=1+1", "ada"])
    assert all(
        not cell.startswith(("=", "+", "-", "@", "\t", "\r")) for row in csv.reader(io.StringIO(text)) for cell in row
    )


def test_names_that_read_the_same_are_one_learner(server: Server) -> None:
    def join(name: str, key: str | None = None) -> tuple[int, dict[str, str]]:
        status, body = server.request("POST", "/api/join", {"name": name, "key": key}, token=server.join_token)
        return status, body

    status, eve = join("\u00e9ve")  # precomposed
    assert status == 200 and eve["learner"] == "\u00e9ve"
    assert join("e\u0301ve")[0] == 409  # decomposed: the same name
    status, again = join("E\u0301VE", eve["key"])  # the same learner, another spelling, with the key
    assert status == 200 and again["learner"] == "\u00e9ve" and again["key"] == eve["key"]
    assert join("ADA")[0] == 200 and join("ada")[0] == 409
    status, body = join("\u0430da")  # Cyrillic a, Latin da
    assert status == 422 and "Cyrillic and Latin" in body["error"]
    assert join("Coe")[0] == 200 and join("\u0421\u043e\u0435")[0] == 409  # all Cyrillic, looks like Coe
    assert join("\u0414\u043c\u0438\u0442\u0440\u0438\u0439")[0] == 200  # a Cyrillic name of its own is fine
    # Events under another spelling are stored under the learner's own.
    posted = event("\u00c9VE")
    assert server.request("POST", "/api/events", posted, token=server.join_token, key=eve["key"])[0] == 200
    rows = {row["name"] for row in server.state()["learners"]}
    assert "\u00e9ve" in rows and "\u00c9VE" not in rows and "e\u0301ve" not in rows
    status, body = server.request("POST", "/api/events", event("ada"), token=server.join_token, key=eve["key"])
    assert status == 403 and body["code"] == "learner-mismatch"


def test_a_learner_joining_again_keeps_their_name_after_a_rotation(server: Server, tmp_path: Path) -> None:
    env = learner_env(tmp_path, "ada")
    assert cli(env, "join", server.url, server.join_token, "--name", "ADA").returncode == 0
    rotated = subprocess.run([sys.executable, "-m", "labkit", "classroom", "rotate", "--db", str(server.db)],
                             cwd=ROOT, capture_output=True, text=True, timeout=60)  # fmt: skip
    new_join = re.search(r"new join token: +(\w+)", rotated.stdout)
    assert new_join
    wait.until(lambda: server.request("GET", "/api/ping", token=new_join.group(1))[0] == 200,
               "the running server to take the new tokens", timeout=5)  # fmt: skip
    again = cli(env, "join", server.url, new_join.group(1), "--name", "ada")
    assert again.returncode == 0, again.stderr
    assert "as ADA" in again.stdout  # the name it joined with first
