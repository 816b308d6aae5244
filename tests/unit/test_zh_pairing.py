"""Each Chinese lesson is its English lesson, translated: same cells, same code, prose in Chinese.

``notebooks/zh_CN/NN-name.ipynb`` is the twin of ``notebooks/NN-name.ipynb``. nbval runs both, but
only the English stored outputs are the reference for what the code does, so the Chinese one
must run the same code: the same cells in the same order, with the same types and tags (so the
same exercises, solutions and ``requires:`` cells), and each code cell identical once comments
are set aside (a translator translates comments, never code). Its markdown must be Chinese: an
English paragraph left behind fails.

**Comments.** Python's comments are what :mod:`tokenize` calls ``COMMENT`` (a ``#`` inside a
string is not one). ``%docker`` lines are code, compared whole (IPython hands everything after
the magic's name to the magic, ``#`` included). ``!`` lines and ``%%bash`` / ``%%sh`` cells are
shell: a ``#`` starts a comment only at the start of a word and outside quotes (``$#``,
``${#x}``, ``"#"`` are not comments). ``%%writefile`` bodies are compared whole.

**Chinese enough.** After fenced code, inline code, URLs, link targets and HTML tags are removed,
at least :data:`MIN_CJK_SHARE` of the letters left must be CJK ideographs. One Han character
carries about what an English word of five letters does, so a translated paragraph that keeps
its terms (``Docker``, ``busybox``, ``hello-world``, ``Docker Hub``) in Latin letters still scores
well above it (the 268 translated markdown cells of the eleven lessons score 52-100%, median 91%),
while an English paragraph scores
0-5% (a Chinese word or two in it changes little). A cell with fewer than :data:`SHORT_CELL`
letters left (a heading that is only a command or a name) is exempt.
"""

from __future__ import annotations

import difflib
import io
import json
import re
import shutil
import tokenize
from pathlib import Path
from typing import Any

import pytest

from labkit.core.paths import REPO_DIR

NOTEBOOKS = REPO_DIR / "notebooks"
ZH = NOTEBOOKS / "zh_CN"
MIN_CJK_SHARE = 0.30
SHORT_CELL = 8
SHELL_MAGICS = ("%%bash", "%%sh", "%%script bash", "%%script sh")
CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_PROSE_NOISE = [
    re.compile(r"(?ms)^\s*(```|~~~).*?^\s*\1[^\n]*$"),  # fenced code
    re.compile(r"(`+)(?:(?!\1).)+?\1", re.S),  # inline code
    re.compile(r"\]\([^)]*\)"),  # link and picture targets
    re.compile(r"https?://\S+|www\.\S+"),  # bare URLs
    re.compile(r"<!--.*?-->", re.S),  # HTML comments
    re.compile(r"</?[A-Za-z][^>]*>"),  # HTML tags (their text stays)
    re.compile(r"&[a-z]+;|&#\d+;"),  # entities
]


def _source(cell: dict[str, Any]) -> str:
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else str(source)


def strip_shell_comments(text: str) -> str:
    """Shell text without its comments: ``#`` at the start of a word, outside quotes, to the end of the line.

    Example:
        >>> strip_shell_comments('echo "#1" $# ${#x} a#b # says hi\\nls  # list')
        'echo "#1" $# ${#x} a#b\\nls'
    """
    out: list[str] = []
    quote = ""
    i = 0
    while i < len(text):
        ch = text[i]
        if quote:
            out.append(ch)
            if ch == "\\" and quote == '"' and i + 1 < len(text):
                out.append(text[i + 1])
                i += 1
            elif ch == quote:
                quote = ""
        elif ch == "\\" and i + 1 < len(text):
            out += [ch, text[i + 1]]
            i += 1
        elif ch in "'\"":
            quote = ch
            out.append(ch)
        elif ch == "#" and (i == 0 or text[i - 1] in " \t\n;&|()<>"):
            while i < len(text) and text[i] != "\n":
                i += 1
            continue
        else:
            out.append(ch)
        i += 1
    return "\n".join(line.rstrip() for line in "".join(out).splitlines() if line.strip())


def strip_python_comments(text: str) -> str:
    """A Python cell without its comments and blank lines; ``%`` magic lines whole, ``!`` lines as shell.

    Example:
        >>> strip_python_comments('# Setup\\nx = "#not"  # the answer\\n\\n%docker run --rm busybox  # kept\\n!ls # list')
        'x = "#not"\\n%docker run --rm busybox  # kept\\n!ls'

    Raises:
        SyntaxError: the cell is not Python (tokenize cannot read it).
    """
    lines = text.splitlines()
    special: dict[int, str] = {}
    plain = []
    for number, line in enumerate(lines):
        stripped = line.lstrip()
        if stripped.startswith("!"):
            special[number] = line[: len(line) - len(stripped)] + "!" + strip_shell_comments(stripped[1:])
        elif stripped.startswith("%"):
            special[number] = line.rstrip()
        if number in special:
            plain.append(line[: len(line) - len(stripped)] + "pass")  # keeps the indentation tokenize expects
        else:
            plain.append(line)
    cuts: dict[int, int] = {}
    try:
        for token in tokenize.generate_tokens(io.StringIO("\n".join(plain) + "\n").readline):
            if token.type == tokenize.COMMENT:
                cuts[token.start[0] - 1] = token.start[1]
    except (tokenize.TokenError, IndentationError) as e:
        raise SyntaxError(str(e)) from e
    kept = []
    for number, line in enumerate(lines):
        if number in special:
            kept.append(special[number])
            continue
        line = line[: cuts[number]] if number in cuts else line
        if line.strip():
            kept.append(line.rstrip())
    return "\n".join(kept)


