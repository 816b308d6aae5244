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
time, and a learner's clock running ahead cannot put them in the future.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from labkit.core import fmt

#: Failing checks since the last pass that make an exercise "stuck".
STUCK_FAILS = 3
#: Seconds of recent activity on an exercise for it to count as "stuck" now.
STUCK_WINDOW = 600

STUCK_RULE = (
    f"stuck = not passed, {STUCK_FAILS}+ failing checks or any hint since the last pass, "
    f"and active on it in the last {STUCK_WINDOW // 60} minutes"
)


def event_time(event: dict[str, Any], received_at: str) -> float:
    """When an event happened, as the live view counts it (see the module docstring)."""
    received = fmt.timestamp(received_at) or 0.0
    at = fmt.timestamp(event.get("at")) or 0.0
    return min(at, received) if at else received


def _empty_cell() -> dict[str, Any]:
    return {
        "passed": None,
        "attempts": 0,
        "hint_level": 0,
        "fails_since_pass": 0,
        "hints_since_pass": 0,
        "last_at": 0.0,
        "struggling": False,
        "stuck": False,
    }


def learner_row(name: str, stored: Iterable[tuple[dict[str, Any], str]], now: float) -> dict[str, Any]:
    """One learner's row: a cell per exercise they touched, and their last activity.

    Args:
        name: the learner.
        stored: (event, received_at) pairs of this learner, in any order.
        now: seconds since the epoch, for the "stuck" time window.
    """
    timed = sorted(((event_time(e, r), e) for e, r in stored), key=lambda pair: pair[0])
    cells: dict[str, dict[str, Any]] = {}
    last = 0.0
    for when, event in timed:
        cell = cells.setdefault(str(event.get("exercise")), _empty_cell())
        cell["last_at"] = max(cell["last_at"], when)
        last = max(last, when)
        if event.get("kind") == "check":
            cell["attempts"] += 1
            cell["passed"] = bool(event.get("passed"))
            if cell["passed"]:
                cell["fails_since_pass"] = cell["hints_since_pass"] = 0
            else:
                cell["fails_since_pass"] += 1
        elif event.get("kind") == "hint":
            level = int(event.get("hint_level") or 0)
            cell["hint_level"] = max(cell["hint_level"], level)
            cell["hints_since_pass"] = max(cell["hints_since_pass"], level or 1)
    for cell in cells.values():
        cell["struggling"] = cell["passed"] is not True and (
            cell["fails_since_pass"] >= STUCK_FAILS or cell["hints_since_pass"] > 0
        )
        cell["stuck"] = cell["struggling"] and now - cell["last_at"] <= STUCK_WINDOW
    return {
        "name": name,
        "last_at": last,
        "cells": cells,
        "passed": sum(1 for c in cells.values() if c["passed"] is True),
        "stuck": sorted(ex for ex, c in cells.items() if c["stuck"]),
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
        stored: (event, received_at) pairs, every learner.
        exercises: the known exercises in course order, each ``{"id", "lesson", "title"}``;
            exercises seen only in events are appended after them.
        now: seconds since the epoch.
        learners: names that joined but may not have posted yet (they get a row too).
        seq: the order number of the latest event included.
    """
    by_learner: dict[str, list[tuple[dict[str, Any], str]]] = {name: [] for name in learners}
    columns = [dict(e) for e in exercises]
    known = {e["id"] for e in columns}
    for event, received in stored:
        by_learner.setdefault(str(event.get("learner")), []).append((event, received))
        exercise = str(event.get("exercise"))
        if exercise not in known:
            known.add(exercise)
            columns.append({"id": exercise, "lesson": str(event.get("lesson", "")), "title": exercise})
    rows = [learner_row(name, pairs, now) for name, pairs in by_learner.items()]
    rows.sort(key=lambda row: row["name"].casefold())
    return {
        "exercises": columns,
        "learners": rows,
        "seq": seq,
        "now": now,
        "stuck_rule": STUCK_RULE,
        "stuck_window": STUCK_WINDOW,
    }
