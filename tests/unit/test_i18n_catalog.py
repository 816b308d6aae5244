"""The zh_CN catalogs hold the code to its word: every marked sentence translated, and nothing else.

labkit's sentences are marked in the code (``_``, ``N_``, ``ngettext``; labkit/core/i18n.py) and
translated in one ``.po`` file per area (``labkit/locale/zh_CN/LC_MESSAGES/*.po``), merged at run
time. These tests read both and fail, naming each sentence and where it is, when:

- a marked sentence has no translation in any catalog (a learner would read English there);
- an entry is fuzzy (Babel's "needs review": labkit ignores it, so it is as good as missing);
- an entry's sentence is no longer in the code (stale: a translator would keep maintaining it);
- a translation lacks a ``{placeholder}`` of its sentence, or adds one (``.format`` would raise
  ``KeyError`` or print the braces);
- two catalogs translate the same sentence differently (which one wins would depend on file names);
- a translation holds no Chinese at all (an English sentence pasted into ``msgstr``).

The checks are functions of (marked sentences, catalogs), so the negative tests run the same
checks on a throwaway module and a throwaway catalog.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from babel.messages.catalog import Catalog
from babel.messages.pofile import read_po

from labkit.core import i18n

LANG = "zh_CN"
#: Han ideographs (and the CJK punctuation block): a Chinese translation has at least one.
CJK = re.compile(r"[\u3000-\u303f\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff00-\uffef]")
#: A ``str.format`` field once doubled braces (literal ``{{`` / ``}}``) are set aside.
FIELD = re.compile(r"\{[^{}]*\}")
#: How many problems of one kind a failure message lists before it says "and N more".
SHOWN = 40


@dataclass
class Audit:
    """What is wrong between the marked sentences and the catalogs, by kind."""

    missing: list[str] = field(default_factory=list)
    fuzzy: list[str] = field(default_factory=list)
    stale: list[str] = field(default_factory=list)
    placeholders: list[str] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)
    not_chinese: list[str] = field(default_factory=list)


def _key(message_id: str | tuple[str, ...] | list[str]) -> str:
    return str(message_id[0] if isinstance(message_id, (tuple, list)) else message_id)


def _forms(string: str | tuple[str, ...] | list[str] | None) -> list[str]:
    if not string:
        return []
    return [str(s) for s in string] if isinstance(string, (tuple, list)) else [str(string)]


def fields(text: str) -> Counter[str]:
    """The ``{placeholders}`` of a sentence, counted (``{{`` and ``}}`` are literal braces, not fields).

    Example:
        >>> sorted(fields("{n} of {total:>3} — {{literal}} {n}").items())
        [('{n}', 2), ('{total:>3}', 1)]
    """
    return Counter(FIELD.findall(text.replace("{{", "").replace("}}", "")))


def _short(text: str) -> str:
    return repr(text if len(text) <= 90 else text[:87] + "...")


def load_catalogs(folder: Path) -> dict[Path, Catalog]:
    """Every ``.po`` file in ``folder``, parsed by Babel (as labkit.core.i18n reads them)."""
    catalogs = {}
    for path in sorted(folder.glob("*.po")):
        with path.open("rb") as f:
            catalogs[path] = read_po(f, locale=LANG)
    return catalogs


def audit(code: dict[str, list[str]], catalogs: dict[Path, Catalog]) -> Audit:
    """Compare the marked sentences (msgid → where, as :func:`labkit.core.i18n.extract` gives them) with ``catalogs``."""
    found = Audit()
    translated: dict[str, tuple[str, list[str]]] = {}  # msgid → (first catalog's name, its forms)
    for path, catalog in catalogs.items():
        for message in catalog:
            if not message.id:
                continue  # the header
            key = _key(message.id)
            where = f"{path.name}: {_short(key)}"
            forms = _forms(message.string)
            if message.fuzzy:
                found.fuzzy.append(where)
            if key not in code:
                found.stale.append(where)
            if not forms or not all(forms):
                continue  # counted as missing below, unless another catalog has it
            if message.fuzzy:
                continue
            sources = [str(s) for s in message.id] if isinstance(message.id, (tuple, list)) else [key]
            wanted = fields(sources[0])
            for form in forms:
                got = fields(form)
                # A plural's forms may name the count or not ("1 container" has no {n}); the
                # other placeholders must all be there.
                expected = fields(sources[-1]) if len(sources) > 1 else wanted
                if got != expected and not (len(sources) > 1 and got in (fields(sources[0]), expected)):
                    lost = sorted((expected - got).keys())
                    added = sorted((got - expected).keys())
                    found.placeholders.append(f"{where} → {_short(form)}: lost {lost}, added {added}")
                    break
            if not all(CJK.search(form) for form in forms) and re.search(r"[A-Za-z]", FIELD.sub("", key)):
                found.not_chinese.append(f"{where} → {_short(forms[0])}")
            earlier = translated.get(key)
            if earlier is None:
                translated[key] = (path.name, forms)
            elif earlier[1] != forms:
                found.conflicts.append(
                    f"{_short(key)}: {earlier[0]} says {_short(earlier[1][0])}, {path.name} says {_short(forms[0])}"
                )
    for key, places in code.items():
        if key not in translated:
            found.missing.append(
                f"{_short(key)} ({places[0]}{f' and {len(places) - 1} more' if len(places) > 1 else ''})"
            )
    return found


def report(kind: str, problems: list[str], fix: str) -> str:
    """One failure message: how many, the first :data:`SHOWN` of them, and what to do."""
    lines = [f"{len(problems)} {kind}; {fix}"] + [f"  {p}" for p in problems[:SHOWN]]
    if len(problems) > SHOWN:
        lines.append(f"  … and {len(problems) - SHOWN} more")
    return "\n".join(lines)


# --- the real code and catalogs ---------------------------------------------------------------


@pytest.fixture(scope="module")
def real() -> Audit:
    return audit(i18n.extract(), load_catalogs(i18n.LOCALE_DIR / LANG / "LC_MESSAGES"))


def test_every_marked_sentence_is_translated(real: Audit) -> None:
    assert not real.missing, report(
        "marked sentence(s) have no zh_CN translation",
        real.missing,
        "add them with `scripts/i18n missing AREA.po 'PATH_GLOB'` and fill each msgstr",
    )


def test_no_entry_is_fuzzy(real: Audit) -> None:
    assert not real.fuzzy, report(
        "fuzzy entries (labkit ignores them)", real.fuzzy, "review each translation and remove its `#, fuzzy` flag"
    )


def test_no_entry_is_stale(real: Audit) -> None:
    assert not real.stale, report(
        "entries whose sentence is no longer in the code",
        real.stale,
        "delete them (`scripts/i18n stale` lists them), or mark the sentence again if it was lost",
    )


def test_translations_keep_the_placeholders(real: Audit) -> None:
    assert not real.placeholders, report(
        "translations whose {placeholders} differ from their sentence's",
        real.placeholders,
        "copy each {name} into the translation unchanged",
    )


def test_no_sentence_is_translated_two_ways(real: Audit) -> None:
    assert not real.conflicts, report(
        "sentences with different translations in two catalogs",
        real.conflicts,
        "keep one entry, in the catalog of the area that owns the sentence",
    )


def test_every_translation_is_chinese(real: Audit) -> None:
    assert not real.not_chinese, report(
        "translations with no Chinese in them", real.not_chinese, "translate them (the English is the fallback anyway)"
    )


# --- the checks themselves, on a throwaway module and catalog -------------------------------------


def _po(path: Path, entries: list[tuple[str, str, bool]]) -> None:
    lines = ['msgid ""', 'msgstr ""', '"Content-Type: text/plain; charset=UTF-8\\n"', ""]
    for msgid, msgstr, fuzzy in entries:
        lines += ["#, fuzzy"] if fuzzy else []
        lines += [f'msgid "{msgid}"', f'msgstr "{msgstr}"', ""]
    path.write_text("\n".join(lines), encoding="utf-8")


@pytest.fixture
def sandbox(tmp_path: Path) -> tuple[Path, Path]:
    """A package with marked sentences, and a locale folder with a catalog for some of them."""
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "mod.py").write_text(
        "from labkit.core.i18n import N_, _\n"
        'TITLE = N_("Your first container")\n'
        'print(_("Port {port} is busy.").format(port=8080))\n'
    )
    locale = tmp_path / "locale"
    locale.mkdir()
    _po(
        locale / "area.po",
        [("Your first container", "你的第一个容器", False), ("Port {port} is busy.", "端口 {port} 已被占用。", False)],
    )
    return package, locale


def test_the_sandbox_passes_every_check(sandbox: tuple[Path, Path]) -> None:
    package, locale = sandbox
    assert audit(i18n.extract(package), load_catalogs(locale)) == Audit()


def test_a_new_untranslated_sentence_fails(sandbox: tuple[Path, Path]) -> None:
    package, locale = sandbox
    (package / "new.py").write_text('from labkit.core.i18n import _\nprint(_("The registry mirror answers."))\n')
    found = audit(i18n.extract(package), load_catalogs(locale))
    assert found.missing == ["'The registry mirror answers.' (pkg/new.py:2)"]
    message = report("marked sentence(s) have no zh_CN translation", found.missing, "add them")
    print(message)  # what test_every_marked_sentence_is_translated prints, with -s
    assert message == (
        "1 marked sentence(s) have no zh_CN translation; add them\n  'The registry mirror answers.' (pkg/new.py:2)"
    )


def test_fuzzy_stale_placeholder_conflict_and_english_entries_fail(sandbox: tuple[Path, Path]) -> None:
    package, locale = sandbox
    _po(
        locale / "other.po",
        [
            ("Your first container", "第一个容器", False),  # translated differently in area.po
            ("Port {port} is busy.", "端口已被占用。", False),  # lost {port}
            ("A sentence that was deleted.", "一句已删除的话。", False),  # stale
        ],
    )
    (package / "more.py").write_text(
        'from labkit.core.i18n import _\n_("Check your answer.")\n_("Hint: look at the port.")\n'
    )
    _po(
        locale / "more.po",
        [("Check your answer.", "检查答案。", True), ("Hint: look at the port.", "Hint: look at the port.", False)],
    )
    found = audit(i18n.extract(package), load_catalogs(locale))
    assert found.fuzzy == ["more.po: 'Check your answer.'"]
    assert found.missing == ["'Check your answer.' (pkg/more.py:2)"]  # fuzzy counts as untranslated
    assert found.stale == ["other.po: 'A sentence that was deleted.'"]
    assert found.placeholders == ["other.po: 'Port {port} is busy.' → '端口已被占用。': lost ['{port}'], added []"]
    assert found.conflicts == [
        "'Your first container': area.po says '你的第一个容器', other.po says '第一个容器'",
        "'Port {port} is busy.': area.po says '端口 {port} 已被占用。', other.po says '端口已被占用。'",
    ]
    assert found.not_chinese == ["more.po: 'Hint: look at the port.' → 'Hint: look at the port.'"]
