"""The student notebooks run: released from the solution notebooks, executed in a real kernel
against the real daemon, with no cell raising and every check saying "not yet".

A student notebook has the learner's cells empty, so any later cell that depends on
an exercise being solved breaks here, and the failure names that cell; a cell tagged
``requires:<id>`` in the solution notebook may stop, with labkit's one-line error. Generic over
every notebook in notebooks/, so a new lesson is covered the day it lands.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient

from labkit.core import fmt
from labkit.core.paths import REPO_DIR
from labkit.course.release import release
from labkit.exercises.machinery import record as progress
from labkit.exercises.machinery.reset import reset

pytestmark = [pytest.mark.docker, pytest.mark.slow]

#: (language folder, notebook): English at the top of the release, Chinese in ``zh_CN/``.
NOTEBOOKS = [(lang, p.name) for lang in ("", "zh_CN") for p in sorted((REPO_DIR / "notebooks" / lang).glob("*.ipynb"))]
_CHECK_CALL = re.compile(r"\blabkit\.check\(")
_BARE_CHECK = re.compile(r"^labkit\.check\(.*\)\s*$")
_STATUS = re.compile(r'data-status="([^"]+)"')
_TEXT_STATUS = re.compile(r"^[✔✗] \S+ — (passed|not yet|通过|尚未通过)：?:?", re.MULTILINE)
_STATUS_WORDS = {"通过": "passed", "尚未通过": "not yet"}


@pytest.fixture(scope="module")
def student_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("student")
    release(out)
    return out


def _describe(index: int, cell: Any) -> str:
    first = next((line for line in cell.source.splitlines() if line.strip()), "(empty)")
    return f"cell #{index + 1} ({first.strip()[:70]!r})"


def _statuses(cell: Any) -> list[str]:
    """What every check rendering in a cell's outputs says: "passed" or "not yet"."""
    found: list[str] = []
    for output in cell.get("outputs", []):
        data = output.get("data", {})
        if "text/html" in data and "labkit-check" in "".join(data["text/html"]):
            found += _STATUS.findall("".join(data["text/html"]))
        elif output.get("output_type") == "stream" or "text/plain" in data:
            text = "".join(output.get("text", "")) or "".join(data.get("text/plain", ""))
            found += [_STATUS_WORDS.get(word, word) for word in _TEXT_STATUS.findall(text)]
    return found


@pytest.mark.parametrize(("lang", "name"), NOTEBOOKS, ids=[f"{lang or 'en'}-{name}" for lang, name in NOTEBOOKS])
def test_student_notebook_runs_and_every_check_says_not_yet(
    lang: str, name: str, student_dir: Path, docker_client: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    lesson = name.split("-", 1)[0]
    monkeypatch.setenv("LABKIT_LANG", lang or "en")  # the kernel inherits it: labkit speaks the lesson's language
    student_dir = student_dir / lang if lang else student_dir
    notebook = nbformat.read(student_dir / name, as_version=4)
    started = fmt.utc_now()
    # allow_errors: run to the end so one report names every cell that broke, not just the first.
    client = NotebookClient(
        notebook,
        timeout=600,
        kernel_name="python3",
        allow_errors=True,
        resources={"metadata": {"path": str(student_dir)}},
    )
    try:
        client.execute()
    finally:
        reset(lesson=lesson)  # the notebook's last cell does this too, unless it never got there
    problems = []
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type != "code":
            continue
        where = _describe(index, cell)
        may_stop = "raises-exception" in cell.metadata.get("tags", [])  # release tags cells that need a solved exercise
        for output in cell.outputs:
            if output.output_type != "error":
                continue
            reason = re.sub(r"\x1b\[[0-9;]*m", "", output.evalue or "")[:300]
            one_line = [re.sub(r"\x1b\[[0-9;]*m", "", line) for line in output.traceback]
            if may_stop and len(one_line) == 1 and one_line[0].startswith("labkit: "):
                continue  # what a learner who skipped the exercise sees: one readable line
            problems.append(
                f"{where} raised {output.ename}: {reason}" + (" (and not as one labkit line)" if may_stop else "")
            )
        statuses = _statuses(cell)
        if "passed" in statuses:
            problems.append(f"{where} shows a check that passed with the learner's cells empty")
        if _CHECK_CALL.search(cell.source) and _BARE_CHECK.match(cell.source.strip().splitlines()[-1]) and not statuses:
            problems.append(f"{where} calls labkit.check but shows no verdict")
    assert not problems, f"student version of {name}:\n  " + "\n  ".join(problems)
    # The kernel's checks and hints went into the progress record, all "not yet".
    events, _ = progress.read()
    mine = [e for e in events if e["lesson"] == lesson and e["at"] >= started]
    checks = [e for e in mine if e["kind"] == "check"]
    expected = sum(1 for c in notebook.cells if c.cell_type == "code" and _CHECK_CALL.search(c.source))
    assert len(checks) >= min(expected, 1), f"no check of lesson {lesson} reached the progress record"
    assert not [e for e in checks if e["passed"]], json.dumps([e for e in checks if e["passed"]], indent=1)
