"""labkit.notebook.widgets and labkit.notebook.dashboard without a daemon: hint tiers, the event reducer, the diagram, the fallbacks."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import pytest

from labkit.core import engine
from labkit.core.fmt import code_spans
from labkit.exercises.machinery import record as progress
from labkit.exercises.machinery import runner
from labkit.exercises.machinery.model import CheckResult
from labkit.notebook import widgets
from labkit.notebook.dashboard import (
    STATES,
    Row,
    apply_event,
    diagram_state,
    format_ports,
    in_scope,
    needs_confirmation,
    ordered,
    row_from_inspect,
    state_diagram_svg,
    status_text,
    table_html,
    table_text,
)
from labkit.notebook.widgets import WIDGET_VIEW, HintSteps, exercise, hints_html

T0 = datetime(2024, 5, 1, 10, 0, 0, tzinfo=UTC)
ID = "f" * 64


def _event(action: str, ident: str = ID, **attributes: str) -> dict[str, Any]:
    """A container event as `docker events --format '{{json .}}'` prints it."""
    return {
        "Type": "container",
        "Action": action,
        "status": action,
        "id": ident,
        "Actor": {"ID": ident, "Attributes": attributes},
        "timeNano": 1714557600000000000,
    }


@pytest.fixture(autouse=True)
def fresh_kernel(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test is a fresh kernel: no panels open, no hint tiers seen, an empty progress record."""
    monkeypatch.setattr(widgets, "_panels", {})
    monkeypatch.setattr(widgets, "_tiers_shown", {})
    monkeypatch.setenv("LABKIT_STATE_DIR", str(tmp_path / "state"))


class TestHintSteps:
    def test_reveals_one_tier_per_press_and_stops_at_the_last(self) -> None:
        steps = HintSteps(3)
        assert (steps.shown, steps.label(), steps.exhausted) == (0, "Hint 1/3", False)
        assert [steps.advance() for _ in range(5)] == [1, 2, 3, 3, 3]
        assert steps.exhausted and steps.label() == "All 3 hints shown"

    def test_no_hints(self) -> None:
        steps = HintSteps(0)
        assert steps.exhausted and steps.advance() == 0 and steps.label() == "No hints"

    def test_single_hint_label(self) -> None:
        steps = HintSteps(1)
        steps.advance()
        assert steps.label() == "Hint shown"

    def test_hints_html_escapes_and_lists(self) -> None:
        assert hints_html([]) == ""
        out = hints_html(["use <b>", "docker run"])
        assert out.count("<li>") == 2 and "&lt;b&gt;" in out


class TestExercisePanelWithoutDaemon:
    """The panel built without checking: buttons, hint stepping and the fallback need no daemon."""

    def test_student_panel_has_no_solution_button(self) -> None:
        panel = exercise("welcome.first-container", solution=False, check_now=False)
        try:
            labels = [b.description for b in panel.children[1].children]
            assert labels == ["Check", "Hint 1/3"] and panel.solution_button is None
            assert panel.toggle_solution() is False
        finally:
            panel.close()

    def test_solution_panel_toggles_the_reference(self) -> None:
        panel = exercise("welcome.first-container", check_now=False)
        try:
            assert [b.description for b in panel.children[1].children] == ["Check", "Hint 1/3", "Show solution"]
            assert panel.toggle_solution() is True and "docker run hello-world" in panel.solution_view.value
            assert panel.solution_button.description == "Hide solution"
            assert panel.toggle_solution() is False and panel.solution_view.value == ""
        finally:
            panel.close()

    def test_hint_button_steps_through_the_tiers(self) -> None:
        panel = exercise("welcome.first-container", check_now=False)
        try:
            assert panel.hints.value == ""
            panel.hint_button.click()
            assert panel.hints.value.count("<li>") == 1 and panel.hint_button.description == "Hint 2/3"
            panel.hint_button.click()
            panel.hint_button.click()
            assert panel.hints.value.count("<li>") == 3 and panel.hint_button.disabled
            assert "Type: docker run hello-world" in panel.hints.value
        finally:
            panel.close()

    def test_fallback_text_has_no_model_id(self) -> None:
        panel = exercise("welcome.first-container", check_now=False)
        try:
            bundle = panel._repr_mimebundle_()
            assert set(bundle) == {"text/plain", "text/html", WIDGET_VIEW}
            model_id = bundle[WIDGET_VIEW]["model_id"]
            assert model_id not in bundle["text/plain"] and model_id not in bundle["text/html"]
            assert (
                bundle["text/plain"]
                == "welcome.first-container — Run a container from the hello-world image and let it finish."
            )
        finally:
            panel.close()


