"""The table of exercises, filled by the lesson modules."""

from __future__ import annotations

import difflib
import importlib

from labkit.errors import UnknownExercise
from labkit.exercises.model import Exercise

#: Lesson modules, in course order; each registers its exercises on import.
LESSON_MODULES = ("labkit.exercises.welcome",)

_EXERCISES: dict[str, Exercise] = {}
_loaded = False


def register(exercise: Exercise) -> Exercise:
    """Add an exercise to the table (called by lesson modules at import)."""
    if exercise.id in _EXERCISES and _EXERCISES[exercise.id] is not exercise:
        raise ValueError(f"two exercises share the id {exercise.id!r}")  # a bug in labkit, not the learner's
    _EXERCISES[exercise.id] = exercise
    return exercise


def _load() -> None:
    global _loaded
    if not _loaded:
        for module in LESSON_MODULES:
            importlib.import_module(module)
        _loaded = True


def all_exercises() -> list[Exercise]:
    """Every exercise, in course order."""
    _load()
    return list(_EXERCISES.values())


def get(exercise_id: str) -> Exercise:
    """The exercise with this id (case and surrounding spaces forgiven).

    Raises:
        UnknownExercise: no such id, with the closest one suggested.
    """
    _load()
    key = str(exercise_id).strip().lower()
    if key in _EXERCISES:
        return _EXERCISES[key]
    close = difflib.get_close_matches(key, list(_EXERCISES), n=1, cutoff=0.5)
    raise UnknownExercise(str(exercise_id), close[0] if close else None)
