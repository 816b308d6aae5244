"""The hub grader's pure parts: its hub configuration, requests, the check's output, the daemon rule, the lab's hook."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from labkit.classroom import hub_checks
from labkit.classroom.hub_records import DB_NAME, grades, verdict_event
from labkit.classroom.learner_engine import SocketPeer, daemon_problem
from labkit.classroom.store import Store
from labkit.core.errors import LabkitError
from labkit.exercises.machinery import runner
from labkit.exercises.machinery.model import CheckResult

hub_grader = pytest.importorskip("labkit.classroom.hub_grader", reason="the grader is the optional extra `hub`")
Config = pytest.importorskip("traitlets.config").Config

SCOPE = "access:services!service=labkit-grader"


def test_configure_adds_the_service_the_scopes_the_environment_and_the_relay() -> None:
    c = Config()
    c.JupyterHub.services = [{"name": "idle-culler", "command": ["cull"]}]
    c.JupyterHub.load_roles = [{"name": "user", "scopes": ["self", "read:groups"]}]
    c.Spawner.environment = {"LANG": "C.UTF-8"}
    hub_grader.configure(c, Path("/srv/grader"), 8123)
    names = [s["name"] for s in c.JupyterHub.services]
    assert names == ["idle-culler", "labkit-grader"]
    service = c.JupyterHub.services[1]
    assert service["url"] == "http://127.0.0.1:8123"
    assert service["command"][1:] == ["-m", "labkit.classroom.hub_grader", "--state=/srv/grader", "--port=8123"]
    assert "user" not in service  # runs as the hub does: root
    roles = {r["name"]: r["scopes"] for r in c.JupyterHub.load_roles}
    assert roles["user"] == ["self", "read:groups", SCOPE]  # kept what was there
    assert roles["server"] == ["users:activity!user", "access:servers!server", SCOPE]
    assert c.Spawner.environment == {
        "LANG": "C.UTF-8",
        "LABKIT_HUB_GRADER": "http://127.0.0.1:8123/services/labkit-grader/",
    }
    assert c.LearnerEngineSpawner.relayed_ports == [8123]


def test_configure_adds_the_scope_to_explicit_server_token_scopes() -> None:
    c = Config()
    c.Spawner.server_token_scopes = ["users:activity!user"]
    hub_grader.configure(c, Path("/srv/grader"), 8123)
    assert c.Spawner.server_token_scopes == ["users:activity!user", SCOPE]


@pytest.mark.parametrize(
    ("body", "why"),
    [
        (b"[1]", "JSON object"),
        (b"{", "not JSON"),
        (b'{"passed": true}', "unknown field(s) passed"),
        (b'{"learner": "bob", "answer": "x"}', "named by the token"),
        (b'{"answer": true}', '"answer" must be'),
        (b'{"answer": "' + b"x" * 2000 + b'"}', '"answer" must be'),
        (b" " * (64 * 1024), "over"),
    ],
)
def test_a_malformed_body_is_one_line(body: bytes, why: str) -> None:
    with pytest.raises(hub_grader.BadRequest) as caught:
        hub_grader.parse_body(body)
    assert why in str(caught.value) and "\n" not in str(caught.value)


def test_a_body_may_carry_an_answer() -> None:
    assert hub_grader.parse_body(b"{}") is None
    assert hub_grader.parse_body(b'{"answer": 42}') == "42"


def _printed(passed: bool) -> str:
    return json.dumps({"exercise": "a.b", "title": "T", "passed": passed, "message": "m", "hint": None})


def test_the_check_runs_output_becomes_the_verdict_or_could_not_check() -> None:
    assert hub_grader.result_from_run(0, _printed(True), "").passed
    assert not hub_grader.result_from_run(1, _printed(False), "").passed
    with pytest.raises(LabkitError, match="disagree"):
        hub_grader.result_from_run(0, _printed(False), "")
    with pytest.raises(LabkitError, match="printed no verdict"):
        hub_grader.result_from_run(0, "Traceback…", "")
    with pytest.raises(LabkitError, match="could not check: labkit: no daemon"):
        hub_grader.result_from_run(2, "", "warning\nlabkit: no daemon\n")


def test_the_check_never_names_the_grader_in_its_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(hub_checks.GRADER_ENV, "http://127.0.0.1:1/")
    assert hub_grader._python_path().keys() <= {"PYTHONPATH"}
    assert hub_checks.GRADER_ENV not in " ".join(hub_grader.check_argv("a.b", "x"))


def test_only_the_dockerd_root_started_serves_the_learners_socket() -> None:
    dockerd = (8, 77)
    real = SocketPeer(pid=300, uid=1001, parent=200, program=dockerd)
    assert daemon_problem(real, 200, 1001, dockerd) is None
    assert "parent" in str(daemon_problem(SocketPeer(301, 1001, 1, dockerd), 200, 1001, dockerd))  # their own process
    assert "dockerd" in str(daemon_problem(SocketPeer(302, 1001, 200, (8, 78)), 200, 1001, dockerd))  # another program
    assert "uid" in str(daemon_problem(SocketPeer(303, 0, 200, dockerd), 200, 1001, dockerd))
    assert daemon_problem(SocketPeer(304, 1001, None, None), 200, 1001, dockerd) is not None  # gone


def test_the_records_make_the_gradebook(tmp_path: Path) -> None:
    store = Store(tmp_path / DB_NAME)
    result = CheckResult("run.publish-detach", "T", True, "ok")
    store.add([verdict_event("ada", result, "05")])
    store.close()
    assert (tmp_path / DB_NAME).stat().st_mode & 0o077 == 0
    csv_text = grades(tmp_path, "csv")
    assert csv_text.splitlines()[1].startswith("ada,")
    scored = json.loads(grades(tmp_path, "gradescope"))["ada"]
    assert (
        scored["score"] == 1
        and {"name": "run.publish-detach", "score": 1}.items()
        <= next(t for t in scored["tests"] if t["name"] == "run.publish-detach").items()
    )
    with pytest.raises(LabkitError, match="unknown gradebook format"):
        grades(tmp_path, "xlsx")
    with pytest.raises(LabkitError, match="no grader records"):
        grades(tmp_path / "none", "csv")


def test_the_labs_hook_shows_the_hubs_verdict_or_a_marked_local_one(monkeypatch: pytest.MonkeyPatch) -> None:
    local = CheckResult("welcome.first-container", "T", False, "no container yet")
    recorded: list[CheckResult] = []
    monkeypatch.setattr(runner, "_check", lambda exercise, answer: local)
    monkeypatch.setattr(runner, "_record", lambda kind, shown, exercise, level=0: recorded.append(shown))
    hub = CheckResult("welcome.first-container", "T", True, "ok", None, {"recorded by": "the hub"})
    try:
        runner.set_grader(lambda exercise, answer: hub)
        assert runner.check("welcome.first-container") is hub and not recorded  # the hub recorded it
        runner.set_grader(lambda exercise, answer: "the hub's grader did not answer (refused)")
        shown = runner.check("welcome.first-container")
        assert (
            shown.message
            == "no container yet [checked here only, not recorded: the hub's grader did not answer (refused)]"
        )
        assert recorded == [shown]
        runner.set_grader(lambda exercise, answer: None)
        assert runner.check("welcome.first-container") is local
    finally:
        runner.set_grader(hub_checks.ask)


def test_the_hubs_answer_becomes_a_result_or_a_reason() -> None:
    body = json.dumps({"exercise": "a.b", "title": "T", "passed": True, "message": "ok", "evidence": {"ports": "8080"}})
    result = hub_checks.from_answer(200, body.encode())
    assert isinstance(result, CheckResult) and result.evidence == {"ports": "8080", "recorded by": "the hub"}
    assert hub_checks.from_answer(401, b'{"error": "no token"}') == "the hub's grader answered 401: no token"
    assert hub_checks.from_answer(502, b"<html>bad gateway") == "the hub's grader answered 502: <html>bad gateway"
    assert hub_checks.from_answer(200, b'{"exercise": "a.b"}') == "the hub's grader answered without 'title'"


def test_outside_a_hubs_lab_nobody_is_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(hub_checks.GRADER_ENV, raising=False)
    monkeypatch.setenv(hub_checks.TOKEN_ENV, "t")
    assert hub_checks.ask(runner.get("welcome.first-container"), None) is None


def test_an_unreachable_grader_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(hub_checks.GRADER_ENV, "http://127.0.0.1:9/services/labkit-grader/")
    monkeypatch.setenv(hub_checks.TOKEN_ENV, "t")
    reason = hub_checks.ask(runner.get("welcome.first-container"), None)
    assert isinstance(reason, str) and reason.startswith("the hub's grader did not answer (") and "\n" not in reason
