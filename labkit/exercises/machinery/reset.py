"""``labkit reset`` and ``labkit.begin``: remove what the lessons and labkit created.

Containers the lessons ask learners to create by name (or from a given image) are
removed through the exercises that own them; everything else labkit made goes by
label (:func:`labkit.core.cleanup.remove_labelled`).
"""

from __future__ import annotations

from labkit.core import engine
from labkit.core.cleanup import ResetReport, remove_labelled
from labkit.exercises.machinery.catalog import all_exercises
from labkit.exercises.machinery.runner import reset_all, reset_exercise


def reset(session: str | None = None, lesson: str | None = None) -> ResetReport:
    """Remove everything labkit created, and every exercise's containers and state.

    Args:
        session: only what this ``labkit.session`` created (exercises are left alone).
        lesson: only this lesson: its exercises and what carries its ``labkit.lesson`` label.
            A notebook calls ``labkit.reset(lesson="00")`` first and last, so it runs twice in a row.

    Raises:
        DaemonUnavailable: the daemon did not answer.
    """
    if lesson is not None:
        owned = sum((reset_exercise(e) for e in all_exercises() if e.lesson == lesson), ResetReport())
    else:
        owned = reset_all() if session is None else ResetReport()
    return owned + remove_labelled(session, lesson)


def begin(lesson: str) -> ResetReport:
    """Start a lesson: label what this kernel creates with it, and clear what it left last time.

    The first cell of every notebook calls it, so a notebook can run again from the top.

    Raises:
        DaemonUnavailable: the daemon did not answer.
    """
    engine.set_lesson(lesson)
    return reset(lesson=lesson)
