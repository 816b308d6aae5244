"""Check, hint, set up, solve and reset exercises against the live daemon."""

from __future__ import annotations

import contextlib
import dataclasses
import re
import shlex
from collections.abc import Callable
from pathlib import Path
from typing import Any

import docker.errors

from labkit.core import engine, owner, state
from labkit.core.cleanup import ResetReport, already_going
from labkit.core.errors import LabkitError, SolutionsHidden
from labkit.core.i18n import _
from labkit.core.paths import solutions_hidden, state_dir
from labkit.core.probes import containers_from
from labkit.core.shell import sh
from labkit.core.state import describe
from labkit.exercises.machinery import record as progress
from labkit.exercises.machinery.catalog import all_exercises, get
from labkit.exercises.machinery.model import CheckResult, Context, Exercise, shown


def _store_path() -> Path:
    return state_dir() / "exercises.json"


def _store_shape(data: Any) -> dict[str, dict[str, Any]]:
    """``exercises.json`` as the runner expects it: ``{"answers": {id: str}, "setup": {id: {...}}}``.

    Raises:
        TypeError: one line saying what is wrong with it.
    """
    if not isinstance(data, dict):
        raise TypeError(f"it holds {describe(data)}, not an object")
    store: dict[str, dict[str, Any]] = {"answers": {}, "setup": {}}
    for key, kind, wanted in (("answers", str, "a string"), ("setup", dict, "an object")):
        section = data.get(key, {})
        if not isinstance(section, dict):
            raise TypeError(f'"{key}" is {describe(section)}, not an object')
        for exercise_id, value in section.items():
            if not isinstance(value, kind):
                raise TypeError(f'{exercise_id} under "{key}" is {describe(value)}, not {wanted}')
        store[key] = section
    return store


def _load_store() -> dict[str, dict[str, Any]]:
    """The recorded answers and setup reports.

    Raises:
        DamagedState: the file was damaged; it was moved aside, and the next call starts clean.
    """
    return state.read_json(_store_path(), _store_shape, default={"answers": {}, "setup": {}})


def _save_store(data: dict[str, dict[str, Any]]) -> None:
    try:
        state.write_json(_store_path(), data, mode=0o600)  # 0600 when new: answers are the learner's own
    except OSError as e:
        raise LabkitError(
            _("cannot write {path} ({reason})").format(path=_store_path(), reason=e.strerror or e),
            _("check that the state folder can be written"),
        ) from e


def _context(exercise: Exercise, answer: str | None = None) -> Context:
    store = _load_store()
    recorded = store["answers"].get(exercise.id)
    return Context(
        exercise=exercise,
        client=engine.client(),
        answer=answer if answer is not None else recorded,
        setup=store["setup"].get(exercise.id),
    )


def record_answer(exercise_id: str, answer: str) -> None:
    """Remember a learner's answer so a later check without one re-checks it."""
    store = _load_store()
    store["answers"][exercise_id] = answer
    _save_store(store)


#: Someone who checks instead of this process (the hub's grader, in a classroom's lab), called with
#: the exercise and the answer: their verdict, or one line saying why they could not be asked (the
#: check then runs here and says it was not recorded), or None when there is nobody to ask.
Grader = Callable[[Exercise, str | None], CheckResult | str | None]
_grader: Grader | None = None


def set_grader(grader: Grader | None) -> None:
    """Let ``grader`` decide checks instead of this process (None: decide here again).

    A layer above registers itself, as the classroom's client registers as a sink of the
    record: the exercises never import the classroom.
    """
    global _grader
    _grader = grader


