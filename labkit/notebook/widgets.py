"""The exercise panel: Check, hints one tier at a time, and (in solution notebooks) the solution.

In JupyterLab it is an ipywidgets ``VBox``. Where widgets cannot render (nbval,
an HTML export, a terminal) it shows exactly what ``labkit.check(id)`` shows:
the same text and the same HTML, so stored outputs stay comparable and a
notebook can switch between the two without re-recording its outputs.

The live panel shows Markdown backticks in check and hint text as code. Every
panel of one exercise in a kernel stays in step: they follow the learner's
progress record, so a check (from any panel, or ``labkit.check`` in a cell) shows
its verdict in all of them, and the hints already shown (from a panel, or the
learner's own ``labkit.hint``) stay shown, the Hint button continuing from there.
An exercise that asks for a value has an answer box, submitted with Check.

Example:
    >>> panel = labkit.widgets.exercise("welcome.first-container", solution=False)  # doctest: +SKIP
    >>> panel  # doctest: +SKIP
"""

from __future__ import annotations

import html
import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import ipywidgets as w

from labkit.core.errors import LabkitError
from labkit.core.fmt import code_spans, text_html
from labkit.core.i18n import N_, _
from labkit.exercises.machinery import catalog as registry
from labkit.exercises.machinery import record as progress
from labkit.exercises.machinery import runner
from labkit.exercises.machinery.model import CheckResult
from labkit.features.trace.views import STEPS, Trace, show, step_of

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
_SHOW = N_("Show solution")


@dataclass
class HintSteps:
    """Which hint tiers are showing: none at first, one more per press, never past the last."""

    total: int
    shown: int = 0

    @property
    def exhausted(self) -> bool:
        return self.shown >= self.total

    def advance(self) -> int:
        """Reveal the next tier; return the tier now showing last (1-based), or 0 with no hints."""
        if not self.exhausted:
            self.shown += 1
        return self.shown

    def label(self) -> str:
        """The Hint button's text: what the next press reveals.

        Example:
            >>> HintSteps(3).label(), HintSteps(3, 1).label(), HintSteps(3, 3).label()
            ('Hint 1/3', 'Hint 2/3', 'All 3 hints shown')
        """
        if self.total == 0:
            return _("No hints")
        if self.exhausted:
            return _("All {total} hints shown").format(total=self.total) if self.total > 1 else _("Hint shown")
        return _("Hint {number}/{total}").format(number=self.shown + 1, total=self.total)


def hints_html(tiers: list[str]) -> str:
    """The revealed tiers as an ordered list (empty string when none is revealed)."""
    if not tiers:
        return ""
    items = "".join(f"<li>{text_html(t)}</li>" for t in tiers)
    return f'<ol class="labkit-hints" style="margin:4px 0 4px 1.5em">{items}</ol>'


def solution_html(commands: str) -> str:
    """The reference solution as a code block a learner can copy."""
    return (
        '<div class="labkit-solution"><i>' + html.escape(_("Reference solution:")) + "</i>"
        f'<pre style="margin:4px 0;padding:6px;background:var(--jp-layout-color2,#f5f5f5)">{html.escape(commands)}</pre></div>'
    )


def _live(inner: str) -> str:
    # role=status: a screen reader announces the new verdict after Check, without moving focus
    return f'<div role="status" aria-live="polite">{inner}</div>'