class TestApplyEvent:
    def test_lifecycle_from_events_alone(self) -> None:
        rows: dict[str, Row] = {}
        assert apply_event(rows, _event("create", name="web", image="busybox", **{"labkit.lesson": "05"})) == ID
        assert (rows[ID].name, rows[ID].image, rows[ID].state, rows[ID].lesson) == ("web", "busybox", "created", "05")
        seen = []
        for action in ("start", "pause", "unpause", "kill", "die", "stop", "start", "restart"):
            apply_event(rows, _event(action, name="web", image="busybox", exitCode="137"))
            seen.append(rows[ID].state)
        assert seen == ["running", "paused", "running", "running", "exited", "exited", "running", "running"]
        assert rows[ID].exit_code == 137
        assert apply_event(rows, _event("destroy", name="web")) is None and rows == {}

    def test_rename_follows_the_new_name(self) -> None:
        rows: dict[str, Row] = {}
        apply_event(rows, _event("create", name="old"))
        apply_event(rows, _event("rename", name="new", oldName="/old"))
        assert rows[ID].name == "new" and rows[ID].state == "created"

    def test_ignores_what_does_not_change_a_row(self) -> None:
        rows: dict[str, Row] = {}
        assert apply_event(rows, _event("exec_start: sh", name="web")) is None
        assert apply_event(rows, {"Type": "network", "Action": "connect", "id": ID}) is None
        assert apply_event(rows, {"Type": "container", "Action": "start"}) is None  # no id
        assert apply_event(rows, _event("destroy")) is None and rows == {}  # destroy of an unknown one

    def test_event_for_a_container_missed_at_start_creates_its_row(self) -> None:
        rows: dict[str, Row] = {}
        assert apply_event(rows, _event("die", name="late", image="busybox", exitCode="0")) == ID
        assert rows[ID].state == "exited" and rows[ID].exit_code == 0


