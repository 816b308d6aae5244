"""``labkit grade``: a gradebook from learners' progress records.

The rule: an exercise counts as passed when the learner's **latest** check of it
passed. A learner who passed once and then broke the state again (removed the
container, pushed the wrong tag) shows as not passed, so the gradebook tells the
truth about the state they left; ``first_passed_at`` in results.json still says
when they first got there. Events are deduplicated by id, so the same event
arriving twice (a copied store and a classroom export) counts once.

``labkit grade DIR`` reads one folder or one ``.jsonl`` file per learner: a
learner's ``progress.jsonl``, or a copy of their whole labkit state folder. The
folder or file name is the learner's name in the gradebook (machines in a lab
often share one OS user, so the name inside the events is not used). The
classroom server grades its stored events with :func:`grade_events`, where the
events' ``learner`` field is the name.

Outputs: ``gradebook.csv`` (one row per learner, one 1/0 column per exercise in
course order, total, percent) and ``results.json`` (per learner and exercise:
passed, attempts, hints_used, first_passed_at, last_checked_at; exercise ids
this labkit does not know under ``unknown``; damaged lines skipped).

Names: two folders or event names with the same
:func:`~labkit.exercises.machinery.learner_names.name_key` (``ADA`` and ``ada``, a
precomposed and a decomposed ``éve``) are one learner, shown NFKC-normalised under the
first spelling met; the others are listed in results.json as ``also_named``.

The CSV is safe to open in a spreadsheet: a cell that starts with ``=``, ``+``, ``-``,
``@``, a tab or a carriage return (what Excel, LibreOffice and Google Sheets read as a
formula) gets a leading ``'``, OWASP's rule against CSV injection (:func:`csv_cell`).
"""

from __future__ import annotations

import csv
import io
import json
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from labkit.core.errors import LabkitError
from labkit.core.i18n import N_, _
from labkit.exercises.machinery.catalog import all_exercises
from labkit.exercises.machinery.events import validate_event
from labkit.exercises.machinery.learner_names import name_key
from labkit.exercises.machinery.record import read

RULE = N_("an exercise counts as passed when the learner's latest check of it passed")
CSV_NAME = "gradebook.csv"
JSON_NAME = "results.json"
STORE_NAME = "progress.jsonl"
#: What a spreadsheet reads as the start of a formula (OWASP, CSV injection).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: str) -> str:
    """A CSV cell a spreadsheet shows as text: a leading ``'`` when it could start a formula.

    Full-width forms (U+FF1D for ``=``) count too, since spreadsheets fold them.

    Example:
        >>> csv_cell("=1+2"), csv_cell("@SUM(A1)"), csv_cell("ada"), csv_cell("1")
        ("'=1+2", "'@SUM(A1)", 'ada', '1')
    """
    if value and unicodedata.normalize("NFKC", value[0]).startswith(FORMULA_STARTS):
        return "'" + value
    return value


@dataclass
class ExerciseRecord:
    """One learner's record on one exercise."""

    passed: bool = False
    attempts: int = 0
    hints_used: int = 0
    first_passed_at: str | None = None
    last_checked_at: str | None = None


@dataclass
class LearnerGrades:
    """One learner's row: every known exercise, plus ids this labkit does not know."""

    name: str
    exercises: dict[str, ExerciseRecord]
    unknown: dict[str, ExerciseRecord] = field(default_factory=dict)
    events: int = 0
    damaged: int = 0
    also_named: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(r.passed for r in self.exercises.values())

    @property
    def percent(self) -> float:
        return round(100 * self.total / len(self.exercises), 1) if self.exercises else 0.0

    def summary(self) -> str:
        """One line for the terminal."""
        checks = sum(r.attempts for r in self.exercises.values())
        hinted = sum(r.hints_used > 0 for r in self.exercises.values())
        line = _(
            "{name}: {passed}/{total} passed ({percent:.1f}%), {checks} check(s), hints on {hinted} exercise(s)"
        ).format(
            name=self.name,
            passed=self.total,
            total=len(self.exercises),
            percent=self.percent,
            checks=checks,
            hinted=hinted,
        )
        if self.unknown:
            line += _(", {n} unknown exercise(s): {ids}").format(n=len(self.unknown), ids=", ".join(self.unknown))
        if self.damaged:
            line += _(", {n} damaged line(s) skipped").format(n=self.damaged)
        if self.also_named:
            line += _(" (also named {names})").format(names=", ".join(repr(n) for n in self.also_named))
        return line


def course_exercises() -> list[str]:
    """Every exercise id this labkit knows, in course order: the gradebook's columns."""
    return [e.id for e in all_exercises()]


