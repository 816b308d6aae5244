"""The Chinese edition, end to end: ``LABKIT_LANG=zh_CN make lab`` in Chromium.

``python -m labkit.lab`` (what ``make lab`` runs) with ``LABKIT_LANG=zh_CN``: JupyterLab opens the
Chinese ``00-welcome.ipynb`` at start, its own interface in Chinese (menus from the
``jupyterlab-language-pack-zh-cn`` package, chosen by the lab's settings), and the lesson's exercise
panel, run through the UI, speaks Chinese: its buttons (Check, Hint) and the verdict Check gives.
Only the lesson's first cell (``labkit.begin``) and the panel's cell run: no image is pulled or
removed. The screenshot is ``test-artifacts/zh-lesson-check-panel.png``.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from labkit.core import wait
from labkit.core.paths import REPO_DIR
from tests.e2e.conftest import _free_port, isolated_jupyter, need
from tests.e2e.test_lab_e2e import ARTIFACTS, CELL_TIMEOUT_MS, Learner, _press

pytestmark = [pytest.mark.docker, pytest.mark.slow]

LESSON = "00-welcome.ipynb"
EXERCISE = "welcome.first-container"
CJK = re.compile(r"[\u4e00-\u9fff]")


def test_a_chinese_lesson_and_its_check_panel_in_chinese_jupyterlab(tmp_path: Path, browser: Any) -> None:
    fonts = subprocess.run(["fc-list", ":lang=zh", "family"], capture_output=True, text=True, check=False).stdout
    if not fonts.strip():  # without one, Chromium draws every Chinese character as a box in the screenshot
        need("a Chinese font for Chromium (scripts/provision-docker installs fonts-wqy-microhei)")
    if not (REPO_DIR / "notebooks" / "zh_CN" / LESSON).exists():
        pytest.fail(f"notebooks/zh_CN/{LESSON} is missing: the Chinese lessons are not translated yet")
    workspace, port, token = tmp_path / "work", _free_port(), "e2e-zh-" + secrets.token_hex(8)
    session = f"e2e-zh-{secrets.token_hex(4)}"
    env = {
        **os.environ,
        "LABKIT_LANG": "zh_CN",
        "JUPYTER_TOKEN": token,
        "LABKIT_SESSION": session,
        "LABKIT_STATE_DIR": str(tmp_path / "state"),
        "LABKIT_WORKSPACE": str(workspace),
        **isolated_jupyter(tmp_path),
    }
    ARTIFACTS.mkdir(exist_ok=True)
    log = tmp_path / "lab.log"
    with log.open("wb") as sink:
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

        wait.until(answers, "JupyterLab started by labkit.lab in Chinese", timeout=60, interval=0.2)
        assert "工作区" in log.read_text(), "labkit.lab itself spoke Chinese"
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(CELL_TIMEOUT_MS)
        page.goto(f"http://127.0.0.1:{port}/?token={token}")
        page.wait_for_url(re.compile(rf"/lab/tree/{re.escape(LESSON)}"))

        # JupyterLab's own interface: the menu bar's File and Kernel menus, in Chinese.
        page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^文件$")).wait_for()
        page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^内核$")).wait_for()
        assert page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^File$")).count() == 0

        me = Learner(page)
        cells = len(json.loads((workspace / LESSON).read_text())["cells"])
        page.wait_for_function(
            "n => document.querySelectorAll('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook .jp-Cell').length === n",
            arg=cells,
        )
        assert CJK.search(me.notebook.locator(".jp-MarkdownCell").first.text_content() or ""), "the lesson is Chinese"
        me.wait_idle()

        me.run(me.code_cell('labkit.begin("00")'))
        holder = me.code_cell(f'labkit.exercise("{EXERCISE}"', 0)
        me.run(holder)
        panel = holder.locator(".labkit-exercise-panel")
        panel.wait_for(state="attached")
        labels = [t.strip() for t in panel.locator("button.widget-button").all_text_contents() if t.strip()]
        assert labels and all(CJK.search(label) for label in labels), f"the panel's buttons: {labels}"
        check = labels[0]  # Check comes first, then Hint
        _press(panel, check)
        verdict = panel.locator(".labkit-check[data-status]").last
        verdict.wait_for(state="attached")
        assert CJK.search(verdict.text_content() or ""), f"the verdict: {verdict.text_content()}"
        panel.scroll_into_view_if_needed()
        page.screenshot(path=str(ARTIFACTS / "zh-lesson-check-panel.png"))
    except BaseException:
        if page is not None:
            page.screenshot(path=str(ARTIFACTS / "zh-e2e-failure.png"))
        raise
    finally:
        if page is not None:
            page.close()
        server.terminate()  # Jupyter Server ends its kernels on SIGTERM
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=10)
        leftover = subprocess.run(
            ["docker", "ps", "-aq", "--filter", f"label=labkit.session={session}"],
            capture_output=True, text=True, check=False,
        ).stdout.split()  # fmt: skip
        if leftover:
            subprocess.run(["docker", "rm", "-f", *leftover], capture_output=True, check=False)