class TestRows:
    ATTRS: ClassVar[dict[str, Any]] = {
        "Id": ID,
        "Name": "/web",
        "Image": "sha256:" + "a" * 64,
        "State": {
            "Status": "running",
            "StartedAt": "2024-05-01T10:00:00.5Z",
            "FinishedAt": "0001-01-01T00:00:00Z",
            "ExitCode": 0,
        },
        "Config": {"Image": "nginx:alpine", "Labels": {"labkit.lesson": "05", "labkit.session": "s1"}},
        "NetworkSettings": {"Ports": {"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": "8080"}], "443/tcp": None}},
    }

    def test_row_from_inspect(self) -> None:
        row = row_from_inspect(self.ATTRS)
        assert (row.name, row.image, row.state, row.ports) == (
            "web",
            "nginx:alpine",
            "running",
            "127.0.0.1:8080->80/tcp, 443/tcp",
        )
        assert row.started_at == T0 + timedelta(milliseconds=500) and row.finished_at is None and row.lesson == "05"

    @pytest.mark.parametrize(
        ("status", "state"),
        [
            ("created", "created"),
            ("running", "running"),
            ("restarting", "running"),
            ("paused", "paused"),
            ("exited", "exited"),
            ("dead", "exited"),
            ("removing", "removed"),
        ],
    )
    def test_every_docker_status_maps_onto_the_diagram(self, status: str, state: str) -> None:
        assert diagram_state(status) == state and state in STATES

    def test_status_text(self) -> None:
        running = Row(ID, "web", "nginx", "running", started_at=T0)
        assert status_text(running, T0 + timedelta(seconds=75)) == "up 1 min"
        exited = Row(ID, "web", "nginx", "exited", exit_code=137, finished_at=T0)
        assert status_text(exited, T0 + timedelta(hours=2)) == "exited (137) 2 h ago"
        assert status_text(Row(ID, "web", "nginx", "created"), T0) == "created"

    def test_ports_without_host_ip(self) -> None:
        assert format_ports({"80/tcp": [{"HostIp": "", "HostPort": "8080"}]}) == "0.0.0.0:8080->80/tcp"
        assert format_ports(None) == ""

    def test_a_row_being_stopped_says_so(self) -> None:
        row = Row(id=ID, name="web", image="nginx", state="running")
        assert "(stopping…)" in table_html([row], T0, stopping={ID})
        assert "stopping" not in table_html([row], T0)

    def test_ipv6_ports_read_as_the_cli_prints_them(self) -> None:
        """`docker ps` writes [::]:8080->80/tcp (the dashboard once showed :::8080->80/tcp)."""
        ports = {
            "80/tcp": [
                {"HostIp": "0.0.0.0", "HostPort": "38123"},
                {"HostIp": "::", "HostPort": "38123"},
                {"HostIp": "127.0.0.1", "HostPort": "32783"},
            ]
        }
        assert format_ports(ports) == "0.0.0.0:38123->80/tcp, 127.0.0.1:32783->80/tcp, [::]:38123->80/tcp"
        assert ":::" not in format_ports({"53/udp": [{"HostIp": "::1", "HostPort": "5353"}]})
        assert format_ports({"53/udp": [{"HostIp": "::1", "HostPort": "5353"}]}) == "[::1]:5353->53/udp"

    def test_scope_and_order(self) -> None:
        mine = Row("a", "b-web", "nginx", "exited", labels={engine.LABEL_LESSON: "05"})
        typed = Row("b", "a-shell", "busybox", "running")
        assert [r.name for r in ordered([mine, typed])] == ["a-shell", "b-web"]
        assert in_scope(typed, "all containers", "05") and not in_scope(typed, "this lesson", "05")
        assert in_scope(mine, "this lesson", "05")

    def test_removal_asks_twice_unless_this_session_made_it(self) -> None:
        ours = Row("a", "web", "nginx", "exited", labels={engine.LABEL_SESSION: "s1"})
        assert not needs_confirmation(ours, "s1")
        assert needs_confirmation(ours, "s2")
        assert needs_confirmation(Row("b", "typed", "busybox", "exited"), "s1")

    def test_registry_container_is_protected(self) -> None:
        assert Row("a", "labkit-registry", "registry:2", "running", labels={engine.LABEL_LESSON: "registry"}).protected
        assert not Row("b", "web", "nginx", "running").protected

    def test_tables(self) -> None:
        rows = [Row(ID, "web<1>", "nginx", "running", started_at=T0)]
        out = table_html(rows, T0 + timedelta(seconds=3), selected=ID)
        assert "web&lt;1&gt;" in out and "up 3 s" in out and "font-weight:bold" in out and 'data-state="running"' in out
        assert "no containers" in table_html([], T0) and table_text([], T0) == "no containers"
        assert table_text(rows, T0).splitlines()[1].split() == ["web<1>", "nginx", "running", "up", "0", "s"]


class TestStateDiagram:
    @pytest.mark.parametrize("state", STATES)
    def test_lights_exactly_the_current_state(self, state: str) -> None:
        svg = state_diagram_svg(state, "web")
        lit = re.findall(r'data-state="(\w+)" data-current="true"', svg)
        assert lit == [state]
        assert f"web: {state}" in svg  # the accessible label says it too

    def test_nothing_lit_without_a_container(self) -> None:
        svg = state_diagram_svg(None)
        assert 'data-current="true"' not in svg and "pick a container" in svg
        assert svg.count("<g data-state=") == len(STATES)

    def test_docker_statuses_light_their_diagram_state(self) -> None:
        assert re.findall(r'data-state="(\w+)" data-current="true"', state_diagram_svg("dead")) == ["exited"]

    def test_is_well_formed_xml(self) -> None:
        import xml.etree.ElementTree as ET

        ET.fromstring(state_diagram_svg("paused", "a & b"))  # raises on malformed markup

    def test_deterministic(self) -> None:
        assert state_diagram_svg("running", "web") == state_diagram_svg("running", "web")