def _records(events: Sequence[Mapping[str, Any]]) -> dict[str, ExerciseRecord]:
    """Per exercise, from one learner's valid events (any order; ties keep their order)."""
    records: dict[str, ExerciseRecord] = {}
    for event in sorted(events, key=lambda e: e["at"]):  # sorted() is stable: same-time events keep file order
        record = records.setdefault(event["exercise"], ExerciseRecord())
        if event["kind"] == "hint":
            record.hints_used = max(record.hints_used, event["hint_level"])
            continue
        record.attempts += 1
        record.passed = event["passed"]  # the latest check decides
        record.last_checked_at = event["at"]
        if event["passed"] and record.first_passed_at is None:
            record.first_passed_at = event["at"]
    return records


class Gradebook:
    """Learners by exercises, built from events; renders as CSV and as results.json."""

    def __init__(self, exercises: Sequence[str] | None = None) -> None:
        self.exercises = list(course_exercises() if exercises is None else exercises)
        self._events: dict[str, list[dict[str, Any]]] = {}
        self._seen: dict[str, set[str]] = {}
        self._damaged: dict[str, int] = {}
        # name_key -> the name shown, and the other spellings met
        self._shown: dict[str, str] = {}
        self._aliases: dict[str, list[str]] = {}
        #: Events that failed validation and named no usable learner.
        self.damaged = 0

    def add(self, learner: str | None, events: Iterable[Any], damaged: int = 0) -> None:
        """Add events; ``learner`` names them all (a learner's own store), or None to use each event's field.

        Invalid events are counted as damaged, never raised; a learner with no events still gets a row.
        """
        if learner is not None:
            learner = self._learner(learner)
            self._damaged[learner] += damaged
        else:
            self.damaged += damaged
        for raw in events:
            try:
                event = validate_event(raw)
            except ValueError:
                if learner is not None:
                    self._damaged[learner] += 1
                else:
                    self.damaged += 1
                continue
            name = learner if learner is not None else self._learner(event["learner"])
            if event["id"] not in self._seen[name]:
                self._seen[name].add(event["id"])
                self._events[name].append(event)

    def _learner(self, name: str) -> str:
        """The name this learner is shown under (the first spelling met, NFKC), with their lists ready."""
        key = name_key(name)
        shown = self._shown.setdefault(key, unicodedata.normalize("NFKC", name))
        aliases = self._aliases.setdefault(key, [])
        spelled = unicodedata.normalize("NFKC", name)
        if spelled != shown and spelled not in aliases:
            aliases.append(spelled)
        self._events.setdefault(shown, [])
        self._seen.setdefault(shown, set())
        self._damaged.setdefault(shown, 0)
        return shown

    def learners(self) -> list[LearnerGrades]:
        """Every learner, by name."""
        out = []
        for name in sorted(self._events):
            records = _records(self._events[name])
            known = {exercise_id: records.pop(exercise_id, ExerciseRecord()) for exercise_id in self.exercises}
            aliases = self._aliases.get(name_key(name), [])
            out.append(
                LearnerGrades(
                    name, known, dict(sorted(records.items())), len(self._events[name]), self._damaged[name], aliases
                )
            )
        return out

    def rows(self) -> list[list[str]]:
        """The CSV's rows, header first."""
        rows = [["learner", *self.exercises, "total", "percent"]]
        for learner in self.learners():
            marks = ["1" if learner.exercises[e].passed else "0" for e in self.exercises]
            rows.append([learner.name, *marks, str(learner.total), f"{learner.percent:.1f}"])
        return rows

    def to_csv(self) -> str:
        """The gradebook as CSV text (one row per learner), every cell through :func:`csv_cell`."""
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="\n").writerows([csv_cell(c) for c in row] for row in self.rows())
        return buffer.getvalue()

    def to_json(self) -> dict[str, Any]:
        """Everything the CSV says and more: attempts, hints, times, unknown ids, damaged lines."""
        learners = self.learners()
        return {
            "rule": RULE,
            "exercises": list(self.exercises),
            "damaged_lines": self.damaged + sum(learner.damaged for learner in learners),
            "learners": {
                learner.name: {
                    "total": learner.total,
                    "percent": learner.percent,
                    "events": learner.events,
                    "damaged_lines": learner.damaged,
                    "exercises": {k: asdict(v) for k, v in learner.exercises.items()},
                    "unknown": {k: asdict(v) for k, v in learner.unknown.items()},
                    **({"also_named": learner.also_named} if learner.also_named else {}),
                }
                for learner in learners
            },
        }

    def to_gradescope(self) -> dict[str, Any]:
        """Per learner, a Gradescope autograder ``results.json``: one test per exercise, 1 point when passed.

        Gradescope reads one such object per submission (``score``, ``tests`` with
        ``name``, ``score``, ``max_score``, ``status``, ``output``); this maps each
        learner's name to theirs, for an upload script to post one by one.

        Example:
            >>> book = Gradebook(["a.one"])
            >>> book.add("ada", [])
            >>> book.to_gradescope()["ada"]["tests"][0]["status"]
            'failed'
        """
        return {
            learner.name: {
                "score": learner.total,
                "max_score": len(self.exercises),
                "output": _("{passed}/{total} exercises passed ({rule})").format(
                    passed=learner.total, total=len(self.exercises), rule=_(RULE)
                ),
                "tests": [
                    {
                        "name": exercise_id,
                        "score": int(record.passed),
                        "max_score": 1,
                        "status": "passed" if record.passed else "failed",
                        "output": _gradescope_output(record),
                    }
                    for exercise_id, record in learner.exercises.items()
                ],
            }
            for learner in self.learners()
        }

    def write(self, out: Path) -> tuple[Path, Path]:
        """Write ``gradebook.csv`` and ``results.json`` into ``out``.

        Raises:
            LabkitError: ``out`` cannot be written.
        """
        out = Path(out)
        csv_path, json_path = out / CSV_NAME, out / JSON_NAME
        try:
            out.mkdir(parents=True, exist_ok=True)
            csv_path.write_text(self.to_csv(), encoding="utf-8")
            json_path.write_text(json.dumps(self.to_json(), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        except OSError as e:
            raise LabkitError(
                _("cannot write the gradebook to {out} ({cause})").format(out=out, cause=e.strerror or e),
                _("choose another --out folder"),
            ) from e
        return csv_path, json_path


def _gradescope_output(record: ExerciseRecord) -> str:
    if not record.attempts:
        return _("not checked yet")
    if record.first_passed_at:
        line = _("{n} check(s), last {last}, first passed {first}, hints used: {hints}")
    else:
        line = _("{n} check(s), last {last}, hints used: {hints}")
    return line.format(
        n=record.attempts, last=record.last_checked_at, first=record.first_passed_at, hints=record.hints_used
    )


def grade_events(
    events: Iterable[Any], *, learner: str | None = None, exercises: Sequence[str] | None = None
) -> Gradebook:
    """Grade a stream of events (the classroom server's stored events, or one learner's store).

    Args:
        events: event dicts; invalid ones are counted as damaged.
        learner: give every event this learner name; by default each event's ``learner`` field.
        exercises: the columns; by default every exercise this labkit knows, in course order.
    """
    book = Gradebook(exercises)
    book.add(learner, events)
    return book


def gradebook_rows(events: Iterable[Any]) -> list[list[str]]:
    """The CSV rows for a stream of events, header first (for the classroom server)."""
    return grade_events(events).rows()


def write_csv(events: Iterable[Any]) -> str:
    """The gradebook CSV text for a stream of events (for the classroom server)."""
    return grade_events(events).to_csv()


def _store_in(folder: Path) -> Path | None:
    """A learner folder's progress store: at its top, or anywhere inside (a copied state folder)."""
    if (folder / STORE_NAME).is_file():
        return folder / STORE_NAME
    return next(iter(sorted(folder.rglob(STORE_NAME))), None)


def grade_dir(folder: Path, exercises: Sequence[str] | None = None) -> Gradebook:
    """Grade a folder holding one folder or one ``.jsonl`` file per learner.

    Raises:
        LabkitError: the folder does not exist, holds no learner, or a store cannot be read.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise LabkitError(
            _("{folder} is not a folder").format(folder=folder),
            _("give the folder holding one folder or .jsonl file per learner"),
        )
    book = Gradebook(exercises)
    found = 0
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith((".", "_")):
            continue
        if entry.is_dir():
            store = _store_in(entry)
        elif entry.suffix == ".jsonl":
            store = entry
        else:
            continue  # the gradebook itself, notes, anything else
        found += 1
        name = entry.name if entry.is_dir() else entry.stem
        if store is None:
            book.add(name, [])  # no progress at all: a row of zeros
            continue
        try:
            events, damaged = read(store)
        except OSError as e:
            raise LabkitError(
                _("cannot read {path} ({cause})").format(path=store, cause=e.strerror or e),
                _("check the file's permissions"),
            ) from e
        book.add(name, events, damaged)
    if not found:
        raise LabkitError(
            _("{folder} holds no learner's progress").format(folder=folder),
            _(
                "put one folder (a copy of the learner's labkit state folder) or one NAME.jsonl "
                "(their progress.jsonl) per learner in it"
            ),
        )
    return book
