"""The language labkit speaks: English, or Simplified Chinese (``zh_CN``), from gettext catalogs.

Every sentence a learner or an instructor reads goes through :func:`_` (or :func:`ngettext`)::

    from labkit.core.i18n import N_, _

    TITLE = N_("Your first container")            # marked where it is defined (import time) …
    print(_(TITLE))                                # … translated where it is shown
    print(_("Found {what}: it never started.").format(what=name))   # placeholders by name, never f-strings

Exercise ids, labels, JSON keys, commands and Docker's own output never change with the
language; only sentences do.

**Which language.** ``LABKIT_LANG`` (``zh_CN``, ``zh``, ``en``), else the locale
(``LANGUAGE``, ``LC_ALL``, ``LC_MESSAGES``, ``LANG``: anything starting ``zh`` is Chinese),
else English. It is read at each call, so a test or a notebook may change it; English is
the source and the fallback for any sentence a catalog lacks.

**The catalogs** are the ``.po`` files in ``labkit/locale/<lang>/LC_MESSAGES/``, one per
area (``core.po``, ``lesson05.po``, …), read with Babel and merged into one table the first
time a language is used (about 20 ms), so editing a ``.po`` file needs no compile step and
nothing generated is committed. ``tests/unit/test_i18n_catalog.py`` holds every catalog to
the code: every marked sentence translated, none fuzzy, no translation left for a sentence
that is gone, the same placeholders on both sides.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

#: Languages labkit has catalogs for, besides English (the source).
LANGUAGES = ("zh_CN",)
DEFAULT = "en"
LOCALE_DIR = Path(__file__).resolve().parent.parent / "locale"

_tables: dict[str, dict[str, str | tuple[str, ...]]] = {}
_lock = threading.Lock()


def normalize(value: str | None) -> str | None:
    """A language code as labkit names it, or ``None`` when it names none labkit knows.

    Example:
        >>> normalize("zh_CN.UTF-8"), normalize("zh-Hans"), normalize("en_GB"), normalize("C.UTF-8")
        ('zh_CN', 'zh_CN', 'en', None)
    """
    if not value:
        return None
    code = value.split(".", 1)[0].split("@", 1)[0].replace("-", "_").lower()
    if code.startswith("zh"):
        return "zh_CN"
    if code.startswith("en"):
        return "en"
    return None


def language() -> str:
    """The language to speak now: ``LABKIT_LANG``, else the locale, else English."""
    chosen = normalize(os.environ.get("LABKIT_LANG"))
    if chosen:
        return chosen
    for name in ("LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG"):
        for part in os.environ.get(name, "").split(":"):
            found = normalize(part)
            if found:
                return found
    return DEFAULT


def catalog_files(lang: str) -> list[Path]:
    """The ``.po`` files of one language, in name order."""
    return sorted((LOCALE_DIR / lang / "LC_MESSAGES").glob("*.po"))


def _load(lang: str) -> dict[str, str | tuple[str, ...]]:
    """msgid → translation (a tuple of plural forms for a plural message); untranslated and fuzzy left out."""
    from babel.messages.pofile import read_po  # reason: only a non-English language needs Babel (~30 ms)

    table: dict[str, str | tuple[str, ...]] = {}
    for path in catalog_files(lang):
        with path.open("rb") as f:
            catalog = read_po(f, locale=lang)
        for message in catalog:
            if not message.id or message.fuzzy or not message.string:
                continue
            key = str(message.id[0] if isinstance(message.id, (tuple, list)) else message.id)
            if isinstance(message.string, (tuple, list)):
                if all(message.string):
                    table[key] = tuple(str(s) for s in message.string)
            else:
                table[key] = str(message.string)
    return table


def table(lang: str) -> dict[str, str | tuple[str, ...]]:
    """The merged catalog of ``lang`` (empty for English), loaded once per process."""
    if lang == DEFAULT:
        return {}
    found = _tables.get(lang)
    if found is None:
        with _lock:
            found = _tables.get(lang)
            if found is None:
                found = _tables[lang] = _load(lang)
    return found


def _(message: str) -> str:
    """``message`` in the current language (itself when the catalog lacks it)."""
    lang = language()
    if lang == DEFAULT:
        return message
    found = table(lang).get(message)
    if isinstance(found, tuple):
        return found[0]
    return found or message


def ngettext(singular: str, plural: str, n: int) -> str:
    """The form of a counted sentence for ``n`` (Chinese has one form).

    Example:
        >>> ngettext("{n} container", "{n} containers", 2).format(n=2)
        '2 containers'
    """
    lang = language()
    found = table(lang).get(singular) if lang != DEFAULT else None
    if isinstance(found, tuple):
        return found[0]  # zh_CN's one plural form
    if isinstance(found, str):
        return found
    return singular if n == 1 else plural


def N_(message: str) -> str:
    """Mark ``message`` for the catalog without translating it now (it is translated where shown)."""
    return message


def reload() -> None:
    """Forget the loaded catalogs (after a ``.po`` file changed, in tests)."""
    with _lock:
        _tables.clear()


# --- for the catalogs' maintainers (scripts/i18n, tests) -------------------------------------------

#: The functions whose string arguments are sentences to translate: name → argument positions.
KEYWORDS: dict[str, tuple[int, ...] | None] = {"_": None, "N_": None, "ngettext": (1, 2)}


#: The plural form of each counted sentence :func:`extract` found (singular → plural).
PLURALS: dict[str, str] = {}


def extract(root: Path = LOCALE_DIR.parent) -> dict[str, list[str]]:
    """Every sentence marked in labkit's Python under ``root``: msgid → where (``path:line``)."""
    from babel.messages.extract import extract_from_dir  # reason: maintainers' tool only

    found: dict[str, list[str]] = {}
    method_map = [("**/locale/**", "ignore"), ("**.py", "python")]
    for filename, lineno, message, _comments, _context in extract_from_dir(
        str(root), method_map=method_map, keywords=KEYWORDS, comment_tags=(), strip_comment_tags=True
    ):
        key = message[0] if isinstance(message, tuple) else message
        if isinstance(message, tuple) and len(message) > 1 and message[1]:
            PLURALS[key] = message[1]
        if key:
            found.setdefault(key, []).append(f"{Path(root.name) / filename}:{lineno}")
    return found
