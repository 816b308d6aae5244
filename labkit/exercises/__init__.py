"""Exercises checked against the live daemon: one definition each, hints chosen from what the check finds."""

from labkit.exercises.machinery.catalog import all_exercises, get, register
from labkit.exercises.machinery.model import CheckResult, Context, Exercise, Verdict, not_yet, passed
from labkit.exercises.machinery.runner import (
    check,
    hint,
    record_answer,
    reset_all,
    reset_exercise,
    setup,
    solution,
    solve,
)

__all__ = [
    "CheckResult",
    "Context",
    "Exercise",
    "Verdict",
    "all_exercises",
    "check",
    "get",
    "hint",
    "not_yet",
    "passed",
    "record_answer",
    "register",
    "reset_all",
    "reset_exercise",
    "setup",
    "solution",
    "solve",
]
