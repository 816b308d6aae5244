"""Lessons 00–05 and the exercise machinery in Simplified Chinese (issue 14), English untouched.

Pure: no daemon. Every title, prompt and hint tier of lessons 00–05 has a Chinese translation
in the catalogs; near-miss verdicts decided from sample facts, hints and check results render
in Chinese under ``LABKIT_LANG=zh_CN`` and exactly as before in English.
"""

from __future__ import annotations

import re
import string

import pytest
from babel.messages.pofile import read_po

from labkit.core import i18n
from labkit.exercises import all_exercises, get
from labkit.exercises._lesson02_images import ListFacts, PruneFacts, list_verdict, prune_verdict
from labkit.exercises._lesson03_verdicts import (
    DigestFacts,
    PullEvents,
    PullFacts,
    PushFacts,
    digest_verdict,
    pull_verdict,
    push_verdict,
)
from labkit.exercises.lesson01_vm_vs_container import kernel_verdict
from labkit.exercises.lesson05_running_containers import describe_bindings, port_verdict
from labkit.exercises.machinery.model import CheckResult, Text, shown
from labkit.exercises.machinery.runner import hint

CJK = re.compile(r"[\u4e00-\u9fff]")
LESSONS = ("00", "01", "02", "03", "04", "05")
CATALOGS = ("machinery.po", *(f"lesson{n}.po" for n in LESSONS))
EXERCISES = [e for e in all_exercises() if e.lesson in LESSONS]


