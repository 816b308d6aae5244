"""``labkit release``: the student versions of the lessons, made from the solution notebooks.

The notebooks in ``notebooks/`` are the solution versions, and the only source:
nbval runs them, so every reference solution is executed against a real daemon.
Each exercise's reference solution sits in a code cell tagged
``["solution", "exercise:<id>"]``, or between ``# BEGIN SOLUTION`` and
``# END SOLUTION`` lines inside a cell tagged ``exercise:<id>`` (otter-grader's
markers, for a cell that is only partly the answer).

The student version of a notebook:

- replaces each solution cell by a code cell holding only the exercise's prompt
  as comments, and a pointer to ``labkit.hint("<id>")``; its ``exercise:<id>``
  tag stays (so tools can still find the cell), the ``solution`` tag goes;
- replaces each marked block by the same comments and a ``pass``, so the cell
  still runs;
- leaves out markdown cells tagged ``["solution", "exercise:<id>"]``: prose that
  discusses the answer ("``docker stop NAME`` passes, ``docker kill`` does not");
- turns each exercise panel, ``labkit.exercise("<id>")``, into
  ``labkit.exercise("<id>", solution=False)``: the learner's panel has Check and
  Hint, and no button that shows the reference solution. Calls are found in the
  cell's syntax tree (:mod:`ast`, after IPython turns ``%docker`` lines into calls)
  and rewritten by position, so nothing else in the cell changes;
- clears every code cell's outputs and execution counts, and the saved widget
  state: a learner runs the cells and sees live output, and no stored output
  can show an answer. Markdown is kept as written.
- gives a cell tagged ``requires:<id>`` (one that only works once that
  exercise is solved, such as running the image the learner was asked to build)
  a first comment line saying so, and the ``raises-exception`` tag: a learner
  who has not solved it yet gets labkit's one-line error, and executing the
  student notebook (nbclient, nbval) accepts that error in that cell alone.

Anything ambiguous fails loudly, before a single file is written: a
``solution`` tag without an exercise id, an unknown id, two ids on one cell,
unbalanced markers, a solution for an exercise the notebook never checks, or a
``labkit.solve(...)`` / ``labkit.solution(...)`` call left in a cell learners
get. Notebooks are read and written with :mod:`nbformat`, and what is written
is validated against nbformat's schema first. The output is byte-for-byte stable,
so releasing twice gives identical files.

**Languages.** ``notebooks/`` holds the English lessons and ``notebooks/zh_CN/`` their Chinese
twins (same file names; tests/unit/test_zh_pairing.py keeps them in step). ``labkit release``
writes both: the English student notebooks to ``build/student/`` and the Chinese ones to
``build/student/zh_CN/``, each with its prompts in its own language (labkit speaks the
language of the folder while it releases it), the pictures, and the folder's course notes
(``terminology.md``). ``--from notebooks/zh_CN`` releases the Chinese lessons alone. Nothing generated is committed (the default output folder, ``build/``,
is ignored by git), so there is no stale copy for CI to catch.
"""

from __future__ import annotations

import copy
import os
import re
import shutil
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nbformat
from nbformat import NotebookNode

from labkit.core import i18n
from labkit.core.errors import LabkitError, ReleaseError, UnknownExercise
from labkit.core.i18n import _
from labkit.core.paths import RELEASE_MARKER, REPO_DIR, release_marker
from labkit.course.calls import checked_ids, gives_away, student_panels
from labkit.exercises.machinery.catalog import get

#: Where the solution notebooks live.
SOURCE_DIR = REPO_DIR / "notebooks"
#: Where ``labkit release`` writes by default, relative to the current folder (``build/`` is git-ignored).
DEFAULT_OUT = Path("build") / "student"
#: The lessons' pictures (SVG diagrams): ``img/`` beside the notebooks, linked as ``img/NAME.svg``.
#: A translation's folder has none of its own: its lessons link the same ``img/NAME.svg``.
PICTURES = "img"