def check(exercise_id: str, answer: str | int | None = None) -> CheckResult:
    """Check an exercise against the live daemon.

    When a grader is registered (:func:`set_grader`), it decides instead, and its verdict is
    returned as it gave it (it ran the check and recorded it where it ran). When it cannot
    be asked, the check runs here as usual and its message says it was not recorded.

    Args:
        exercise_id: e.g. ``"welcome.first-container"``.
        answer: for answer exercises, the learner's value (recorded for later checks).

    Returns:
        A result, passed or not; a wrong state is never an exception. It is also added
        to the learner's progress record (:mod:`labkit.progress`), best-effort.

    Raises:
        UnknownExercise: no such exercise.
        DaemonUnavailable: the daemon did not answer, so nothing could be checked.
        DamagedState: ``exercises.json`` was damaged (moved aside: the next check starts clean).

    Example:
        >>> check("welcome.first-container")  # doctest: +SKIP
        ✔ welcome.first-container — passed: ...
    """
    exercise = get(exercise_id)
    remote = _grader(exercise, None if answer is None else str(answer).strip()) if _grader is not None else None
    if isinstance(remote, CheckResult):
        return remote
    result = _check(exercise, answer)
    if remote is not None:
        result = dataclasses.replace(
            result,
            message=_("{message} [checked here only, not recorded: {reason}]").format(
                message=result.message, reason=remote
            ),
        )
    _record("check", result, exercise)
    return result


def _check(exercise: Exercise, answer: str | int | None) -> CheckResult:
    text = None if answer is None else str(answer).strip()
    if text is not None and exercise.is_answer:
        record_answer(exercise.id, text)
    ctx = _context(exercise, text)
    if exercise.is_answer and ctx.answer is None:
        return CheckResult(
            exercise.id,
            shown(exercise.title),
            False,
            _("No answer recorded yet."),
            _('Submit one: check("{exercise}", answer=...) or `labkit check {exercise} --answer VALUE`.').format(
                exercise=exercise.id
            ),
        )
    with engine.converted():
        verdict = exercise.check(ctx)
    hint = verdict.hint if not verdict.passed else None
    if not verdict.passed and hint is None and exercise.hints:
        hint = shown(exercise.hints[0])
    return CheckResult(
        exercise.id, shown(exercise.title), verdict.passed, verdict.message, hint, dict(verdict.evidence)
    )


def _record(kind: str, shown: CheckResult | str, exercise: Exercise, level: int = 0) -> None:
    """Add what the learner was shown to the progress record (best-effort: never raises)."""
    with contextlib.suppress(Exception):  # recording is a side channel; the learner's check or hint comes first
        progress.record(
            progress.make_event(kind, shown, exercise=exercise.id, lesson=exercise.lesson, hint_level=level)
        )


class Hint(str):
    """A hint: a plain string that a notebook shows without quotes."""

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(str(self))


def hint(exercise_id: str, level: int = 1, *, record: bool = True) -> Hint:
    """Hint tier ``level`` (1 = a nudge; the last tier gives the answer), added to the progress record.

    Args:
        exercise_id: e.g. ``"welcome.first-container"``.
        level: the tier, clamped to the ones the exercise has.
        record: whether the learner asked for it. A learner's own request (a cell they
            run, the panel's Hint button, ``labkit hint``) is recorded, so the gradebook
            counts it; lesson text that shows a hint on purpose passes ``record=False``.

    Raises:
        UnknownExercise: no such exercise.

    Example:
        >>> hint("welcome.first-container", 1, record=False)  # doctest: +SKIP
        Hint 1/3: ...
    """
    exercise = get(exercise_id)
    if not exercise.hints:
        text, level = Hint(_("No hints for this one: read the prompt again.")), max(1, int(level))
    else:
        level = max(1, min(int(level), len(exercise.hints)))
        text = Hint(
            _("Hint {level}/{count}: {hint}").format(
                level=level, count=len(exercise.hints), hint=shown(exercise.hints[level - 1])
            )
        )
    if record:
        _record("hint", text, exercise, level)
    return text


_PLACEHOLDER = re.compile(r"\{(\w+)\}")


