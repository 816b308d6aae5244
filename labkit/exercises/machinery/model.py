"""What an exercise is, and what checking it returns.

A wrong answer is a *result* (``passed=False`` with a message and a hint), never
an exception: only broken infrastructure raises. Results render identically on
every run, so nbval can compare them.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import docker

from labkit.core.fmt import text_html
from labkit.core.i18n import N_, _


class Text(str):
    """English made from a marked template and values known only at import (a path): a plain ``str``
    everywhere, and translated whole by :func:`shown`.

    Most exercise text is a literal marked with ``N_``, so ``_(exercise.prompt)`` finds it in the
    catalog; a hint that holds the installed package's path cannot be a catalog entry, so it
    keeps its template and values instead.

    Example:
        >>> hint = Text(N_("The folder here is {folder}."), folder="/opt/lab")
        >>> hint, shown(hint)
        ('The folder here is /opt/lab.', 'The folder here is /opt/lab.')
    """

    template: str
    values: dict[str, Any]

    def __new__(cls, template: str, **values: Any) -> Text:
        made = super().__new__(cls, template.format(**values))
        made.template, made.values = template, values
        return made

    def __getnewargs_ex__(self) -> tuple[tuple[str], dict[str, Any]]:
        return (self.template,), self.values  # so a copy or a pickle is made the same way


def shown(text: str) -> str:
    """An exercise's title, prompt or hint in the current language (English when the catalog lacks it)."""
    if isinstance(text, Text):
        return _(text.template).format(**text.values)
    return _(text)


@dataclass(frozen=True)
class Verdict:
    """What a check function found: passed or not, why, and what to try next."""

    passed: bool
    message: str
    hint: str | None = None
    evidence: Mapping[str, Any] = field(default_factory=dict)


def passed(message: str, **evidence: Any) -> Verdict:
    """A passing verdict, with the live facts it rests on."""
    return Verdict(True, message, None, evidence)


def not_yet(message: str, hint: str | None = None, **evidence: Any) -> Verdict:
    """A "not yet" verdict: what was found, and a hint specific to it."""
    return Verdict(False, message, hint, evidence)


@dataclass
class Context:
    """What a check, setup or reference answer may read."""

    exercise: Exercise
    client: docker.DockerClient
    #: The learner's recorded answer (answer exercises), or None.
    answer: str | None = None
    #: What setup reported (paths, container names), or None if setup never ran.
    setup: dict[str, Any] | None = None


@dataclass(frozen=True)
class Exercise:
    """One exercise: everything about it, in one place.

    Attributes:
        id: dotted id, e.g. ``welcome.first-container``.
        lesson: the notebook it belongs to (``"00"``), used as the ``labkit.lesson`` label.
        title: a few words.
        prompt: what the learner is asked to do.
        check: reads live daemon state and returns a :class:`Verdict`.
        hints: tiers, from a nudge to the answer: only the last tier gives the command.
        solution: the reference commands, run for real by ``labkit exercise solve``; a ``{key}``
            placeholder is replaced by the value setup reported under ``key``.
        setup: creates the starting state and returns what the learner needs to know.
        reference_answer: for answer exercises, computes the right value live.
        names: containers the learner is asked to create by name; ``reset`` removes them.
        images: images whose containers belong to this exercise; ``reset`` removes those containers.
        teardown: removes what setup made that is not a labelled container (a process,
            a folder, an image tag); ``reset`` calls it, so it must be idempotent. It may
            return how many things it removed.
        act: does the reference solution itself when it cannot be typed into a plain shell
            (keys pressed on a terminal, such as Ctrl+P Ctrl+Q); ``solve`` runs it instead of
            ``solution``, which then only says what a learner does.
    """

    id: str
    lesson: str
    title: str
    prompt: str
    check: Callable[[Context], Verdict]
    hints: tuple[str, ...] = ()
    solution: tuple[str, ...] = ()
    setup: Callable[[Context], dict[str, Any]] | None = None
    reference_answer: Callable[[Context], str] | None = None
    names: tuple[str, ...] = ()
    images: tuple[str, ...] = ()
    teardown: Callable[[Context], int | None] | None = None
    act: Callable[[Context], None] | None = None

    @property
    def is_answer(self) -> bool:
        """True when the learner submits a value rather than changing the daemon's state."""
        return self.reference_answer is not None


_STYLE = {
    True: ("#1e7e34", "#e9f7ef", "✔", "passed"),
    False: ("#9a6700", "#fff8e1", "✗", "not yet"),
}
#: The status as a learner reads it (``status`` itself is the record's English keyword).
_WORDS = {True: N_("passed"), False: N_("not yet")}


@dataclass(frozen=True)
class CheckResult:
    """The outcome of ``check(id)``, shown as HTML in a notebook and as text elsewhere."""

    exercise_id: str
    title: str
    passed: bool
    message: str
    hint: str | None = None
    evidence: Mapping[str, Any] = field(default_factory=dict)

    @property
    def status(self) -> str:
        return "passed" if self.passed else "not yet"

    def to_dict(self) -> dict[str, Any]:
        return {
            "exercise": self.exercise_id,
            "title": self.title,
            "passed": self.passed,
            "status": self.status,
            "message": self.message,
            "hint": self.hint,
            "evidence": dict(self.evidence),
        }

    def __str__(self) -> str:
        mark = _STYLE[self.passed][2]
        lines = [
            _("{mark} {exercise} — {status}: {message}").format(
                mark=mark, exercise=self.exercise_id, status=_(_WORDS[self.passed]), message=self.message
            )
        ]
        if self.hint:
            lines.append(_("  hint: {hint}").format(hint=self.hint))
        lines.extend(f"  {key}: {value}" for key, value in sorted(self.evidence.items()))
        return "\n".join(lines)

    def __bool__(self) -> bool:
        return self.passed

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(str(self))

    def _repr_html_(self) -> str:
        color, background, mark, word = _STYLE[self.passed]
        parts = [
            f'<div class="labkit-check" data-exercise="{html.escape(self.exercise_id)}" data-status="{word}" '
            f'style="border-left:4px solid {color};background:{background};padding:6px 10px;margin:4px 0">',
            f'<b style="color:{color}">{mark} {html.escape(self.exercise_id)} — {html.escape(_(_WORDS[self.passed]))}</b>'
            f" <span>{text_html(self.title)}</span>",
            f"<div>{text_html(self.message)}</div>",
        ]
        if self.hint:
            label = html.escape(_("Hint:"))
            parts.append(f"<div><i>{label}</i> {text_html(self.hint)}</div>")
        if self.evidence:
            items = "".join(
                f"<li><code>{html.escape(str(k))}</code>: {html.escape(str(v))}</li>"
                for k, v in sorted(self.evidence.items())
            )
            summary = html.escape(_("What labkit found"))
            parts.append(f"<details><summary>{summary}</summary><ul>{items}</ul></details>")
        parts.append("</div>")
        return "".join(parts)