SOLUTION_TAG = "solution"
EXERCISE_TAG = "exercise:"
REQUIRES_TAG = "requires:"
#: The tag nbclient and nbval read as "this cell may raise".
RAISES_TAG = "raises-exception"
_BEGIN = re.compile(r"^(\s*)#\s*BEGIN SOLUTION\s*$", re.IGNORECASE)
_END = re.compile(r"^\s*#\s*END SOLUTION\s*$", re.IGNORECASE)


@dataclass
class Released:
    """One student notebook: its file name, the exercises it holds, and the notebook."""

    name: str
    exercises: list[str]
    notebook: NotebookNode

    @property
    def text(self) -> str:
        """The notebook as its file holds it."""
        return render(self.notebook)


@dataclass
class ReleaseReport:
    """What ``release`` wrote."""

    out: Path
    notebooks: list[Released] = field(default_factory=list)

    def __str__(self) -> str:
        count = sum(len(n.exercises) for n in self.notebooks)
        lines = [
            _("wrote {notebooks} student notebook(s) with {count} exercise(s) to {out}").format(
                notebooks=len(self.notebooks), count=count, out=self.out
            )
        ]
        lines += [f"  {n.name}: {', '.join(n.exercises) or _('no exercises')}" for n in self.notebooks]
        return "\n".join(lines)


def _source(cell: Mapping[str, Any]) -> str:
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else str(source)


def _describe(notebook: str, index: int, cell: Mapping[str, Any]) -> str:
    first = next((line.strip() for line in _source(cell).splitlines() if line.strip()), _("(empty)"))
    if len(first) > 60:
        first = first[:57] + "..."
    if cell.get("id"):
        where = _("{notebook} cell #{number} id {id} ({first!r})")
    else:
        where = _("{notebook} cell #{number} ({first!r})")
    return where.format(notebook=notebook, number=index + 1, id=cell.get("id"), first=first)


def _exercise_of(notebook: str, index: int, cell: Mapping[str, Any]) -> str | None:
    """The exercise id a cell's tags name, checked against the registry."""
    tags = cell.get("metadata", {}).get("tags", []) or []
    ids = [tag[len(EXERCISE_TAG) :].strip() for tag in tags if tag.startswith(EXERCISE_TAG)]
    where = _describe(notebook, index, cell)
    if len(ids) > 1:
        raise ReleaseError(
            where,
            _("names {n} exercises ({ids})").format(n=len(ids), ids=", ".join(ids)),
            _("a cell solves one exercise: split it"),
        )
    if not ids:
        return None
    try:
        return get(ids[0]).id
    except UnknownExercise as e:
        raise ReleaseError(
            where, _("tag exercise:{id} names no exercise ({fix})").format(id=ids[0], fix=e.fix), _("fix the tag")
        ) from e


def _prompt_comment(exercise_id: str, indent: str = "") -> list[str]:
    exercise = get(exercise_id)
    prompt = [line.strip() for line in _(exercise.prompt).strip().splitlines() if line.strip()]
    lines = [_("# Exercise {id}: {prompt}").format(id=exercise.id, prompt=prompt[0])]
    lines += [f"# {line}" for line in prompt[1:]]
    if exercise.is_answer:
        lines.append(_('# Submit your answer here: labkit.check("{id}", answer=...)').format(id=exercise.id))
    lines.append(_('# Stuck? labkit.hint("{id}") gives a hint; level=2 gives a bigger one.').format(id=exercise.id))
    return [indent + line for line in lines]


