"""``labkit reset``, ``labkit exercise list|setup|solve|show``, ``labkit check``, ``hint`` and ``solution``.

``check`` and ``exercise solve`` answer 0 when the exercise passed and 1 when it is not
done yet; a solution that cannot run is a :class:`~labkit.core.errors.CommandFailed`
(exit 2, could not do), never a "not yet".
"""

from __future__ import annotations

import argparse

from labkit import exercises
from labkit.core.commands import Subcommands, print_json
from labkit.core.errors import ExitCode, UsageError
from labkit.core.i18n import _
from labkit.exercises.machinery.model import CheckResult
from labkit.exercises.machinery.reset import reset


def register_reset(subcommands: Subcommands) -> None:
    """Add ``reset`` to labkit's sub-commands (it comes second in ``labkit --help``)."""
    p = subcommands.add_parser("reset", help=_("remove everything the lab created"))
    p.add_argument("--session", help=_("only this labkit.session's resources"))
    p.add_argument("--lesson", help=_("only this lesson's exercises and resources, e.g. 00"))
    p.set_defaults(func=reset_command)


def register(subcommands: Subcommands) -> None:
    """Add ``exercise``, ``check``, ``hint`` and ``solution`` to labkit's sub-commands."""
    p = subcommands.add_parser("exercise", help=_("list, set up or solve exercises"))
    p.add_argument("action", choices=["list", "setup", "solve", "show"])
    p.add_argument("id", nargs="?")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=exercise_command)

    p = subcommands.add_parser("check", help=_("check an exercise against the live daemon (exit 0 passed, 1 not yet)"))
    p.add_argument("id")
    p.add_argument("--answer", help=_("your answer, for exercises that ask for a value"))
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=check_command)

    p = subcommands.add_parser("hint", help=_("a hint for an exercise"))
    p.add_argument("id")
    p.add_argument("--level", type=int, default=1)
    p.set_defaults(func=hint_command)

    p = subcommands.add_parser("solution", help=_("the reference solution of an exercise"))
    p.add_argument("id")
    p.set_defaults(func=solution_command)


def reset_command(args: argparse.Namespace) -> ExitCode:
    """``labkit reset``: remove what the lab created (all, one session's, or one lesson's)."""
    print(reset(session=args.session, lesson=args.lesson))
    return ExitCode.DONE


def exercise_command(args: argparse.Namespace) -> ExitCode:
    """``labkit exercise ACTION [ID]``.

    Raises:
        UsageError: an action other than ``list`` without an exercise ID.
        UnknownExercise: no exercise has that ID.
        CommandFailed: ``solve``: a reference command failed.
    """
    if args.action == "list":
        rows = [(e.id, e.lesson, e.title) for e in exercises.all_exercises()]
        if args.json:
            print_json([{"id": i, "lesson": lesson, "title": t} for i, lesson, t in rows])
        else:
            for exercise_id, lesson, title in rows:
                print(_("{id:<32} lesson {lesson}  {title}").format(id=exercise_id, lesson=lesson, title=_(title)))
        return ExitCode.DONE
    if not args.id:
        raise UsageError(
            "labkit exercise",
            _("exercise {action} needs an exercise ID (see `labkit exercise list`)").format(action=args.action),
        )
    if args.action == "setup":
        info = exercises.setup(args.id)
        if args.json:
            print_json(info)
        else:
            exercise = exercises.get(args.id)
            print(_("{id}: ready. {prompt}").format(id=exercise.id, prompt=_(exercise.prompt)))
            for key, value in info.shown():
                print(f"  {key}: {value}")
        return ExitCode.DONE
    if args.action == "solve":
        return _verdict(exercises.solve(args.id, quiet=args.json), args.json)
    exercise = exercises.get(args.id)
    print(_("{id} (lesson {lesson}): {title}").format(id=exercise.id, lesson=exercise.lesson, title=_(exercise.title)))
    print(_(exercise.prompt))
    return ExitCode.DONE


def check_command(args: argparse.Namespace) -> ExitCode:
    """``labkit check ID``: 0 passed, 1 not yet.

    Raises:
        UnknownExercise: no exercise has that ID.
        DaemonUnavailable: nothing could be checked.
        DamagedState: the recorded answers were damaged (moved aside).
    """
    return _verdict(exercises.check(args.id, answer=args.answer), args.json)


def _verdict(result: CheckResult, as_json: bool) -> ExitCode:
    """Print a check's result (text or JSON); 0 when it passed, 1 when not yet."""
    if as_json:
        print_json(result.to_dict())
    else:
        print(result)
    return ExitCode.DONE if result.passed else ExitCode.NOT_YET


def hint_command(args: argparse.Namespace) -> ExitCode:
    """``labkit hint ID [--level N]``."""
    print(exercises.hint(args.id, args.level))
    return ExitCode.DONE


def solution_command(args: argparse.Namespace) -> ExitCode:
    """``labkit solution ID``."""
    print(exercises.solution(args.id))
    return ExitCode.DONE
