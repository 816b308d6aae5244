"""A learner's session, end to end: JupyterLab in Chromium on the student version of lesson 06.

It runs the lesson's cells through the UI (Shift+Enter, as a learner does), answers the
``stop.graceful`` exercise wrongly and then rightly, pressing the exercise panel's Check
button after each, watches the live dashboard follow a container started from a terminal,
and shuts the kernel down: nothing with the session's label, and no kernel process
(so no dashboard thread), may be left. Two more: every lesson picture renders in light and
dark themes, and ``python -m labkit.lab`` (what ``make lab`` runs) opens lesson 00 at start
and starts a Terminal in the learner's workspace, not in the checkout.

Screenshots and figures go to ``test-artifacts/`` (ignored by git).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from labkit.core import wait
from labkit.core.paths import REPO_DIR
from tests.e2e.conftest import _free_port, isolated_jupyter

pytestmark = [pytest.mark.docker, pytest.mark.slow]

NOTEBOOK = "06-stop-kill-start.ipynb"
ARTIFACTS = REPO_DIR / "test-artifacts"
#: The acceptance bound: a container started in a terminal shows in the dashboard within this many seconds.
SHOW_WITHIN = 2.0
#: A code cell may take this long (docker stop waits out a 3 s grace period in one of them).
CELL_TIMEOUT_MS = 60_000
#: Jupyter Server kills a kernel that has not exited this long after asking it to (shutdown_wait_time).
KERNEL_KILL_AFTER = 5.0
_COUNT = re.compile(r"^\[\d+\]:$")
#: What the terminal container runs: it exits at once on SIGTERM, so the dashboard's Stop is quick.
TERMINAL_SCRIPT = 'trap "exit 0" TERM; while :; do sleep 1 & wait $!; done'


def _docker(*args: str) -> str:
    """The docker CLI, as typed in a terminal: no labkit, no kernel in between."""
    done = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, f"docker {' '.join(args)}: {done.stderr}"
    return done.stdout.strip()


class Learner:
    """What a learner does in JupyterLab, through the page only."""

    def __init__(self, page: Any) -> None:
        self.page = page
        self.notebook = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook")

    def code_cell(self, text: str, nth: int = 0) -> Any:
        """The ``nth`` code cell whose source contains ``text``."""
        editor = self.page.locator(".cm-content", has_text=text)
        return self.notebook.locator(".jp-CodeCell").filter(has=editor).nth(nth)

    def pin(self, cell: Any) -> Any:
        """The same cell by its position, which stays when its source is retyped (no cell is added)."""
        index = cell.evaluate("(el) => [...el.parentElement.querySelectorAll(':scope > .jp-Cell')].indexOf(el)")
        assert index >= 0, "a notebook cell outside the notebook's cell list"
        return self.notebook.locator(".jp-Cell").nth(index)

    def wait_ready(self, cells: int) -> None:
        """The notebook shows all its ``cells`` and its kernel is connected and idle (status bar)."""
        self.page.wait_for_function(
            "n => document.querySelectorAll('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook .jp-Cell').length === n",
            arg=cells,
            timeout=CELL_TIMEOUT_MS,
        )
        # The toolbar's indicator says idle before the kernel's socket is up; the status bar waits for it.
        self.page.get_by_text(re.compile(r"\| Idle$")).wait_for(timeout=CELL_TIMEOUT_MS)

    def wait_idle(self) -> None:
        self.page.locator(
            '.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook-ExecutionIndicator[data-status="idle"]'
        ).wait_for(state="attached", timeout=CELL_TIMEOUT_MS)

    def _prompt(self, cell: Any) -> str:
        return str(cell.locator(".jp-InputArea-prompt").text_content() or "").strip()

    def run_active(self) -> None:
        """Shift+Enter on the active cell; for a code cell, wait until its new execution count shows."""
        active = self.notebook.locator(".jp-Cell.jp-mod-active")
        handle = active.element_handle()
        is_code = "jp-CodeCell" in (handle.get_attribute("class") or "")
        before = self._prompt(active) if is_code else ""
        self.page.keyboard.press("Shift+Enter")
        if is_code:
            # "[*]:" while it runs, then "[n]:" with a count it never had: no fixed sleep.
            self.page.wait_for_function(
                """([cell, before]) => {
                    const text = cell.querySelector('.jp-InputArea-prompt').textContent.trim();
                    return /^\\[\\d+\\]:$/.test(text) && text !== before;
                }""",
                arg=[handle, before],
                timeout=CELL_TIMEOUT_MS,
            )

    def select(self, cell: Any) -> None:
        """Make ``cell`` the active one, in command mode, as a click on its prompt does."""
        cell.locator(".jp-InputArea-prompt").click()

    def run(self, cell: Any) -> None:
        self.select(cell)
        self.run_active()

    def run_until(self, last: Any) -> int:
        """Shift+Enter from the first cell down to ``last`` (included); return how many cells ran."""
        self.select(self.notebook.locator(".jp-Cell").first)
        target = last.element_handle()
        ran = 0
        while True:
            at_target = (
                self.notebook.locator(".jp-Cell.jp-mod-active").element_handle().evaluate("(a, b) => a === b", target)
            )
            self.run_active()
            ran += 1
            if at_target:
                return ran

    def type_into(self, cell: Any, text: str) -> None:
        """Replace a cell's source by ``text``, typed key by key."""
        cell.locator(".cm-content").click()
        self.page.keyboard.press("Control+a")
        self.page.keyboard.type(text)


