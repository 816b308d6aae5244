"""The rule hints are held to: only the last tier gives the reference solution's command.

Shared by ``tests/unit/test_hints_teach_unit.py`` (every tier but the last, every near-miss
a pure verdict can return) and ``tests/integration/test_hints_teach.py`` (the first "not yet"
after setup, on the real daemon). A text leaks when it contains one of a solution line's
commands: the whole line, each ``docker …`` command of a pipeline (``|``, ``&&``, ``;``),
or such a command without its leading ``docker ``. Quotes and runs of whitespace are ignored,
so ``-v "/x:/zone"`` and ``-v /x:/zone`` are the same command. A command of three words or more
after ``docker`` also leaks in pieces: when every one of its words is in the text, in any case (``--detach``,
``--publish 8080:80`` and ``--name web`` spelled out one by one are the command).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

#: What a placeholder setup did not report becomes: any one word but a hint's own CAPITALS (NAME, PATH).
WILDCARD = "\x00any\x00"
_ANY_WORD = r"(?![A-Z][A-Z0-9_-]*(?![\w-]))\S+"
_SEPARATORS = ("&&", "||", "|", ";")
_ASSIGNMENT = re.compile(r"^(?:\w+=\S*\s+)+")
#: What surrounds a word in prose: punctuation and Markdown backticks.
_PUNCTUATION = "`'\"()[],.;:!?"
#: Fewer words than this after ``docker`` are too common to count in pieces (``stop graceful``).
PIECES = 3


def normalise(text: str) -> str:
    """Quotes dropped, whitespace collapsed: ``"a  'b'"`` → ``a b``."""
    return " ".join(text.replace('"', "").replace("'", "").split())


def commands(line: str) -> list[str]:
    """The commands one solution line is made of, quotes respected.

    Example:
        >>> commands("docker export a | docker import - b")
        ['docker export a | docker import - b', 'docker export a', 'docker import - b']
    """
    segments, current, quote, i = [], "", "", 0
    while i < len(line):
        char = line[i]
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        else:
            separator = next((s for s in _SEPARATORS if line.startswith(s, i)), None)
            if separator is not None:
                segments.append(current)
                current, i = "", i + len(separator)
                continue
        current += char
        i += 1
    segments.append(current)
    found = [line.strip()]
    for segment in segments:
        command = _ASSIGNMENT.sub("", segment.strip())  # DOCKER_HOST=… docker run …
        if command.startswith("docker ") and command not in found:
            found.append(command)
    return found


def forbidden(solution: Iterable[str]) -> list[re.Pattern[str]]:
    """Patterns for every command of every solution line, with and without ``docker ``."""
    patterns: list[re.Pattern[str]] = []
    for line in solution:
        for command in commands(line):
            for form in {command, command.removeprefix("docker ")}:
                text = re.escape(normalise(form)).replace(re.escape(WILDCARD), _ANY_WORD)
                patterns.append(re.compile(r"(?<![\w-])" + text + r"(?![\w-])"))
    return patterns


def _words(text: str) -> list[str]:
    return [w.strip(_PUNCTUATION).lower() for w in normalise(text).split()]


def in_pieces(text: str, command: str) -> bool:
    """Every word of a long enough command appears in ``text``, in any order.

    Example:
        >>> in_pieces("add --detach, then --name web, and give labkit/hello-dock", "docker run --detach --name web labkit/hello-dock")
        False
        >>> in_pieces("run it with --detach and --name web from labkit/hello-dock", "docker run --detach --name web labkit/hello-dock")
        True
    """
    wanted = _words(command.removeprefix("docker "))
    if len(wanted) < PIECES:
        return False
    seen = set(_words(text))
    return all(word in seen for word in wanted)


def leaks(text: str | None, solution: Iterable[str]) -> list[str]:
    """The solution commands ``text`` contains, whole or in pieces (empty when it gives none away)."""
    solution = list(solution)
    shown = normalise(text or "")
    found = [pattern.pattern for pattern in forbidden(solution) if pattern.search(shown)]
    found.extend(
        f"every word of {command!r}"
        for line in solution
        for command in commands(line)
        if WILDCARD not in command and in_pieces(shown, command)
    )
    return found