def code_of(cell: dict[str, Any]) -> str:
    """A code cell's code: what must be identical in both languages."""
    text = _source(cell)
    first = text.split("\n", 1)[0].strip()
    if first.startswith(SHELL_MAGICS):
        body = text.split("\n", 1)[1] if "\n" in text else ""
        return first + "\n" + strip_shell_comments(body)
    if first.startswith("%%writefile"):
        return text.rstrip()
    if first.startswith("%%"):
        body = text.split("\n", 1)[1] if "\n" in text else ""
        return first + "\n" + strip_python_comments(body)
    return strip_python_comments(text)


def cjk_share(markdown: str) -> tuple[float, int]:
    """(share of CJK among the prose's letters, how many letters) once code, URLs and tags are removed.

    Example:
        >>> share, letters = cjk_share("运行 `docker run hello-world`，看看 Docker 做了什么。")
        >>> round(share, 2), letters
        (0.57, 14)
        >>> cjk_share("Run `docker run hello-world` and see what Docker does.")
        (0.0, 23)
    """
    for pattern in _PROSE_NOISE:
        markdown = pattern.sub(" ", markdown)
    letters = [ch for ch in markdown if ch.isalpha()]
    cjk = sum(1 for ch in letters if CJK.match(ch))
    return (cjk / len(letters) if letters else 1.0), len(letters)


def _tags(cell: dict[str, Any]) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []) or [])


def _first_difference(english: str, chinese: str) -> str:
    """The first lines that differ, as ``English '…' / Chinese '…'`` (a missing line is ``(none)``)."""
    en, zh = english.splitlines(), chinese.splitlines()
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(a=en, b=zh, autojunk=False).get_opcodes():
        if tag != "equal":
            left = repr(en[i1][:100]) if i1 < i2 else "(none)"
            right = repr(zh[j1][:100]) if j1 < j2 else "(none)"
            return f"English {left} / Chinese {right}"
    return "(whitespace)"


def compare(english: Path, chinese: Path) -> list[str]:
    """Every way ``chinese`` fails to be ``english`` translated; one line each, naming the cell (from 1)."""
    name = chinese.relative_to(REPO_DIR) if chinese.is_relative_to(REPO_DIR) else chinese
    en_cells = json.loads(english.read_text(encoding="utf-8"))["cells"]
    zh_cells = json.loads(chinese.read_text(encoding="utf-8"))["cells"]
    problems = []
    if len(en_cells) != len(zh_cells):
        problems.append(f"{name}: {len(zh_cells)} cells, the English has {len(en_cells)}")
    for number, (en, zh) in enumerate(zip(en_cells, zh_cells, strict=False), 1):
        where = f"{name} cell {number} ({zh['cell_type']})"
        if en["cell_type"] != zh["cell_type"]:
            problems.append(f"{where}: the English cell {number} is {en['cell_type']}")
            continue
        if _tags(en) != _tags(zh):
            problems.append(f"{where}: tags {_tags(zh)}, the English has {_tags(en)}")
        if en["cell_type"] == "code":
            try:
                en_code, zh_code = code_of(en), code_of(zh)
            except SyntaxError:
                en_code, zh_code = _source(en).rstrip(), _source(zh).rstrip()
            if en_code != zh_code:
                problems.append(f"{where}: differs from English beyond comments: {_first_difference(en_code, zh_code)}")
        elif en["cell_type"] == "markdown":
            share, letters = cjk_share(_source(zh))
            if letters >= SHORT_CELL and share < MIN_CJK_SHARE:
                first = next((line.strip() for line in _source(zh).splitlines() if line.strip()), "")
                problems.append(
                    f"{where}: not Chinese ({share:.0%} of {letters} letters are CJK, under {MIN_CJK_SHARE:.0%}): "
                    f"{first[:80]!r}"
                )
    return problems


def _english() -> list[Path]:
    return sorted(NOTEBOOKS.glob("[0-9][0-9]-*.ipynb"))


def _pairs() -> list[Any]:
    pairs = [(en, ZH / en.name) for en in _english() if (ZH / en.name).exists()]
    if not pairs:
        return [pytest.param(None, None, marks=pytest.mark.skip(reason="no Chinese lesson in notebooks/zh_CN yet"))]
    return [pytest.param(en, zh, id=en.stem[:2]) for en, zh in pairs]


@pytest.mark.parametrize(("english", "chinese"), _pairs())
def test_the_chinese_lesson_is_its_english_twin_translated(english: Path, chinese: Path) -> None:
    problems = compare(english, chinese)
    assert not problems, "\n".join(problems)