class ExercisePanel(w.VBox):  # type: ignore[misc]
    """One exercise as buttons. ``result`` is the latest verdict (``None`` before the first check)."""

    def __init__(self, exercise_id: str, *, solution: bool = True, check_now: bool = True) -> None:
        ex = registry.get(exercise_id)
        self.exercise = ex
        self.result: CheckResult | None = None
        # Continue from the tiers already shown in this kernel (by another panel, or the learner's hint()).
        self.steps = HintSteps(len(ex.hints), min(_tiers_shown.get(ex.id, 0), len(ex.hints)))
        self.verdict = w.HTML(_live(""))
        self.hints = w.HTML(hints_html(_tiers(ex.id, self.steps.shown)))
        #: The answer box of an exercise that asks for a value (``None`` for the others).
        self.answer: w.Text | None = None
        if ex.is_answer:
            self.answer = w.Text(
                value="",
                placeholder=_("your answer"),
                description=_("Answer:"),
                tooltip=_("Type your answer, then press Check"),
                layout=w.Layout(width="28em"),
            )
        self.solution_view = w.HTML("")
        # ipywidgets buttons are real <button>s: Tab reaches them, Enter and Space press them.
        self.check_button = w.Button(
            description=_("Check"),
            button_style="primary",
            icon="check",
            tooltip=_("Check {id} against your Docker daemon").format(id=ex.id),
        )
        self.hint_button = w.Button(
            description=self.steps.label(), icon="lightbulb-o", tooltip=_("Reveal the next hint")
        )
        self.hint_button.disabled = self.steps.exhausted
        self.check_button.on_click(lambda _: self.check())
        self.hint_button.on_click(lambda _: self.next_hint())
        buttons = [self.check_button, self.hint_button]
        self.solution_button = None
        if solution:
            self.solution_button = w.Button(description=_(_SHOW), icon="eye", tooltip=_("Show the reference commands"))
            self.solution_button.on_click(lambda _: self.toggle_solution())
            buttons.append(self.solution_button)
        header = w.HTML(
            f'<div class="labkit-exercise"><b>{html.escape(_(ex.title))}</b> '
            f"<code>{html.escape(ex.id)}</code><div>{text_html(_(ex.prompt))}</div></div>"
        )
        rows = [header, w.HBox(buttons), self.verdict, self.hints, self.solution_view]
        if self.answer is not None:
            rows.insert(1, self.answer)
        super().__init__(rows, layout=w.Layout(border="1px solid var(--jp-border-color2,#ddd)", padding="4px 8px"))
        self.add_class("labkit-exercise-panel")
        _panels.setdefault(ex.id, weakref.WeakSet()).add(self)
        if check_now:
            self.check()

    def check(self) -> CheckResult | None:
        """Run the check now (with the answer box's value, when there is one) and show its verdict
        here and in every other panel of this exercise; a labkit error shows as its one line."""
        self.check_button.disabled = True  # no second check while one runs
        try:
            typed = self.answer.value.strip() if self.answer is not None else ""
            result = runner.check(self.exercise.id, answer=typed or None)
            _show_result(result)
        except LabkitError as e:
            # a button's exception goes to the log console, which learners never see
            self.result = None
            self.verdict.value = _live(e._repr_html_())
        finally:
            self.check_button.disabled = False
        return self.result

    def show_result(self, result: CheckResult) -> None:
        """Show a verdict (this panel's or another's check of the same exercise)."""
        self.result = result
        self.verdict.value = _live(result._repr_html_())

    def next_hint(self) -> list[str]:
        """Reveal one more hint tier (recorded as the learner's request); return the tiers now showing."""
        level = self.steps.shown + 1
        if level <= self.steps.total:
            runner.hint(self.exercise.id, level)  # the learner asked for this one: recorded
        _show_tiers(self.exercise.id, level)
        return _tiers(self.exercise.id, self.steps.shown)

    def show_tiers(self, shown: int) -> None:
        """Show hint tiers 1 to ``shown`` (never fewer than already showing)."""
        self.steps.shown = max(self.steps.shown, min(shown, self.steps.total))
        self.hints.value = hints_html(_tiers(self.exercise.id, self.steps.shown))
        self.hint_button.description = self.steps.label()
        self.hint_button.disabled = self.steps.exhausted

    def toggle_solution(self) -> bool:
        """Show or hide the reference solution; return whether it is showing."""
        if self.solution_button is None:
            return False
        showing = not self.solution_view.value
        if showing:
            try:
                self.solution_view.value = solution_html(runner.solution(self.exercise.id))
            except LabkitError as e:  # a student workspace: the panel says why, in its own words
                self.solution_view.value = f'<div class="labkit-solution">{html.escape(str(e))}</div>'
        else:
            self.solution_view.value = ""
        self.solution_button.description = _("Hide solution") if showing else _(_SHOW)
        return showing

    def close(self) -> None:
        """Close the widget; it no longer follows the exercise."""
        _panels.get(self.exercise.id, weakref.WeakSet()).discard(self)
        super().close()

    def __str__(self) -> str:
        return str(self.result) if self.result is not None else f"{self.exercise.id} — {_(self.exercise.prompt)}"

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]:
        # nbval skips the widget-view key (its model id is random) and compares the rest:
        # the same text and HTML as labkit.check(id), with no model id in them.
        if self.result is not None:
            bundle: dict[str, Any] = {"text/plain": str(self.result), "text/html": self.result._repr_html_()}
        else:
            bundle = {"text/plain": str(self), "text/html": self.children[0].value + self.verdict.value}
        view = super()._repr_mimebundle_(**kwargs) or {}
        if WIDGET_VIEW in view:
            bundle[WIDGET_VIEW] = view[WIDGET_VIEW]
        return bundle


#: The open panels of each exercise in this kernel, and how many hint tiers the learner has seen.
_panels: dict[str, weakref.WeakSet[ExercisePanel]] = {}
_tiers_shown: dict[str, int] = {}