def _strip_markers(notebook: str, index: int, cell: Mapping[str, Any], exercise_id: str | None) -> str | None:
    """The cell's source with each marked block replaced, or None when it has no markers.

    Raises:
        ReleaseError: unbalanced or nested markers, or markers in a cell with no exercise id.
    """
    lines = _source(cell).splitlines()
    if not any(_BEGIN.match(line) or _END.match(line) for line in lines):
        return None
    where = _describe(notebook, index, cell)
    if exercise_id is None:
        raise ReleaseError(
            where, _("has # BEGIN SOLUTION markers but no exercise:<id> tag"), _("tag the cell with its exercise")
        )
    out: list[str] = []
    opened: int | None = None
    for number, line in enumerate(lines, 1):
        begin, end = _BEGIN.match(line), _END.match(line)
        if begin:
            if opened is not None:
                raise ReleaseError(
                    where,
                    _("line {number}: # BEGIN SOLUTION inside the block opened on line {opened}").format(
                        number=number, opened=opened
                    ),
                    _("close the first block with # END SOLUTION"),
                )
            opened = number
            # The placeholder keeps the cell valid Python, even when the block was an `if` body.
            out += [*_prompt_comment(exercise_id, begin.group(1)), begin.group(1) + "pass"]
        elif end:
            if opened is None:
                raise ReleaseError(
                    where,
                    _("line {number}: # END SOLUTION with no # BEGIN SOLUTION before it").format(number=number),
                    _("add the BEGIN marker or remove this line"),
                )
            opened = None
        elif opened is None:
            out.append(line)
    if opened is not None:
        raise ReleaseError(
            where,
            _("line {number}: # BEGIN SOLUTION is never closed").format(number=opened),
            _("add # END SOLUTION after the answer"),
        )
    return "\n".join(out)


def _required(notebook: str, index: int, cell: Mapping[str, Any], solved_above: list[str]) -> list[str]:
    """The exercises a cell's ``requires:<id>`` tags name, each solved in an earlier cell.

    Raises:
        ReleaseError: an unknown id, or one with no solution cell above this one.
    """
    names = [
        t[len(REQUIRES_TAG) :].strip()
        for t in cell.get("metadata", {}).get("tags", []) or []
        if t.startswith(REQUIRES_TAG)
    ]
    required = []
    for name in names:
        where = _describe(notebook, index, cell)
        try:
            exercise_id = get(name).id
        except UnknownExercise as e:
            raise ReleaseError(
                where, _("tag requires:{name} names no exercise ({fix})").format(name=name, fix=e.fix), _("fix the tag")
            ) from e
        if exercise_id not in solved_above:
            raise ReleaseError(
                where,
                _("requires {id}, but no cell above it is that exercise's solution").format(id=exercise_id),
                _("move the cell below the solution, or fix the tag"),
            )
        required.append(exercise_id)
    return required


def _notebook(notebook: Mapping[str, Any]) -> NotebookNode:
    """A copy of ``notebook`` as nbformat holds it in memory (each cell's source one string)."""
    nb: NotebookNode = nbformat.v4.to_notebook_json(copy.deepcopy(dict(notebook)))
    return nb


def student_notebook(notebook: Mapping[str, Any], name: str = "notebook") -> tuple[NotebookNode, list[str]]:
    """The student version of one solution notebook.

    Args:
        notebook: the solution notebook, as :func:`nbformat.read` gives it or as parsed JSON
            (left untouched).
        name: its file name, for error messages.

    Returns:
        (the student notebook, valid under nbformat's schema; the ids of the exercises it holds, in order).

    Raises:
        ReleaseError: a tag or marker is missing, unknown, doubled or unbalanced, a solution's
            exercise is never checked in the notebook, a kept cell calls ``labkit.solve``, or
            the result would not be a valid notebook.
    """
    nb = _notebook(notebook)
    exercises: list[str] = []
    kept: list[NotebookNode] = []
    for index, cell in enumerate(nb.cells):
        tags = list(cell.metadata.get("tags", []) or [])
        exercise_id = _exercise_of(name, index, cell)
        is_solution = SOLUTION_TAG in tags
        where = _describe(name, index, cell)
        if is_solution and exercise_id is None:
            raise ReleaseError(
                where,
                _('is tagged "solution" but names no exercise'),
                _('add the tag "exercise:<id>" naming the exercise it solves'),
            )
        if is_solution and cell.cell_type != "code":
            continue  # prose that discusses the answer: solution notebooks only
        kept.append(cell)
        if cell.cell_type != "code":
            continue
        panels = None if is_solution else student_panels(where, cell.source)
        if panels is not None:
            cell.source = panels
        stripped = _strip_markers(name, index, cell, exercise_id)
        if stripped is not None:
            cell.source = stripped
        elif is_solution:
            assert exercise_id is not None
            cell.source = "\n".join(_prompt_comment(exercise_id))
        if is_solution or stripped is not None:
            assert exercise_id is not None
            if exercise_id not in exercises:
                exercises.append(exercise_id)
            cell.metadata["tags"] = [t for t in tags if t != SOLUTION_TAG]
            continue
        required = _required(name, index, cell, exercises)
        if required:
            names = required[0]
            for other in required[1:]:
                names = _("{first} and {second}").format(first=names, second=other)
            note = (
                _("# Runs once you have solved {names} above; until then it stops with a labkit error.").format(
                    names=names
                )
                + "\n"
            )
            cell.source = note + cell.source
            cell.metadata["tags"] = tags + ([RAISES_TAG] if RAISES_TAG not in tags else [])
        elif gives_away(cell.source):
            raise ReleaseError(
                where,
                _("calls labkit.solve() or labkit.solution(), which would hand learners the answer"),
                _("move the call into the exercise's solution cell, or remove it"),
            )
    nb.cells = kept
    checked = checked_ids(cell.source for cell in kept if cell.cell_type == "code")
    for exercise_id in exercises:
        if exercise_id not in checked:
            raise ReleaseError(
                name,
                _('has a solution for {id} but no labkit.check("{id}") cell a learner keeps').format(id=exercise_id),
                _("add a check cell for it (before and after the learner's cell)"),
            )
    for cell in kept:
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
        cell.metadata.pop("execution", None)  # timings of the solution run
    nb.metadata.pop("widgets", None)  # saved widget state is output too
    nb.metadata["labkit"] = {"version": "student"}
    _validate(name, nb)
    return nb, exercises