class TestTraceView:
    """The notebook-04 trace as a widget, from recorded calls (a trace log is data, not a daemon)."""

    @staticmethod
    def _trace() -> Any:
        from labkit.features.trace.log import Call
        from labkit.features.trace.views import Trace

        cid = "a" * 64
        calls = [
            Call(1, 1, 0.00, "HEAD", "/_ping", status=200, reason="OK"),
            Call(1, 2, 0.01, "POST", "/v1.41/containers/create", api="1.41", status=404, reason="Not Found"),
            Call(
                1,
                3,
                0.02,
                "POST",
                "/v1.41/images/create?fromImage=hello-world&tag=latest",
                api="1.41",
                status=200,
                reason="OK",
            ),
            Call(1, 4, 0.30, "POST", "/v1.41/containers/create", api="1.41", status=201, reason="Created", id=cid),
            Call(2, 1, 0.31, "GET", "/v1.41/info", api="1.41", status=200, reason="OK"),
        ]
        return Trace(calls)

    def test_step_filter(self) -> None:
        from labkit.notebook.widgets import trace_steps

        trace = self._trace()
        assert trace_steps(trace, None) is trace
        assert [c.method for c in trace_steps(trace, 4).calls] == ["POST"] and len(trace_steps(trace, 5)) == 1
        assert [c.path for c in trace_steps(trace, 0).calls] == ["/v1.41/info"]
        assert len(trace_steps(trace, 6)) == 0

    def test_widget_switches_views_and_falls_back_to_the_table(self) -> None:
        from labkit.notebook.widgets import TraceView

        trace = self._trace()
        view = TraceView(trace)
        try:
            assert view.body.value == trace._repr_html_()
            view.view.value = "sequence diagram"
            assert view.body.value.startswith('<svg class="labkit-sequence"')
            view.step.value = 3
            assert view.body.value.count("marker-end") == 2  # one call: request and reply arrows
            bundle = view._repr_mimebundle_()
            assert bundle["text/plain"] == str(trace) and bundle["text/html"] == trace._repr_html_()
            assert bundle[WIDGET_VIEW]["model_id"] not in bundle["text/plain"]
        finally:
            view.close()


def test_labkit_dashboard_stays_callable_after_its_modules_are_imported() -> None:
    """Re-running `labkit.dashboard()` and `labkit.dashboard.close_all()` cells must work, in any order."""
    import importlib

    import labkit
    from labkit.notebook.dashboard import Opener

    first = labkit.dashboard
    importlib.import_module("labkit.notebook.dashboard.widget")
    importlib.import_module("labkit.notebook.dashboard")

    assert isinstance(labkit.dashboard, Opener) and labkit.dashboard is first
    labkit.dashboard.close_all()  # nothing open: nothing to do
    assert callable(labkit.dashboard)


def test_the_dashboard_model_imports_without_ipywidgets() -> None:
    """The model, the drawing and the threads load without ipywidgets (start-up time); only the widget needs it."""
    import subprocess
    import sys

    code = (
        "import sys, labkit, labkit.notebook.dashboard as d, labkit.notebook.dashboard.follower\n"
        "print(callable(labkit.dashboard), 'ipywidgets' in sys.modules)"
    )
    shown = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert shown.split() == ["True", "False"]


# ---------------------------------------------------------------- the panel a learner trusts

WELCOME = "welcome.first-container"


def _result(passed: bool, exercise_id: str = WELCOME) -> CheckResult:
    return CheckResult(
        exercise_id, "Your first container", passed, "Saw `hello-world` <exit 0>" if passed else "Nothing yet.", None
    )


