"""The hub grader's records: every verdict it decided, and the gradebook made from them.

The grader (:mod:`.hub_grader`) stores each verdict as one progress event (the contract of
:mod:`labkit.exercises.machinery.events`) named by the hub, in the classroom's SQLite
:class:`~labkit.classroom.store.Store` at ``STATE/grader.sqlite`` (0600 in root's 0700
folder). Nothing here imports JupyterHub, so ``labkit hub grades`` runs wherever the
database is readable.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from labkit.classroom.store import Store
from labkit.core.errors import LabkitError
from labkit.course.grade import grade_events
from labkit.exercises.machinery.events import validate_event
from labkit.exercises.machinery.model import CheckResult
from labkit.exercises.machinery.record import make_event

DB_NAME = "grader.sqlite"
FORMATS = ("csv", "gradescope")


def verdict_event(learner: str, result: CheckResult, lesson: str) -> dict[str, Any]:
    """The stored record of one verdict (learner, exercise, passed or not yet, message, time).

    Example:
        >>> event = verdict_event("ada", CheckResult("run.publish-detach", "T", True, "ok"), "05")
        >>> event["learner"], event["exercise"], event["status"]
        ('ada', 'run.publish-detach', 'passed')
    """
    return validate_event(make_event("check", result, lesson=lesson, learner=learner))


def grades(state: Path, fmt: str = "csv") -> str:
    """``labkit hub grades [--csv|--gradescope]``: the gradebook from the grader's records.

    ``csv`` is :meth:`~labkit.course.grade.Gradebook.to_csv`'s gradebook; ``gradescope`` maps
    each learner to a Gradescope ``results.json`` (:meth:`~labkit.course.grade.Gradebook.to_gradescope`).

    Raises:
        LabkitError: an unknown format, or no grader database in ``state``.
    """
    if fmt not in FORMATS:
        raise LabkitError(f"unknown gradebook format {fmt!r}", f"use one of {', '.join(FORMATS)}")
    path = state / DB_NAME
    if not path.is_file():
        raise LabkitError(f"no grader records at {path}", "has the hub run with its grader yet?")
    store = Store(path)
    try:
        book = grade_events([s.event for s in store.events()])
    finally:
        store.close()
    return book.to_csv() if fmt == "csv" else json.dumps(book.to_gradescope(), indent=2, ensure_ascii=False) + "\n"
