"""What ``labkit release`` reads in a code cell: the ``labkit.<name>(...)`` calls, found with :mod:`ast`.

IPython syntax (``%docker ...``, ``!ls``, ``x = %docker ...``) is not Python, so a cell
is first turned into Python by IPython's own transformer, then parsed; positions are
mapped back to the cell's lines (only lines IPython left as written can be rewritten).
"""

from __future__ import annotations

import ast
import difflib
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from IPython.core.inputtransformer2 import TransformerManager

from labkit.core.errors import ReleaseError
from labkit.core.i18n import _

#: ``labkit.<name>(...)`` calls that would apply or print an answer in a learner's copy.
_GIVEAWAY = ("solve", "solution")
#: What a learner's kept cell must call for each exercise it holds: a check, or a panel (which checks).
_CHECKS = ("check", "exercise")


@dataclass
class _Python:
    """A code cell read as Python: IPython syntax (``%docker``, ``!ls``) turned into calls first."""

    tree: ast.Module
    #: Line number in the parsed text → line number in the cell, for the lines IPython left as written.
    lines: dict[int, int]


def _python(source: str) -> _Python | None:
    """The cell as Python, or None when it is not (a cell magic's body, a deliberate syntax error)."""
    python = TransformerManager().transform_cell(source)
    try:
        tree = ast.parse(python)
    except SyntaxError:
        return None
    original, parsed = source.splitlines(), python.splitlines()
    lines = {}
    for block in difflib.SequenceMatcher(None, parsed, original, autojunk=False).get_matching_blocks():
        lines.update({block.a + n + 1: block.b + n + 1 for n in range(block.size)})
    return _Python(tree, lines)


def _labkit_calls(python: _Python | None, names: tuple[str, ...]) -> Iterator[ast.Call]:
    """Every ``labkit.<name>(...)`` call, in source order."""
    if python is None:
        return
    calls = [
        node
        for node in ast.walk(python.tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and isinstance(node.func.value, ast.Name)
        and node.func.value.id == "labkit"
        and node.func.attr in names
    ]
    yield from sorted(calls, key=lambda call: (call.lineno, call.col_offset))


def _literal_id(call: ast.Call) -> str | None:
    """The exercise id a call names as its first argument, when that is a string literal."""
    first = call.args[0] if call.args else None
    return first.value if isinstance(first, ast.Constant) and isinstance(first.value, str) else None


def _offset(source: str, python: _Python, lineno: int, col: int) -> int | None:
    """Where (line, UTF-8 byte column) of the parsed text is in the cell, or None on a line IPython rewrote."""
    line = python.lines.get(lineno)
    if line is None:
        return None
    lines = source.splitlines(keepends=True)
    return sum(len(text) for text in lines[: line - 1]) + len(lines[line - 1].encode()[:col].decode(errors="replace"))


def student_panels(where: str, source: str) -> str | None:
    """``source`` with every ``labkit.exercise(...)`` given ``solution=False``; ``None`` when it has none.

    The calls are found in the cell's syntax tree and rewritten by position, so only the
    call changes: ``labkit.exercise("id", check_now=True)`` becomes
    ``labkit.exercise("id", check_now=True, solution=False)``.

    Raises:
        ReleaseError: a panel call cannot be rewritten (its id is not a string literal, it
            passes ``*args`` or ``**kwargs``, or it shares a line with IPython syntax), or asks
            for the solution button in a cell learners get.
    """
    if "exercise" not in source:
        return None
    python = _python(source)
    if python is None:
        if re.search(r"\blabkit\s*\.\s*exercise\s*\(", source):
            raise ReleaseError(
                where, _("calls labkit.exercise() in a cell release cannot read as Python"), _("fix the cell's syntax")
            )
        return None
    cannot = ReleaseError(
        where,
        _("calls labkit.exercise() in a form release cannot rewrite"),
        _('write it as labkit.exercise("<id>", ...) with a literal id, on lines of its own'),
    )
    edits: list[tuple[int, int, str]] = []
    for call in _labkit_calls(python, ("exercise",)):
        if (
            _literal_id(call) is None
            or any(isinstance(a, ast.Starred) for a in call.args)
            or any(k.arg is None for k in call.keywords)
        ):
            raise cannot
        solution = next((k for k in call.keywords if k.arg == "solution"), None)
        if solution is not None:
            if not (isinstance(solution.value, ast.Constant) and solution.value.value is False):
                raise ReleaseError(
                    where,
                    _("shows an exercise panel with its Show-solution button"),
                    _("drop the solution= argument: release gives learners solution=False"),
                )
            continue
        arguments: list[ast.expr | ast.keyword] = [*call.args, *call.keywords]
        first = min(arguments, key=lambda a: (a.lineno, a.col_offset))
        last = max(arguments, key=lambda a: (a.end_lineno or a.lineno, a.end_col_offset or 0))
        positions = (
            _offset(source, python, call.lineno, call.col_offset),
            _offset(source, python, first.lineno, first.col_offset),
            _offset(source, python, last.end_lineno or last.lineno, last.end_col_offset or 0),
            _offset(source, python, call.end_lineno or call.lineno, call.end_col_offset or 0),
        )
        start, args_start, args_end, end = positions
        if start is None or args_start is None or args_end is None or end is None:
            raise cannot
        edits.append((start, end, f"labkit.exercise({source[args_start:args_end]}, solution=False)"))
    if not edits:
        return source
    for start, end, text in sorted(edits, reverse=True):
        source = source[:start] + text + source[end:]
    return source


def checked_ids(sources: Iterable[str]) -> set[str]:
    """The exercises a learner's code checks: a literal id in ``labkit.check(...)`` or a panel."""
    return {
        exercise_id
        for source in sources
        for call in _labkit_calls(_python(source), _CHECKS)
        if (exercise_id := _literal_id(call)) is not None
    }


def gives_away(source: str) -> bool:
    """True when the cell calls ``labkit.solve`` or ``labkit.solution``."""
    return (
        any(name in source for name in _GIVEAWAY) and next(_labkit_calls(_python(source), _GIVEAWAY), None) is not None
    )
