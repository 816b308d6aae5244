"""labkit grade: a gradebook and results.json from learners' real progress stores."""

from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from labkit import cli
from labkit.course.grade import RULE, course_exercises, csv_cell, grade_dir, grade_events
from labkit.exercises.machinery import record as progress
from labkit.exercises.machinery.model import CheckResult

FIRST, KERNEL = "welcome.first-container", "vm.kernel"


def _check(exercise: str, passed: bool, at: str) -> dict[str, Any]:
    result = CheckResult(exercise, "t", passed, "ok" if passed else "not there", None if passed else "try")
    return progress.make_event("check", result, at=at)


def _hint(exercise: str, level: int, at: str) -> dict[str, Any]:
    return progress.make_event("hint", f"Hint {level}/3: ...", exercise=exercise, hint_level=level, at=at)


def _learner_store(state: Path, monkeypatch: pytest.MonkeyPatch, name: str, events: list[Any]) -> None:
    """A learner's real store: record() into their own state folder, as labkit does in their kernel."""
    monkeypatch.setenv("LABKIT_STATE_DIR", str(state))
    monkeypatch.setenv("LABKIT_LEARNER", name)
    for make, *args in events:
        assert progress.record(make(*args))


def _empty(n: int = 0) -> dict[str, Any]:
    return {"passed": False, "attempts": n, "hints_used": 0, "first_passed_at": None, "last_checked_at": None}


