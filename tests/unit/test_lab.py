"""make lab's workspace: copies lessons out of the checkout, never overwrites a learner's work."""

from __future__ import annotations

import json
import os
import socket
import sys
from pathlib import Path
from typing import Any

import pytest

from labkit import lab
from labkit.core.paths import REPO_DIR
from labkit.lab import (
    AVOID_PORTS,
    FIRST_LESSON,
    KERNEL_NAME,
    free_port,
    lab_command,
    lab_environment,
    prepare_runtime,
    sync_workspace,
)


def test_copies_missing_lessons_and_keeps_edited_ones(tmp_path: Path) -> None:
    source, workspace = tmp_path / "src", tmp_path / "work"
    source.mkdir()
    (source / "00-a.ipynb").write_text("fresh a")
    (source / "01-b.ipynb").write_text("fresh b")
    (source / "notes.txt").write_text("not a lesson")
    workspace.mkdir()
    (workspace / "00-a.ipynb").write_text("my edits")
    copied, kept = sync_workspace(source, workspace)
    assert copied == ["01-b.ipynb"] and kept == ["00-a.ipynb"]
    assert (workspace / "00-a.ipynb").read_text() == "my edits"
    assert (workspace / "01-b.ipynb").read_text() == "fresh b"
    assert not (workspace / "notes.txt").exists()


def test_port_skips_busy_and_lesson_ports() -> None:
    assert free_port(8080) not in AVOID_PORTS
    assert free_port(8888) != 8888
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen(1)
        busy = held.getsockname()[1]
        assert free_port(busy) != busy


def test_the_lab_writes_its_own_kernel_spec_and_settings(tmp_path: Path) -> None:
    runtime = tmp_path / "lab"
    prepare_runtime(runtime)
    prepare_runtime(runtime)  # again: replaced, not refused
    spec = json.loads((runtime / "jupyter" / "kernels" / KERNEL_NAME / "kernel.json").read_text())
    assert spec["argv"][:3] == [sys.executable, "-m", "ipykernel_launcher"]
    assert spec["argv"][-1] == "--InteractiveShellApp.extra_extensions=labkit"  # %docker before `import labkit`
    assert spec["language"] == "python"
    overrides = json.loads((runtime / "settings" / "overrides.json").read_text())
    assert overrides["@jupyterlab/filebrowser-extension:browser"] == {"showLastModifiedColumn": False}


def test_the_lab_finds_its_kernel_spec_first_and_leaves_the_users_dirs_alone(tmp_path: Path) -> None:
    runtime = tmp_path / "lab"
    env = lab_environment(runtime, {"JUPYTER_PATH": "/somewhere", "HOME": "/home/ada"})
    assert env["JUPYTER_PATH"].split(os.pathsep) == [str(runtime / "jupyter"), "/somewhere"]
    assert lab_environment(runtime, {})["JUPYTER_PATH"] == str(runtime / "jupyter")
    assert "IPYTHONDIR" not in env and "JUPYTER_CONFIG_DIR" not in env and env["HOME"] == "/home/ada"


def test_the_command_line_roots_the_server_in_the_workspace_and_opens_the_first_lesson(tmp_path: Path) -> None:
    workspace, runtime = tmp_path / "work", tmp_path / "lab"
    command = lab_command(8765, workspace, runtime)
    assert command[:4] == [sys.executable, "-m", "jupyter", "lab"]
    assert f"--ServerApp.root_dir={workspace}" in command
    assert "--LabApp.default_url=/lab/tree/00-welcome.ipynb" in command
    assert f"--LabApp.app_settings_dir={runtime / 'settings'}" in command
    assert "--port=8765" in command and "--ip=127.0.0.1" in command
    assert FIRST_LESSON in {p.name for p in (REPO_DIR / "notebooks").glob("*.ipynb")}


def test_main_starts_jupyter_in_the_workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The server's working directory is where a Terminal opens: the workspace, not the checkout."""
    started: dict[str, Any] = {}

    def execve(path: str, argv: list[str], env: dict[str, str]) -> None:
        started.update(path=path, argv=argv, env=env, cwd=os.getcwd())
        raise SystemExit(0)

    monkeypatch.setenv("LABKIT_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setattr(lab, "sync_student_workspace", lambda source, workspace, lang=None: ([], []))
    monkeypatch.setattr(lab.os, "execve", execve)
    monkeypatch.chdir(tmp_path)
    workspace = tmp_path / "work"
    workspace.mkdir()
    with pytest.raises(SystemExit):
        lab.main(["--workspace", str(workspace), "--port", "0"])
    assert started["cwd"] == str(workspace)
    assert started["env"]["JUPYTER_PATH"].startswith(str(tmp_path / "state" / "lab" / "jupyter"))
    assert (tmp_path / "state" / "lab" / "jupyter" / "kernels" / "python3" / "kernel.json").exists()


def test_the_installations_own_settings_are_kept_under_labkits(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    installed = tmp_path / "app" / "settings"
    installed.mkdir(parents=True)
    (installed / "page_config.json").write_text('{"disabledExtensions": {}}')
    (installed / "overrides.json").write_text(
        json.dumps(
            {"@jupyterlab/filebrowser-extension:browser": {"showHiddenFiles": True, "showLastModifiedColumn": True}}
        )
    )
    monkeypatch.setenv("JUPYTERLAB_DIR", str(tmp_path / "app"))
    runtime = tmp_path / "lab"
    prepare_runtime(runtime)
    overrides = json.loads((runtime / "settings" / "overrides.json").read_text())
    assert overrides["@jupyterlab/filebrowser-extension:browser"] == {
        "showHiddenFiles": True,
        "showLastModifiedColumn": False,
    }
    assert (runtime / "settings" / "page_config.json").exists()
    assert json.loads((installed / "overrides.json").read_text())["@jupyterlab/filebrowser-extension:browser"][
        "showLastModifiedColumn"
    ], "the installation's file is left as it was"


def test_the_lessons_pictures_reach_the_workspace_and_stay_current(tmp_path: Path) -> None:
    source = tmp_path / "notebooks"
    (source / "img").mkdir(parents=True)
    (source / "00-a.ipynb").write_text("{}")
    (source / "img" / "one.svg").write_text("<svg>1</svg>")
    workspace = tmp_path / "ws"
    lab.sync_workspace(source, workspace)
    assert (workspace / "img" / "one.svg").read_text() == "<svg>1</svg>"
    (source / "img" / "one.svg").write_text("<svg>2</svg>")  # the course changed a picture
    (workspace / "00-a.ipynb").write_text('{"mine": 1}')  # the learner's own work stays
    lab.sync_workspace(source, workspace)
    assert (workspace / "img" / "one.svg").read_text() == "<svg>2</svg>"
    assert (workspace / "00-a.ipynb").read_text() == '{"mine": 1}'


def test_the_student_workspace_gets_the_real_pictures(tmp_path: Path) -> None:
    workspace = tmp_path / "ws"
    lab.sync_student_workspace(REPO_DIR / "notebooks", workspace)
    shipped = sorted(p.name for p in (REPO_DIR / "notebooks" / "img").glob("*.svg"))
    assert shipped and sorted(p.name for p in (workspace / "img").glob("*.svg")) == shipped
