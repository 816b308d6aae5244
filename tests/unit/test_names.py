"""The one learner-name rule (labkit.exercises.machinery.learner_names), as the record, the client and the server apply it."""

from __future__ import annotations

import pytest

from labkit.exercises.machinery import learner_names as names
from labkit.exercises.machinery import record


@pytest.mark.parametrize(
    ("raw", "cleaned"),
    [("  Ada ", "Ada"), ("Ada\u200b\n", "Ada"), ("\x00\x01", None), ("", None), (None, None), ("x" * 150, "x" * 100)],
)
def test_a_cleaned_name_always_passes_the_check(raw: str | None, cleaned: str | None) -> None:
    assert names.clean_name(raw) == cleaned
    if cleaned is not None:
        assert names.check_name(cleaned) == cleaned


@pytest.mark.parametrize("name", ["Ada", "x" * 100, "  Ada", "a\tb", "x" * 101, "zero\u200bwidth"])
def test_the_record_accepts_exactly_the_names_the_classroom_accepts(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    try:
        joinable = names.check_name(name) == name
    except ValueError:
        joinable = False
    monkeypatch.setenv("LABKIT_LEARNER", "someone")
    event = {**record.make_event("hint", "a hint", exercise="welcome.first-container", hint_level=1), "learner": name}
    try:
        valid = bool(record.validate_event(event))
    except ValueError:
        valid = False
    assert valid == joinable