def _press(widget: Any, label: str) -> None:
    """Click the widget's button labelled exactly ``label``.

    Found by CSS, then scrolled to: JupyterLab skips rendering cells out of view
    (content-visibility), and role lookups treat what is not rendered as hidden.
    """
    button = widget.locator("button.widget-button", has_text=re.compile(rf"^\s*{re.escape(label)}\s*$"))
    button.scroll_into_view_if_needed()
    button.click()


def _verdict(panel: Any, status: str) -> Any:
    verdict = panel.locator(f'.labkit-check[data-status="{status}"]')
    verdict.wait_for(state="attached", timeout=CELL_TIMEOUT_MS)
    return verdict


def _kernel_pid(kernel_id: str) -> int:
    """The kernel's process, found by the connection file Jupyter passes it."""
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if f"kernel-{kernel_id}.json" in cmdline and "ipykernel" in cmdline:
            return int(proc.name)
    raise AssertionError(f"no process for kernel {kernel_id}")


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"  # a zombie has ended; only its parent has not collected it yet


def test_a_learner_solves_stop_graceful_and_watches_the_dashboard(lab: Any, browser: Any) -> None:
    started = time.monotonic()
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "e2e-failure.png").unlink(missing_ok=True)  # a failure's screenshot is this run's, or none
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.set_default_timeout(CELL_TIMEOUT_MS)
    try:
        figures = _learner_session(lab, page)
    except BaseException:
        # what the page showed when it went wrong, for the CI log's reader
        page.screenshot(path=str(ARTIFACTS / "e2e-failure.png"))
        raise
    figures["e2e_wall_s"] = round(time.monotonic() - started, 1)
    (ARTIFACTS / "e2e-figures.json").write_text(json.dumps(figures, indent=1) + "\n")
    print(json.dumps(figures))


