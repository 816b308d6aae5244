"""Lessons 06-10, the notebook widgets and the classroom page speak Chinese under LABKIT_LANG=zh_CN.

English stays the source: the same calls with no LABKIT_LANG (or ``en``) give the English
the other unit tests compare byte for byte.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from importlib import resources

import pytest

from labkit.classroom import view
from labkit.core import i18n
from labkit.exercises import _lesson06_signals as signals
from labkit.exercises import _lesson06_stopped as stopped
from labkit.exercises import _lesson08_attach as attach
from labkit.exercises import _lesson10_load as load
from labkit.exercises import lesson08_interactive_and_exec as lesson08
from labkit.exercises.machinery.catalog import all_exercises
from labkit.notebook.dashboard.model import Row, status_text
from labkit.notebook.dashboard.render import state_diagram_svg, table_html
from labkit.notebook.widgets import HintSteps

CJK = re.compile(r"[\u4e00-\u9fff]")
LESSONS = ("06", "07", "08", "09", "10")


@pytest.fixture
def zh(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LABKIT_LANG", "zh_CN")


@pytest.fixture
def en(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LABKIT_LANG", "en")


def chinese(text: str) -> bool:
    return bool(CJK.search(text))


EXERCISES = [e for e in all_exercises() if e.lesson in LESSONS]


def test_lessons_06_to_10_have_exercises() -> None:
    assert {e.lesson for e in EXERCISES} == set(LESSONS), [e.id for e in EXERCISES]


@pytest.mark.parametrize("exercise", EXERCISES, ids=lambda e: e.id)
def test_title_prompt_and_every_hint_are_translated(zh: None, exercise) -> None:
    for what, english in [("title", exercise.title), ("prompt", exercise.prompt)] + [
        (f"hint {n}", h) for n, h in enumerate(exercise.hints, 1)
    ]:
        translated = i18n._(english)
        assert translated != english and chinese(translated), f"{exercise.id} {what} is not translated: {english!r}"


def test_kill_verdicts_in_chinese_and_in_english(monkeypatch: pytest.MonkeyPatch) -> None:
    running = signals.Life(exists=True, ours=True, status="running")
    monkeypatch.setenv("LABKIT_LANG", "zh_CN")
    verdict = signals.kill_verdict(running)
    assert verdict.message == "holdout 仍在运行。"
    assert verdict.hint is not None and "`docker logs holdout`" in verdict.hint and chinese(verdict.hint)
    gone = signals.kill_verdict(signals.Life(exists=False, removed="stopped"))
    assert "`docker rm -f`" in gone.message and chinese(gone.message)
    assert gone.hint is not None and 'labkit.setup("kill.now")' in gone.hint and chinese(gone.hint)
    monkeypatch.setenv("LABKIT_LANG", "en")
    assert signals.kill_verdict(running).message == "holdout is still running."


def test_a_stop_that_waited_names_its_wait_in_chinese(zh: None) -> None:
    events = (
        signals.Event("create", None, 0.0),
        signals.Event("start", None, 1.0),
        signals.Event("kill", 15, 2.0),
        signals.Event("kill", 9, 12.0),
        signals.Event("stop", None, 12.1),
    )
    life = signals.Life(exists=True, ours=True, status="exited", exit_code=137, events=events)
    verdict = signals.kill_verdict(life)
    assert "，等待了 10 秒" in verdict.message and "`docker stop`" in verdict.message, verdict.message


def test_start_again_verdict_in_chinese(zh: None) -> None:
    verdict = stopped.start_verdict(stopped.StartFacts(exists=True, same=True, status="running", runs=2), "abc123")
    assert verdict.passed
    assert (
        verdict.message == "napper 又运行起来了：还是同一个容器（ID abc123），保留着它的文件和设置，总共启动了 2 次。"
    )


def test_attach_verdict_in_chinese(zh: None) -> None:
    verdict = attach.attach_verdict(attach.AttachFacts(exists=False))
    assert chinese(verdict.message) and "hangout" in verdict.message
    assert verdict.hint is not None and verdict.hint.startswith('再运行一次 `labkit.setup("attach.detach")`')


def test_exec_and_base64_verdicts_in_chinese(zh: None) -> None:
    empty = lesson08.file_verdict(lesson08.FileFacts(exists=True, status="running", kind="file", content=b"", size=0))
    assert empty.message == "sandbox 中的 /root/hello.txt存在，但是空的。"
    newline = lesson08.base64_verdict("bXktc2VjcmV0Cg==")
    assert newline.message == "bXktc2VjcmV0Cg== 是 my-secret 加上一个换行符后的 base64 编码。"
    assert lesson08.base64_verdict("bXktc2VjcmV0").passed


def test_load_verdict_in_chinese(zh: None) -> None:
    verdict = load.load_verdict(load.LoadFacts(present=None, archive=False), "0123456789ab", "/tmp/cargo.tar")
    assert chinese(verdict.message) and "/tmp/cargo.tar" in verdict.message, verdict.message


def test_hint_button_labels(zh: None) -> None:
    assert (HintSteps(3).label(), HintSteps(3, 3).label(), HintSteps(0).label()) == (
        "提示 1/3",
        "3 条提示已全部显示",
        "没有提示",
    )


def test_exercise_panel_html_in_chinese(zh: None) -> None:
    from labkit.notebook.widgets import ExercisePanel

    panel = ExercisePanel("stop.graceful", check_now=False)
    try:
        page = panel._repr_mimebundle_()["text/html"]
        assert "<b>优雅地停止一个容器</b>" in page and "<code>stop.graceful</code>" in page, page
        assert "让它通过自己的 SIGTERM 处理程序退出" in page
        assert (panel.check_button.description, panel.hint_button.description) == ("检查", "提示 1/3")
        assert panel.solution_button is not None and panel.solution_button.description == "显示参考答案"
    finally:
        panel.close()


def test_exercise_panel_html_in_english(en: None) -> None:
    from labkit.notebook.widgets import ExercisePanel

    panel = ExercisePanel("stop.graceful", check_now=False)
    try:
        assert "<b>Stop a container gracefully</b>" in panel._repr_mimebundle_()["text/html"]
        assert panel.check_button.description == "Check"
    finally:
        panel.close()


def test_dashboard_labels_in_chinese(zh: None) -> None:
    now = datetime(2024, 5, 1, 10, 0, 42, tzinfo=UTC)
    row = Row("c" * 64, "web", "nginx", "running", started_at=now.replace(second=0))
    table = table_html([row], now, stopping={row.id})
    for word in ("名称", "镜像", "状态", "端口", "● 运行中", "（正在停止…）"):
        assert word in table, table
    assert 'data-state="running"' in table  # Docker's word stays the data
    assert status_text(row, now).startswith("已运行 ")
    assert "没有容器" in table_html([], now)
    svg = state_diagram_svg("running", "web")
    assert "web: 运行中" in svg and 'data-state="running" data-current="true"' in svg


def test_dashboard_labels_in_english(en: None) -> None:
    now = datetime(2024, 5, 1, 10, 0, 42, tzinfo=UTC)
    row = Row("c" * 64, "web", "nginx", "exited", exit_code=0, finished_at=now.replace(second=0))
    assert status_text(row, now) == "exited (0) 42 s ago"
    assert "● exited" in table_html([row], now)


# --- the classroom page ------------------------------------------------------------------------

INDEX = resources.files("labkit.classroom").joinpath("static", "index.html").read_bytes()
APP = resources.files("labkit.classroom").joinpath("static", "app.js").read_text()


def _page_json(page: bytes) -> dict[str, str]:
    found = re.search(rb'<script id="labkit-text" type="application/json">(.*?)</script>', page, re.S)
    assert found, page[:400]
    data: dict[str, str] = json.loads(found.group(1))
    return data


def test_classroom_page_carries_its_sentences_in_chinese(zh: None) -> None:
    text = _page_json(view.page_html(INDEX))
    assert text["lang"] == "zh-CN"
    assert text["download"] == "下载成绩册（CSV）"
    assert text["learner"] == "学员"
    assert all(chinese(v) for k, v in text.items() if k not in ("lang", "rule")), text
    assert "{n}" in text["legend"] and "{command}" in text["empty"]


def test_classroom_page_in_english_is_the_source(en: None) -> None:
    text = _page_json(view.page_html(INDEX))
    assert text["lang"] == "en"
    assert {k: v for k, v in text.items() if k in view.PAGE_TEXT} == view.PAGE_TEXT
    assert text["stuck_rule"] == view.STUCK_RULE


def test_a_translation_cannot_end_the_script_element(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(view, "page_text", lambda: {"title": "</script><script>alert(1)</script>"})
    page = view.page_html(INDEX)
    assert page.count(b"</script>") == INDEX.count(b"</script>")
    assert _page_json(page)["title"] == "</script><script>alert(1)</script>"


def test_app_js_uses_only_sentences_of_page_text() -> None:
    """Every key app.js reads exists in PAGE_TEXT, and its English fallback is PAGE_TEXT's English."""
    used = set(re.findall(r'\bt\(\s*"(\w+)"', APP)) | set(re.findall(r'"(\w+)" : "(?:\w+)"', APP))
    used |= {k for pair in re.findall(r'\? "(\w+)" : "(\w+)"', APP) for k in pair}
    used |= set(re.findall(r'data-text="(\w+)"', INDEX.decode()))
    assert used and used <= set(view.PAGE_TEXT), used - set(view.PAGE_TEXT)
    fallback = re.search(r"const TEXT = Object\.assign\(\{(.*?)\}, JSON\.parse", APP, re.S)
    assert fallback
    pairs = dict(re.findall(r'(\w+): "((?:[^"\\]|\\.)*)"', fallback.group(1)))
    for key, english in pairs.items():
        assert view.PAGE_TEXT[key] == english, key
