"""The instructor's page, once, in headless Chromium (Debian's /usr/bin/chromium driven by PyPI playwright).

Policy: in CI (``CI`` set) a missing Chromium or playwright FAILS the test; on a
developer machine without them it is skipped with the reason. Never run
``playwright install``: provisioning installs Debian's ``chromium`` package.
"""

from __future__ import annotations

import os
import signal
import time
import uuid
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"


def _need(what: str) -> None:
    reason = f"the page test needs {what}"
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI must not skip it)")
    pytest.skip(reason)


def _server(tmp_path: Path):  # type: ignore[no-untyped-def]
    # The same real-process helper as the API tests (tests/integration is on sys.path under pytest).
    from test_classroom import Server

    return Server(tmp_path / "classroom.db")


def _event(learner: str, passed: bool) -> dict[str, object]:
    from labkit.core.fmt import utc_now as now

    return {
        "v": 1, "id": uuid.uuid4().hex, "kind": "check", "learner": learner, "exercise": "welcome.first-container",
        "lesson": "00", "passed": passed, "status": "passed" if passed else "not yet", "message": "m",
        "hint": None, "hint_level": 0, "at": now(), "labkit": "test",
    }  # fmt: skip


def test_grid_updates_live_in_chromium(tmp_path: Path) -> None:
    if not Path(CHROMIUM).exists():
        _need(f"Debian's chromium at {CHROMIUM} (apt-get install -y chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _need("PyPI playwright (pip install playwright; never `playwright install`)")
    srv = _server(tmp_path)
    try:
        srv.start()
        key = srv.join("ada")
        srv.join("grace")
        with sync_playwright() as p:
            browser = p.chromium.launch(
                executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
            )
            try:
                page = browser.new_page(viewport={"width": 1400, "height": 500})
                page.goto(f"{srv.url}/?token={srv.instructor_token}")
                page.wait_for_function(
                    "() => document.getElementById('connection').textContent === 'live'", timeout=10000
                )
                assert "token=" not in page.url  # dropped from the address bar; the cookie keeps the session
                cell = page.locator('td[data-learner="ada"][data-exercise="welcome.first-container"]')
                assert "not started" in cell.inner_text()
                assert page.locator('th[scope="row"]').all_inner_texts() == ["ada", "grace"]

                # Three failing checks: "not yet" with the count, and stuck (in text, not colour only).
                for _ in range(3):
                    assert (
                        srv.request("POST", "/api/events", _event("ada", False), token=srv.join_token, key=key)[0]
                        == 200
                    )
                page.wait_for_function(
                    """() => document.querySelector('td[data-learner="ada"][data-exercise="welcome.first-container"]')
                              .textContent.includes('⚠ ✗ 3')""",
                    timeout=2000,
                )
                assert "stuck" in cell.inner_text()

                started = time.perf_counter()
                assert srv.request("POST", "/api/events", _event("ada", True), token=srv.join_token, key=key)[0] == 200
                page.wait_for_function(
                    """() => document.querySelector('td[data-learner="ada"][data-exercise="welcome.first-container"]')
                              .textContent.includes('✔ 4')""",
                    timeout=2000,
                )
                latency = time.perf_counter() - started
                assert "passed, 4 checks" in cell.inner_text()
                assert page.locator("#announce").inner_text() == "ada checked welcome.first-container: passed"
                ARTIFACTS.mkdir(exist_ok=True)
                page.screenshot(path=str(ARTIFACTS / "classroom-page.png"), full_page=True)

                # A reload keeps working without the token in the address (cookie), and shows the same grid.
                page.reload()
                page.wait_for_function(
                    "() => document.getElementById('connection').textContent === 'live'", timeout=10000
                )
                assert "✔ 4" in cell.inner_text()
                csv = page.request.get(f"{srv.url}/api/gradebook.csv")
                assert csv.status == 200 and "ada,1" in csv.text()
            finally:
                browser.close()
        from test_classroom import _record_figure

        _record_figure("post_to_chromium_cell_s", round(latency, 3))
    finally:
        srv.stop(signal.SIGTERM)
