"""The exercise panel: Check, hints one tier at a time, and (in solution notebooks) the solution.

In JupyterLab it is an ipywidgets ``VBox``. Where widgets cannot render (nbval,
an HTML export, a terminal) it shows exactly what ``labkit.check(id)`` shows:
the same text and the same HTML, so stored outputs stay comparable and a
notebook can switch between the two without re-recording its outputs.

Example:
    >>> panel = labkit.widgets.exercise("welcome.first-container", solution=False)  # doctest: +SKIP
    >>> panel  # doctest: +SKIP
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Any

import ipywidgets as w

from labkit.core.errors import LabkitError
from labkit.exercises.machinery import catalog as registry
from labkit.exercises.machinery import runner
from labkit.exercises.machinery.model import CheckResult
from labkit.features.trace.views import STEPS, Trace, show, step_of

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


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
            return "No hints"
        if self.exhausted:
            return f"All {self.total} hints shown" if self.total > 1 else "Hint shown"
        return f"Hint {self.shown + 1}/{self.total}"


def hints_html(tiers: list[str]) -> str:
    """The revealed tiers as an ordered list (empty string when none is revealed)."""
    if not tiers:
        return ""
    items = "".join(f"<li>{html.escape(t)}</li>" for t in tiers)
    return f'<ol class="labkit-hints" style="margin:4px 0 4px 1.5em">{items}</ol>'


def solution_html(commands: str) -> str:
    """The reference solution as a code block a learner can copy."""
    return (
        '<div class="labkit-solution"><i>Reference solution:</i>'
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
        self.steps = HintSteps(len(ex.hints))
        self.verdict = w.HTML(_live(""))
        self.hints = w.HTML("")
        self.solution_view = w.HTML("")
        # ipywidgets buttons are real <button>s: Tab reaches them, Enter and Space press them.
        self.check_button = w.Button(
            description="Check",
            button_style="primary",
            icon="check",
            tooltip=f"Check {ex.id} against your Docker daemon",
        )
        self.hint_button = w.Button(description=self.steps.label(), icon="lightbulb-o", tooltip="Reveal the next hint")
        self.hint_button.disabled = self.steps.exhausted
        self.check_button.on_click(lambda _: self.check())
        self.hint_button.on_click(lambda _: self.next_hint())
        buttons = [self.check_button, self.hint_button]
        self.solution_button = None
        if solution:
            self.solution_button = w.Button(
                description="Show solution", icon="eye", tooltip="Show the reference commands"
            )
            self.solution_button.on_click(lambda _: self.toggle_solution())
            buttons.append(self.solution_button)
        header = w.HTML(
            f'<div class="labkit-exercise"><b>{html.escape(ex.title)}</b> '
            f"<code>{html.escape(ex.id)}</code><div>{html.escape(ex.prompt)}</div></div>"
        )
        super().__init__(
            [header, w.HBox(buttons), self.verdict, self.hints, self.solution_view],
            layout=w.Layout(border="1px solid var(--jp-border-color2,#ddd)", padding="4px 8px"),
        )
        self.add_class("labkit-exercise-panel")
        if check_now:
            self.check()

    def check(self) -> CheckResult | None:
        """Run the check now and show its verdict; a labkit error shows as its one line."""
        self.check_button.disabled = True  # no second check while one runs
        try:
            self.result = runner.check(self.exercise.id)
            self.verdict.value = _live(self.result._repr_html_())
        except LabkitError as e:
            # a button's exception goes to the log console, which learners never see
            self.result = None
            self.verdict.value = _live(e._repr_html_())
        finally:
            self.check_button.disabled = False
        return self.result

    def next_hint(self) -> list[str]:
        """Reveal one more hint tier; return the tiers now showing."""
        shown = self.steps.advance()
        tiers = [str(runner.hint(self.exercise.id, level)) for level in range(1, shown + 1)]
        self.hints.value = hints_html(tiers)
        self.hint_button.description = self.steps.label()
        self.hint_button.disabled = self.steps.exhausted
        return tiers

    def toggle_solution(self) -> bool:
        """Show or hide the reference solution; return whether it is showing."""
        if self.solution_button is None:
            return False
        showing = not self.solution_view.value
        self.solution_view.value = solution_html(runner.solution(self.exercise.id)) if showing else ""
        self.solution_button.description = "Hide solution" if showing else "Show solution"
        return showing

    def __str__(self) -> str:
        return str(self.result) if self.result is not None else f"{self.exercise.id} — {self.exercise.prompt}"

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
            options=["table", "sequence diagram"], value="table", tooltip="How to show the calls"
        )
        self.step = w.Dropdown(
            options=[("every call", None)]
            + [(f"{n}. {what}", n) for n, what in STEPS.items()]
            + [("calls in no step", 0)],
            value=None,
            description="Step:",
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
    "exercise",
    "hints_html",
    "solution_html",
    "trace_steps",
    "trace_view",
]
