"""The progress-event contract: one JSON Schema file, one validator, one-line reasons.

An *event* is what a check or a hint leaves behind (see :mod:`labkit.exercises.machinery.record`).
Its shape is written once, in ``progress-event.schema.json`` next to this module
(shipped as package data), and :func:`validate_event` is the only gate: the classroom
server checks every post with it (the learner's client moves what the server refuses
to ``classroom-rejected.jsonl``), and the gradebook and ``labkit progress`` skip what it
refuses. The learner's client does not check before posting: importing jsonschema takes
about a second, which would hold back the first live results of every kernel.

Three things a plain JSON Schema validator would read differently from the contract,
so the validator here pins them:

- an integer is a JSON integer, never ``1.0`` nor ``true``;
- ``$`` ends the string, as in JSON Schema's (ECMA-262) regular expressions; Python's
  ``$`` would also match before a final newline;
- two formats: ``date-time`` (a real UTC date and time) and ``labkit-learner-name``
  (trimmed, non-empty, no Unicode control, format or unassigned characters: the rule
  of :mod:`labkit.exercises.machinery.learner_names`).

Example:
    >>> validate_event({"v": 1})
    Traceback (most recent call last):
    ...
    ValueError: missing field(s): id, kind, learner, exercise, lesson, passed, status, message, hint, hint_level, at, labkit
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import re
from collections.abc import Iterator, Mapping
from importlib import resources
from typing import TYPE_CHECKING, Any

from labkit.exercises.machinery.learner_names import unprintable

if TYPE_CHECKING:
    from jsonschema import ValidationError
    from jsonschema.protocols import Validator

SCHEMA_FILE = "progress-event.schema.json"
#: The contract, as parsed JSON.
SCHEMA: dict[str, Any] = json.loads(
    resources.files(__package__ or "labkit.exercises.machinery").joinpath(SCHEMA_FILE).read_text(encoding="utf-8")
)
_PROPERTIES: dict[str, Any] = SCHEMA["properties"]

#: Every field, in the contract's order.
FIELDS: tuple[str, ...] = tuple(SCHEMA["required"])
VERSION: int = _PROPERTIES["v"]["const"]
KINDS: tuple[str, ...] = tuple(_PROPERTIES["kind"]["enum"])
MAX_MESSAGE: int = _PROPERTIES["message"]["maxLength"]
MAX_LEARNER: int = _PROPERTIES["learner"]["maxLength"]
_HINT_RULE: dict[str, Any] = next(
    r["then"]["properties"] for r in SCHEMA["allOf"] if r["if"]["properties"]["kind"]["const"] == "hint"
)
MAX_HINT_LEVEL: int = _HINT_RULE["hint_level"]["maximum"]

_JSON_TYPE = {
    "integer": "int",
    "string": "str",
    "boolean": "bool",
    "null": "null",
    "object": "dict",
    "array": "list",
    "number": "float",
}
_TIME_EXAMPLE = "2026-11-27T21:30:00.123Z"

#: Which failure is reported when an event has several: the order of the checks before the schema.
_ORDER: tuple[tuple[str, str], ...] = (
    ("", "required"),
    ("", "additionalProperties"),
    *((name, "type") for name in FIELDS),
    ("v", "const"),
    ("id", "pattern"),
    ("kind", "enum"),
    *((name, "maxLength") for name in ("message", "hint", "learner", "exercise", "lesson", "labkit")),
    ("learner", "minLength"),
    ("learner", "format"),
    ("exercise", "pattern"),
    ("lesson", "pattern"),
    ("at", "pattern"),
    ("at", "format"),
    ("status", "const"),
    ("passed", "const"),
    ("hint_level", "const"),
    ("hint_level", "minimum"),
    ("hint_level", "maximum"),
)
_RANK = {key: rank for rank, key in enumerate(_ORDER)}


def _is_learner_name(value: object) -> bool:
    return not isinstance(value, str) or (value.strip() == value and bool(value) and not unprintable(value))


def _is_utc_time(value: object) -> bool:
    """A real date and time (the pattern has already pinned the shape).

    Raises:
        ValueError: the date or time does not exist (its message says which part).
    """
    if isinstance(value, str) and value.endswith("Z"):
        dt.datetime.fromisoformat(value[:-1])
    return True


@functools.cache
def _ecma(pattern: str) -> re.Pattern[str]:
    """``pattern`` with a final ``$`` meaning the end of the string, as in ECMA-262."""
    if pattern.endswith("$") and not pattern.endswith("\\$"):
        pattern = pattern[:-1] + r"\Z"
    return re.compile(pattern)


@functools.cache
def _validator() -> Validator:
    # jsonschema takes about a second to import (its URI format checks build a grammar), so it
    # loads on the first validation: recording a check in a notebook never pays for it.
    from jsonschema import Draft202012Validator, FormatChecker, ValidationError, validators

    def pattern(
        validator: Validator, regex: str, instance: Any, schema: Mapping[str, Any]
    ) -> Iterator[ValidationError]:
        if validator.is_type(instance, "string") and not _ecma(regex).search(instance):
            yield ValidationError(f"{instance!r} does not match {regex!r}")

    formats = FormatChecker(formats=())
    formats.checks("date-time", raises=ValueError)(_is_utc_time)
    formats.checks("labkit-learner-name")(_is_learner_name)
    strict = Draft202012Validator.TYPE_CHECKER.redefine(
        "integer", lambda _, v: isinstance(v, int) and not isinstance(v, bool)
    )
    cls = validators.extend(Draft202012Validator, validators={"pattern": pattern}, type_checker=strict)
    cls.check_schema(SCHEMA)
    return cls(SCHEMA, format_checker=formats)


def prepare() -> None:
    """Build the validator now, so that the first event checked does not wait about a second for it."""
    _validator()


def _key(error: ValidationError) -> tuple[str, str]:
    return (str(error.path[0]) if error.path else "", str(error.validator))


def _reason(error: ValidationError, event: Mapping[str, Any]) -> str:
    """One line for the first failure, worded as the learner or instructor should read it."""
    name, keyword = _key(error)
    value = error.instance
    if keyword == "required":
        return f"missing field(s): {', '.join(f for f in FIELDS if f not in event)}"
    if keyword == "additionalProperties":
        return f"unknown field(s): {', '.join(sorted(str(f) for f in event if f not in _PROPERTIES))}"
    if keyword == "type":
        types = error.validator_value if isinstance(error.validator_value, list) else [error.validator_value]
        return f"field {name!r} must be {' or '.join(_JSON_TYPE[t] for t in types)}, not {type(value).__name__}"
    if keyword == "maxLength":
        return f"field {name!r} is longer than {error.validator_value} characters"
    if (name, keyword) == ("at", "format"):
        return f"field 'at' is not a real time ({error.cause})"
    if name == "status" or (name, keyword) == ("passed", "const"):
        if event.get("kind") == "check":
            return "a check's status must be 'passed' when passed is true, else 'not yet'"
        return "a hint's status must be 'hint' and passed false"
    fixed = {
        ("v", "const"): f"unsupported event version {value} (this labkit reads {VERSION})",
        ("id", "pattern"): "field 'id' must be 32 lowercase hex digits (uuid4().hex)",
        ("kind", "enum"): f"unknown kind {str(value)[:20]!r} (expected {' or '.join(KINDS)})",
        ("learner", "minLength"): "field 'learner' must be a trimmed, non-empty name without control characters",
        ("learner", "format"): "field 'learner' must be a trimmed, non-empty name without control characters",
        ("exercise", "pattern"): "field 'exercise' is not an exercise id",
        ("lesson", "pattern"): "field 'lesson' is not a lesson number",
        ("at", "pattern"): f"field 'at' must be a UTC time like {_TIME_EXAMPLE}",
        ("hint_level", "const"): "a check's hint_level must be 0",
        ("hint_level", "minimum"): f"a hint's hint_level must be between 1 and {MAX_HINT_LEVEL}",
        ("hint_level", "maximum"): f"a hint's hint_level must be between 1 and {MAX_HINT_LEVEL}",
    }
    return fixed.get((name, keyword)) or f"field {name!r}: {error.message}".splitlines()[0][:200]


def validate_event(obj: Any) -> dict[str, Any]:
    """Check ``obj`` against the contract (the schema file); return a clean copy.

    The classroom server calls this on every post, so it trusts nothing.

    Returns:
        The event's fields, in the contract's order, as a new dict.

    Raises:
        ValueError: one line saying what is wrong (a missing, extra or mistyped field,
            an unknown kind, a bad id or time, an oversized string, an inconsistent status).
    """
    if not isinstance(obj, Mapping):
        # ValueError, not TypeError: callers catch one exception type for every bad event.
        raise ValueError(f"an event is a JSON object, not {type(obj).__name__}")
    event = dict(obj)
    errors = list(_validator().iter_errors(event))
    if errors:
        first = min(errors, key=lambda e: _RANK.get(_key(e), len(_RANK)))
        raise ValueError(_reason(first, event))
    return {name: event[name] for name in FIELDS}