@pytest.fixture
def zh(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LABKIT_LANG", "zh_CN")


@pytest.fixture
def en(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LABKIT_LANG", "en")


def _chinese(english: str, translated: str) -> None:
    assert translated != english, f"not translated: {english!r}"
    assert CJK.search(translated), f"no Chinese in {translated!r}"


def test_lessons_00_to_05_all_have_exercises() -> None:
    assert {e.lesson for e in EXERCISES} == set(LESSONS)


@pytest.mark.parametrize("exercise", EXERCISES, ids=lambda e: e.id)
def test_title_prompt_and_every_hint_are_translated(exercise, zh) -> None:
    for text in (exercise.title, exercise.prompt, *exercise.hints):
        _chinese(text, shown(text))


@pytest.mark.parametrize("exercise", EXERCISES, ids=lambda e: e.id)
def test_english_is_the_source_itself(exercise, en) -> None:
    for text in (exercise.title, exercise.prompt, *exercise.hints):
        assert shown(text) == text


@pytest.mark.parametrize("name", CATALOGS)
def test_catalogs_are_complete_with_the_same_placeholders(name: str) -> None:
    path = i18n.LOCALE_DIR / "zh_CN" / "LC_MESSAGES" / name
    with path.open("rb") as f:
        catalog = read_po(f, locale="zh_CN")
    entries = [m for m in catalog if m.id]
    assert entries
    for message in entries:
        ids = message.id if isinstance(message.id, tuple) else (message.id,)
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        assert not message.fuzzy and all(strings), ids[0]
        for source in ids:
            assert _fields(source) == _fields(strings[0]), source


def _fields(text: str) -> set[str]:
    return {f[1] for f in string.Formatter().parse(text) if f[1] is not None}


def test_a_path_hint_is_translated_whole_with_its_path(zh) -> None:
    folder_hint = get("layers.build").hints[1]
    assert isinstance(folder_hint, Text)
    assert shown(folder_hint).endswith(f"这里的文件夹是 {folder_hint.values['folder']}。")


# --- near misses, from sample facts -----------------------------------------------------------


def test_kernel_near_miss_in_chinese_and_english(monkeypatch: pytest.MonkeyPatch) -> None:
    def verdict():
        return kernel_verdict("Linux box 6.1.0-9-amd64 #1 SMP", "6.1.0-9-amd64", [], set(), "6.1.0-9-amd64")

    monkeypatch.setenv("LABKIT_LANG", "en")
    english = verdict()
    assert english.message == (
        "Your answer contains the right kernel release, and more: it looks like a whole `uname -a` line."
    )
    monkeypatch.setenv("LABKIT_LANG", "zh_CN")
    chinese = verdict()
    assert not chinese.passed
    assert chinese.message == "你的答案包含了正确的内核版本，但还多了别的内容：看起来是一整行 `uname -a` 的输出。"
    assert "`uname -r`" in (chinese.hint or "")


def test_a_wrong_kernel_keeps_the_answer_and_its_quotes(zh) -> None:
    verdict = kernel_verdict("nope", "6.1.0-9-amd64", [], set(), "6.1.0-9-amd64")
    assert verdict.message.startswith("'nope' 看起来不像内核版本")


def test_push_near_miss_names_the_tag(zh) -> None:
    verdict = push_verdict(PushFacts(source_id="sha256:" + "a" * 64, other_tags=("latest",)))
    assert verdict.message == "镜像仓库中有 lab/hello-dock，但标签是 :latest，不是 :v1。"
    assert verdict.hint is not None and verdict.hint.startswith("不写标签时，docker 使用 :latest。")


def test_digest_near_misses(zh) -> None:
    manifest = "sha256:" + "b" * 64
    facts = DigestFacts(manifest=manifest, config="sha256:" + "c" * 64)
    short = digest_verdict("b" * 12, facts)
    assert short.message == "这是正确摘要的开头部分（64 位十六进制数字中的 12 位）。"
    assert "镜像 ID" in digest_verdict("sha256:" + "c" * 64, facts).message
    right = digest_verdict(manifest, facts)
    assert right.passed and right.message == f"{manifest} 是镜像仓库中 lab/hello-dock:v1 的清单摘要。"


def test_pull_untagged_only_near_miss(zh) -> None:
    facts = PullFacts(
        name="localhost:5000/lab03/pull-me:v2",
        tag="v2",
        made={"v2": "sha256:a"},
        present={"v2": "sha256:a"},
        events=PullEvents(untagged=frozenset({"v2"})),
        other_names=("mine:1",),
    )
    verdict = pull_verdict(facts)
    assert verdict.message == (
        "删除 localhost:5000/lab03/pull-me:v2 只是去掉了一个名称：这个镜像还有另一个名称（mine:1），所以它仍然留着。"
    )


def test_list_and_prune_near_misses_count_in_chinese(zh) -> None:
    facts = ListFacts("lab/inventory:v2", "sha256:" + "ab" * 32, {})
    assert list_verdict("1.98MB", facts).message == "这看起来是大小：是 SIZE 列，不是 IMAGE ID。"
    left = prune_verdict(PruneFacts(made=3, left=("aaa", "bbb"), kept="lab/kept:v1", kept_present=True))
    assert left.message == "准备步骤创建的 3 个悬空镜像中，仍有 2 个还在：aaa, bbb。"


def test_prune_counts_stay_english_in_english(en) -> None:
    one = prune_verdict(PruneFacts(made=3, left=("aaa",), kept="lab/kept:v1", kept_present=True))
    assert one.message == "1 of the 3 dangling images setup made is still here: aaa."
    done = prune_verdict(PruneFacts(made=3, left=(), kept="lab/kept:v1", kept_present=True, others_gone=1))
    assert done.message == (
        "The 3 dangling images setup made are gone, and lab/kept:v1 and the course's images are still here. "
        "Your prune also removed 1 other dangling image: a --filter label=labkit.lesson=02 keeps it to the lesson's."
    )


def test_port_near_miss(zh) -> None:
    verdict = port_verdict({})
    assert verdict is not None
    assert verdict.message == "hello-docker-container 正在运行，但没有发布任何端口：容器外部无法访问它的 Web 服务器。"
    assert describe_bindings({"80/tcp": [("0.0.0.0", "8080")]}) == "80/tcp → 宿主机端口 8080"


# --- what the learner sees: results and hints -------------------------------------------------


def test_a_check_result_renders_in_chinese(zh) -> None:
    result = CheckResult("welcome.first-container", "t", False, "m", "h", {"containers": 1})
    assert str(result) == "✗ welcome.first-container — 尚未通过：m\n  提示：h\n  containers: 1"
    page = result._repr_html_()
    assert 'data-status="not yet"' in page  # the machine-readable status stays English
    assert "— 尚未通过</b>" in page and "<i>提示：</i>" in page and "labkit 查到的情况" in page
    assert result.to_dict()["status"] == "not yet"


def test_a_check_result_renders_as_before_in_english(en) -> None:
    result = CheckResult("welcome.first-container", "t", True, "m", None, {})
    assert str(result) == "✔ welcome.first-container — passed: m"
    assert "— passed</b>" in result._repr_html_()


def test_hints_in_chinese_and_english(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LABKIT_LANG", "zh_CN")
    assert hint("welcome.first-container", 3, record=False) == "提示 3/3：输入：docker run hello-world"
    monkeypatch.setenv("LABKIT_LANG", "en")
    assert hint("welcome.first-container", 3, record=False) == "Hint 3/3: Type: docker run hello-world"
