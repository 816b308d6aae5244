"""labkit's core, features, CLI and course speak Chinese with ``LABKIT_LANG=zh_CN``, and English unchanged without it.

English is the source: each test pins the English line byte for byte (the stored notebook
outputs and the other unit tests compare it), then the Chinese line the catalogs give.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
from babel.messages.pofile import read_po

from labkit.cli import main
from labkit.core import fmt, i18n
from labkit.core.errors import (
    CommandFailed,
    DamagedState,
    NameConflict,
    PortInUse,
    UnknownExercise,
    UsageError,
    WaitTimeout,
)
from labkit.features import doctor
from labkit.features.doctor import Report, Row

CATALOGS = ("core.po", "features.po", "cli.po", "course.po")
PLACEHOLDER = re.compile(r"\{[^{}]*\}")


@pytest.fixture
def english(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LABKIT_LANG", "en")


@pytest.fixture
def chinese(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LABKIT_LANG", "zh_CN")


@pytest.fixture(autouse=True)
def _no_locale(monkeypatch: pytest.MonkeyPatch) -> None:
    """The machine's locale must not choose the language of a test that does not set LABKIT_LANG."""
    for name in ("LABKIT_LANG", "LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG"):
        monkeypatch.delenv(name, raising=False)


# --- errors: one line, English unchanged, Chinese from the catalog ------------------------------


def test_an_error_line_is_unchanged_in_english_and_the_catalogs_in_chinese(monkeypatch: pytest.MonkeyPatch) -> None:
    english = "host port 8080 is already in use by container web — stop that container or process (`labkit reset` removes the lab's), or use another port"
    assert str(PortInUse(8080, "container web")) == english  # no LABKIT_LANG, no locale: English
    monkeypatch.setenv("LABKIT_LANG", "en")
    assert str(PortInUse(8080, "container web")) == english
    monkeypatch.setenv("LABKIT_LANG", "zh_CN")
    assert str(PortInUse(8080, "容器web")) == (
        "宿主机端口8080已被容器web占用 — 请停止那个容器或进程（`labkit reset` 会删除实验创建的容器），或换一个端口"
    )


def test_the_locale_chooses_chinese_when_labkit_lang_is_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LANG", "zh_CN.UTF-8")
    assert str(UnknownExercise("nosuch")) == "没有名为'nosuch'的练习 — `labkit exercise list` 会列出所有练习"


@pytest.mark.usefixtures("english")
def test_error_sentences_built_from_parts_keep_their_english() -> None:
    failed = CommandFailed("docker logs web", 1, "a\nb\nError: boom\n", (0, 125))
    assert failed.message == "`docker logs web` exited with 1 (expected 0 or 125): a | b | Error: boom"
    assert CommandFailed("true", 3, "").message == "`true` exited with 3 (expected 0)"
    assert str(WaitTimeout("container web to run", 5)).startswith(
        "gave up after 5 s waiting for container web to run —"
    )
    assert str(WaitTimeout("x", 2.5, "it was stopped")).startswith("gave up after 2.5 s waiting for x (it was stopped)")
    conflict = NameConflict("docker run --name web nginx", 125, "", (0,), "web", "05")
    assert conflict.fix == 'remove it (`docker rm -f web`) or run `labkit.begin("05")` again, then run this cell again'
    assert str(UnknownExercise("wlecome", "welcome")) == (
        "no exercise named 'wlecome' — did you mean 'welcome'? `labkit exercise list` shows them all"
    )
    damaged = DamagedState("/s/answers.json", "not JSON", None)
    assert (
        str(damaged)
        == "/s/answers.json was damaged (not JSON); could not move it aside — delete /s/answers.json, then run the command again"
    )


@pytest.mark.usefixtures("chinese")
def test_error_sentences_built_from_parts_in_chinese() -> None:
    failed = CommandFailed("docker logs web", 1, "Error: boom\n", (0, 125))
    assert failed.message == "`docker logs web` 以退出码1结束（预期为0或125）：Error: boom"
    assert failed.fix == "上方命令自身的输出说明了原因：改正命令后再运行一次这个单元格"
    assert str(WaitTimeout("容器web运行", 5)).startswith("等待容器web运行超过5秒，已放弃 — ")
    assert str(UsageError("labkit", "unrecognized arguments: x")) == "unrecognized arguments: x — 参见 `labkit --help`"


# --- the command line ---------------------------------------------------------------------------


