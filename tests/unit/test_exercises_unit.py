"""The exercise framework's pure logic: ids, results, hints, answers (no daemon: a stand-in client)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from labkit.core import engine
from labkit.core.errors import DamagedState, UnknownExercise
from labkit.exercises import (
    CheckResult,
    Exercise,
    all_exercises,
    check,
    get,
    hint,
    not_yet,
    passed,
    register,
    solution,
)
from labkit.exercises.machinery import runner
from labkit.exercises.machinery.runner import owned_by_exercise


@pytest.fixture
def state_dir(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("LABKIT_STATE_DIR", str(tmp_path))
    # Pure logic only: the check functions below never touch the client.
    monkeypatch.setattr(engine, "client", lambda: object())
    return tmp_path


def _answer_check(ctx: Any) -> Any:
    if ctx.answer == "42":
        return passed("Right.", answer=ctx.answer)
    if ctx.answer == "41":
        return not_yet("Off by one.", "Count again from zero.")
    return not_yet("Not that.")


ANSWER = register(
    Exercise(
        id="unit.answer",
        lesson="99",
        title="An answer",
        prompt="Say 42.",
        check=_answer_check,
        hints=("Think.", "Six times seven.", "42"),
        solution=("echo 42",),
        reference_answer=lambda ctx: "42",
    )
)


def test_every_exercise_id_is_unique_dotted_and_complete() -> None:
    exercises = all_exercises()
    assert len({e.id for e in exercises}) == len(exercises)
    for e in exercises:
        assert e.id == e.id.lower() and "." in e.id and " " not in e.id
        assert e.title and e.prompt and e.hints, e.id
        assert e.solution or e.reference_answer, f"{e.id} has no reference solution"


def test_unknown_id_suggests_the_closest() -> None:
    with pytest.raises(UnknownExercise) as info:
        get("welcome.first-containr")
    assert "welcome.first-container" in str(info.value)
    with pytest.raises(UnknownExercise) as info:
        get("zzz")
    assert "labkit exercise list" in str(info.value)


def test_ids_forgive_case_and_spaces() -> None:
    assert get("  Welcome.First-Container ").id == "welcome.first-container"


def test_answer_is_recorded_and_rechecked(state_dir: Any) -> None:
    first = check("unit.answer")
    assert not first.passed and "No answer recorded" in first.message
    wrong = check("unit.answer", answer=" 41 ")
    assert not wrong.passed and wrong.hint == "Count again from zero."
    again = check("unit.answer")  # no answer given: re-checks the recorded one
    assert again.message == "Off by one."
    assert check("unit.answer", answer=42).passed
    assert check("unit.answer").passed


def test_generic_hint_when_the_check_names_no_near_miss(state_dir: Any) -> None:
    assert check("unit.answer", answer="7").hint == "Think."


DAMAGED_STORES = {
    "a list": ("[]", "it holds a list, not an object"),
    "null": ("null", "it holds null, not an object"),
    "answers a list": ('{"answers": []}', '"answers" is a list, not an object'),
    "setup a string": ('{"answers": {}, "setup": "x"}', '"setup" is a string, not an object'),
    "an answer a number": ('{"answers": {"unit.answer": 42}}', 'unit.answer under "answers" is a number, not a string'),
    "a setup a list": ('{"setup": {"unit.answer": []}}', 'unit.answer under "setup" is a list, not an object'),
    "truncated": ('{"answers": {"unit.answer": "4', "not JSON"),
    "empty": ("", "empty"),
}


@pytest.mark.parametrize("text, problem", DAMAGED_STORES.values(), ids=DAMAGED_STORES.keys())
def test_a_damaged_store_is_set_aside_with_one_line_then_starts_clean(state_dir: Any, text: str, problem: str) -> None:
    (state_dir / "exercises.json").write_text(text)
    with pytest.raises(DamagedState) as caught:
        check("unit.answer")
    message = str(caught.value)
    assert problem in message and "\n" not in message and caught.value.exit_code == 2
    (aside,) = state_dir.glob("exercises.json.damaged-*")
    assert aside.read_text() == text and str(aside) in message
    assert not (state_dir / "exercises.json").exists()
    assert check("unit.answer", answer="42").passed  # the next command starts clean
    assert json.loads((state_dir / "exercises.json").read_text())["answers"] == {"unit.answer": "42"}


def test_a_store_without_setup_is_not_damaged(state_dir: Any) -> None:
    (state_dir / "exercises.json").write_text('{"answers": {"unit.answer": "42"}}')
    assert check("unit.answer").passed


def test_hint_levels_are_clamped() -> None:
    assert hint("unit.answer", 0) == "Hint 1/3: Think."
    assert hint("unit.answer", 2) == "Hint 2/3: Six times seven."
    assert hint("unit.answer", 99) == "Hint 3/3: 42"


def test_solution_is_the_commands() -> None:
    assert solution("welcome.first-container") == "docker run hello-world"


def test_result_renders_the_same_every_time() -> None:
    result = CheckResult("x.y", "Title", False, "Found <nothing>.", "Try `docker run`.", {"b": 2, "a": "<1>"})
    assert result._repr_html_() == result._repr_html_()
    html = result._repr_html_()
    assert "&lt;nothing&gt;" in html and 'data-status="not yet"' in html
    assert html.index("<code>a</code>") < html.index("<code>b</code>")
    assert str(result).splitlines()[0] == "✗ x.y — not yet: Found <nothing>."
    assert not result
    ok = CheckResult("x.y", "Title", True, "Done.")
    assert ok and "✔" in str(ok) and ok.to_dict()["status"] == "passed"


def test_runner_store_lives_in_the_state_dir(state_dir: Any) -> None:
    assert runner._store_path().parent == state_dir


def test_a_reset_owns_what_labkit_made_and_the_names_it_asks_for() -> None:
    """Issue 12: a container from an exercise's image that labkit never made is not the exercise's."""
    first = get("welcome.first-container")
    assert not owned_by_exercise(first, "someone-elses", {}, from_its_image=True)
    assert not owned_by_exercise(first, "someone-elses", None, from_its_image=True)
    assert owned_by_exercise(first, "x", {engine.LABEL_SESSION: "s", engine.LABEL_LESSON: "00"}, from_its_image=True)
    assert owned_by_exercise(first, "x", {"labkit.exercise": first.id}, from_its_image=False)
    assert not owned_by_exercise(first, "x", {"labkit.exercise": "other.one"}, from_its_image=False)
    named = get("run.publish-detach")
    assert owned_by_exercise(named, named.names[0], {}, from_its_image=False)
