"""What the instructor's page shows, computed from stored events: pure logic, no I/O.

Per learner and exercise (a "cell"):

- ``passed``: the learner's latest check of it passed (the gradebook's rule too);
  None when they never checked it.
- ``attempts``: how many checks; ``hint_level``: the highest hint tier asked for.
- ``struggling``: not passed now, and since their last passing check (or ever) they
  had at least ``STUCK_FAILS`` failing checks or asked for any hint.
- ``stuck``: struggling, and active on that exercise within the last
  ``STUCK_WINDOW`` seconds, so that a learner who moved on or left does not glow
  red all afternoon. The page re-applies the time rule on every heartbeat.

An event's time is the earlier of its own ``at`` (the learner's clock) and when the
server received it: events flushed late from an offline queue keep their real
time, and a learner's clock running ahead cannot put them in the future. Events of
the same time count in their order of arrival.

The server keeps a :class:`Room` and adds each event once as it is stored
(:class:`Cell` keeps every figure above up to date one event at a time, whatever the
order of arrival), so a post costs the same with ten events behind it or ten thousand.
:func:`learner_row` and :func:`snapshot` compute the same from a list of events.
"""

from __future__ import annotations

import bisect
import json
from collections.abc import Iterable, Sequence
from typing import Any

from labkit.core import fmt
from labkit.core.i18n import N_, _, language

#: Failing checks since the last pass that make an exercise "stuck".
STUCK_FAILS = 3
#: Seconds of recent activity on an exercise for it to count as "stuck" now.
STUCK_WINDOW = 600

