"""What a learner name may be: the one rule for the progress record, the classroom client and its server.

A name is a non-empty, trimmed string of at most :data:`MAX_NAME` characters with no
control, format or unassigned characters (Unicode category ``C*``), so it prints
as one clean line on the instructor's board and in the gradebook.

Joining a classroom (:func:`check_name`) asks more, because there a name says who is
who on the instructor's board:

- it is NFKC-normalised: a precomposed ``é`` and ``e`` + combining accent, or a
  full-width ``Ada`` typed as U+FF21 U+FF44 U+FF41 and ``Ada``, are one name, written one way;
- its letters come from one script (Latin, Cyrillic, Greek, …; Japanese, Chinese and
  Korean names may mix Han with kana, bopomofo or hangul, and any of them with Latin,
  as Unicode's "highly restrictive" profile of UTS #39 allows): ``ada`` typed with a
  Cyrillic ``a`` (U+0430) first is refused, since it only makes a look-alike of ``ada``.

Two names are one learner when their :func:`name_key` is equal: NFKC, case-folded, with
the Cyrillic and Greek letters drawn like Latin ones read as those Latin letters
(``ADA`` and ``ada``; ``Coe`` typed all in Cyrillic and ``Coe`` in Latin). The classroom
server lets one learner hold a key, and the gradebook gives it one row.

The progress-event contract keeps only the first rule: a record written before
joining, or under ``LABKIT_LEARNER``, stays readable whatever the name.

Example:
    >>> check_name("  Ada Lovelace ")
    'Ada Lovelace'
    >>> clean_name("Ada\\u200b\\n")
    'Ada'
    >>> name_key("ADA") == name_key("ada")
    True
"""

from __future__ import annotations

import unicodedata

from labkit.core.i18n import _

#: Longest learner name.
MAX_NAME = 100

# Letters of other scripts drawn the same as a Latin letter (a small part of UTS #39's
# confusables, the part that matters for names typed on European keyboards).
_LOOK_ALIKES = {
    # Cyrillic (U+0400-U+052F)
    "\u0410": "A", "\u0412": "B", "\u0415": "E", "\u041a": "K", "\u041c": "M", "\u041d": "H", "\u041e": "O",
    "\u0420": "P", "\u0421": "C", "\u0422": "T", "\u0425": "X", "\u0423": "Y", "\u04ae": "Y", "\u0405": "S",
    "\u0406": "I", "\u0408": "J", "\u051a": "Q", "\u051c": "W", "\u04c0": "I", "\u0430": "a", "\u0435": "e",
    "\u043e": "o", "\u0440": "p", "\u0441": "c", "\u0445": "x", "\u0443": "y", "\u04af": "y", "\u0455": "s",
    "\u0456": "i", "\u0458": "j", "\u04bb": "h", "\u0501": "d", "\u051b": "q", "\u051d": "w", "\u04cf": "l",
    # Greek (U+0370-U+03FF)
    "\u0391": "A", "\u0392": "B", "\u0395": "E", "\u0396": "Z", "\u0397": "H", "\u0399": "I", "\u039a": "K",
    "\u039c": "M", "\u039d": "N", "\u039f": "O", "\u03a1": "P", "\u03a4": "T", "\u03a5": "Y", "\u03a7": "X",
    "\u03bf": "o", "\u03bd": "v", "\u03b1": "a", "\u03b9": "i", "\u03ba": "k", "\u03c1": "p", "\u03c5": "u",
    "\u03c7": "x",
}  # fmt: skip
_SKELETON = str.maketrans(_LOOK_ALIKES)

# Scripts a single name may combine (UTS #39, "highly restrictive"): Japanese, Chinese, Korean.
_MIXES = (
    frozenset({"LATIN", "CJK", "HIRAGANA", "KATAKANA"}),
    frozenset({"LATIN", "CJK", "BOPOMOFO"}),
    frozenset({"LATIN", "CJK", "HANGUL"}),
)


def unprintable(text: str) -> bool:
    """Whether ``text`` holds control, format or unassigned characters."""
    return any(unicodedata.category(ch).startswith("C") for ch in text)


def scripts(text: str) -> set[str]:
    """The scripts of the letters in ``text``, as the first word of each letter's Unicode name.

    Digits, punctuation, spaces, marks and modifier letters belong to no script here.

    Example:
        >>> sorted(scripts("Ada 2"))
        ['LATIN']
        >>> sorted(scripts("\\u0430da"))
        ['CYRILLIC', 'LATIN']
    """
    found = set()
    for ch in text:
        category = unicodedata.category(ch)
        if category.startswith("L") and category != "Lm":
            words = unicodedata.name(ch, "").split()
            if words:
                found.add(words[0])
    return found


def mixed_scripts(text: str) -> set[str]:
    """The scripts of ``text`` when they are a mix a name may not make (empty when it is fine)."""
    found = scripts(text)
    if len(found) <= 1 or any(found <= mix for mix in _MIXES):
        return set()
    return found


def check_name(name: object) -> str:
    """A learner name, trimmed and NFKC-normalised; for names a person typed (``classroom join --name``).

    Raises:
        ValueError: empty, longer than ``MAX_NAME``, holding control characters, or mixing scripts.
    """
    if not isinstance(name, str) or not name.strip():
        raise ValueError(_("a learner name must be a non-empty string"))
    name = unicodedata.normalize("NFKC", name).strip()
    if not name:
        raise ValueError(_("a learner name must be a non-empty string"))
    if len(name) > MAX_NAME:
        raise ValueError(_("a learner name has at most {limit} characters").format(limit=MAX_NAME))
    if unprintable(name):
        raise ValueError(_("a learner name cannot contain control characters"))
    mixed = mixed_scripts(name)
    if mixed:
        names = _(" and ").join(sorted(s.title() for s in mixed))
        raise ValueError(
            _("a learner name is written in one alphabet, and this one mixes {scripts} letters").format(scripts=names)
        )
    return name


def name_key(name: str) -> str:
    """Who a name stands for: two names with the same key are one learner.

    Example:
        >>> name_key("Ève") == name_key("e\\u0300ve".upper())
        True
    """
    return unicodedata.normalize("NFKC", name).translate(_SKELETON).casefold().strip()


def clean_name(name: str | None) -> str | None:
    """A usable name made from one found elsewhere (an environment variable, the OS user), or ``None``.

    The name is NFKC-normalised, unprintable characters are dropped and the rest trimmed
    to ``MAX_NAME``; the result always passes :func:`check_name` (a name mixing scripts
    gives ``None``).
    """
    if not name:
        return None
    normal = unicodedata.normalize("NFKC", str(name))
    cleaned = "".join(ch for ch in normal if not unprintable(ch)).strip()[:MAX_NAME].strip()
    if not cleaned or mixed_scripts(cleaned) or unicodedata.normalize("NFKC", cleaned) != cleaned:
        return None
    return cleaned
