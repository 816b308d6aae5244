"""``labkit release`` writes the student notebooks of every language, each prompt in its own language.

The English lessons go to ``OUT/``, the Chinese ones (``notebooks/zh_CN``) to ``OUT/zh_CN/``. In
each exercise cell a learner gets, the prompt (the comments that replaced the solution) must be
in the lesson's language: no Chinese in an English one, Chinese on every line of a Chinese one.
While the Chinese lessons are being translated, the Chinese release is made from copies of the
English lessons in a ``zh_CN`` folder: their prompts come from labkit (the catalogs), not from
the notebooks, so the check holds the catalogs to the same standard.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import nbformat
import pytest

from labkit.core import i18n
from labkit.core.paths import RELEASE_MARKER, REPO_DIR
from labkit.course import release as release_module
from labkit.course.release import release, speaking
from labkit.exercises.machinery.catalog import get

CJK = re.compile(r"[\u4e00-\u9fff]")
NOTEBOOKS = REPO_DIR / "notebooks"


@pytest.fixture(scope="module")
def released(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``labkit release`` of the course into a temporary folder (with copies standing in for missing Chinese lessons)."""
    tmp = tmp_path_factory.mktemp("release")
    source = NOTEBOOKS
    if not any((NOTEBOOKS / "zh_CN").glob("*.ipynb")):
        source = tmp / "notebooks"
        shutil.copytree(NOTEBOOKS, source)
        for lesson in sorted(NOTEBOOKS.glob("*.ipynb")):
            shutil.copyfile(lesson, source / "zh_CN" / lesson.name)
    patch = pytest.MonkeyPatch()
    patch.setattr(release_module, "SOURCE_DIR", source)
    try:
        release(tmp / "out")  # the default source: every language
    finally:
        patch.undo()
    return tmp / "out"


def _prompt_cells(path: Path) -> list[tuple[int, str, list[str]]]:
    """(cell number, exercise id, the prompt's comment lines) of each exercise cell a learner fills in."""
    found = []
    for number, cell in enumerate(nbformat.read(path, as_version=4).cells, 1):
        tags = cell.metadata.get("tags", [])
        ids = [t.removeprefix("exercise:") for t in tags if t.startswith("exercise:")]
        if cell.cell_type == "code" and ids and f'labkit.hint("{ids[0]}")' in cell.source:
            comments = [line.strip() for line in cell.source.splitlines() if line.strip().startswith("#")]
            found.append((number, ids[0], comments))
    return found


def test_both_languages_are_released(released: Path) -> None:
    english = sorted(p.name for p in released.glob("*.ipynb"))
    chinese = sorted(p.name for p in (released / "zh_CN").glob("*.ipynb"))
    assert english == sorted(p.name for p in NOTEBOOKS.glob("*.ipynb"))
    assert chinese and set(chinese) <= set(english)
    for folder in (released, released / "zh_CN"):
        assert (folder / RELEASE_MARKER).is_file()
        assert sorted(p.name for p in (folder / "img").glob("*.svg")) == sorted(
            p.name for p in (NOTEBOOKS / "img").glob("*.svg")
        ), "a Chinese lesson links the same img/NAME.svg as its English twin"
    assert (released / "zh_CN" / "terminology.md").read_bytes() == (NOTEBOOKS / "zh_CN" / "terminology.md").read_bytes()


def test_english_prompts_are_english(released: Path) -> None:
    cells = [(p.name, *c) for p in sorted(released.glob("*.ipynb")) for c in _prompt_cells(p)]
    assert cells, "the English release has exercise cells"
    chinese = [f"{name} cell {n} ({ex}): {line}" for name, n, ex, lines in cells for line in lines if CJK.search(line)]
    assert not chinese, "Chinese in English prompts:\n" + "\n".join(chinese)


def test_chinese_prompts_are_chinese(released: Path) -> None:
    cells = [(p.name, *c) for p in sorted((released / "zh_CN").glob("*.ipynb")) for c in _prompt_cells(p)]
    assert cells, "the Chinese release has exercise cells"
    english, total = [], 0
    for name, number, exercise, lines in cells:
        total += 1
        with speaking("zh_CN"):
            prompt = i18n._(get(exercise).prompt).strip().splitlines()[0].strip()
        untranslated = [line for line in lines if not CJK.search(line)]
        if untranslated or prompt not in lines[0]:
            english.append(f"zh_CN/{name} cell {number} ({exercise}): {(untranslated or lines)[0][:100]}")
    assert not english, f"{len(english)} of {total} Chinese exercise cells have English prompt lines:\n" + "\n".join(
        english
    )


def test_a_source_named_after_a_language_is_released_in_it(tmp_path: Path) -> None:
    """``labkit release --from notebooks/zh_CN``: that language alone, spoken while releasing."""
    source = tmp_path / "zh_CN"
    source.mkdir()
    (source / "terminology.md").write_text("# 术语表\n")
    (tmp_path / "img").mkdir()
    (tmp_path / "img" / "a.svg").write_text("<svg/>")
    shutil.copyfile(NOTEBOOKS / "00-welcome.ipynb", source / "00-welcome.ipynb")
    seen = []
    patch = pytest.MonkeyPatch()
    patch.setattr(release_module, "build", lambda folder: seen.append((folder, i18n.language())) or [])
    try:
        release(tmp_path / "out", source)
    finally:
        patch.undo()
    assert seen == [(source, "zh_CN")]
    assert (tmp_path / "out" / "terminology.md").read_text() == "# 术语表\n"
    assert (tmp_path / "out" / "img" / "a.svg").is_file(), "the pictures of the lessons it translates"
