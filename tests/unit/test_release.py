"""labkit release: student notebooks from the solution notebooks, and the failures it refuses to paper over."""

from __future__ import annotations

import itertools
import json
import re
from pathlib import Path
from typing import Any

import pytest

from labkit import cli
from labkit.core.paths import REPO_DIR
from labkit.course.release import ReleaseError, build, release, render, student_notebook
from labkit.exercises.machinery.catalog import all_exercises, get
from labkit.lab import sync_student_workspace

NOTEBOOKS = sorted((REPO_DIR / "notebooks").glob("*.ipynb"))

#: Solution commands a lesson shows on purpose *outside* its solution cells: the command is
#: what the lesson teaches, demonstrated before the learner repeats it. For these alone the
#: test allows what the solution notebook itself shows, and no more; every other reference
#: command must be absent from every student notebook.
SHOWN_ON_PURPOSE = {
    "welcome.first-container": "00 runs `docker run hello-world` to show the six steps before asking for it",
    "vm.kernel": "01 runs `docker run --rm busybox uname -r` to compare the kernels before asking for the value",
}


_ids = itertools.count()


def _code(
    source: str, tags: list[str] | None = None, outputs: list[Any] | None = None, count: int | None = 3
) -> dict[str, Any]:
    return {
        "cell_type": "code",
        "execution_count": count,
        "id": f"c{next(_ids)}",
        "metadata": {"tags": tags or [], "execution": {"iopub.status.busy": "2026-11-27T19:33:50Z"}},
        "outputs": outputs
        if outputs is not None
        else [{"output_type": "stream", "name": "stdout", "text": ["answer\n"]}],
        "source": source.splitlines(keepends=True),
    }


def _md(source: str) -> dict[str, Any]:
    return {"cell_type": "markdown", "id": f"m{next(_ids)}", "metadata": {}, "source": source.splitlines(keepends=True)}