def test_labkit_help_in_chinese(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("LABKIT_LANG", "zh_CN")
    with pytest.raises(SystemExit) as done:
        main(["--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert "Docker 动手实践课程助手。" in out
    assert "这台机器是否已准备好上实验课？" in out  # doctor
    assert "对照正在运行的守护进程检查一个练习（退出码 0 表示通过，1 表示尚未通过）" in out  # check
    assert "Hands-on Docker course helper." not in out
    assert "usage: labkit" in out  # argparse's own words are Python's, not ours


def test_labkit_help_in_english_is_unchanged(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    assert "Hands-on Docker course helper." in out
    assert "doctor    is this machine ready for the lab?" in out
    assert not re.search(r"[\u4e00-\u9fff]", out)


def test_a_subcommands_help_and_a_usage_error_in_chinese(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LABKIT_LANG", "zh_CN")
    with pytest.raises(SystemExit):
        main(["registry", "--help"])
    assert "推送课程镜像时不在 stderr 上显示进度" in capsys.readouterr().out
    assert main(["images", "bundle"]) == 2
    assert capsys.readouterr().err.strip() == "labkit: images bundle 需要一个 FILE — 参见 `labkit images --help`"


# --- doctor's rows ------------------------------------------------------------------------------


def _report() -> Report:
    return Report(
        [
            Row("Docker daemon", "ok", "unix:///var/run/docker.sock — Engine 26.1.5"),
            Row("Port 8080", "warn", "used by container web", "labkit reset frees the lab's containers"),
            Row("Disk space", "fail", "0.2 GB free at /var/lib/docker", "free some space: docker system prune"),
        ]
    )


@pytest.mark.usefixtures("english")
def test_doctor_rows_in_english_are_unchanged() -> None:
    assert _report().render_text() == (
        "✔ Docker daemon  unix:///var/run/docker.sock — Engine 26.1.5\n"
        "! Port 8080      used by container web\n"
        "                 → labkit reset frees the lab's containers\n"
        "✗ Disk space     0.2 GB free at /var/lib/docker\n"
        "                 → free some space: docker system prune\n"
        "not ready: fix the rows marked ✗"
    )


@pytest.mark.usefixtures("chinese")
def test_doctor_rows_in_chinese_line_up() -> None:
    lines = _report().render_text().splitlines()
    assert lines[0] == "✔ Docker 守护进程  unix:///var/run/docker.sock — Engine 26.1.5"
    assert lines[1].startswith("! 端口8080") and lines[3].startswith("✗ 磁盘空间")
    assert lines[-1] == "尚未准备好：请修复标记为 ✗ 的各行"
    # the details start in one column, counted as a terminal counts (a Chinese character is two)
    rows = (lines[0], lines[1], lines[3])
    starts = {
        fmt.columns(line[: line.index(detail)]) for line, detail in zip(rows, ("unix", "used by", "0.2"), strict=True)
    }
    assert len(starts) == 1
    assert "<td>磁盘空间</td>" in _report()._repr_html_()


def test_every_row_doctor_makes_has_a_marked_name() -> None:
    """A new row's name must be in doctor.NAMES (marked with N_), or it would stay English in Chinese."""
    tree = ast.parse(Path(doctor.__file__).read_text())
    names = {
        call.args[0].value
        for call in ast.walk(tree)
        if isinstance(call, ast.Call)
        and isinstance(call.func, ast.Name)
        and call.func.id == "Row"
        and call.args
        and isinstance(call.args[0], ast.Constant)
    }
    assert names and names <= set(doctor.NAMES)


# --- the catalogs of these four areas -----------------------------------------------------------


def _entries(name: str) -> list[tuple[str, str]]:
    with (i18n.LOCALE_DIR / "zh_CN" / "LC_MESSAGES" / name).open("rb") as f:
        catalog = read_po(f, locale="zh_CN")
    out = []
    for message in catalog:
        if not message.id:
            continue
        assert not message.fuzzy, message.id
        msgid = message.id[0] if isinstance(message.id, (tuple, list)) else message.id
        string = message.string[0] if isinstance(message.string, (tuple, list)) else message.string
        out.append((str(msgid), str(string)))
    return out


@pytest.mark.parametrize("name", CATALOGS)
def test_every_entry_is_translated_with_the_same_placeholders(name: str) -> None:
    entries = _entries(name)
    assert entries
    for msgid, string in entries:
        assert string, f"{name}: {msgid!r} has no translation"
        assert sorted(set(PLACEHOLDER.findall(msgid))) == sorted(set(PLACEHOLDER.findall(string))), (msgid, string)
        assert string.count("%") == msgid.count("%"), string  # argparse formats help with %: add none


def test_every_sentence_marked_in_these_areas_has_a_catalog_entry() -> None:
    known = {msgid for name in CATALOGS for msgid, _ in _entries(name)}
    known |= {str(key) for key in i18n.table("zh_CN")}  # a sentence another area's catalog already has
    areas = ("labkit/core/", "labkit/features/", "labkit/cli/", "labkit/course/", "cli.py")
    mine = {
        msgid
        for msgid, places in i18n.extract().items()
        if any(place.split(":")[0].startswith(areas) or place.split(":")[0].endswith(areas[-1]) for place in places)
    }
    assert mine - known == set()


def test_a_progress_line_pads_chinese_by_columns() -> None:
    assert fmt.ljust("尚未通过", 12) + "|" == "尚未通过    |"
    assert fmt.ljust("not yet", 12) == f"{'not yet':<12}"


def test_counted_sentences_keep_english_plurals_and_speak_chinese(monkeypatch: pytest.MonkeyPatch) -> None:
    from labkit.core.cleanup import ResetReport

    assert str(ResetReport(containers=1, networks=2, other=3)) == "removed 1 container, 2 networks, 3 other"
    assert str(ResetReport()) == "nothing to remove: the lab is clean"
    monkeypatch.setenv("LABKIT_LANG", "zh_CN")
    assert str(ResetReport(containers=1, networks=2, other=3)) == "已删除1个容器，2个网络，3个其他资源"
