"""``labkit release``, ``labkit progress`` and ``labkit grade``: student notebooks, the learner's record, a gradebook."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from labkit.core import fmt
from labkit.core.commands import Subcommands
from labkit.core.errors import ExitCode, LabkitError
from labkit.core.i18n import _
from labkit.course import grade
from labkit.exercises.machinery import record


def register(subcommands: Subcommands) -> None:
    """Add ``release``, ``progress`` and ``grade`` to labkit's sub-commands."""
    p = subcommands.add_parser(
        "release", help=_("write the student notebooks: solutions replaced by prompts, outputs cleared")
    )
    p.add_argument("--out", type=Path, default=None, help=_("folder to write to (default: build/student)"))
    p.add_argument(
        "--from", dest="source", type=Path, default=None, help=_("the solution notebooks (default: the course's)")
    )
    p.add_argument(
        "--allow-solutions",
        action="store_true",
        help=_("let `labkit solution` show reference solutions in this release (by default it refuses there)"),
    )
    p.set_defaults(func=release_command)

    p = subcommands.add_parser("progress", help=_("your progress record: every check and hint, per exercise"))
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=progress_command)

    p = subcommands.add_parser(
        "grade", help=_("a gradebook (CSV + results.json) from a folder of learners' progress records")
    )
    p.add_argument("dir", type=Path, help=_("one folder or NAME.jsonl per learner"))
    p.add_argument(
        "--out", type=Path, default=None, help=_("where to write gradebook.csv and results.json (default: DIR)")
    )
    p.set_defaults(func=grade_command)


def release_command(args: argparse.Namespace) -> ExitCode:
    """``labkit release``.

    Raises:
        ReleaseError: a notebook cannot be released as it stands.
    """
    # Loaded here: release reads notebooks with nbformat, which imports jsonschema (about a second).
    from labkit.course import release

    print(release.release(args.out, args.source, allow_solutions=args.allow_solutions))
    return ExitCode.DONE


def progress_command(args: argparse.Namespace) -> ExitCode:
    """``labkit progress``: this learner's record, per exercise.

    Raises:
        LabkitError: the record exists but cannot be read.
    """
    try:
        events, damaged = record.read()
    except OSError as e:
        raise LabkitError(
            _("cannot read your progress record {path} ({cause})").format(
                path=record.store_path(), cause=e.strerror or e
            ),
            _("check its permissions"),
        ) from e
    learner = record.learner_name()
    book = grade.Gradebook()
    book.add(learner, events, damaged)
    (row,) = book.learners()
    if args.json:
        # Not print_json: its sorted keys would lose the course order of the exercises.
        print(
            json.dumps(
                {"learner": learner, "store": str(record.store_path()), **book.to_json()["learners"][learner]}, indent=2
            )
        )
        return ExitCode.DONE
    print(
        _("{learner}: {passed}/{total} exercises passed ({percent:.1f}%) — record: {path}").format(
            learner=learner, passed=row.total, total=len(row.exercises), percent=row.percent, path=record.store_path()
        )
    )
    for exercise_id, entry in [*row.exercises.items(), *row.unknown.items()]:
        mark = "✔" if entry.passed else ("✗" if entry.attempts else "·")
        state = _("passed") if entry.passed else (_("not yet") if entry.attempts else _("not started"))
        detail = _(", ").join(
            part
            for part in (
                _("{n} check(s)").format(n=entry.attempts) * bool(entry.attempts),
                _("hint level {level}").format(level=entry.hints_used) * bool(entry.hints_used),
            )
            if part
        )
        print(f"  {mark} {exercise_id:<32} {fmt.ljust(state, 12)} {detail}")
    if damaged:
        print(_("  ({n} damaged line(s) in the record were skipped)").format(n=damaged))
    return ExitCode.DONE


def grade_command(args: argparse.Namespace) -> ExitCode:
    """``labkit grade DIR``.

    Raises:
        LabkitError: DIR holds no progress records, or the gradebook cannot be written.
    """
    book = grade.grade_dir(args.dir)
    for learner in book.learners():
        print(learner.summary())
    csv_path, json_path = book.write(args.out or args.dir)
    print(_("wrote {csv} and {json}").format(csv=csv_path, json=json_path))
    return ExitCode.DONE