def _learner_session(lab: Any, page: Any) -> dict[str, Any]:
    """The learner's steps and the assertions on what the page shows; returns the figures measured."""
    figures: dict[str, Any] = {}
    page.goto(lab.open_url(NOTEBOOK))
    me = Learner(page)
    me.wait_ready(len(json.loads((lab.root / NOTEBOOK).read_text())["cells"]))

    # ---- the lesson from the top, down to the exercise panel, one Shift+Enter at a time
    setup = me.code_cell('labkit.setup("stop.graceful")')
    before = me.code_cell('labkit.exercise("stop.graceful"', 0)
    figures["cells_run_through_ui"] = me.run_until(before)
    panel = before.locator(".labkit-exercise-panel")
    assert "still running" in _verdict(panel, "not yet").text_content()
    dashboard = me.code_cell("labkit.dashboard()").locator(".widget-vbox.labkit-dashboard")
    assert dashboard.locator("table.labkit-dashboard").count() == 1, "the dashboard cell ran and shows its table"

    # ---- a wrong answer: docker kill, then Check in the panel names the kill
    mine = me.pin(me.code_cell("# Exercise stop.graceful:"))
    me.type_into(mine, "%docker kill graceful")
    me.run_active()
    _press(panel, "Check")
    miss = panel.locator('.labkit-check[data-status="not yet"]', has_text="SIGKILL")
    miss.wait_for(state="attached")
    hint = miss.locator("div", has_text="Hint:")
    assert "docker kill" in hint.text_content(), f"the hint names the kill: {hint.text_content()}"
    assert hint.locator("code", has_text="docker kill").count() == 1, "backticks render as code, not as backticks"
    _press(panel, "Hint 1/3")
    panel.locator("button.widget-button", has_text="Hint 2/3").wait_for(state="attached")  # one tier per press
    assert panel.locator("ol.labkit-hints li").count() == 1
    assert panel.locator("button", has_text="solution").count() == 0, "student panels show no solution"
    panel.scroll_into_view_if_needed()
    page.screenshot(path=str(ARTIFACTS / "check-miss.png"))

    # ---- setup again, the right answer, Check: passed
    me.run(setup)
    me.type_into(mine, "%docker stop graceful")
    me.run_active()
    _press(panel, "Check")
    assert "exited with 143" in _verdict(panel, "passed").text_content()
    panel.scroll_into_view_if_needed()
    page.screenshot(path=str(ARTIFACTS / "check-passed.png"))
    after = me.code_cell('labkit.exercise("stop.graceful"', 1)
    me.run(after)
    _verdict(after.locator(".labkit-exercise-panel"), "passed")

    # ---- the dashboard follows a container started in a terminal
    dashboard.scroll_into_view_if_needed()
    name = f"e2e-{lab.session[-8:]}"
    t0 = time.monotonic()
    ident = _docker(
        "run", "-d", "--name", name, "--label", f"labkit.session={lab.session}", "busybox", "sh", "-c", TERMINAL_SCRIPT
    )
    returned = time.monotonic()
    row = dashboard.locator(f'tr[data-id="{ident[:12]}"]')
    page.wait_for_selector(
        f'table.labkit-dashboard tr[data-id="{ident[:12]}"][data-state="running"]', state="attached", timeout=10_000
    )
    shown = time.monotonic()
    figures["terminal_to_dashboard_s"] = round(shown - returned, 3)
    figures["terminal_command_and_dashboard_s"] = round(shown - t0, 3)
    assert shown - returned < SHOW_WITHIN, (
        f"the dashboard showed {name} {shown - returned:.2f} s after docker run returned"
    )
    dashboard.locator("select").select_option(label=f"{name} (running)")
    dashboard.locator('svg.labkit-lifecycle g[data-state="running"][data-current="true"]').wait_for(state="attached")
    dashboard.screenshot(path=str(ARTIFACTS / "dashboard-running.png"))

    _press(dashboard, "Stop")
    dashboard.locator(f'tr[data-id="{ident[:12]}"][data-state="exited"]').wait_for(state="attached")
    assert _docker("inspect", "--format", "{{.State.Status}}", name) == "exited"
    _press(dashboard, "Remove")  # made with this session's label: no second press
    row.wait_for(state="detached")
    dashboard.locator('svg.labkit-lifecycle g[data-state="removed"][data-current="true"]').wait_for(state="attached")
    assert not _docker("ps", "-aq", "--filter", f"name=^{name}$")

    # ---- the lesson's closing cells, then the dashboard open once more (a re-run cell must work)
    me.run(me.code_cell("labkit.dashboard.close_all()"))
    assert dashboard.count() == 0, "closing the dashboard removes its panel"
    me.run(me.code_cell('labkit.reset(lesson="06")'))
    me.run(me.code_cell("labkit.dashboard()"))
    me.code_cell("labkit.dashboard()").locator("table.labkit-dashboard").wait_for(state="attached")
    me.wait_idle()

    # ---- shut the kernel down with a dashboard open: its threads must not hold it up
    (session,) = [s for s in lab.api("GET", "/api/sessions") if s["path"].endswith(NOTEBOOK)]
    pid = _kernel_pid(session["kernel"]["id"])
    t_down = time.monotonic()
    lab.api("DELETE", f"/api/kernels/{session['kernel']['id']}")
    wait.until(lambda: not _alive(pid), f"kernel process {pid} to end", timeout=30, interval=0.05)
    figures["kernel_shutdown_s"] = round(time.monotonic() - t_down, 3)
    assert figures["kernel_shutdown_s"] < KERNEL_KILL_AFTER, (
        "the kernel exited by itself, before Jupyter's kill deadline"
    )
    left = _docker("ps", "-aq", "--filter", f"label=labkit.session={lab.session}")
    assert not left, f"containers left with the kernel's session label: {left}"
    return figures


#: Every lesson picture and a notebook that shows it (rendered Markdown, no kernel needed).
PICTURES = {
    "vm-vs-container.svg": "01-vm-vs-container.ipynb",
    "image-layers.svg": "02-images-and-layers.ipynb",
    "image-name.svg": "03-registries.ipynb",
    "pull-flow.svg": "04-client-daemon-api.ipynb",
    "port-publishing.svg": "05-running-containers.ipynb",
    "container-states.svg": "06-stop-kill-start.ipynb",
    "bind-mount.svg": "09-bind-mounts.ipynb",
}