def _tiers(exercise_id: str, shown: int) -> list[str]:
    """Hint tiers 1 to ``shown`` as text, not recorded again (the learner's request was, once)."""
    return [str(runner.hint(exercise_id, level, record=False)) for level in range(1, shown + 1)]


def _show_result(result: CheckResult) -> None:
    for panel in list(_panels.get(result.exercise_id, ())):
        panel.show_result(result)


def _show_tiers(exercise_id: str, shown: int) -> None:
    _tiers_shown[exercise_id] = max(_tiers_shown.get(exercise_id, 0), shown)
    for panel in list(_panels.get(exercise_id, ())):
        panel.show_tiers(_tiers_shown[exercise_id])


def _follow_record(event: Mapping[str, Any]) -> None:
    """Keep panels in step with what the learner did elsewhere in this kernel (a sink of the record).

    A check from a cell (``labkit.check``) shows its verdict in the exercise's panels; a hint the
    learner asked for shows there too. Hints lesson text shows (``record=False``) are not events.
    """
    exercise_id = str(event.get("exercise", ""))
    if exercise_id not in _panels and event.get("kind") != "hint":
        return
    if event.get("kind") == "hint":
        _show_tiers(exercise_id, int(event.get("hint_level") or 0))
    elif event.get("kind") == "check":
        ex = registry.get(exercise_id)
        _show_result(
            CheckResult(ex.id, _(ex.title), bool(event["passed"]), str(event["message"]), event.get("hint") or None)
        )


progress.add_sink(_follow_record)


def exercise(exercise_id: str, *, solution: bool = True, check_now: bool = True) -> ExercisePanel:
    """An exercise panel: its prompt, a Check button, Hint tiers and (optionally) the solution.

    Args:
        exercise_id: e.g. ``"welcome.first-container"``.
        solution: show a Solution button; student notebooks pass ``False`` and have no such button.
        check_now: check once while building, so the panel (and its plain fallback) opens
            with a verdict, exactly like ``labkit.check(id)``.

    Returns:
        An :class:`ExercisePanel` (an ``ipywidgets.VBox``).

    Raises:
        UnknownExercise: no such exercise.

    A daemon that does not answer is not raised: the panel shows the error's one line
    where the verdict goes, and Check tries again.
    """
    return ExercisePanel(exercise_id, solution=solution, check_now=check_now)


# ---------------------------------------------------------------- the API trace (notebook 04)


def trace_steps(trace: Any, step: int | None) -> Any:
    """The trace narrowed to one of the six steps (``None``: every call, ``0``: calls in no step)."""

    if step is None:
        return trace
    return Trace([c for c in trace.calls if (step_of(c)[0] or 0) == step], stable=trace.stable)


class TraceView(w.VBox):  # type: ignore[misc]
    """A recorded API trace as a widget: table or sequence diagram, all calls or one step.

    Without a widget front end it shows the whole trace's table, exactly as the
    trace object itself does.
    """

    def __init__(self, trace: Any) -> None:

        self.trace = trace
        self.view = w.ToggleButtons(
            options=[(_("table"), "table"), (_("sequence diagram"), "sequence diagram")],
            value="table",
            tooltip=_("How to show the calls"),
        )
        self.step = w.Dropdown(
            options=[(_("every call"), None)]
            + [(f"{n}. {_(what)}", n) for n, what in STEPS.items()]
            + [(_("calls in no step"), 0)],
            value=None,
            description=_("Step:"),
        )
        self.body = w.HTML()
        self.view.observe(lambda _: self._draw(), names="value")
        self.step.observe(lambda _: self._draw(), names="value")
        super().__init__([w.HBox([self.view, self.step]), self.body])
        self._draw()

    def _draw(self) -> None:
        shown = trace_steps(self.trace, self.step.value)
        self.body.value = (
            shown.diagram()._repr_html_() if self.view.value == "sequence diagram" else shown._repr_html_()
        )

    def __str__(self) -> str:
        return str(self.trace)

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]:
        bundle: dict[str, Any] = {"text/plain": str(self.trace), "text/html": self.trace._repr_html_()}
        view = super()._repr_mimebundle_(**kwargs) or {}
        if WIDGET_VIEW in view:
            bundle[WIDGET_VIEW] = view[WIDGET_VIEW]
        return bundle


def trace_view(path: str | None = None, stable: bool = True) -> TraceView:
    """The API trace view of notebook 04 as a widget (see :func:`labkit.trace.views.show`).

    Raises:
        LabkitError: the trace log cannot be read.
    """

    return TraceView(show(path, stable=stable))


__all__ = [
    "ExercisePanel",
    "HintSteps",
    "TraceView",
    "code_spans",
    "exercise",
    "hints_html",
    "solution_html",
    "text_html",
    "trace_steps",
    "trace_view",
]
