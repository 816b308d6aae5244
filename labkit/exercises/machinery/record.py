"""The progress record: one event per check or hint a learner asks for, kept locally.

An *event* is one JSON object, the same dict everywhere: appended to the
learner's ``state_dir()/progress.jsonl``, queued and posted to a classroom
server when one is configured (``labkit.classroom.client``), stored by that
server, and read by ``labkit grade``::

    {"v": 1, "id": "<uuid4 hex>", "kind": "check" | "hint",
     "learner": "<name>", "exercise": "<id>", "lesson": "<NN>",
     "passed": bool, "status": "passed" | "not yet" | "hint",
     "message": "<≤ 2000 chars>", "hint": "<text shown>" | null,
     "hint_level": int, "at": "2026-11-27T21:30:00.123Z", "labkit": "<version>"}

Recording is best-effort: a read-only disk, a broken classroom client or a slow
network never fails or slows a check (:func:`record` swallows their errors).
"""

from __future__ import annotations

import datetime as dt
import getpass
import json
import os
import re
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from labkit.core import __version__, fmt, state
from labkit.core.paths import state_dir
from labkit.exercises.machinery.learner_names import MAX_NAME, clean_name, unprintable

VERSION = 1
KINDS = ("check", "hint")
MAX_MESSAGE = 2000
MAX_EXERCISE = 128
MAX_LESSON = 16
MAX_LABKIT = 32
MAX_HINT_LEVEL = 100

_ID = re.compile(r"[0-9a-f]{32}")
_AT = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,6})?Z")
_EXERCISE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]*")
_LESSON = re.compile(r"[A-Za-z0-9._-]*")

#: Field name → the type it must have (bool is checked apart: it is an int subclass).
FIELDS: dict[str, tuple[type, ...]] = {
    "v": (int,),
    "id": (str,),
    "kind": (str,),
    "learner": (str,),
    "exercise": (str,),
    "lesson": (str,),
    "passed": (bool,),
    "status": (str,),
    "message": (str,),
    "hint": (str, type(None)),
    "hint_level": (int,),
    "at": (str,),
    "labkit": (str,),
}


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
    from labkit.core.errors import UnknownExercise
    from labkit.exercises.machinery.catalog import get

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
        message = f"asked for hint {level}"
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


def validate_event(obj: Any) -> dict[str, Any]:
    """Check that ``obj`` is a well-formed event; return a clean copy.

    The classroom server calls this on every post, so it trusts nothing.

    Raises:
        ValueError: one line saying what is wrong (a missing, extra or mistyped field,
            an unknown kind, a bad id or time, an oversized string, an inconsistent status).
    """
    if not isinstance(obj, Mapping):
        # ValueError, not TypeError: callers catch one exception type for every bad event.
        raise ValueError(f"an event is a JSON object, not {type(obj).__name__}")  # noqa: TRY004
    missing = [name for name in FIELDS if name not in obj]
    if missing:
        raise ValueError(f"missing field(s): {', '.join(missing)}")
    extra = sorted(str(name) for name in obj if name not in FIELDS)
    if extra:
        raise ValueError(f"unknown field(s): {', '.join(extra)}")
    for name, types in FIELDS.items():
        value = obj[name]
        if isinstance(value, bool) != (types == (bool,)) or not isinstance(value, types):
            want = " or ".join("null" if t is type(None) else t.__name__ for t in types)
            raise ValueError(f"field {name!r} must be {want}, not {type(value).__name__}")
    event = {name: obj[name] for name in FIELDS}
    if event["v"] != VERSION:
        raise ValueError(f"unsupported event version {event['v']} (this labkit reads {VERSION})")
    if not _ID.fullmatch(event["id"]):
        raise ValueError("field 'id' must be 32 lowercase hex digits (uuid4().hex)")
    if event["kind"] not in KINDS:
        raise ValueError(f"unknown kind {event['kind'][:20]!r} (expected check or hint)")
    for name, limit in (("message", MAX_MESSAGE), ("hint", MAX_MESSAGE), ("learner", MAX_NAME),
                        ("exercise", MAX_EXERCISE), ("lesson", MAX_LESSON), ("labkit", MAX_LABKIT)):  # fmt: skip
        if event[name] is not None and len(event[name]) > limit:
            raise ValueError(f"field {name!r} is longer than {limit} characters")
    if not event["learner"].strip() or event["learner"] != event["learner"].strip() or unprintable(event["learner"]):
        raise ValueError("field 'learner' must be a trimmed, non-empty name without control characters")
    if not _EXERCISE.fullmatch(event["exercise"]):
        raise ValueError("field 'exercise' is not an exercise id")
    if not _LESSON.fullmatch(event["lesson"]):
        raise ValueError("field 'lesson' is not a lesson number")
    if not _AT.fullmatch(event["at"]):
        raise ValueError("field 'at' must be a UTC time like 2026-11-27T21:30:00.123Z")
    try:
        dt.datetime.fromisoformat(event["at"][:-1])
    except ValueError as e:
        raise ValueError(f"field 'at' is not a real time ({e})") from None
    if event["kind"] == "check":
        if event["status"] != ("passed" if event["passed"] else "not yet"):
            raise ValueError("a check's status must be 'passed' when passed is true, else 'not yet'")
        if event["hint_level"] != 0:
            raise ValueError("a check's hint_level must be 0")
    else:
        if event["status"] != "hint" or event["passed"]:
            raise ValueError("a hint's status must be 'hint' and passed false")
        if not 1 <= event["hint_level"] <= MAX_HINT_LEVEL:
            raise ValueError(f"a hint's hint_level must be between 1 and {MAX_HINT_LEVEL}")
    return event


def append(event: Mapping[str, Any], path: Path | None = None) -> None:
    """Append one event to a progress store as one JSON line, flushed to disk.

    Two kernels (two notebooks) never interleave a line, and a line a crash cut short
    stays one damaged line (:func:`read` skips and counts it): the event starts anew.

    Raises:
        OSError: the store cannot be written.
    """
    state.append_json_line(path or store_path(), dict(event))


def record(event: Mapping[str, Any]) -> bool:
    """Keep an event locally, then hand it to the classroom client (which posts it when joined).

    Never raises and never waits on the network: recording must not fail or slow a check.

    Returns:
        True when the event was written to the local store.
    """
    stored = False
    try:
        append(event)
        stored = True
    except Exception:  # noqa: BLE001, S110 - a read-only or full disk must not break the learner's check
        pass
    try:
        # The classroom client is optional: without it (or when not joined) the local record is all.
        from labkit.classroom import client

        client.submit(dict(event))
    except Exception:  # noqa: BLE001, S110 - a broken classroom must not break the learner's check
        pass
    return stored


def read(path: Path | None = None) -> tuple[list[dict[str, Any]], int]:
    """The events in a progress store, and how many damaged lines were skipped.

    A missing store is an empty one; blank lines are not counted as damaged.
    """
    lines = state.read_json_lines(path or store_path(), validate_event)
    return lines.records, len(lines.damaged)
