"""A newcomer's walk through real kernels and the real daemon: a stopped foreground run, the
common mistakes named with their way back, and ``%docker`` before ``import labkit`` in the lab."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient

from labkit.core import engine
from labkit.core.errors import NameConflict, NeedsTerminal, NoSuchContainer
from labkit.core.shell import sh
from labkit.lab import KERNEL_NAME, lab_environment, prepare_runtime

pytestmark = pytest.mark.docker

NAME = f"labkit-walk-{engine.session_id()[-6:]}"


def _rm(name: str) -> None:
    subprocess.run(["docker", "rm", "-f", name], capture_output=True, check=False)


@pytest.fixture
def named(docker_client: object) -> Iterator[str]:
    """A container name this test may create; removed afterwards whatever happened."""
    _rm(NAME)
    yield NAME
    _rm(NAME)


# ---------------------------------------------------------------- Stop on a foreground run


def test_stop_on_a_foreground_run_in_a_kernel_is_one_line(named: str) -> None:
    """A real ipykernel runs `%docker run` without --detach; the notebook's Stop (SIGINT to the
    kernel) ends the docker client, and the cell fails with one line, no traceback."""
    from jupyter_client.manager import KernelManager

    km = KernelManager(kernel_name="python3")
    km.start_kernel()
    kc = km.client()
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=60)
        kc.execute_interactive("import labkit", timeout=60)
        msg_id = kc.execute(f"%docker run --name {named} busybox sleep 30")
        # Press Stop once the container runs, as a learner would after waiting a while.
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            state = subprocess.run(
                ["docker", "inspect", "-f", "{{.State.Running}}", named], capture_output=True, text=True, check=False
            )
            if state.stdout.strip() == "true":
                break
            time.sleep(0.1)
        else:
            pytest.fail("the container never started")
        pressed = time.monotonic()
        km.interrupt_kernel()
        shown: list[dict[str, Any]] = []
        while True:
            msg = kc.get_iopub_msg(timeout=20)
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            if msg["msg_type"] in ("error", "stream"):
                shown.append(msg["content"])
            if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
                break
        took = time.monotonic() - pressed
        reply = kc.get_shell_msg(timeout=10)
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
    assert reply["content"]["status"] == "error"  # the cell still fails
    errors = [c for c in shown if "traceback" in c]
    assert len(errors) == 1, shown
    lines = errors[0]["traceback"]
    text = "\n".join(lines)
    assert len(lines) == 1 and "\n" not in lines[0], text
    assert "KeyboardInterrupt" not in text and "Traceback" not in text and "selectors" not in text
    assert f"stopped waiting for `docker run --name {named} busybox sleep 30`" in text
    assert "`docker ps`" in text and "--detach" in text
    assert took < 5, f"the cell took {took:.1f} s to end after Stop"
    # the client ended: no docker process left waiting on the container
    left = subprocess.run(["pgrep", "-f", f"docker run .*--name {named}"], capture_output=True, text=True, check=False)
    assert left.stdout.strip() == "", left.stdout


# ---------------------------------------------------------------- common mistakes, named


def test_running_a_naming_cell_twice_names_the_conflict_and_the_way_back(named: str) -> None:
    sh(f"docker run -d --name {named} busybox sleep 60", quiet=True, lesson="05")
    with pytest.raises(NameConflict) as info:
        sh(f"docker run -d --name {named} busybox sleep 60", quiet=True, lesson="05")
    err = info.value
    assert err.name == named and err.returncode == 125
    assert f"`docker rm -f {named}`" in err.fix and "\n" not in str(err)


def test_a_cell_run_before_the_one_that_creates_its_container(named: str) -> None:
    with pytest.raises(NoSuchContainer) as info:
        sh(f"docker logs {named}", quiet=True)
    assert info.value.name == named
    assert f"the cell that creates {named}" in info.value.fix


def test_it_in_a_plain_cell_points_to_labkit_interactive(docker_client: object) -> None:
    with pytest.raises(NeedsTerminal) as info:
        sh("docker run -it --rm busybox true", quiet=True)
    assert 'labkit.interactive("docker run -it --rm busybox true")' in info.value.fix


# ---------------------------------------------------------------- %docker before import labkit


def test_docker_magic_works_before_import_labkit_in_the_labs_kernel(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, docker_client: object
) -> None:
    """The kernel spec `make lab` writes loads labkit first: a %docker cell run before the
    notebook's `import labkit` works, and a failure there is already one red line."""
    runtime = tmp_path / "lab"
    prepare_runtime(runtime)
    monkeypatch.setenv("JUPYTER_PATH", lab_environment(runtime)["JUPYTER_PATH"])
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell("%docker version --format '{{.Server.APIVersion}}'"),
        nbformat.v4.new_code_cell("%docker logs no-such-container-anywhere"),
    ]
    client = NotebookClient(
        nb, kernel_name=KERNEL_NAME, timeout=60, allow_errors=True, resources={"metadata": {"path": str(tmp_path)}}
    )
    client.execute()
    first, second = nb.cells
    assert first.outputs[0]["output_type"] == "stream", first.outputs
    assert first.outputs[0]["text"].strip()[0].isdigit()  # the API version, e.g. 1.41
    error = next(o for o in second.outputs if o["output_type"] == "error")
    assert len(error["traceback"]) == 1 and "there is no container named" in error["traceback"][0]