def fill(command: str, values: dict[str, Any] | None) -> str:
    """Put what setup reported into a solution command: ``{path}`` → the path setup made, quoted.

    Each value is quoted for the shell (:func:`shlex.quote`), so a workspace whose path
    holds spaces, quotes or ``;`` stays one word and runs nothing of its own; a list or
    tuple becomes one quoted word per item. A placeholder therefore stands alone in the
    template, never inside quotes (``-v {path}:/zone``, not ``-v "{path}:/zone"``). Only
    ``{word}`` placeholders naming a reported value are replaced, so Go templates such as
    ``{{.State.Status}}`` pass through untouched.

    Example:
        >>> fill("docker save -o {tar} labkit/hello-dock", {"tar": "/tmp/x.tar"})
        'docker save -o /tmp/x.tar labkit/hello-dock'
        >>> fill("docker save -o {tar} x", {"tar": "/tmp/my ws;touch P/x.tar"})
        "docker save -o '/tmp/my ws;touch P/x.tar' x"
        >>> fill("docker rm {names}", {"names": ["a", "b c"]})
        "docker rm a 'b c'"
        >>> fill("docker inspect -f '{{.Id}}' x", {"Id": "no"})
        "docker inspect -f '{{.Id}}' x"
    """
    if not values:
        return command
    return _PLACEHOLDER.sub(
        lambda m: (
            _shell_words(values[m.group(1)]) if m.group(1) in values and not _in_go_template(command, m) else m.group(0)
        ),
        command,
    )


def _shell_words(value: Any) -> str:
    """``value`` as shell text that means exactly it: one quoted word, or one per item of a list."""
    if isinstance(value, list | tuple):
        return " ".join(shlex.quote(str(item)) for item in value)
    return shlex.quote(str(value))


def _in_go_template(command: str, match: re.Match[str]) -> bool:
    return command[max(0, match.start() - 1) : match.start()] == "{" or command[match.end() : match.end() + 1] == "}"


def solution(exercise_id: str) -> str:
    """The reference solution as the commands a learner would type (with setup's values filled in).

    Raises:
        UnknownExercise: no such exercise.
        SolutionsHidden: this is a student workspace (:func:`~labkit.core.paths.solutions_hidden`).
    """
    exercise = get(exercise_id)
    hidden_by = solutions_hidden()
    if hidden_by is not None:
        raise SolutionsHidden(exercise.id, str(hidden_by))
    return "\n".join(fill(command, _load_store()["setup"].get(exercise.id)) for command in exercise.solution)


def _remove(container: Any) -> bool:
    try:
        container.remove(force=True, v=True)
        return True
    except docker.errors.NotFound:
        return False
    except docker.errors.APIError as e:
        if already_going(e):  # another reset (a second kernel, a parallel run) is removing it
            return True
        raise


def owned_by_exercise(exercise: Exercise, name: str, labels: dict[str, str] | None, from_its_image: bool) -> bool:
    """Whether a reset of ``exercise`` may remove this container: what labkit made, or what it asks for by name.

    Its setup's containers (``labkit.exercise`` label) and the names its prompt asks the learner
    to use go; a container made from one of its images goes only when labkit made it (it
    carries ``labkit.session``: ``labkit.sh``, ``%docker`` and setups label what they create).
    Someone's own container from the same image, made outside labkit, is left alone.

    Example:
        >>> from labkit.exercises import get
        >>> first = get("welcome.first-container")
        >>> owned_by_exercise(first, "mine", {}, True), owned_by_exercise(first, "x", {"labkit.session": "s"}, True)
        (False, True)
    """
    labels = labels or {}
    if labels.get("labkit.exercise") == exercise.id or name in exercise.names:
        return True
    return from_its_image and engine.LABEL_SESSION in labels