@pytest.fixture
def classroom(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    room = tmp_path / "class"
    # ada hands in her whole state folder: a hint, a failed check, a pass; vm.kernel passed then broken.
    _learner_store(room / "ada", monkeypatch, "ada", [
        (_hint, FIRST, 2, "2026-11-27T09:00:00.000Z"),
        (_check, FIRST, False, "2026-11-27T09:01:00.000Z"),
        (_check, FIRST, True, "2026-11-27T09:02:00.000Z"),
        (_check, KERNEL, True, "2026-11-27T09:10:00.000Z"),
        (_check, KERNEL, False, "2026-11-27T09:20:00.000Z"),
    ])  # fmt: skip
    # bob's store is handed in as bob.jsonl: one pass, an exercise this labkit does not know, a damaged line.
    _learner_store(tmp_path / "bob-state", monkeypatch, "robert", [
        (_check, KERNEL, True, "2026-11-27T10:00:00.000Z"),
        (_check, "retired.exercise", True, "2026-11-27T10:05:00.000Z"),
    ])  # fmt: skip
    with open(tmp_path / "bob-state" / "progress.jsonl", "a") as f:
        f.write('{"v": 1, "kind": "check", "exer')  # a line cut short by a full disk
    shutil.copy(tmp_path / "bob-state" / "progress.jsonl", room / "bob.jsonl")
    (room / "cyd").mkdir()  # a learner who never checked anything
    (room / "notes.txt").write_text("not a learner")
    return room


def test_grade_writes_the_gradebook_and_results_exactly(
    classroom: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    assert cli.main(["grade", str(classroom), "--out", str(out)]) == 0
    columns = course_exercises()
    assert columns[:2] == [FIRST, KERNEL]
    n = len(columns)

    def row(name: str, passed: set[str]) -> str:
        marks = ["1" if e in passed else "0" for e in columns]
        return ",".join([name, *marks, str(len(passed)), f"{round(100 * len(passed) / n, 1):.1f}"])

    assert (out / "gradebook.csv").read_text() == "\n".join([
        ",".join(["learner", *columns, "total", "percent"]),
        row("ada", {FIRST}),  # vm.kernel: the latest check failed
        row("bob", {KERNEL}),
        row("cyd", set()),
    ]) + "\n"  # fmt: skip
    rest = {e: _empty() for e in columns[2:]}
    expected = {
        "rule": RULE,
        "exercises": columns,
        "damaged_lines": 1,
        "learners": {
            "ada": {
                "total": 1,
                "percent": round(100 / n, 1),
                "events": 5,
                "damaged_lines": 0,
                "exercises": {
                    FIRST: {
                        "passed": True,
                        "attempts": 2,
                        "hints_used": 2,
                        "first_passed_at": "2026-11-27T09:02:00.000Z",
                        "last_checked_at": "2026-11-27T09:02:00.000Z",
                    },
                    KERNEL: {
                        "passed": False,
                        "attempts": 2,
                        "hints_used": 0,
                        "first_passed_at": "2026-11-27T09:10:00.000Z",
                        "last_checked_at": "2026-11-27T09:20:00.000Z",
                    },
                    **rest,
                },
                "unknown": {},
            },
            "bob": {
                "total": 1,
                "percent": round(100 / n, 1),
                "events": 2,
                "damaged_lines": 1,
                "exercises": {
                    FIRST: _empty(),
                    KERNEL: {
                        "passed": True,
                        "attempts": 1,
                        "hints_used": 0,
                        "first_passed_at": "2026-11-27T10:00:00.000Z",
                        "last_checked_at": "2026-11-27T10:00:00.000Z",
                    },
                    **rest,
                },
                "unknown": {
                    "retired.exercise": {
                        "passed": True,
                        "attempts": 1,
                        "hints_used": 0,
                        "first_passed_at": "2026-11-27T10:05:00.000Z",
                        "last_checked_at": "2026-11-27T10:05:00.000Z",
                    },
                },
            },
            "cyd": {
                "total": 0,
                "percent": 0.0,
                "events": 0,
                "damaged_lines": 0,
                "exercises": {FIRST: _empty(), KERNEL: _empty(), **rest},
                "unknown": {},
            },
        },
    }
    text = (out / "results.json").read_text()
    assert json.loads(text) == expected
    assert list(json.loads(text)["learners"]["ada"]["exercises"]) == columns, "course order is kept"
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"ada: 1/{n} passed ({round(100 / n, 1):.1f}%), 4 check(s), hints on 1 exercise(s)"
    assert (
        lines[1]
        == f"bob: 1/{n} passed ({round(100 / n, 1):.1f}%), 1 check(s), hints on 0 exercise(s), 1 unknown exercise(s): retired.exercise, 1 damaged line(s) skipped"
    )
    assert lines[2].startswith("cyd: 0/") and lines[3] == f"wrote {out / 'gradebook.csv'} and {out / 'results.json'}"


def test_grade_writes_into_dir_by_default_and_rereads_cleanly(classroom: Path) -> None:
    assert cli.main(["grade", str(classroom)]) == 0
    first = (classroom / "gradebook.csv").read_text()
    assert cli.main(["grade", str(classroom)]) == 0  # its own outputs are not mistaken for learners
    assert (classroom / "gradebook.csv").read_text() == first


def test_same_events_twice_count_once(classroom: Path) -> None:
    shutil.copy(classroom / "ada" / "progress.jsonl", classroom / "ada.jsonl")  # handed in twice
    assert cli.main(["grade", str(classroom)]) == 0
    ada = json.loads((classroom / "results.json").read_text())["learners"]["ada"]
    assert ada["events"] == 5 and ada["exercises"][FIRST]["attempts"] == 2


def test_no_learners_is_a_readable_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["grade", str(tmp_path)]) == 2
    assert "holds no learner's progress" in capsys.readouterr().err
    assert cli.main(["grade", str(tmp_path / "missing")]) == 2


def test_grade_events_uses_each_events_learner_for_the_classroom_server() -> None:
    events = [
        {**_check(FIRST, True, "2026-11-27T09:00:00.000Z"), "learner": "ada"},
        {**_check(FIRST, False, "2026-11-27T09:00:00.000Z"), "learner": "bob"},
        {"forged": True},
    ]
    book = grade_events(events, exercises=[FIRST, KERNEL])
    assert book.to_csv() == f"learner,{FIRST},{KERNEL},total,percent\nada,1,0,1,50.0\nbob,0,0,0,0.0\n"
    assert list(csv.reader(io.StringIO(book.to_csv())))[1] == ["ada", "1", "0", "1", "50.0"]
    assert book.to_json()["damaged_lines"] == 1


@pytest.mark.parametrize("start", ["=", "+", "-", "@", "\t", "\r", "\uff1d"])
def test_csv_cells_that_a_spreadsheet_reads_as_formulas_get_a_quote(start: str) -> None:
    assert csv_cell(f"{start}1+1") == f"'{start}1+1"
    assert csv_cell(f"a{start}1") == f"a{start}1" and csv_cell("") == ""


def test_the_gradebook_csv_escapes_learner_names(tmp_path: Path) -> None:
    (tmp_path / "=cmd|' -C calc'!A0").mkdir()
    (tmp_path / "\tada.jsonl").write_text("")
    (tmp_path / "-bob.jsonl").write_text("")
    rows = list(csv.reader(io.StringIO(grade_dir(tmp_path, exercises=[FIRST]).to_csv())))
    assert sorted(r[0] for r in rows[1:]) == ["'\tada", "'-bob", "'=cmd|' -C calc'!A0"]


def test_names_that_read_the_same_are_one_learner_in_the_gradebook(tmp_path: Path) -> None:
    events = [
        {**_check(FIRST, False, "2026-11-27T09:00:00.000Z"), "learner": "e\u0301ve"},  # decomposed (macOS)
        {**_check(FIRST, True, "2026-11-27T09:01:00.000Z"), "learner": "\u00e9ve"},
        {**_check(KERNEL, True, "2026-11-27T09:02:00.000Z"), "learner": "\u00c9VE"},
    ]
    book = grade_events(events, exercises=[FIRST, KERNEL])
    (learner,) = book.learners()
    assert learner.name == "\u00e9ve" and learner.total == 2 and learner.also_named == ["\u00c9VE"]
    assert book.to_json()["learners"]["\u00e9ve"]["also_named"] == ["\u00c9VE"]
    assert "also named '\u00c9VE'" in learner.summary()


def test_progress_command_shows_the_local_record(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _learner_store(
        tmp_path / "me",
        monkeypatch,
        "ada",
        [(_hint, FIRST, 1, "2026-11-27T09:00:00.000Z"), (_check, FIRST, True, "2026-11-27T09:01:00.000Z")],
    )
    assert cli.main(["progress"]) == 0
    text = capsys.readouterr().out
    assert text.startswith(f"ada: 1/{len(course_exercises())} exercises passed")
    assert f"✔ {FIRST}" in text and "1 check(s), hint level 1" in text
    assert cli.main(["progress", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["learner"] == "ada" and data["exercises"][FIRST]["passed"] is True