class TestRenderedText:
    def test_backticks_become_code_and_everything_else_is_escaped(self) -> None:
        assert code_spans("a `b` c") == "a <code>b</code> c"
        out = hints_html(["Try `docker ps -a` <b>now</b>", "a lone ` stays"])
        assert "<code>docker ps -a</code>" in out and "&lt;b&gt;now&lt;/b&gt;" in out
        assert "a lone ` stays" in out and "`docker" not in out
        assert widgets.text_html("`<script>`") == "<code>&lt;script&gt;</code>"

    def test_the_live_verdict_and_the_fallback_show_code_as_check_does(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(runner, "_check", lambda exercise, answer: _result(True))
        panel = exercise(WELCOME, check_now=True)
        try:
            assert "<code>hello-world</code> &lt;exit 0&gt;" in panel.verdict.value
            bundle = panel._repr_mimebundle_()
            assert bundle["text/html"] == _result(True)._repr_html_()  # identical to labkit.check(id)
            assert "<code>hello-world</code>" in bundle["text/html"]  # check's own HTML renders code too
        finally:
            panel.close()


class TestPanelsInStep:
    def test_a_pass_in_one_panel_shows_in_the_others(self, monkeypatch: pytest.MonkeyPatch) -> None:
        outcome = [_result(False)]
        monkeypatch.setattr(runner, "_check", lambda exercise, answer: outcome[0])
        older, newer = exercise(WELCOME), exercise(WELCOME)
        try:
            assert older.result is not None and not older.result.passed
            outcome[0] = _result(True)
            newer.check()
            assert older.result is not None and older.result.passed
            assert "passed" in older.verdict.value and "not yet" not in older.verdict.value
        finally:
            older.close()
            newer.close()

    def test_a_check_from_a_cell_updates_the_panels(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(runner, "_check", lambda exercise, answer: _result(False))
        panel = exercise(WELCOME)
        try:
            monkeypatch.setattr(runner, "_check", lambda exercise, answer: _result(True))
            runner.check(WELCOME)  # labkit.check(...) in a cell below the panel
            assert panel.result is not None and panel.result.passed and "passed" in panel.verdict.value
        finally:
            panel.close()

    def test_hint_tiers_continue_across_panels_and_each_is_recorded_once(self) -> None:
        first = exercise(WELCOME, check_now=False)
        second = exercise(WELCOME, check_now=False)
        try:
            first.hint_button.click()
            first.hint_button.click()
            assert second.hints.value.count("<li>") == 2 and second.hint_button.description == "Hint 3/3"
            third = exercise(WELCOME, check_now=False)  # a panel opened later continues too
            assert third.hints.value.count("<li>") == 2 and third.hint_button.description == "Hint 3/3"
            third.hint_button.click()
            assert first.hint_button.disabled and second.hints.value.count("<li>") == 3
            third.close()
        finally:
            first.close()
            second.close()
        events, _ = progress.read()
        assert [(e["kind"], e["hint_level"]) for e in events] == [("hint", 1), ("hint", 2), ("hint", 3)]

    def test_the_learners_own_hint_in_a_cell_advances_the_panel_but_a_lesson_demo_does_not(self) -> None:
        panel = exercise(WELCOME, check_now=False)
        try:
            runner.hint(WELCOME, 2, record=False)  # lesson text showing a tier on purpose
            assert panel.hints.value == "" and panel.hint_button.description == "Hint 1/3"
            runner.hint(WELCOME, 2)  # the learner asks in a cell
            assert panel.hints.value.count("<li>") == 2 and panel.hint_button.description == "Hint 3/3"
        finally:
            panel.close()


class TestAnswerPanel:
    def test_an_answer_exercise_has_a_box_whose_value_check_submits(self, monkeypatch: pytest.MonkeyPatch) -> None:
        submitted: list[Any] = []

        def fake_check(exercise: Any, answer: Any) -> CheckResult:
            submitted.append(answer)
            return _result(False, exercise.id)

        monkeypatch.setattr(runner, "_check", fake_check)
        panel = exercise("vm.kernel", solution=False, check_now=False)
        try:
            assert panel.answer is not None and panel.answer in panel.children
            panel.check()
            panel.answer.value = "  6.1.0-18-amd64 "
            panel.check_button.click()
            assert submitted == [None, "6.1.0-18-amd64"]
        finally:
            panel.close()

    def test_other_exercises_have_no_box(self) -> None:
        panel = exercise(WELCOME, check_now=False)
        try:
            assert panel.answer is None
            assert not any(isinstance(c, widgets.w.Text) for c in panel.children)
        finally:
            panel.close()
