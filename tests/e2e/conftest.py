"""End-to-end fixtures: a real JupyterLab on the student notebooks, and Debian's Chromium driven by playwright.

Policy: in CI (``CI`` set) a missing Chromium or playwright FAILS; on a developer
machine without them the test is skipped with the reason. Never ``playwright
install`` (it downloads a browser, which cannot work offline): provisioning
installs Debian's ``chromium`` package and PyPI's ``playwright`` drives it.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from labkit.core import wait

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
#: JupyterLab and its first kernel start in a few seconds; a loaded CI machine gets room.
LAB_START_TIMEOUT = 60.0


def need(what: str) -> None:
    """Skip without ``what`` on a developer machine; fail in CI, which must never skip the browser test."""
    reason = f"the end-to-end test needs {what}"
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI must not skip it)")
    pytest.skip(reason)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Lab:
    """A running ``jupyter lab`` on a throwaway workspace, with its own labkit session."""

    root: Path
    port: int
    token: str
    session: str
    env: dict[str, str]
    log: Path
    process: subprocess.Popen[bytes] | None = None
    figures: dict[str, Any] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def open_url(self, notebook: str) -> str:
        return f"{self.url}/lab/tree/{notebook}?token={self.token}"

    def api(self, method: str, path: str) -> Any:
        """One call to Jupyter Server's REST API; the parsed JSON (``None`` for an empty body)."""
        request = urllib.request.Request(
            f"{self.url}{path}", method=method, headers={"Authorization": f"token {self.token}"}
        )
        with urllib.request.urlopen(request, timeout=30) as response:  # our own local server
            body = response.read()
        return json.loads(body) if body else None

    def answers(self) -> bool:
        try:
            return self.api("GET", "/api/status") is not None
        except (urllib.error.URLError, OSError):
            if self.process is not None and self.process.poll() is not None:
                raise AssertionError(f"jupyter lab exited with {self.process.returncode}:\n{self.log_tail()}") from None
            return False

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        """End the server by its pid: SIGTERM (it shuts its kernels down), then SIGKILL if it hangs."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def _quiet_settings(settings: Path) -> None:
    # No news or update toasts over the notebook: they would need the internet, and cover buttons.
    notification = settings / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
    notification.parent.mkdir(parents=True, exist_ok=True)
    notification.write_text(json.dumps({"fetchNews": "false", "checkForUpdates": False}))


def isolated_jupyter(tmp_path: Path) -> dict[str, str]:
    """Environment variables that keep Jupyter away from the machine's own setup (layouts, settings,
    config), with news and update toasts off in the settings folder they name."""
    _quiet_settings(tmp_path / "lab-settings")
    return {
        "JUPYTER_CONFIG_DIR": str(tmp_path / "jupyter-config"),
        "JUPYTER_RUNTIME_DIR": str(tmp_path / "jupyter-runtime"),
        "JUPYTERLAB_SETTINGS_DIR": str(tmp_path / "lab-settings"),
        "JUPYTERLAB_WORKSPACES_DIR": str(tmp_path / "lab-workspaces"),
        "IPYTHONDIR": str(tmp_path / "ipython"),
    }


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    """JupyterLab on the student notebooks, as ``make lab`` gives them to a learner, in a throwaway workspace."""
    workspace = tmp_path / "work"
    session = f"e2e-{secrets.token_hex(4)}"
    env = {
        **os.environ,
        # The kernel's labels, answers and exercise folders: throwaway, and its own session,
        # so the test can tell exactly what the kernel left behind.
        "LABKIT_SESSION": session,
        "LABKIT_STATE_DIR": str(tmp_path / "state"),
        "LABKIT_WORKSPACE": str(workspace),
        **isolated_jupyter(tmp_path),
    }
    # The learner's path: `make lab` releases the student notebooks into the workspace.
    prepared = subprocess.run(
        [sys.executable, "-m", "labkit.lab", "--no-start", "--workspace", str(workspace)],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert prepared.returncode == 0, prepared.stderr
    lab = Lab(
        root=workspace,
        port=_free_port(),
        token=secrets.token_hex(16),
        session=session,
        env=env,
        log=tmp_path / "jupyter.log",
    )
    command = [
        sys.executable, "-m", "jupyter", "lab", "--no-browser", f"--port={lab.port}", "--ip=127.0.0.1",
        f"--ServerApp.token={lab.token}", f"--ServerApp.root_dir={workspace}", "--allow-root",
    ]  # fmt: skip
    with lab.log.open("wb") as log:
        lab.process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=workspace)
    try:
        wait.until(lab.answers, "JupyterLab to answer", timeout=LAB_START_TIMEOUT, interval=0.2)
        yield lab
    finally:
        lab.stop()
        # Whatever the test left with this session's label, whatever happened to the kernel.
        leftover = subprocess.run(
            ["docker", "ps", "-aq", "--filter", f"label=labkit.session={session}"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.split()
        if leftover:
            subprocess.run(["docker", "rm", "-f", *leftover], capture_output=True, check=False)


@pytest.fixture
def browser() -> Iterator[Any]:
    """Debian's Chromium, headless, driven by PyPI playwright."""
    if not Path(CHROMIUM).exists():
        need(f"Debian's chromium at {CHROMIUM} (apt-get install -y chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        need("PyPI playwright (pip install playwright; never `playwright install`)")
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()
