"""The progress record: one event per check or hint a learner asks for, kept locally.

An *event* is one JSON object, the same dict everywhere: appended to the
learner's ``state_dir()/progress.jsonl``, handed to each sink registered with
:func:`add_sink` (the classroom's queues it and posts it when the learner has
joined), stored by the classroom server, and read by ``labkit grade``. Its
contract is ``progress-event.schema.json`` (:mod:`labkit.exercises.machinery.events`)::

    {"v": 1, "id": "<uuid4 hex>", "kind": "check" | "hint",
     "learner": "<name>", "exercise": "<id>", "lesson": "<NN>",
     "passed": bool, "status": "passed" | "not yet" | "hint",
     "message": "<≤ 2000 chars>", "hint": "<text shown>" | null,
     "hint_level": int, "at": "2026-11-27T21:30:00.123Z", "labkit": "<version>"}

Recording is best-effort: a read-only disk, a broken classroom client or a slow
network never fails or slows a check (:func:`record` swallows their errors).
"""

from __future__ import annotations

import contextlib
import getpass
import json
import os
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from labkit.core import __version__, fmt, state
from labkit.core.errors import UnknownExercise
from labkit.core.i18n import _
from labkit.core.paths import state_dir
from labkit.exercises.machinery.catalog import get
from labkit.exercises.machinery.events import MAX_HINT_LEVEL, MAX_MESSAGE, VERSION, validate_event
from labkit.exercises.machinery.learner_names import clean_name

#: Called with each recorded event, after it is stored locally (see :func:`add_sink`).
Sink = Callable[[dict[str, Any]], None]
_sinks: list[Sink] = []


def store_path() -> Path:
    """The learner's local record: ``state_dir()/progress.jsonl``."""
    return state_dir() / "progress.jsonl"


def _clip(text: str, limit: int = MAX_MESSAGE) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def learner_name() -> str:
    """Who is learning: ``LABKIT_LEARNER``, else the name saved by ``labkit classroom join --name``,
    else the OS user."""
    explicit = clean_name(os.environ.get("LABKIT_LEARNER"))
    if explicit:
        return explicit
    try:
        joined = json.loads((state_dir() / "classroom.json").read_text(encoding="utf-8"))
        saved = clean_name(joined.get("learner")) if isinstance(joined, dict) else None
        if saved:
            return saved
    except (OSError, ValueError):
        pass  # not joined, or a damaged file: fall back to the OS user
    try:
        return clean_name(getpass.getuser()) or "learner"
    except (OSError, KeyError):  # no user name for this uid (some containers)
        return "learner"


def _lesson_of(exercise_id: str) -> str:
    try:
        return get(exercise_id).lesson
    except UnknownExercise:
        return ""


def make_event(
    kind: str,
    result_or_hint: Any,
    *,
    exercise: str | None = None,
    lesson: str | None = None,
    hint_level: int = 0,
    learner: str | None = None,
    at: str | None = None,
) -> dict[str, Any]:
    """Build one event.

    Args:
        kind: ``"check"`` or ``"hint"``.
        result_or_hint: for a check, the :class:`~labkit.exercises.model.CheckResult`; for a
            hint, the hint text shown.
        exercise: the exercise id (hints need it; checks take it from the result).
        lesson: the exercise's lesson; looked up when omitted.
        hint_level: the tier shown (hints only).
        learner: defaults to :func:`learner_name`.
        at: defaults to now.

    Returns:
        A dict that :func:`validate_event` accepts.

    Raises:
        ValueError: an unknown kind, or a hint without an exercise id.
    """
    if kind == "check":
        exercise_id = str(exercise or result_or_hint.exercise_id)
        passed_ = bool(result_or_hint.passed)
        status = "passed" if passed_ else "not yet"
        message = _clip(str(result_or_hint.message))
        hint = None if result_or_hint.hint is None else _clip(str(result_or_hint.hint))
        level = 0
    elif kind == "hint":
        if not exercise:
            raise ValueError("a hint event needs the exercise id")
        exercise_id, passed_, status = str(exercise), False, "hint"
        level = max(1, min(int(hint_level), MAX_HINT_LEVEL))
        message = _("asked for hint {level}").format(level=level)
        hint = _clip(str(result_or_hint))
    else:
        raise ValueError(f"unknown event kind {kind!r} (expected check or hint)")
    return {
        "v": VERSION,
        "id": uuid.uuid4().hex,
        "kind": kind,
        "learner": learner or learner_name(),
        "exercise": exercise_id,
        "lesson": lesson if lesson is not None else _lesson_of(exercise_id),
        "passed": passed_,
        "status": status,
        "message": message,
        "hint": hint,
        "hint_level": level,
        "at": at or fmt.utc_now(),
        "labkit": __version__,
    }


def append(event: Mapping[str, Any], path: Path | None = None) -> None:
    """Append one event to a progress store as one JSON line, flushed to disk.

    Two kernels (two notebooks) never interleave a line, and a line a crash cut short
    stays one damaged line (:func:`read` skips and counts it): the event starts anew.

    Raises:
        OSError: the store cannot be written.
    """
    state.append_json_line(path or store_path(), dict(event))


def add_sink(sink: Sink) -> None:
    """Hand every event :func:`record` keeps to ``sink`` as well (once, however often it is added).

    The classroom registers its queue here (:func:`labkit.classroom.client.install`), so the
    record needs to know nothing above it. A sink must return at once: it runs in the
    learner's check.
    """
    if sink not in _sinks:
        _sinks.append(sink)


def remove_sink(sink: Sink) -> None:
    """Stop handing events to ``sink`` (nothing happens when it was not added)."""
    if sink in _sinks:
        _sinks.remove(sink)


def record(event: Mapping[str, Any]) -> bool:
    """Keep an event locally, then hand it to each sink (the classroom's posts it when joined).

    Never raises and never waits on the network: recording must not fail or slow a check.

    Returns:
        True when the event was written to the local store.
    """
    stored = False
    try:
        append(event)
        stored = True
    except Exception:  # a read-only or full disk must not break the learner's check
        pass
    for sink in tuple(_sinks):
        with contextlib.suppress(Exception):  # nor a broken classroom
            sink(dict(event))
    return stored


def read(path: Path | None = None) -> tuple[list[dict[str, Any]], int]:
    """The events in a progress store, and how many damaged lines were skipped.

    A missing store is an empty one; blank lines are not counted as damaged.
    """
    lines = state.read_json_lines(path or store_path(), validate_event)
    return lines.records, len(lines.damaged)
