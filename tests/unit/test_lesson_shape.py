"""Every lesson has the same frame: objectives and a time estimate first, a recap and a cheat sheet last.

The README's lesson table gives the same times, so a newcomer can plan a session.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def _cells(path: Path) -> list[dict[str, object]]:
    return list(json.loads(path.read_text())["cells"])


def _text(cell: dict[str, object]) -> str:
    source = cell["source"]
    return "".join(source) if isinstance(source, list) else str(source)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_a_lesson_opens_with_its_objectives_and_time(path: Path) -> None:
    cells = _cells(path)
    opening = _text(cells[1])
    assert cells[1]["cell_type"] == "markdown"
    assert re.search(r"\*\*In this lesson\*\* \(about \d+ minutes\) you will:", opening), opening[:120]
    assert opening.count("\n- ") >= 2, "at least two objectives"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_a_lesson_ends_with_a_recap_and_a_cheat_sheet_before_its_clean_up(path: Path) -> None:
    cells = _cells(path)
    headings = [_text(c).splitlines()[0] if _text(c) else "" for c in cells]
    recap = headings.index("## Recap")
    assert headings[recap + 1] == "## Clean up", "the recap comes right before the clean-up"
    recap_text = _text(cells[recap])
    assert "| command | what it does |" in recap_text
    assert len(re.findall(r"^\| `docker|^\| `curl|^\| `DOCKER_HOST", recap_text, re.M)) >= 2
    tags = cells[recap]["metadata"].get("tags", [])  # type: ignore[union-attr]
    assert "solution" not in tags, "the recap stays in the student version"


def test_the_readme_gives_each_lesson_its_time() -> None:
    readme = (ROOT / "README.md").read_text()
    for path in NOTEBOOKS:
        minutes = re.search(r"about (\d+) minutes", _text(_cells(path)[1]))
        assert minutes
        assert f"| `{path.stem}` | {minutes.group(1)} min |" in readme, path.stem