def reset_exercise(exercise: Exercise) -> ResetReport:
    """Remove the containers an exercise owns and what its teardown removes; forget its state.

    It owns (:func:`owned_by_exercise`) what its setup made, the containers its prompt names,
    and the containers labkit made from its images; never a container from the same image
    that labkit did not make.

    Returns:
        What was removed.
    """
    client = engine.client()
    removed = 0
    with engine.converted():
        for container in client.containers.list(all=True, filters={"label": f"labkit.exercise={exercise.id}"}):
            removed += _remove(container)
        for name in exercise.names:
            found = engine.find_container(name)
            if found is not None and found.name == name:
                removed += _remove(found)
        for image in exercise.images:
            for container in containers_from(client, image):
                if owned_by_exercise(exercise, container.name, container.labels, from_its_image=True):
                    removed += _remove(container)
        other = exercise.teardown(_context(exercise)) if exercise.teardown is not None else None
    store = _load_store()
    if exercise.id in store["answers"] or exercise.id in store["setup"]:
        store["answers"].pop(exercise.id, None)
        store["setup"].pop(exercise.id, None)
        _save_store(store)
    return ResetReport(containers=removed, other=int(other or 0))


class SetupInfo(dict[str, Any]):
    """What setup reports: a dict (for ``--json``) that shows itself as a friendly line.

    A key starting with ``_`` is for the check only (IDs, times): kept, but not shown.
    """

    def shown(self) -> list[tuple[str, Any]]:
        """The entries a learner reads, by key."""
        return [(key, value) for key, value in sorted(self.items()) if key != "exercise" and not key.startswith("_")]

    def __str__(self) -> str:
        exercise = get(self["exercise"])
        lines = [_("Ready: {exercise} — {prompt}").format(exercise=exercise.id, prompt=shown(exercise.prompt))]
        lines.extend(f"  {key}: {value}" for key, value in self.shown())
        return "\n".join(lines)

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(str(self))


def exercise_labels(exercise: Exercise) -> dict[str, str]:
    """Labels for what an exercise's setup creates."""
    return {**engine.labels(exercise.lesson), "labkit.exercise": exercise.id}


def setup(exercise_id: str) -> SetupInfo:
    """Reset an exercise, then create its starting state.

    Returns:
        What the learner needs to know (container names, paths); ``{}`` when
        the exercise needs no setup.

    Raises:
        UnknownExercise: no such exercise.
        LabkitError: the starting state could not be created (the partial state is removed).
    """
    exercise = get(exercise_id)
    reset_exercise(exercise)
    info = SetupInfo(exercise=exercise.id)
    if exercise.setup is not None:
        owner.watch(engine.session_id())  # what setup makes goes if this process is killed
        ctx = _context(exercise)
        try:
            with engine.converted():
                info.update(exercise.setup(ctx))
        except BaseException:
            reset_exercise(exercise)
            raise
    store = _load_store()
    store["setup"][exercise.id] = dict(info)
    _save_store(store)
    return info


def solve(exercise_id: str, *, quiet: bool = False) -> CheckResult:
    """Apply the reference solution for real, then check it.

    For answer exercises, records the reference answer computed live. An exercise whose
    solution is keys on a terminal does it through its ``act`` instead of its commands.

    Raises:
        UnknownExercise: no such exercise.
        CommandFailed: a reference command failed (a bug in the exercise, or a broken setup).
    """
    exercise = get(exercise_id)
    if exercise.setup is not None and _load_store()["setup"].get(exercise.id) is None:
        setup(exercise.id)
    reported = _load_store()["setup"].get(exercise.id)
    if exercise.act is not None:
        with engine.converted():
            exercise.act(_context(exercise))
    else:
        for command in exercise.solution:
            sh(fill(command, reported), lesson=exercise.lesson, quiet=quiet)
    if exercise.reference_answer is not None:
        ctx = _context(exercise)
        with engine.converted():
            record_answer(exercise.id, exercise.reference_answer(ctx))
    return check(exercise.id)


def reset_all() -> ResetReport:
    """Reset every exercise, and forget every recorded answer."""
    removed = sum((reset_exercise(exercise) for exercise in all_exercises()), ResetReport())
    with contextlib.suppress(FileNotFoundError):
        _store_path().unlink()
    return removed


__all__ = ["LabkitError", "check", "hint", "record_answer", "reset_all", "reset_exercise", "setup", "solution", "solve"]
