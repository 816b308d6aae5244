"""The table of exercises, filled by the lesson modules."""

from __future__ import annotations

import difflib
import importlib
import pkgutil
import re

import labkit.exercises
from labkit.core.errors import UnknownExercise
from labkit.exercises.machinery.model import Exercise

#: A lesson module is named after its notebook (``lesson06_stop_kill_start`` for
#: ``06-stop-kill-start.ipynb``) and registers its exercises on import: adding a lesson
#: is adding a file. Helpers a lesson keeps to itself start with ``_``.
LESSON_MODULE = re.compile(r"lesson\d\d_[a-z0-9_]+")

_EXERCISES: dict[str, Exercise] = {}
_loaded = False


def register(exercise: Exercise) -> Exercise:
    """Add an exercise to the table (called by lesson modules at import)."""
    if exercise.id in _EXERCISES and _EXERCISES[exercise.id] is not exercise:
        raise ValueError(f"two exercises share the id {exercise.id!r}")  # a bug in labkit, not the learner's
    _EXERCISES[exercise.id] = exercise
    return exercise


def lesson_modules() -> list[str]:
    """The lesson modules in ``labkit/exercises/``, by name."""
    return sorted(
        f"labkit.exercises.{m.name}"
        for m in pkgutil.iter_modules(labkit.exercises.__path__)
        if LESSON_MODULE.fullmatch(m.name) and not m.ispkg
    )


def _load() -> None:
    global _loaded
    if not _loaded:
        for module in lesson_modules():
            importlib.import_module(module)
        _loaded = True


def all_exercises() -> list[Exercise]:
    """Every exercise, in course order (by lesson, then as defined)."""
    _load()
    order = {exercise_id: n for n, exercise_id in enumerate(_EXERCISES)}
    return sorted(_EXERCISES.values(), key=lambda e: (e.lesson, order[e.id]))


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