def test_the_lesson_pictures_render_in_jupyterlab(lab: Any, browser: Any) -> None:
    """Each diagram loads from the learner's workspace and draws at a readable size, in light and dark themes."""
    ARTIFACTS.mkdir(exist_ok=True)
    shipped = {p.name for p in (REPO_DIR / "notebooks" / "img").glob("*.svg")}
    assert shipped == set(PICTURES), "every picture is shown by a lesson, and this test knows it"
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    try:
        for theme in ("light", "dark"):
            for picture, notebook in PICTURES.items():
                page.goto(lab.open_url(notebook))
                image = page.locator(f'.jp-RenderedMarkdown img[src*="{picture}"]').first
                image.wait_for(state="attached", timeout=CELL_TIMEOUT_MS)
                light = "true" if theme == "light" else "false"
                page.wait_for_function(
                    "light => document.body.dataset.jpThemeLight === light", arg=light, timeout=CELL_TIMEOUT_MS
                )
                image.scroll_into_view_if_needed()
                page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=image.element_handle())
                box = image.bounding_box()
                assert box is not None and box.get("width", 0) >= 400, f"{picture} drew at {box}"
                image.screenshot(path=str(ARTIFACTS / f"picture-{theme}-{picture.removesuffix('.svg')}.png"))
            if theme == "light":
                # The dark theme, as a learner picks it in Settings: the user setting JupyterLab reads on load.
                themes = Path(lab.env["JUPYTERLAB_SETTINGS_DIR"]) / "@jupyterlab" / "apputils-extension"
                themes.mkdir(parents=True, exist_ok=True)
                (themes / "themes.jupyterlab-settings").write_text(json.dumps({"theme": "JupyterLab Dark"}))

    finally:
        page.close()


def test_make_lab_opens_the_first_lesson_and_a_terminal_in_the_workspace(tmp_path: Path, browser: Any) -> None:
    """``python -m labkit.lab``, as ``make lab`` runs it: lesson 00 opens at start, and a Terminal starts in the workspace."""
    workspace, port, token = tmp_path / "work", _free_port(), "e2e-" + str(time.time_ns())
    env = {
        **os.environ,
        "JUPYTER_TOKEN": token,  # Jupyter Server's own way to take a token; labkit.lab passes no --token
        "LABKIT_STATE_DIR": str(tmp_path / "state"),
        **isolated_jupyter(tmp_path),
    }
    ARTIFACTS.mkdir(exist_ok=True)
    log = tmp_path / "lab.log"
    with log.open("wb") as sink:
        # Started from the checkout, as `make lab` is: the Terminal must still open in the workspace.
        server = subprocess.Popen(
            [sys.executable, "-m", "labkit.lab", "--workspace", str(workspace), "--port", str(port)],
            cwd=REPO_DIR, env=env, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    page = None
    try:

        def answers() -> bool:
            assert server.poll() is None, f"labkit.lab exited with {server.returncode}:\n{log.read_text()[-2000:]}"
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/status?token={token}", timeout=5):
                    return True
            except OSError:
                return False

        wait.until(answers, "JupyterLab started by labkit.lab", timeout=60, interval=0.2)
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.goto(f"http://127.0.0.1:{port}/?token={token}")  # the root, as a learner's first click goes
        page.wait_for_url(re.compile(r"/lab/tree/00-welcome\.ipynb"), timeout=CELL_TIMEOUT_MS)
        page.locator(".lm-TabBar-tab.lm-mod-current", has_text="00-welcome.ipynb").wait_for(timeout=CELL_TIMEOUT_MS)
        page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Cell").first.wait_for(timeout=CELL_TIMEOUT_MS)
        page.screenshot(path=str(ARTIFACTS / "make-lab-first-lesson.png"))

        # File > New > Terminal, as a learner opens one.
        page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^File$")).click()
        page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^New$")).first.hover()
        page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Terminal$")).first.click()
        terminal = page.locator(".jp-Terminal:not(.lm-mod-hidden) .xterm")
        terminal.wait_for(timeout=CELL_TIMEOUT_MS)
        terminal.click()
        # The terminal draws on a canvas; what it ran is read back from a file it writes.
        where = tmp_path / "where.txt"
        page.keyboard.type(f"pwd > {where}\n")
        wait.until(lambda: where.is_file() and where.read_text().strip(), "the Terminal to run pwd", timeout=30)
        assert where.read_text().strip() == str(workspace.resolve())
        page.screenshot(path=str(ARTIFACTS / "make-lab-terminal.png"))
    finally:
        if page is not None:
            page.close()
        server.terminate()  # Jupyter Server ends its kernels and terminals on SIGTERM
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=10)
