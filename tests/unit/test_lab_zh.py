"""``LABKIT_LANG=zh_CN make lab``: Chinese lessons in the same workspace, Chinese kernels, JupyterLab in Chinese."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from labkit import lab
from labkit.lab import LANGUAGE_RECORD, TRANSLATION_PLUGIN, prepare_runtime, sync_language


def _lessons(folder: Path, text: str, names: tuple[str, ...] = ("00-a.ipynb", "01-b.ipynb")) -> Path:
    folder.mkdir(parents=True)
    for name in names:
        (folder / name).write_text(f"{text} {name}")
    return folder


def test_switching_language_replaces_untouched_lessons_and_keeps_edited_ones(tmp_path: Path) -> None:
    english = _lessons(tmp_path / "en", "english")
    chinese = _lessons(tmp_path / "zh_CN", "中文")
    (chinese / "terminology.md").write_text("# 术语表\n")
    workspace = tmp_path / "work"
    assert sync_language(english, workspace) == (["00-a.ipynb", "01-b.ipynb"], [])
    assert json.loads((workspace / LANGUAGE_RECORD).read_text())["language"] == "en"
    (workspace / "01-b.ipynb").write_text("my answers")  # the learner worked in lesson 01

    copied, kept = sync_language(chinese, workspace)  # the folder's name is its language
    assert (copied, kept) == (["00-a.ipynb"], ["01-b.ipynb"])
    assert (workspace / "00-a.ipynb").read_text() == "中文 00-a.ipynb"
    assert (workspace / "01-b.ipynb").read_text() == "my answers"
    assert (workspace / "terminology.md").read_text() == "# 术语表\n"
    assert json.loads((workspace / LANGUAGE_RECORD).read_text())["language"] == "zh_CN"

    assert sync_language(chinese, workspace) == ([], ["00-a.ipynb", "01-b.ipynb"])  # same language: all kept
    assert sync_language(english, workspace, "en") == (["00-a.ipynb"], ["01-b.ipynb"])  # and back
    assert (workspace / "00-a.ipynb").read_text() == "english 00-a.ipynb"


def test_a_workspace_from_before_languages_keeps_its_lessons(tmp_path: Path) -> None:
    """No record: the copies' state is unknown, so none is replaced (the learner is told how to switch)."""
    workspace = _lessons(tmp_path / "work", "old english")
    assert lab.workspace_language(workspace) == "en"
    chinese = _lessons(tmp_path / "zh_CN", "中文")
    assert sync_language(chinese, workspace) == ([], ["00-a.ipynb", "01-b.ipynb"])
    assert (workspace / "00-a.ipynb").read_text() == "old english 00-a.ipynb"


def test_the_lab_settings_choose_chinese_for_jupyterlab(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JUPYTERLAB_DIR", str(tmp_path / "app"))
    prepare_runtime(tmp_path / "zh", "zh_CN")
    overrides = json.loads((tmp_path / "zh" / "settings" / "overrides.json").read_text())
    assert overrides[TRANSLATION_PLUGIN] == {"locale": "zh_CN"}
    assert overrides["@jupyterlab/filebrowser-extension:browser"] == {"showLastModifiedColumn": False}
    prepare_runtime(tmp_path / "zh")  # English again: the lab's settings are rewritten, the locale goes
    assert TRANSLATION_PLUGIN not in json.loads((tmp_path / "zh" / "settings" / "overrides.json").read_text())


def test_the_chinese_language_pack_is_installed() -> None:
    """JupyterLab's interface in Chinese needs PyPI jupyterlab-language-pack-zh-cn (a main dependency)."""
    from importlib.metadata import distribution

    assert distribution("jupyterlab-language-pack-zh-cn").version


def test_main_in_chinese_copies_the_chinese_lessons_and_gives_kernels_the_language(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    started: dict[str, Any] = {}
    synced: list[tuple[Path, str | None]] = []

    def execve(path: str, argv: list[str], env: dict[str, str]) -> None:
        started.update(argv=argv, env=env)
        raise SystemExit(0)

    chinese = _lessons(tmp_path / "notebooks" / "zh_CN", "中文")
    monkeypatch.setattr(lab, "translation_dir", lambda lang: chinese)
    monkeypatch.setattr(lab, "sync_student_workspace", lambda s, w, lang=None: synced.append((s, lang)) or ([], []))
    monkeypatch.setattr(lab.os, "execve", execve)
    monkeypatch.setenv("LABKIT_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("JUPYTERLAB_DIR", str(tmp_path / "app"))
    monkeypatch.setenv("LABKIT_LANG", "zh_CN")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "work").mkdir()
    with pytest.raises(SystemExit):
        lab.main(["--workspace", str(tmp_path / "work"), "--port", "0"])
    assert synced == [(chinese, "zh_CN")]
    assert started["env"]["LABKIT_LANG"] == "zh_CN"
    assert f"--LabApp.default_url=/lab/tree/{lab.FIRST_LESSON}" in started["argv"]
    settings = json.loads((tmp_path / "state" / "lab" / "settings" / "overrides.json").read_text())
    assert settings[TRANSLATION_PLUGIN] == {"locale": "zh_CN"}


def test_main_without_lessons_in_the_language_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(lab, "translation_dir", lambda lang: tmp_path / "nothing")
    monkeypatch.setenv("LABKIT_LANG", "zh_CN")
    assert lab.main(["--workspace", str(tmp_path / "work"), "--no-start"]) == 2
    err = capsys.readouterr().err
    assert "LABKIT_LANG=en make lab" in err and "Traceback" not in err
