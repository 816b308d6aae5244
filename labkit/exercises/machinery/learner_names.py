"""What a learner name may be: the one rule for the progress record, the classroom client and its server.

A name is a non-empty, trimmed string of at most :data:`MAX_NAME` characters with no
control, format or unassigned characters (Unicode category ``C*``), so it prints
as one clean line on the instructor's board and in the gradebook.

Example:
    >>> check_name("  Ada Lovelace ")
    'Ada Lovelace'
    >>> clean_name("Ada\\u200b\\n")
    'Ada'
"""

from __future__ import annotations

import unicodedata

#: Longest learner name.
MAX_NAME = 100


def unprintable(text: str) -> bool:
    """Whether ``text`` holds control, format or unassigned characters."""
    return any(unicodedata.category(ch).startswith("C") for ch in text)


def check_name(name: object) -> str:
    """A learner name, trimmed; for names a person typed (``classroom join --name``).

    Raises:
        ValueError: empty, longer than ``MAX_NAME`` or holding control characters.
    """
    if not isinstance(name, str) or not name.strip():
        raise ValueError("a learner name must be a non-empty string")
    name = name.strip()
    if len(name) > MAX_NAME:
        raise ValueError(f"a learner name has at most {MAX_NAME} characters")
    if unprintable(name):
        raise ValueError("a learner name cannot contain control characters")
    return name


def clean_name(name: str | None) -> str | None:
    """A usable name made from one found elsewhere (an environment variable, the OS user), or ``None``.

    Unprintable characters are dropped and the rest trimmed to ``MAX_NAME``; the
    result always passes :func:`check_name`.
    """
    if not name:
        return None
    cleaned = "".join(ch for ch in str(name) if not unprintable(ch)).strip()[:MAX_NAME].strip()
    return cleaned or None
