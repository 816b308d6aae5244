"""The live dashboard and the exercise panel against the real daemon, headless (no front end needed).

Containers are started with the docker CLI in a subprocess, as a learner's terminal would:
the dashboard must see them through ``docker events``, not through labkit.
"""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from labkit import exercises
from labkit.core import engine, wait
from labkit.notebook.dashboard.widget import Dashboard, dashboard
from labkit.notebook.widgets import exercise

pytestmark = pytest.mark.docker

#: The acceptance bound: a container started from a terminal shows within this many seconds.
SHOW_WITHIN = 2.0
NAME = f"labkit-dash-{engine.session_id()[-6:]}"


def _docker(*args: str) -> str:
    """The docker CLI, as typed in a terminal (labels passed by hand: no labkit in between)."""
    done = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def _labels() -> list[str]:
    return [arg for key, value in engine.labels("test").items() for arg in ("--label", f"{key}={value}")]


def _seen(board: Dashboard, check: Callable[[dict[str, object]], bool]) -> float:
    """Seconds until ``check`` holds for the dashboard's row named NAME (None when it has none)."""
    t0 = time.monotonic()

    def holds() -> bool:
        row = next((r for r in board.rows.values() if r.name == NAME), None)
        return check(None if row is None else row.__dict__)  # type: ignore[arg-type]

    wait.until(holds, f"the dashboard to show {NAME}", timeout=SHOW_WITHIN, interval=0.01)
    return time.monotonic() - t0


def _dashboard_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("labkit-dashboard-")]


@pytest.fixture
def board(docker_client: object) -> Iterator[Dashboard]:
    b = dashboard()
    try:
        assert b.ready.wait(5), "the event stream did not open"
        yield b
    finally:
        b.close()
        subprocess.run(["docker", "rm", "-f", NAME], capture_output=True, check=False)