_STUCK_RULE = N_(
    "stuck = not passed, {fails}+ failing checks or any hint since the last pass, "
    "and active on it in the last {minutes} minutes"
)
STUCK_RULE = _STUCK_RULE.format(fails=STUCK_FAILS, minutes=STUCK_WINDOW // 60)

#: Every sentence of the instructor's page (static/index.html and static/app.js), by key: the
#: server hands them to the page in its language (:func:`page_text`), so the page's words
#: live here, in the catalog, and nowhere else. ``{name}`` placeholders are filled by app.js.
PAGE_TEXT = {
    "title": N_("labkit classroom"),
    "connecting": N_("connecting…"),
    "live": N_("live"),
    "lost": N_("connection lost: reconnecting…"),
    "download": N_("Download the gradebook (CSV)"),
    "legend": N_("✔ passed (checks) · ✗ not yet (checks) · H{n} highest hint tier asked · ⚠ stuck · — not started."),
    "caption": N_("Learners × exercises, updated live"),
    "empty": N_("No learner has joined yet. Learners run the join command printed by {command}."),
    "learner": N_("Learner"),
    "passed_column": N_("Passed"),
    "last_activity": N_("Last activity"),
    "lesson": N_("Lesson {lesson}"),
    "other": N_("Other"),
    "not_started": N_("not started"),
    "passed_one": N_("passed, {n} check"),
    "passed_many": N_("passed, {n} checks"),
    "not_yet_one": N_("not yet, {n} check"),
    "not_yet_many": N_("not yet, {n} checks"),
    "no_check": N_("no check yet"),
    "stuck": N_("stuck"),
    "last_at": N_("last at {time}"),
    "hint_asked": N_("hint {level} asked"),
    "stuck_on": N_(" (⚠ stuck on {n})"),
    "learners_one": N_("{n} learner, {exercises} exercises"),
    "learners_many": N_("{n} learners, {exercises} exercises"),
    "stuck_names": N_("; stuck: {names}"),
    "nobody_stuck": N_("; nobody stuck"),
    "rule": N_("({rule}.)"),
    "status_passed": N_("passed"),
    "status_not_yet": N_("not yet"),
    "announce_hint": N_("{learner} asked hint {level} for {exercise}"),
    "announce_check": N_("{learner} checked {exercise}: {status}"),
    "announce_other": N_("{learner} checked {exercise}"),
}


def page_text() -> dict[str, str]:
    """The instructor page's sentences in the current language (``LABKIT_LANG`` of the server), by key."""
    text = {key: _(sentence) for key, sentence in PAGE_TEXT.items()}
    text["stuck_rule"] = _(_STUCK_RULE).format(fails=STUCK_FAILS, minutes=STUCK_WINDOW // 60)
    text["lang"] = "zh-CN" if language() == "zh_CN" else "en"
    return text


def page_html(index: bytes) -> bytes:
    """static/index.html with :func:`page_text` in its ``<script id="labkit-text">`` (app.js reads it there).

    The page's Content-Security-Policy runs no inline script; a JSON data block is not run, only read.
    ``<``, ``>`` and ``&`` are escaped, so no translation can end the element early.
    """
    data = json.dumps(page_text(), ensure_ascii=False)
    data = data.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return index.replace(b'type="application/json">{}</script>', f'type="application/json">{data}</script>'.encode())


def event_time(event: dict[str, Any], received_at: str) -> float:
    """When an event happened, as the live view counts it (see the module docstring)."""
    received = fmt.timestamp(received_at) or 0.0
    at = fmt.timestamp(event.get("at")) or 0.0
    return min(at, received) if at else received


Key = tuple[float, int]
"""An event's place in a learner's history: (its time, its order of arrival)."""

_NEVER: Key = (float("-inf"), -1)


class Cell:
    """One learner on one exercise, kept up to date one event at a time, in any order of arrival.

    Each figure is one an event can update without the others: counts and maxima, the
    latest check (by time, then arrival), the latest passing check, and the failing checks
    and hints after it. Events arrive in time order almost always (in O(1) then); one that
    arrives late (flushed from an offline queue) is placed by bisection, and a late pass
    drops the failures it now precedes. Nothing here reads a learner's history again.
    """

    __slots__ = ("_fails", "_hints", "_last_pass", "_latest", "attempts", "hint_level", "last_at", "passed")

    def __init__(self) -> None:
        self.passed: bool | None = None
        self.attempts = 0
        self.hint_level = 0
        self.last_at = 0.0
        self._latest: Key = _NEVER
        self._last_pass: Key = _NEVER
        self._fails: list[Key] = []  # failing checks after the last pass, in order
        self._hints: dict[int, Key] = {}  # hint level (0 counted as 1) -> the latest hint of that level

    def add(self, key: Key, event: dict[str, Any]) -> None:
        """Count one event (a check, a hint, or another kind that only marks activity)."""
        self.last_at = max(self.last_at, key[0])
        if event.get("kind") == "check":
            self.attempts += 1
            passed = bool(event.get("passed"))
            if key > self._latest:
                self._latest, self.passed = key, passed
            if passed:
                if key > self._last_pass:
                    self._last_pass = key
                    del self._fails[: bisect.bisect_right(self._fails, key)]
            elif key > self._last_pass:
                if not self._fails or key >= self._fails[-1]:
                    self._fails.append(key)
                else:
                    bisect.insort(self._fails, key)
        elif event.get("kind") == "hint":
            level = int(event.get("hint_level") or 0)
            self.hint_level = max(self.hint_level, level)
            counted = level or 1
            self._hints[counted] = max(self._hints.get(counted, _NEVER), key)

    @property
    def fails_since_pass(self) -> int:
        return len(self._fails)

    @property
    def hints_since_pass(self) -> int:
        return max((level for level, key in self._hints.items() if key > self._last_pass), default=0)

    def as_dict(self, now: float) -> dict[str, Any]:
        """The cell as the page reads it, with "struggling" and "stuck" as of ``now``."""
        fails, hints = self.fails_since_pass, self.hints_since_pass
        struggling = self.passed is not True and (fails >= STUCK_FAILS or hints > 0)
        return {
            "passed": self.passed,
            "attempts": self.attempts,
            "hint_level": self.hint_level,
            "fails_since_pass": fails,
            "hints_since_pass": hints,
            "last_at": self.last_at,
            "struggling": struggling,
            "stuck": struggling and now - self.last_at <= STUCK_WINDOW,
        }


class Learner:
    """One learner's row, kept up to date as their events arrive."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.cells: dict[str, Cell] = {}
        self.last_at = 0.0

    def add(self, event: dict[str, Any], received_at: str, order: int) -> None:
        """Count one event; ``order`` breaks ties between events of the same time (arrival order)."""
        when = event_time(event, received_at)
        self.last_at = max(self.last_at, when)
        cell = self.cells.get(str(event.get("exercise")))
        if cell is None:
            cell = self.cells[str(event.get("exercise"))] = Cell()
        cell.add((when, order), event)

    def row(self, now: float) -> dict[str, Any]:
        """The row the page shows: a cell per exercise touched, their last activity, what they passed and are stuck on."""
        cells = {exercise: cell.as_dict(now) for exercise, cell in self.cells.items()}
        return {
            "name": self.name,
            "last_at": self.last_at,
            "cells": cells,
            "passed": sum(1 for c in cells.values() if c["passed"] is True),
            "stuck": sorted(ex for ex, c in cells.items() if c["stuck"]),
        }


def learner_row(name: str, stored: Iterable[tuple[dict[str, Any], str]], now: float) -> dict[str, Any]:
    """One learner's row: a cell per exercise they touched, and their last activity.

    Args:
        name: the learner.
        stored: (event, received_at) pairs of this learner, in order of arrival.
        now: seconds since the epoch, for the "stuck" time window.
    """
    learner = Learner(name)
    for order, (event, received) in enumerate(stored):
        learner.add(event, received, order)
    return learner.row(now)


class Room:
    """Every learner's row and the exercise columns, kept up to date event by event.

    The server keeps one: each stored event is added once, so the page's snapshot and the
    row sent with each new event cost the size of the room, never the length of its history.

    Args:
        exercises: the known exercises in course order, each ``{"id", "lesson", "title"}``;
            exercises seen only in events are appended after them, in order of first sight.
    """

    def __init__(self, exercises: Sequence[dict[str, str]]) -> None:
        self.columns = [dict(e) for e in exercises]
        self._known = {e["id"] for e in self.columns}
        self.learners: dict[str, Learner] = {}
        self.seq = 0

    def join(self, name: str) -> Learner:
        """The learner's row, made empty when they have none (a learner who joined and has not posted)."""
        learner = self.learners.get(name)
        if learner is None:
            learner = self.learners[name] = Learner(name)
        return learner

    def add(self, event: dict[str, Any], received_at: str, seq: int) -> Learner:
        """Count one stored event (``seq``: its order of arrival); returns its learner."""
        exercise = str(event.get("exercise"))
        if exercise not in self._known:
            self._known.add(exercise)
            self.columns.append({"id": exercise, "lesson": str(event.get("lesson", "")), "title": exercise})
        learner = self.join(str(event.get("learner")))
        learner.add(event, received_at, seq)
        self.seq = max(self.seq, seq)
        return learner

    def snapshot(self, now: float) -> dict[str, Any]:
        """The whole room as the page reads it on connect."""
        rows = [learner.row(now) for learner in self.learners.values()]
        rows.sort(key=lambda row: row["name"].casefold())
        return {
            "exercises": [dict(c) for c in self.columns],
            "learners": rows,
            "seq": self.seq,
            "now": now,
            "stuck_rule": STUCK_RULE,
            "stuck_window": STUCK_WINDOW,
        }


def snapshot(
    stored: Iterable[tuple[dict[str, Any], str]],
    exercises: Sequence[dict[str, str]],
    now: float,
    learners: Iterable[str] = (),
    seq: int = 0,
) -> dict[str, Any]:
    """The whole room: exercise columns in course order, one row per learner.

    Args:
        stored: (event, received_at) pairs, every learner, in order of arrival.
        exercises: the known exercises in course order, each ``{"id", "lesson", "title"}``;
            exercises seen only in events are appended after them.
        now: seconds since the epoch.
        learners: names that joined but may not have posted yet (they get a row too).
        seq: the order number of the latest event included.
    """
    room = Room(exercises)
    for name in learners:
        room.join(name)
    for order, (event, received) in enumerate(stored):
        room.add(event, received, order)
    snap = room.snapshot(now)
    snap["seq"] = seq
    return snap