def _validate(name: str, nb: NotebookNode) -> None:
    """Check the student notebook against nbformat's schema, without letting nbformat repair it.

    Raises:
        ReleaseError: the notebook breaks the schema, or two cells share an id (nbformat's
            ``validate`` would replace one with a random id, and releases must be stable).
    """
    fix = _("open the solution notebook in JupyterLab and save it again")
    for error in nbformat.validator.iter_validate(nb):
        problem = str(error.message).splitlines()[0][:200]
        raise ReleaseError(name, _("would be released as an invalid notebook ({problem})").format(problem=problem), fix)
    ids = [cell.get("id") for cell in nb.cells if cell.get("id") is not None]
    twice = sorted({cell_id for cell_id in ids if ids.count(cell_id) > 1})
    if twice:
        raise ReleaseError(name, _("has two cells with the id {id!r}").format(id=twice[0]), fix)


def render(notebook: Mapping[str, Any]) -> str:
    """A notebook as :func:`nbformat.write` writes it (indent 1, sorted keys), so reruns match byte for byte."""
    text: str = nbformat.writes(nbformat.from_dict(notebook))
    return text if text.endswith("\n") else text + "\n"


def build(source: Path = SOURCE_DIR) -> list[Released]:
    """Student versions of every notebook in ``source``, in memory (nothing written).

    Raises:
        ReleaseError: a notebook cannot be released (see :func:`student_notebook`), or is not JSON.
    """
    released = []
    paths = sorted(Path(source).glob("*.ipynb"))
    if not paths:
        raise ReleaseError(
            str(source), _("holds no .ipynb notebooks"), _("point --from at the course's notebooks/ folder")
        )
    for path in paths:
        try:
            notebook = nbformat.read(path, as_version=4)
        except (OSError, ValueError) as e:  # nbformat's NotJSONError is a ValueError
            raise ReleaseError(
                str(path), _("cannot be read as a notebook ({error})").format(error=e), _("restore it from git")
            ) from e
        student, exercises = student_notebook(notebook, path.name)
        released.append(Released(path.name, exercises, student))
    return released


def copy_pictures(source: Path, target: Path) -> list[str]:
    """Copy the pictures in ``source/img/`` to ``target/img/`` where missing or different.

    A translation's folder (``notebooks/zh_CN``) uses the pictures of the lessons it translates.

    Pictures are course material, not the learner's work: a changed one replaces the old copy.

    Returns:
        The names of the files copied.
    """
    copied = []
    pictures = source / PICTURES
    if not pictures.is_dir() and source.name in i18n.LANGUAGES:
        pictures = source.parent / PICTURES  # a translation shows the English lessons' pictures
    for picture in sorted(pictures.glob("*")):
        destination = target / PICTURES / picture.name
        if picture.is_file() and (not destination.exists() or destination.read_bytes() != picture.read_bytes()):
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(picture, destination)
            copied.append(picture.name)
    return copied