def test_terminal_container_shows_then_stops_then_goes(board: Dashboard, capsys: pytest.CaptureFixture[str]) -> None:
    figures = {}
    t0 = time.monotonic()
    # --stop-timeout: busybox's sleep ignores SIGTERM, so the Stop button would wait the default 10 s
    _docker("run", "-d", "--name", NAME, "--stop-timeout", "1", *_labels(), "busybox", "sleep", "300")
    figures["cli run returned"] = time.monotonic() - t0
    figures["running shown after cli returned"] = _seen(board, lambda r: r is not None and r["state"] == "running")
    figures["running shown after cli started"] = time.monotonic() - t0
    assert figures["running shown after cli started"] < SHOW_WITHIN + figures["cli run returned"]

    row = board.select(NAME)
    assert 'data-state="running" data-current="true"' in board.diagram.value
    assert NAME in board.table.value and row.labels[engine.LABEL_LESSON] == "test"
    assert not board.stop_button.disabled and board.start_button.disabled

    # the Stop button, as a learner presses it
    t0 = time.monotonic()
    board.stop_button.click()
    figures["stop button (docker stop)"] = time.monotonic() - t0
    _seen(board, lambda r: r is not None and r["state"] == "exited")
    assert 'data-state="exited" data-current="true"' in board.diagram.value
    assert board.remove_button.disabled is False and board.start_button.disabled is False

    # a terminal stop/start round trip is seen without any button
    _docker("start", NAME)
    figures["restart from terminal shown"] = _seen(board, lambda r: r is not None and r["state"] == "running")
    _docker("kill", NAME)
    _seen(board, lambda r: r is not None and r["state"] == "exited")

    # Remove: this test's session made it (labels passed by hand), so one press removes it
    board.select(NAME)
    t0 = time.monotonic()
    board.remove_button.click()
    figures["removed row gone"] = _seen(board, lambda r: r is None)
    assert "removed" in board.message.value
    assert 'data-state="removed" data-current="true"' in board.diagram.value and NAME in board.diagram.value
    assert engine.find_container(NAME) is None
    lags = sorted(board.lags)
    figures["event→table lag median"] = lags[len(lags) // 2]
    figures["event→table lag max"] = lags[-1]
    with capsys.disabled():
        print("\n" + "\n".join(f"  {k}: {v * 1000:.0f} ms" for k, v in figures.items()))


def test_stop_returns_at_once_and_the_row_follows_the_container(board: Dashboard) -> None:
    """Stop waits out the grace period in a thread: the kernel is free at once, the row says
    "stopping…" meanwhile, and shows the container exited when it has."""
    # busybox's sleep as PID 1 ignores SIGTERM: the stop takes the whole 3 s grace period
    _docker("run", "-d", "--name", NAME, "--stop-timeout", "3", *_labels(), "busybox", "sleep", "300")
    _seen(board, lambda r: r is not None and r["state"] == "running")
    row = board.select(NAME)
    t0 = time.monotonic()
    said = board.act("stop")
    returned = time.monotonic() - t0
    assert returned < 0.5, f"the Stop button held the kernel for {returned:.1f} s"
    assert said.startswith(f"stopping {NAME}")
    assert row.id in board.stopping and "(stopping…)" in board.table.value
    assert board.stop_button.disabled  # no second stop while one is under way
    assert _docker("inspect", "-f", "{{.State.Running}}", NAME) == "true"  # still in its grace period
    board.wait_for_stops(timeout=15)
    exited = time.monotonic() - t0
    assert 2.5 < exited < 15, f"stopped after {exited:.1f} s"
    _seen(board, lambda r: r is not None and r["state"] == "exited")
    assert not board.stopping and "(stopping…)" not in board.table.value
    assert f"stopped {NAME}" in board.message.value
    assert _docker("inspect", "-f", "{{.State.Running}}", NAME) == "false"


def test_the_confirm_label_is_not_cut_off(board: Dashboard) -> None:
    _docker("create", "--name", NAME, "--label", f"{engine.LABEL_LESSON}=test", "busybox", "true")
    _seen(board, lambda r: r is not None and r["state"] == "created")
    board.select(NAME)
    board.act("remove")
    assert board.remove_button.description == f"Really remove {NAME}?"
    assert board.remove_button.layout.width == "auto"  # the button grows with its label
    board.cancel_button.click()


def test_remove_asks_twice_for_a_container_labkit_did_not_make(board: Dashboard) -> None:
    # no labkit.session label: what a learner types by hand (the lesson label lets reset find it)
    _docker("create", "--name", NAME, "--label", f"{engine.LABEL_LESSON}=test", "busybox", "true")
    _seen(board, lambda r: r is not None and r["state"] == "created")
    board.select(NAME)
    assert 'data-state="created" data-current="true"' in board.diagram.value
    first = board.act("remove")
    assert "press again" in first and engine.find_container(NAME) is not None
    assert board.remove_button.description.startswith("Really remove")
    board.cancel_button.click()
    assert board.remove_button.description == "Remove"
    assert "press again" in board.act("remove")
    assert "removed" in board.act("remove")
    _seen(board, lambda r: r is None)


def test_remove_refuses_a_running_container(board: Dashboard) -> None:
    _docker("run", "-d", "--name", NAME, *_labels(), "busybox", "sleep", "300")
    _seen(board, lambda r: r is not None and r["state"] == "running")
    board.select(NAME)
    assert "stop it first" in board.act("remove")
    assert engine.find_container(NAME) is not None


def test_this_lesson_scope_hides_other_containers(board: Dashboard) -> None:
    engine.set_lesson("test-dash-scope")
    try:
        _docker("create", "--name", NAME, *_labels(), "busybox", "true")  # lesson "test", not ours
        _seen(board, lambda r: r is not None)
        assert NAME in board.table.value
        board.scope.value = "this lesson"
        assert NAME not in board.table.value
        board.scope.value = "all containers"
        assert NAME in board.table.value
    finally:
        engine.set_lesson("notebook")


def test_close_ends_the_threads(docker_client: object) -> None:
    before = set(_dashboard_threads())
    b = dashboard()
    assert b.ready.wait(5)
    assert len(set(_dashboard_threads()) - before) == 2 and b.running
    t0 = time.monotonic()
    b.close()
    wait.until(lambda: not (set(_dashboard_threads()) - before), "the dashboard threads to end", timeout=2)
    assert time.monotonic() - t0 < 2 and not b.running and b.comm is None


def test_a_new_dashboard_replaces_the_old_one(docker_client: object) -> None:
    first = dashboard()
    second = dashboard()
    try:
        assert not first.running and second.running
    finally:
        second.close()
    assert not _dashboard_threads()


# ---------------------------------------------------------------- the exercise panel


@pytest.fixture
def fresh_welcome(docker_client: object) -> Iterator[None]:
    ex = exercises.get("welcome.first-container")
    exercises.reset_exercise(ex)
    yield
    exercises.reset_exercise(ex)


def test_exercise_panel_check_hints_and_solution(fresh_welcome: None) -> None:
    panel = exercise("welcome.first-container")
    try:
        assert panel.result is not None and not panel.result.passed  # checked while building
        panel.check_button.click()
        assert 'data-status="not yet"' in panel.verdict.value and "not yet" in str(panel.result)
        assert panel.hints.value == ""
        panel.hint_button.click()
        panel.hint_button.click()
        assert (
            "Hint 1/3" in panel.hints.value and "Hint 2/3" in panel.hints.value and "Hint 3/3" not in panel.hints.value
        )
        assert panel.solution_button is not None

        # the same text and HTML as labkit.check, so nbval compares what it always did
        bundle = panel._repr_mimebundle_()
        reference = exercises.check("welcome.first-container")
        assert bundle["text/plain"] == str(reference) and bundle["text/html"] == reference._repr_html_()

        exercises.solve("welcome.first-container", quiet=True)
        panel.check_button.click()
        assert panel.result.passed and 'data-status="passed"' in panel.verdict.value
    finally:
        panel.close()

    student = exercise("welcome.first-container", solution=False)
    try:
        assert student.solution_button is None
        # a panel opened later continues from the tiers the learner has seen, and shows the pass
        assert [b.description for b in student.children[1].children] == ["Check", "Hint 3/3"]
        assert student.hints.value.count("<li>") == 2 and student.result is not None and student.result.passed
    finally:
        student.close()


# ---------------------------------------------------------------- inside a real kernel


def test_dashboard_in_a_kernel_stops_when_the_kernel_shuts_down(docker_client: object, tmp_path: object) -> None:
    """A real ipykernel: the dashboard follows a terminal container, and a normal shutdown ends
    its threads through atexit (the marker, registered first, runs last and records them)."""
    from jupyter_client.manager import KernelManager

    marker = f"{tmp_path}/threads-at-exit.txt"
    km = KernelManager(kernel_name="python3")
    km.start_kernel()
    kc = km.client()
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=60)

        def run(code: str) -> str:
            out: list[str] = []
            reply = kc.execute_interactive(
                code, timeout=30, output_hook=lambda m: out.append(m["content"].get("text", ""))
            )
            assert reply["content"]["status"] == "ok", reply["content"]
            return "".join(out)

        run(
            "import atexit, threading\n"
            f"atexit.register(lambda: open({marker!r}, 'w').write(' '.join(t.name for t in threading.enumerate())))\n"
            "import labkit\n"
            "board = labkit.dashboard(); print(board.ready.wait(5))"
        )
        _docker("run", "-d", "--name", NAME, *_labels(), "busybox", "sleep", "300")
        shown = run(
            "from labkit.core import wait\n"
            f"wait.until(lambda: any(r.name == {NAME!r} and r.state == 'running' for r in board.rows.values()), 'row', timeout=2)\n"
            "print(sorted(t.name for t in threading.enumerate() if t.name.startswith('labkit-dashboard')))"
        )
        assert "labkit-dashboard-events" in shown and "labkit-dashboard-details" in shown
    finally:
        kc.stop_channels()
        t0 = time.monotonic()
        km.shutdown_kernel(now=False)  # a shutdown_request, as JupyterLab sends
        elapsed = time.monotonic() - t0
        subprocess.run(["docker", "rm", "-f", NAME], capture_output=True, check=False)
    assert not km.is_alive() and elapsed < 10
    with open(marker) as f:
        left = f.read()
    assert "labkit-dashboard" not in left, f"threads alive at exit: {left}"