def test_every_english_lesson_has_a_chinese_twin() -> None:
    missing = [f"notebooks/zh_CN/{en.name}" for en in _english() if not (ZH / en.name).exists()]
    assert not missing, f"{len(missing)} English lesson(s) have no Chinese twin: {', '.join(missing)}"


def test_every_chinese_lesson_has_an_english_twin() -> None:
    orphans = [p.name for p in sorted(ZH.glob("*.ipynb")) if not (NOTEBOOKS / p.name).exists()]
    assert not orphans, f"notebooks/zh_CN has lessons no English one matches (same file name): {orphans}"


# --- the comparison itself, on a pair made here ------------------------------------------------------


def _cell(kind: str, source: str, tags: list[str] | None = None) -> dict[str, Any]:
    cell: dict[str, Any] = {"cell_type": kind, "metadata": {"tags": tags or []}, "source": source}
    if kind == "code":
        cell |= {"execution_count": None, "outputs": []}
    return cell


def _write(path: Path, cells: list[dict[str, Any]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}), encoding="utf-8")
    return path


ENGLISH = [
    _cell(
        "markdown",
        "# Running containers\n\nRun `busybox` in the background with **--detach**, see [the docs](https://docs.docker.com).",
    ),
    _cell("code", "# Start it in the background\n%docker run -d --name web busybox sleep 60\nx = '#1'  # keep"),
    _cell("code", "%%bash\n# list them\ndocker ps --format '{{.Names}}'  # names only\necho $# ${#x}"),
    _cell("markdown", "## `docker ps`"),
    _cell("code", "%docker stop web", ["solution", "exercise:stop.graceful"]),
]
CHINESE = [
    _cell("markdown", "# 运行容器\n\n用 **--detach** 在后台运行 `busybox`，参见[文档](https://docs.docker.com)。"),
    _cell("code", "# 在后台启动它\n%docker run -d --name web busybox sleep 60\nx = '#1'  # 保留"),
    _cell("code", "%%bash\n# 列出它们\ndocker ps --format '{{.Names}}'  # 只要名字\necho $# ${#x}"),
    _cell("markdown", "## `docker ps`"),
    _cell("code", "%docker stop web", ["solution", "exercise:stop.graceful"]),
]


@pytest.fixture
def pair(tmp_path: Path) -> tuple[Path, Path]:
    return _write(tmp_path / "05-running-containers.ipynb", ENGLISH), _write(
        tmp_path / "zh_CN" / "05-running-containers.ipynb", CHINESE
    )


def test_a_faithful_translation_passes(pair: tuple[Path, Path]) -> None:
    assert compare(*pair) == []


def test_a_changed_english_cell_fails(pair: tuple[Path, Path], tmp_path: Path) -> None:
    english, chinese = pair
    changed = [dict(c) for c in ENGLISH]
    changed[1] = _cell("code", "# Start it in the background\n%docker run -d --name web busybox sleep 120\nx = '#1'")
    _write(english, changed)
    problems = compare(english, chinese)
    print("\n".join(problems))
    assert problems == [
        f"{chinese} cell 2 (code): differs from English beyond comments: "
        "English '%docker run -d --name web busybox sleep 120' / Chinese '%docker run -d --name web busybox sleep 60'"
    ]


def test_an_english_markdown_cell_left_in_the_chinese_lesson_fails(pair: tuple[Path, Path]) -> None:
    english, chinese = pair
    _write(chinese, [ENGLISH[0], *CHINESE[1:]])
    problems = compare(english, chinese)
    print("\n".join(problems))
    assert problems == [
        f"{chinese} cell 1 (markdown): not Chinese (0% of 55 letters are CJK, under 30%): '# Running containers'"
    ]


def test_cells_tags_and_shell_code_are_compared(pair: tuple[Path, Path], tmp_path: Path) -> None:
    english, chinese = pair
    zh = [dict(c) for c in CHINESE]
    zh[2] = _cell("code", "%%bash\n# 列出它们\ndocker ps --format '{{.ID}}'  # 只要名字\necho $# ${#x}")
    zh[4] = _cell("code", "%docker stop web", ["exercise:stop.graceful"])
    _write(chinese, [*zh, _cell("markdown", "## 小结：容器在后台运行。")])
    assert compare(english, chinese) == [
        f"{chinese}: 6 cells, the English has 5",
        f"{chinese} cell 3 (code): differs from English beyond comments: "
        "English \"docker ps --format '{{.Names}}'\" / Chinese \"docker ps --format '{{.ID}}'\"",
        f"{chinese} cell 5 (code): tags ['exercise:stop.graceful'], the English has ['solution', 'exercise:stop.graceful']",
    ]


def test_the_real_chinese_lessons_are_found(tmp_path: Path) -> None:
    """The parametrized pairs come from notebooks/zh_CN; a copy of an English lesson there is a (failing) pair."""
    english = _english()[0]
    copy = tmp_path / "zh_CN" / english.name
    copy.parent.mkdir()
    shutil.copyfile(english, copy)
    problems = compare(english, copy)
    assert problems and all(" (markdown): not Chinese " in p for p in problems), problems