def translation_dir(lang: str) -> Path:
    """Where the lessons of ``lang`` live: ``notebooks/<lang>`` (``notebooks/`` itself for English)."""
    return SOURCE_DIR if lang == i18n.DEFAULT else SOURCE_DIR / lang


def language_of(source: Path) -> str:
    """The language of the lessons in ``source``: its folder's name when labkit has that language, else English."""
    return source.name if source.name in i18n.LANGUAGES else i18n.DEFAULT


@contextmanager
def speaking(lang: str) -> Iterator[None]:
    """labkit speaks ``lang`` inside the block (``LABKIT_LANG``, which :func:`labkit.core.i18n.language` reads at each call)."""
    before = os.environ.get("LABKIT_LANG")
    os.environ["LABKIT_LANG"] = lang
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("LABKIT_LANG", None)
        else:
            os.environ["LABKIT_LANG"] = before


def copy_notes(source: Path, target: Path) -> list[str]:
    """Copy the course notes beside the lessons (``*.md``: ``zh_CN/terminology.md``) where missing or different.

    Like the pictures, notes are course material: a changed one replaces the old copy.
    """
    copied = []
    for note in sorted(source.glob("*.md")):
        destination = target / note.name
        if not destination.exists() or destination.read_bytes() != note.read_bytes():
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(note, destination)
            copied.append(note.name)
    return copied


def release(out: Path | None = None, source: Path | None = None, *, allow_solutions: bool = False) -> ReleaseReport:
    """Write the student version of every notebook in ``source`` into ``out``.

    With the default ``source``, the Chinese lessons (``notebooks/zh_CN``) are released too, into
    ``out/zh_CN``; their report entries are named ``zh_CN/NN-name.ipynb``. A ``source`` folder
    named after a language (``notebooks/zh_CN``) is released in that language alone.

    Every notebook is checked before the first file is written, so a failed
    release leaves ``out`` as it was. ``out`` also gets the release marker
    (:data:`~labkit.core.paths.RELEASE_MARKER`): in a folder holding it, ``labkit
    solution`` refuses unless the release allows solutions or ``LABKIT_SOLUTIONS=1``.

    Args:
        out: the folder to write to (default ``build/student`` under the current folder).
        source: the solution notebooks (default: the course's ``notebooks/``).
        allow_solutions: let ``labkit solution`` show reference solutions in this release.

    Returns:
        What was written.

    Raises:
        ReleaseError: a notebook cannot be released as it stands.
        LabkitError: ``out`` cannot be written.

    Example:
        >>> print(release(Path("/tmp/student")))  # doctest: +SKIP
        wrote 5 student notebook(s) with 8 exercise(s) to /tmp/student
    """
    everything = source is None
    source = SOURCE_DIR if source is None else Path(source)
    with speaking(language_of(source)):
        released = build(source)
    # The course's own release has its translations too, in a folder per language.
    translations = [(lang, translation_dir(lang)) for lang in i18n.LANGUAGES] if everything else []
    translations = [(lang, folder) for lang, folder in translations if any(folder.glob("*.ipynb"))]
    for lang, folder in translations:
        with speaking(lang):
            released += [Released(f"{lang}/{n.name}", n.exercises, n.notebook) for n in build(folder)]
    out = DEFAULT_OUT if out is None else Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
        for notebook in released:
            (out / notebook.name).parent.mkdir(parents=True, exist_ok=True)
            nbformat.write(notebook.notebook, out / notebook.name)
        for folder, target in [(source, out), *((folder, out / lang) for lang, folder in translations)]:
            copy_pictures(folder, target)
            copy_notes(folder, target)
            (target / RELEASE_MARKER).write_text(release_marker(allow_solutions))
    except OSError as e:
        raise LabkitError(
            _("cannot write the student notebooks to {out} ({cause})").format(out=out, cause=e.strerror or e),
            _("choose another --out folder"),
        ) from e
    return ReleaseReport(out.resolve(), released)
