"""The ``labkit`` command: doctor, reset, images, registry, exercises, and release/progress/grade for classrooms.

Exit codes: 0 success (or "passed" for ``check``), 1 "not yet" (``check``) or
"not ready" (``doctor``), 2 could not do the job (one line on stderr says why).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from labkit.core.errors import LabkitError


def _print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, sort_keys=True, default=str))


def _cmd_doctor(args: argparse.Namespace) -> int:
    from labkit.features.doctor import run_doctor

    report = run_doctor()
    if args.json:
        _print_json(report.to_dict())
    else:
        print(report.render_text())
    return 0 if report.ready else 1


def _cmd_reset(args: argparse.Namespace) -> int:
    from labkit.exercises.machinery.reset import reset

    print(reset(session=args.session, lesson=args.lesson))
    return 0


def _cmd_images(args: argparse.Namespace) -> int:
    from labkit.features import images

    if args.action in ("bundle", "load"):
        if not args.args:
            raise SystemExit(f"labkit images {args.action}: needs a FILE")
        path, names = args.args[0], args.args[1:]
        if args.action == "bundle":
            images.bundle(path, names or None)
        else:
            images.load(path)
        return 0
    names = args.args or None
    if args.action == "ensure":
        images.ensure(names)
    elif args.action == "list":
        wanted = None if names is None else {images.find(n).name for n in names}
        states = [s for s in images.status() if wanted is None or s.name in wanted]
        for state in states:
            mark = "✔" if state.present else "✗"
            origin = " (built offline by labkit)" if state.offline_built else ""
            print(f"{mark} {state.name:<28} {state.source}{origin}")
        return 0 if all(s.present for s in states) else 1
    return 0


def _cmd_registry(args: argparse.Namespace) -> int:
    from labkit.features.registry import mirror as registry

    if args.action == "up":
        status = registry.up()
    elif args.action == "down":
        stopped = registry.down()
        print("registry stopped" if stopped else "no registry started by labkit was running")
        return 0
    else:
        status = registry.status()
    if args.json:
        _print_json(vars(status) if not hasattr(status, "to_dict") else status.to_dict())
    else:
        state = "running" if status.running else "not running"
        print(f"registry {state} at {status.url}" + (f" (pid {status.pid})" if status.pid else ""))
        for repo in status.repositories:
            print(f"  {repo}")
    return 0 if status.running or args.action == "status" else 2


def _cmd_vm(args: argparse.Namespace) -> int:
    from labkit.features import vm

    print(vm.prepare())
    return 0


def _cmd_trace(args: argparse.Namespace) -> int:
    from labkit.features import trace

    return int(trace.command(args))


def _cmd_exercise(args: argparse.Namespace) -> int:
    from labkit import exercises

    if args.action == "list":
        rows = [(e.id, e.lesson, e.title) for e in exercises.all_exercises()]
        if args.json:
            _print_json([{"id": i, "lesson": lesson, "title": t} for i, lesson, t in rows])
        else:
            for exercise_id, lesson, title in rows:
                print(f"{exercise_id:<32} lesson {lesson}  {title}")
        return 0
    if args.action == "setup":
        info = exercises.setup(args.id)
        if args.json:
            _print_json(info)
        else:
            exercise = exercises.get(args.id)
            print(f"{exercise.id}: ready. {exercise.prompt}")
            for key, value in info.items():
                if key != "exercise":
                    print(f"  {key}: {value}")
        return 0
    if args.action == "solve":
        result = exercises.solve(args.id, quiet=args.json)
        if args.json:
            _print_json(result.to_dict())
        else:
            print(result)
        return 0 if result.passed else 1
    if args.action == "show":
        exercise = exercises.get(args.id)
        print(f"{exercise.id} (lesson {exercise.lesson}): {exercise.title}\n{exercise.prompt}")
        return 0
    return 2


def _cmd_check(args: argparse.Namespace) -> int:
    from labkit import exercises

    result = exercises.check(args.id, answer=args.answer)
    if args.json:
        _print_json(result.to_dict())
    else:
        print(result)
    return 0 if result.passed else 1


def _cmd_hint(args: argparse.Namespace) -> int:
    from labkit import exercises

    print(exercises.hint(args.id, args.level))
    return 0


def _cmd_solution(args: argparse.Namespace) -> int:
    from labkit import exercises

    print(exercises.solution(args.id))
    return 0


def _cmd_release(args: argparse.Namespace) -> int:
    from labkit.course import release

    print(release.release(args.out, args.source))
    return 0


def _cmd_progress(args: argparse.Namespace) -> int:
    from labkit.course import grade
    from labkit.exercises.machinery import record as progress

    try:
        events, damaged = progress.read()
    except OSError as e:
        raise LabkitError(f"cannot read your progress record {progress.store_path()} ({e.strerror or e})", "check its permissions") from e
    learner = progress.learner_name()
    book = grade.Gradebook()
    book.add(learner, events, damaged)
    (row,) = book.learners()
    if args.json:
        # Not _print_json: its sorted keys would lose the course order of the exercises.
        print(json.dumps({"learner": learner, "store": str(progress.store_path()), **book.to_json()["learners"][learner]}, indent=2))
        return 0
    print(f"{learner}: {row.total}/{len(row.exercises)} exercises passed ({row.percent:.1f}%) — record: {progress.store_path()}")
    for exercise_id, record in [*row.exercises.items(), *row.unknown.items()]:
        mark = "✔" if record.passed else ("✗" if record.attempts else "·")
        state = "passed" if record.passed else ("not yet" if record.attempts else "not started")
        detail = ", ".join(part for part in (f"{record.attempts} check(s)" * bool(record.attempts), f"hint level {record.hints_used}" * bool(record.hints_used)) if part)
        print(f"  {mark} {exercise_id:<32} {state:<12} {detail}")
    if damaged:
        print(f"  ({damaged} damaged line(s) in the record were skipped)")
    return 0


def _cmd_grade(args: argparse.Namespace) -> int:
    from labkit.course import grade

    book = grade.grade_dir(args.dir)
    for learner in book.learners():
        print(learner.summary())
    csv_path, json_path = book.write(args.out or args.dir)
    print(f"wrote {csv_path} and {json_path}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="labkit", description="Hands-on Docker course helper.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("doctor", help="is this machine ready for the lab?")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_cmd_doctor)

    p = sub.add_parser("reset", help="remove everything the lab created")
    p.add_argument("--session", help="only this labkit.session's resources")
    p.add_argument("--lesson", help="only this lesson's exercises and resources, e.g. 00")
    p.set_defaults(func=_cmd_reset)

    p = sub.add_parser("images", help="the course's images, offline")
    p.add_argument("action", choices=["ensure", "list", "bundle", "load"])
    p.add_argument("args", nargs="*", metavar="ARG", help="ensure|list [NAME...]; bundle FILE [NAME...]; load FILE")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr while building, pulling, saving or loading")
    p.set_defaults(func=_cmd_images)

    p = sub.add_parser("registry", help="the local registry mirror on 127.0.0.1:5000")
    p.add_argument("action", choices=["up", "down", "status"])
    p.add_argument("--json", action="store_true")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr while pushing the course's images")
    p.set_defaults(func=_cmd_registry)

    p = sub.add_parser("vm", help="the VM of lesson 01: fetch and build its kernel and initramfs ahead of class")
    p.add_argument("action", choices=["prepare"])
    p.set_defaults(func=_cmd_vm)

    p = sub.add_parser("trace", help="a recording proxy in front of the daemon: watch the API calls the CLI makes")
    p.add_argument("action", choices=["start", "stop", "show", "host"])
    where = p.add_mutually_exclusive_group()
    where.add_argument("--socket", help="start: the unix socket to listen on (default: <state dir>/trace/docker.sock)")
    where.add_argument("--tcp", type=int, metavar="PORT", help="start: listen on 127.0.0.1:PORT instead")
    p.add_argument("--json", action="store_true")
    p.add_argument("--raw", action="store_true", help="show: real paths, times and connection numbers")
    p.set_defaults(func=_cmd_trace)

    p = sub.add_parser("exercise", help="list, set up or solve exercises")
    p.add_argument("action", choices=["list", "setup", "solve", "show"])
    p.add_argument("id", nargs="?")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_cmd_exercise)

    p = sub.add_parser("check", help="check an exercise against the live daemon (exit 0 passed, 1 not yet)")
    p.add_argument("id")
    p.add_argument("--answer", help="your answer, for exercises that ask for a value")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_cmd_check)

    p = sub.add_parser("hint", help="a hint for an exercise")
    p.add_argument("id")
    p.add_argument("--level", type=int, default=1)
    p.set_defaults(func=_cmd_hint)

    p = sub.add_parser("solution", help="the reference solution of an exercise")
    p.add_argument("id")
    p.set_defaults(func=_cmd_solution)

    p = sub.add_parser("release", help="write the student notebooks: solutions replaced by prompts, outputs cleared")
    p.add_argument("--out", type=Path, default=None, help="folder to write to (default: build/student)")
    p.add_argument("--from", dest="source", type=Path, default=None, help="the solution notebooks (default: the course's)")
    p.set_defaults(func=_cmd_release)

    p = sub.add_parser("progress", help="your progress record: every check and hint, per exercise")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_cmd_progress)

    p = sub.add_parser("grade", help="a gradebook (CSV + results.json) from a folder of learners' progress records")
    p.add_argument("dir", type=Path, help="one folder or NAME.jsonl per learner")
    p.add_argument("--out", type=Path, default=None, help="where to write gradebook.csv and results.json (default: DIR)")
    p.set_defaults(func=_cmd_grade)
    from labkit.classroom.cli import add_parser as add_classroom_parser

    add_classroom_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "images" and args.action in ("bundle", "load") and not args.args:
        parser.error(f"images {args.action} needs a FILE")
    if args.command == "exercise" and args.action != "list" and not args.id:
        parser.error(f"exercise {args.action} needs an exercise ID (see `labkit exercise list`)")
    try:
        if getattr(args, "quiet", False):
            from labkit.core import activity

            with activity.quiet():
                return int(args.func(args))
        return int(args.func(args))
    except LabkitError as e:
        print(f"labkit: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("labkit: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # `labkit ... | head`: the reader left; say nothing more, like other Unix tools.
        sys.stdout = None  # type: ignore[assignment]
        return 0


if __name__ == "__main__":
    sys.exit(main())