def _notebook(*cells: dict[str, Any]) -> dict[str, Any]:
    return {
        "cells": list(cells),
        "metadata": {
            "kernelspec": {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"},
            "widgets": {"state": {}},
        },
        "nbformat": 4,
        "nbformat_minor": 5,
    }


CHECK = 'labkit.check("welcome.first-container")'


def _source(cell: dict[str, Any]) -> str:
    return "".join(cell["source"])


def test_solution_cell_becomes_the_prompt_and_outputs_go() -> None:
    original = _notebook(
        _md("# Title\nRun **hello-world**."),
        _code(CHECK),
        _code("%docker run hello-world", ["solution", "exercise:welcome.first-container", "nbval-ignore-output"]),
        _code(CHECK),
    )
    snapshot = json.dumps(original, sort_keys=True)
    student, exercises = student_notebook(original, "00-x.ipynb")
    assert json.dumps(original, sort_keys=True) == snapshot, "the solution notebook must be left untouched"
    assert exercises == ["welcome.first-container"]
    md, before, mine, after = student["cells"]
    assert (md["id"], _source(md), md["metadata"]) == (original["cells"][0]["id"], _source(original["cells"][0]), {})
    prompt = get("welcome.first-container").prompt
    assert _source(mine) == (
        f"# Exercise welcome.first-container: {prompt}\n"
        '# Stuck? labkit.hint("welcome.first-container") gives a hint; level=2 gives a bigger one.'
    )
    assert mine["metadata"] == {"tags": ["exercise:welcome.first-container", "nbval-ignore-output"]}
    for cell in (before, mine, after):
        assert cell["outputs"] == [] and cell["execution_count"] is None
    assert _source(before) == CHECK
    assert "widgets" not in student["metadata"] and student["metadata"]["kernelspec"]["name"] == "python3"
    assert student["metadata"]["labkit"] == {"version": "student"}


def test_solution_prose_is_left_out_and_dependent_cells_say_so() -> None:
    discussion = {
        **_md("`docker run hello-world` passes."),
        "metadata": {"tags": ["solution", "exercise:welcome.first-container"]},
    }
    nb = _notebook(
        _code(CHECK),
        _code("%docker run hello-world", ["solution", "exercise:welcome.first-container"]),
        discussion,
        _code(CHECK),
        _code("%docker container ls --all", ["requires:welcome.first-container"]),
    )
    student, _ = student_notebook(nb)
    assert [c["cell_type"] for c in student["cells"]] == ["code", "code", "code", "code"]
    needs = student["cells"][-1]
    assert _source(needs) == (
        "# Runs once you have solved welcome.first-container above; until then it stops with a labkit error.\n"
        "%docker container ls --all"
    )
    assert needs["metadata"]["tags"] == ["requires:welcome.first-container", "raises-exception"]


def test_answer_exercise_prompt_says_how_to_submit() -> None:
    nb = _notebook(
        _code('labkit.check("vm.kernel")'),
        _code('labkit.check("vm.kernel", answer="6.1.0")', ["solution", "exercise:vm.kernel"]),
    )
    student, _ = student_notebook(nb)
    text = _source(student["cells"][1])
    assert '# Submit your answer here: labkit.check("vm.kernel", answer=...)' in text
    assert "6.1.0" not in text


def test_markers_replace_only_the_marked_block_and_the_cell_still_runs() -> None:
    source = (
        "total = 0\n"
        "for n in range(3):\n"
        "    # BEGIN SOLUTION\n"
        "    total += n\n"
        "    # END SOLUTION\n"
        "print(total)\n"
        "# begin solution\n"
        "secret = 42\n"
        "# end solution"
    )
    nb = _notebook(_code(CHECK), _code(source, ["exercise:welcome.first-container"]))
    student, exercises = student_notebook(nb)
    text = _source(student["cells"][1])
    assert exercises == ["welcome.first-container"]
    assert "total += n" not in text and "secret = 42" not in text and "SOLUTION" not in text.upper()
    assert text.startswith("total = 0\nfor n in range(3):\n    # Exercise welcome.first-container: ")
    assert "\n    pass\nprint(total)\n# Exercise welcome.first-container:" in text
    compile(text, "<student cell>", "exec")  # still valid Python: the loop body is `pass`


@pytest.mark.parametrize(
    ("cells", "problem"),
    [
        ([_code("%docker run hello-world", ["solution"])], 'tagged "solution" but names no exercise'),
        ([_code("x", ["solution", "exercise:no.such-thing"])], "tag exercise:no.such-thing names no exercise"),
        ([_code("x", ["solution", "exercise:vm.kernel", "exercise:welcome.first-container"])], "names 2 exercises"),
        (
            [_code("%docker run hello-world", ["solution", "exercise:welcome.first-container"])],
            'no labkit.check("welcome.first-container") cell',
        ),
        (
            [_code(CHECK), _code("# BEGIN SOLUTION\nx = 1", ["exercise:welcome.first-container"])],
            "line 1: # BEGIN SOLUTION is never closed",
        ),
        (
            [_code(CHECK), _code("x = 1\n# END SOLUTION", ["exercise:welcome.first-container"])],
            "line 2: # END SOLUTION with no # BEGIN SOLUTION",
        ),
        (
            [
                _code(CHECK),
                _code("# BEGIN SOLUTION\n# BEGIN SOLUTION\n# END SOLUTION", ["exercise:welcome.first-container"]),
            ],
            "line 2: # BEGIN SOLUTION inside the block opened on line 1",
        ),
        ([_code("# BEGIN SOLUTION\nx = 1\n# END SOLUTION")], "has # BEGIN SOLUTION markers but no exercise:<id> tag"),
        ([_code(CHECK), _code('labkit.solve("welcome.first-container")')], "calls labkit.solve() or labkit.solution()"),
        (
            [_code(CHECK), _code("%docker images", ["requires:welcome.first-container"])],
            "requires welcome.first-container, but no cell above it is that exercise's solution",
        ),
        ([_code(CHECK), _code("%docker images", ["requires:nope"])], "tag requires:nope names no exercise"),
    ],
)
def test_ambiguous_notebooks_fail_loudly(cells: list[dict[str, Any]], problem: str) -> None:
    with pytest.raises(ReleaseError) as caught:
        student_notebook(_notebook(*cells), "05-x.ipynb")
    message = str(caught.value)
    assert problem in message and message.startswith("05-x.ipynb") and "\n" not in message


def test_cli_exits_2_with_one_line_and_writes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source, out = tmp_path / "src", tmp_path / "out"
    source.mkdir()
    (source / "00-good.ipynb").write_text(
        json.dumps(
            _notebook(_code(CHECK), _code("%docker run hello-world", ["solution", "exercise:welcome.first-container"]))
        )
    )
    (source / "01-bad.ipynb").write_text(json.dumps(_notebook(_code("x", ["solution"]))))
    assert cli.main(["release", "--from", str(source), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("labkit: 01-bad.ipynb cell #1") and "\n" not in err
    assert not out.exists(), "a failed release writes nothing"


def test_release_is_byte_for_byte_stable(tmp_path: Path) -> None:
    assert cli.main(["release", "--out", str(tmp_path / "a")]) == 0
    release(tmp_path / "b")
    names = sorted(p.name for p in (tmp_path / "a").glob("*.ipynb"))
    assert names == [p.name for p in NOTEBOOKS]
    for name in names:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    again = json.loads((tmp_path / "a" / names[0]).read_text())
    assert render(again) == (tmp_path / "a" / names[0]).read_text(), "rendering a released notebook changes nothing"


def _student() -> dict[str, dict[str, Any]]:
    return {r.name: json.loads(r.text) for r in build()}


def _solution_sources(path: Path) -> tuple[list[str], str]:
    """(the solution cells' sources, everything else the lesson shows) of a solution notebook."""
    cells = json.loads(path.read_text())["cells"]
    solutions = [_source(c) for c in cells if "solution" in c.get("metadata", {}).get("tags", [])]
    rest = "\n".join(_source(c) for c in cells if "solution" not in c.get("metadata", {}).get("tags", []))
    return solutions, rest


def test_no_reference_solution_appears_in_any_student_notebook() -> None:
    student = _student()
    shown = {path.name: _solution_sources(path)[1] for path in NOTEBOOKS}
    leaks = []
    for exercise in all_exercises():
        for command in (c.strip() for c in exercise.solution if c.strip()):
            for name, nb in student.items():
                text = "\n".join(_source(c) for c in nb["cells"])
                found = text.count(command)
                allowed = shown[name].count(command) if exercise.id in SHOWN_ON_PURPOSE else 0
                if found > allowed:
                    leaks.append(f"{name}: {exercise.id}'s {command!r} ({found}x)")
    assert not leaks, "reference solutions left in student notebooks: " + "; ".join(leaks)


def test_no_line_of_a_solution_cell_survives() -> None:
    student = _student()
    leaks = []
    for path in NOTEBOOKS:
        solutions, rest = _solution_sources(path)
        kept = {line.strip() for cell in student[path.name]["cells"] for line in _source(cell).splitlines()}
        for solution in solutions:
            for line in (raw.strip() for raw in solution.splitlines()):
                # A line the lesson also shows elsewhere (a demo the learner repeats) is not a leak.
                if line and not line.startswith("#") and line in kept and line not in rest:
                    leaks.append(f"{path.name}: {line!r}")
    assert not leaks, "solution lines left in student notebooks: " + "; ".join(leaks)


def test_every_solution_cell_of_the_course_is_released_as_a_prompt() -> None:
    student = _student()
    for path in NOTEBOOKS:
        cells = json.loads(path.read_text())["cells"]
        # Markdown that discusses an answer is left out, so match released cells by id.
        by_id = {cell["id"]: cell for cell in student[path.name]["cells"]}
        for index, cell in enumerate(cells):
            tags = cell.get("metadata", {}).get("tags", [])
            if "solution" not in tags:
                continue
            if cell["cell_type"] == "markdown":
                assert cell["id"] not in by_id, f"{path.name} cell #{index + 1}: answer prose kept"
                continue
            released = by_id[cell["id"]]
            exercise_id = next(t.split(":", 1)[1] for t in tags if t.startswith("exercise:"))
            assert "solution" not in released["metadata"]["tags"]
            assert f"exercise:{exercise_id}" in released["metadata"]["tags"]
            assert all(line.startswith("#") for line in _source(released).splitlines()), (
                f"{path.name} cell #{index + 1}"
            )
            assert f'labkit.hint("{exercise_id}")' in _source(released)
        for cell in student[path.name]["cells"]:
            if cell["cell_type"] == "code":
                assert cell["outputs"] == [] and cell["execution_count"] is None
            assert "execution" not in cell.get("metadata", {}), "timings of the solution run are dropped"


def test_lab_gives_learners_the_student_versions_and_keeps_their_copies(tmp_path: Path) -> None:
    workspace = tmp_path / "work"
    workspace.mkdir()
    first = NOTEBOOKS[0].name
    (workspace / first).write_text("my edits")
    copied, kept = sync_student_workspace(REPO_DIR / "notebooks", workspace)
    assert kept == [first] and (workspace / first).read_text() == "my edits"
    assert copied == [p.name for p in NOTEBOOKS[1:]]
    for name in copied:
        assert json.loads((workspace / name).read_text())["metadata"]["labkit"] == {"version": "student"}


PANEL = 'labkit.exercise("welcome.first-container")'


def test_exercise_panels_lose_their_solution_button_and_count_as_checks() -> None:
    nb = _notebook(
        _code(f"board = 1\n{PANEL}"),
        _code("%docker run hello-world", ["solution", "exercise:welcome.first-container"]),
        _code("labkit.exercise( 'welcome.first-container' , check_now=True )"),
        _code('labkit.exercise("welcome.first-container", solution=False)'),
        _code('labkit.exercise("welcome.first-container", check_now=bool(1))'),
        _code('labkit.exercise(\n    "welcome.first-container",\n    check_now=True,\n)  # a panel'),
        _code('%docker run \\\n  hello-world\nif True:\n    %docker ps\nlabkit . exercise ("welcome.first-container")'),
    )
    student, exercises = student_notebook(nb)  # the panels stand in for labkit.check: no "no check cell" error
    assert exercises == ["welcome.first-container"]
    assert [_source(c) for c in student["cells"][2:]] == [
        "labkit.exercise('welcome.first-container' , check_now=True, solution=False)",
        'labkit.exercise("welcome.first-container", solution=False)',
        'labkit.exercise("welcome.first-container", check_now=bool(1), solution=False)',
        'labkit.exercise("welcome.first-container",\n    check_now=True, solution=False)  # a panel',
        '%docker run \\\n  hello-world\nif True:\n    %docker ps\nlabkit.exercise("welcome.first-container", solution=False)',
    ]
    assert _source(student["cells"][0]) == 'board = 1\nlabkit.exercise("welcome.first-container", solution=False)'
    assert student_notebook(student)[0]["cells"] == student["cells"], (
        "releasing a student notebook again changes nothing"
    )


@pytest.mark.parametrize(
    ("source", "problem"),
    [
        ('labkit.exercise("welcome.first-container", solution=True)', "with its Show-solution button"),
        ('labkit.exercise("welcome.first-container", solution=not False)', "with its Show-solution button"),
        ("labkit.exercise(ids[0])", "in a form release cannot rewrite"),
        ("labkit.exercise(*ids)", "in a form release cannot rewrite"),
        ('labkit.exercise("welcome.first-container", **options)', "in a form release cannot rewrite"),
    ],
)
def test_panels_that_would_show_the_solution_or_cannot_be_rewritten_fail(source: str, problem: str) -> None:
    nb = _notebook(
        _code(CHECK), _code("%docker run hello-world", ["solution", "exercise:welcome.first-container"]), _code(source)
    )
    with pytest.raises(ReleaseError) as caught:
        student_notebook(nb, "05-x.ipynb")
    assert problem in str(caught.value) and str(caught.value).startswith("05-x.ipynb cell #3")


def test_a_solution_cell_may_use_a_solution_panel() -> None:
    nb = _notebook(
        _code(CHECK),
        _code(
            'labkit.exercise("welcome.first-container", solution=True)',
            ["solution", "exercise:welcome.first-container"],
        ),
    )
    student, _ = student_notebook(nb)
    assert "labkit.exercise" not in _source(student["cells"][1])


def test_released_course_panels_have_no_solution_button() -> None:
    for name, nb in _student().items():
        for cell in nb["cells"]:
            for call in re.findall(r"labkit\.exercise\([^()]*\)", _source(cell)):
                assert call.endswith("solution=False)"), f"{name}: {call}"


def test_what_release_writes_is_a_valid_notebook_or_nothing(tmp_path: Path) -> None:
    import nbformat

    for path in release(tmp_path).out.glob("*.ipynb"):
        nbformat.validate(nbformat.read(path, as_version=4))  # raises on an invalid notebook
    bad = _notebook(_code(CHECK), _code("%docker run hello-world", ["solution", "exercise:welcome.first-container"]))
    bad["cells"][0]["colour"] = "red"  # not a field of a code cell
    with pytest.raises(ReleaseError, match=r"^05-x.ipynb: would be released as an invalid notebook \("):
        student_notebook(bad, "05-x.ipynb")
    twice = _notebook(
        _code(CHECK), _code("%docker run hello-world", ["solution", "exercise:welcome.first-container"]), _code(CHECK)
    )
    twice["cells"][2]["id"] = twice["cells"][0]["id"]
    with pytest.raises(ReleaseError, match="has two cells with the id"):
        student_notebook(twice, "05-x.ipynb")


def test_only_calls_give_the_answer_away_not_comments_or_commands() -> None:
    nb = _notebook(
        _code(CHECK),
        _code("%docker run hello-world", ["solution", "exercise:welcome.first-container"]),
        _code(
            '# labkit.solve("welcome.first-container") would run the answer for you\n%docker echo labkit.solution(x)'
        ),
    )
    student, _ = student_notebook(nb)
    assert "labkit.solve" in _source(student["cells"][2])
