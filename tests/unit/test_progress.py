"""The progress record: events, their contract (the schema file), the local store, the runner hook, the sinks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from labkit.classroom import client
from labkit.core import fmt
from labkit.exercises.machinery import events, runner
from labkit.exercises.machinery import record as progress
from labkit.exercises.machinery.model import CheckResult


@pytest.fixture
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private state folder, a fixed learner, and no classroom."""
    monkeypatch.setenv("LABKIT_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("LABKIT_LEARNER", "ada")
    return tmp_path / "state"


def _result(passed: bool = False, message: str = "No container yet.") -> CheckResult:
    return CheckResult("welcome.first-container", "First container", passed, message, None if passed else "Run it.")


def test_check_event_has_every_field_of_the_contract(state: Path) -> None:
    event = progress.make_event("check", _result(), at="2026-11-27T21:30:00.123Z")
    assert event == {
        "v": 1,
        "id": event["id"],
        "kind": "check",
        "learner": "ada",
        "exercise": "welcome.first-container",
        "lesson": "00",
        "passed": False,
        "status": "not yet",
        "message": "No container yet.",
        "hint": "Run it.",
        "hint_level": 0,
        "at": "2026-11-27T21:30:00.123Z",
        "labkit": event["labkit"],
    }
    assert len(event["id"]) == 32 and events.validate_event(event) == event
    assert events.validate_event(json.loads(json.dumps(event))) == event


def test_hint_event_and_clipped_message(state: Path) -> None:
    event = progress.make_event("hint", "Hint 2/3: look closer", exercise="vm.kernel", hint_level=2)
    assert (event["kind"], event["status"], event["passed"], event["hint_level"], event["lesson"]) == (
        "hint",
        "hint",
        False,
        2,
        "01",
    )
    assert event["hint"] == "Hint 2/3: look closer"
    assert fmt.utc_now().endswith("Z") and events.validate_event(event)
    long = progress.make_event("check", _result(message="x" * 5000))
    assert len(long["message"]) == events.MAX_MESSAGE and long["message"].endswith("…")
    events.validate_event(long)
    with pytest.raises(ValueError, match="unknown event kind"):
        progress.make_event("solve", _result())


def _valid(**changes: Any) -> dict[str, Any]:
    event = {
        "v": 1, "id": "0" * 32, "kind": "check", "learner": "ada", "exercise": "welcome.first-container",
        "lesson": "00", "passed": True, "status": "passed", "message": "ok", "hint": None, "hint_level": 0,
        "at": "2026-11-27T21:30:00.123Z", "labkit": "0.1.0",
    }  # fmt: skip
    event.update(changes)
    return {k: v for k, v in event.items() if v is not _DROP}


_DROP = object()


@pytest.mark.parametrize(
    ("event", "reason"),
    [
        ([1, 2], "a JSON object, not list"),
        (_valid(at=_DROP), "missing field(s): at"),
        (_valid(extra=1), "unknown field(s): extra"),
        (_valid(v=True), "field 'v' must be int, not bool"),
        (_valid(v=2), "unsupported event version 2"),
        (_valid(passed=1), "field 'passed' must be bool, not int"),
        (_valid(hint_level="0"), "field 'hint_level' must be int, not str"),
        (_valid(hint=5), "field 'hint' must be str or null"),
        (_valid(id="not-a-uuid"), "field 'id' must be 32 lowercase hex digits"),
        (_valid(kind="grade"), "unknown kind 'grade'"),
        (_valid(message="x" * 2001), "field 'message' is longer than 2000 characters"),
        (_valid(learner="a" * 101), "field 'learner' is longer than 100"),
        (_valid(learner="ada\x1b[31m"), "field 'learner' must be a trimmed, non-empty name"),
        (_valid(learner="  "), "field 'learner' must be a trimmed, non-empty name"),
        (_valid(exercise="../etc"), "field 'exercise' is not an exercise id"),
        (_valid(at="2026-11-27 21:30:00"), "field 'at' must be a UTC time"),
        (_valid(at="2026-13-45T21:30:00Z"), "field 'at' is not a real time"),
        (_valid(status="not yet"), "a check's status must be 'passed' when passed is true"),
        (_valid(hint_level=2), "a check's hint_level must be 0"),
        (
            _valid(kind="hint", passed=False, status="hint", hint_level=0),
            "a hint's hint_level must be between 1 and 100",
        ),
        (
            _valid(kind="hint", passed=True, status="hint", hint_level=1),
            "a hint's status must be 'hint' and passed false",
        ),
    ],
)
def test_validate_rejects_with_one_line(event: Any, reason: str) -> None:
    with pytest.raises(ValueError) as caught:
        events.validate_event(event)
    assert reason in str(caught.value) and "\n" not in str(caught.value)


def test_validate_returns_a_clean_copy() -> None:
    original = _valid()
    clean = events.validate_event(original)
    assert clean == original and clean is not original


def test_learner_name_env_then_classroom_then_os_user(state: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert progress.learner_name() == "ada"
    monkeypatch.delenv("LABKIT_LEARNER")
    state.mkdir(parents=True, exist_ok=True)
    (state / "classroom.json").write_text(json.dumps({"url": "http://x", "token": "t", "learner": " Grace H. "}))
    assert progress.learner_name() == "Grace H."
    (state / "classroom.json").write_text("{damaged")
    monkeypatch.setattr(progress.getpass, "getuser", lambda: "labuser")
    assert progress.learner_name() == "labuser"


def test_record_appends_one_line_per_event_and_reads_back(state: Path) -> None:
    first = progress.make_event("hint", "Hint 1/3: x", exercise="vm.kernel", hint_level=1)
    second = progress.make_event("check", _result(passed=True, message="ran"))
    assert progress.record(first) and progress.record(second)
    lines = (state / "progress.jsonl").read_text().splitlines()
    assert [json.loads(line) for line in lines] == [first, second]
    with open(state / "progress.jsonl", "a") as f:
        f.write('{"v": 1, "id": "trunc\n\nnot json at all\n')
    events, damaged = progress.read()
    assert events == [first, second] and damaged == 2


@pytest.fixture
def sinks(monkeypatch: pytest.MonkeyPatch) -> list[progress.Sink]:
    """The record's sinks, restored after the test (``import labkit`` installed the classroom's)."""
    saved = list(progress._sinks)
    monkeypatch.setattr(progress, "_sinks", saved)
    return saved


def test_import_labkit_installs_the_classroom_sink_once(sinks: list[progress.Sink]) -> None:
    import labkit  # noqa: F401 - the notebook API and the CLI both start here

    assert sinks.count(client.submit) == 1
    client.install()
    assert sinks.count(client.submit) == 1, "installing twice must not send every event twice"


def test_record_never_fails_a_check(state: Path, monkeypatch: pytest.MonkeyPatch, sinks: list[progress.Sink]) -> None:
    (state / "progress.jsonl").mkdir(parents=True)  # the store cannot be opened for writing (true even for root)
    # The real classroom sink, joined, with a queue it cannot write: it raises inside record().
    client.config_path().write_text(
        json.dumps({"url": "http://127.0.0.1:9", "token": "t", "learner": "ada", "key": "k"})
    )
    client.queue_path().mkdir()
    with pytest.raises(OSError):
        client.submit(progress.make_event("check", _result()))
    reached: list[dict[str, Any]] = []

    def broken(event: dict[str, Any]) -> None:
        raise RuntimeError("server on fire")

    progress.add_sink(broken)
    progress.add_sink(reached.append)
    event = progress.make_event("check", _result())
    assert progress.record(event) is False
    assert reached == [event], "a broken sink must not keep the event from the next one"
    monkeypatch.setattr(runner, "_check", lambda exercise, answer: _result())
    assert runner.check("welcome.first-container") == _result()
    assert str(runner.hint("welcome.first-container", 1)).startswith("Hint 1/")
    progress.remove_sink(broken)
    progress.remove_sink(broken)  # twice: nothing happens
    assert broken not in sinks


def test_a_joined_learners_checks_and_hints_are_queued(
    state: Path, monkeypatch: pytest.MonkeyPatch, sinks: list[progress.Sink]
) -> None:
    assert client.submit in sinks
    state.mkdir(parents=True)
    # Port 9 on loopback has no listener: the sender fails at once and the events stay queued.
    client.config_path().write_text(
        json.dumps({"url": "http://127.0.0.1:9", "token": "t", "learner": "ada", "key": "k"})
    )
    monkeypatch.setattr(client, "_last_failure", "test: no exit flush")
    monkeypatch.setattr(runner, "_check", lambda exercise, answer: _result())
    runner.check("welcome.first-container")
    runner.hint("welcome.first-container", 1)
    queued = [json.loads(line) for line in client.queue_path().read_text().splitlines()]
    assert queued == progress.read()[0] and [e["kind"] for e in queued] == ["check", "hint"]
    client.leave()


@pytest.mark.parametrize(
    "argv",
    [
        ["-m", "labkit.cli", "hint", "welcome.first-container"],
        ["-c", "import labkit; labkit.hint('welcome.first-container')"],
    ],
    ids=["cli", "notebook-api"],
)
def test_a_joined_learner_queues_from_the_cli_and_from_a_kernel(tmp_path: Path, argv: list[str]) -> None:
    """No test double: a fresh interpreter, as a terminal or a kernel starts one."""
    (tmp_path / "classroom.json").write_text(
        json.dumps({"url": "http://127.0.0.1:9", "token": "t", "learner": "ada", "key": "k"})
    )
    env = {**os.environ, "LABKIT_STATE_DIR": str(tmp_path), "LABKIT_LEARNER": "ada"}
    done = subprocess.run([sys.executable, *argv], env=env, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    queued = [json.loads(line) for line in (tmp_path / "classroom-queue.jsonl").read_text().splitlines()]
    assert [(e["kind"], e["exercise"], e["learner"]) for e in queued] == [("hint", "welcome.first-container", "ada")]


def test_runner_check_and_hint_record_what_the_learner_saw(state: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shown = _result(message="No container made from hello-world exists yet.")
    monkeypatch.setattr(runner, "_check", lambda exercise, answer: shown)  # the daemon part is tested in integration
    assert runner.check("welcome.first-container") is shown
    hint = runner.hint("welcome.first-container", level=99)  # clamped to the last tier
    events, damaged = progress.read()
    assert damaged == 0 and [e["kind"] for e in events] == ["check", "hint"]
    check, asked = events
    assert (check["exercise"], check["status"], check["message"], check["hint"]) == (
        "welcome.first-container",
        "not yet",
        shown.message,
        "Run it.",
    )
    assert asked["hint"] == str(hint) and asked["hint_level"] == int(str(hint).split("/")[0].split()[-1])
    assert all(e["learner"] == "ada" and e["lesson"] == "00" for e in events)
    assert os.stat(state / "progress.jsonl").st_mode & 0o077 == 0, "the record is the learner's alone"


@pytest.mark.parametrize(
    "damage", ["[]", "null", '{"v": "1"}', '{"v": 1, "id": "trunc'], ids=["list", "null", "wrong types", "truncated"]
)
def test_an_append_after_a_damaged_last_line_is_kept_and_the_damage_counted(state: Path, damage: str) -> None:
    first = progress.make_event("check", _result())
    assert progress.record(first)
    with open(state / "progress.jsonl", "a") as f:
        f.write(damage)  # no newline: a write cut short, or a hand edit
    second = progress.make_event("check", _result(passed=True, message="ran"))
    assert progress.record(second)
    events, damaged = progress.read()
    assert events == [first, second] and damaged == 1


def test_a_hint_lesson_text_shows_is_not_the_learners(state: Path) -> None:
    """Only the learner's own requests count: a hint a notebook shows on purpose is not recorded."""
    shown = runner.hint("welcome.first-container", 2, record=False)
    assert str(shown).startswith("Hint 2/")
    assert progress.read() == ([], 0)
    asked = runner.hint("welcome.first-container", 1)
    events, _ = progress.read()
    assert [(e["kind"], e["hint_level"], e["hint"]) for e in events] == [("hint", 1, str(asked))]


def test_a_demo_hint_from_a_kernel_is_not_recorded(tmp_path: Path) -> None:
    """No test double: a fresh interpreter, as a notebook kernel runs lesson code."""
    env = {**os.environ, "LABKIT_STATE_DIR": str(tmp_path), "LABKIT_LEARNER": "ada"}
    code = "import labkit; print(labkit.hint('welcome.first-container', 2, record=False))"
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0 and done.stdout.startswith("Hint 2/"), done.stderr
    assert not (tmp_path / "progress.jsonl").exists() or (tmp_path / "progress.jsonl").read_text() == ""
