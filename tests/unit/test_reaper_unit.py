"""The reaper's decisions (pure), and the watcher as a real process against a fake docker CLI (no daemon)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from labkit.core import engine, owner, procs, reaper
from labkit.core.paths import REPO_DIR
from labkit.core.reaper import Action, Proc, clients_to_kill, container_filters, decide, is_docker_client

# --- the decisions -------------------------------------------------------------------------


def test_the_watcher_acts_only_once_its_owner_is_gone() -> None:
    assert decide(owner_alive=True, released=False) is Action.WAIT
    assert decide(owner_alive=True, released=True) is Action.WAIT  # said goodbye, still exiting
    assert decide(owner_alive=False, released=True) is Action.CLIENTS  # a normal exit keeps the containers
    assert decide(owner_alive=False, released=False) is Action.REAP  # killed: everything goes


def test_only_the_docker_cli_and_its_plugins_count_as_clients() -> None:
    assert is_docker_client("docker", "/usr/bin/docker")
    assert is_docker_client("docker-compose", "/home/ada/.docker/cli-plugins/docker-compose")
    for name, exe in (
        ("dockerd", "/usr/sbin/dockerd"),  # the daemon itself
        ("docker-registry", "/usr/bin/docker-registry"),  # the course's registry
        ("docker-proxy", "/usr/sbin/docker-proxy"),
        ("python3", "/usr/bin/python3"),
    ):
        assert not is_docker_client(name, exe), name


def test_only_the_owners_clients_are_killed_never_the_watcher_itself() -> None:
    mine, other = "100-1700000000.00", "101-1700000000.00"
    seen = [
        Proc(1, "docker", "/usr/bin/docker", mine),
        Proc(2, "docker", "/usr/bin/docker", other),  # another kernel of the same session
        Proc(3, "docker", "/usr/bin/docker", None),  # a learner's terminal, or another user's
        Proc(4, "bash", "/usr/bin/bash", mine),  # the shell around a pipeline ends with its clients
        Proc(5, "docker", "/usr/bin/docker", mine),  # (as if) the watcher's own docker ps
    ]
    assert clients_to_kill(seen, mine, me=5) == [1]


def test_containers_are_chosen_by_session_and_owner_together() -> None:
    assert container_filters("test-1", "100-1.00") == [
        "--filter",
        "label=labkit.session=test-1",
        "--filter",
        "label=labkit.owner=100-1.00",
    ]


def test_the_watcher_tells_processes_apart_as_procs_does() -> None:
    assert reaper.START_TOLERANCE == procs.START_TOLERANCE
    assert reaper.LABEL_SESSION == engine.LABEL_SESSION and reaper.LABEL_OWNER == engine.LABEL_OWNER


def test_the_owner_is_this_process_and_its_start_time() -> None:
    me = owner.owner_id()
    assert me is not None
    pid, start = me.split("-", 1)
    assert int(pid) == os.getpid() and procs.same_start(float(start), procs.start_time(os.getpid()))
    assert reaper.owner_alive(int(pid), float(start))
    assert not reaper.owner_alive(int(pid), float(start) - 60)  # the same pid, started at another time


def test_containers_carry_the_owner_images_and_the_registry_do_not() -> None:
    labels = engine.labels("05")
    assert labels[engine.LABEL_OWNER] == owner.owner_id()
    assert engine.LABEL_OWNER not in engine.labels("registry", owned=False)
    assert engine.unowned(labels) == {engine.LABEL_SESSION: engine.session_id(), engine.LABEL_LESSON: "05"}


def test_commands_carry_the_owner_in_their_environment() -> None:
    env = owner.child_env({"PATH": "/bin"})
    assert env == {"PATH": "/bin", "LABKIT_OWNER": owner.owner_id()}


# --- the watcher, for real, against a fake docker CLI ------------------------------------------

#: A docker CLI stand-in: logs each call; `ps` names one container the first time; `client` runs
#: until killed, as a `docker run` in the foreground does (its process name is `docker`).
FAKE_DOCKER = """#!/bin/sh
echo "$*" >> "$FAKE_DOCKER_LOG"
case "$1" in
  ps) if [ ! -e "$FAKE_DOCKER_LOG.listed" ]; then : > "$FAKE_DOCKER_LOG.listed"; echo c0ffee; fi ;;
  client) while :; do sleep 0.2; done ;;
esac
"""

#: An owner: starts its watcher as labkit does, starts one "docker client", says who it is, waits.
OWNER = """
import json, subprocess, sys, time
from labkit.core import owner
owner.watch("unit-session")
client = subprocess.Popen(["docker", "client"], env=owner.child_env(), start_new_session=True)
print(json.dumps({"owner": owner.owner_id(), "client": client.pid, "watcher": owner._watcher.process.pid}), flush=True)
if sys.argv[1] == "wait":
    time.sleep(600)
"""


@pytest.fixture
def fake_docker(tmp_path: Path) -> dict[str, str]:
    folder = tmp_path / "bin"
    folder.mkdir()
    script = folder / "docker"
    script.write_text(FAKE_DOCKER)
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    log = tmp_path / "docker.log"
    log.touch()
    return dict(
        os.environ,
        PATH=f"{folder}{os.pathsep}{os.environ['PATH']}",
        FAKE_DOCKER_LOG=str(log),
        PYTHONPATH=str(REPO_DIR),
        LABKIT_REAPER="on",  # conftest turns it off for the suite
    )


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _until(condition: object, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return True
        time.sleep(0.1)
    return False


def test_a_killed_owner_loses_its_clients_and_containers(fake_docker: dict[str, str]) -> None:
    started = subprocess.Popen(
        [sys.executable, "-c", OWNER, "wait"], env=fake_docker, stdout=subprocess.PIPE, text=True
    )
    assert started.stdout is not None
    seen = json.loads(started.stdout.readline())
    try:
        assert not _gone(seen["client"]) and not _gone(seen["watcher"])
        killed_at = time.monotonic()
        started.send_signal(signal.SIGKILL)
        started.wait()
        assert _until(lambda: _gone(seen["client"]) and _gone(seen["watcher"]), 15), "the watcher did not finish"
        took = time.monotonic() - killed_at
    finally:
        for pid in (seen["client"], seen["watcher"], started.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    calls = Path(fake_docker["FAKE_DOCKER_LOG"]).read_text().splitlines()
    filters = " ".join(container_filters("unit-session", seen["owner"]))
    assert calls[0] == "client"
    assert f"ps --all --quiet --no-trunc {filters}" in calls
    assert "rm --force --volumes c0ffee" in calls
    assert took < 8, f"{took:.1f} s"


def test_an_owner_that_exits_normally_keeps_its_containers(fake_docker: dict[str, str]) -> None:
    done = subprocess.run(
        [sys.executable, "-c", OWNER, "exit"], env=fake_docker, capture_output=True, text=True, timeout=60
    )
    seen = json.loads(done.stdout)
    try:
        assert _until(lambda: _gone(seen["client"]) and _gone(seen["watcher"]), 15)
    finally:
        for pid in (seen["client"], seen["watcher"]):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    assert Path(fake_docker["FAKE_DOCKER_LOG"]).read_text().splitlines() == ["client"]  # no ps, no rm


def test_one_watcher_per_process() -> None:
    code = (
        "from labkit.core import owner\n"
        "owner.watch('unit-session'); first = owner._watcher.process.pid\n"
        "owner.watch('unit-session'); print(first == owner._watcher.process.pid)\n"
    )
    env = dict(os.environ, PYTHONPATH=str(REPO_DIR), LABKIT_REAPER="on")
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert done.stdout.strip() == "True", done.stderr


def test_the_switch_turns_it_off() -> None:
    code = "from labkit.core import owner\nowner.watch('unit-session')\nprint(owner._watcher)\n"
    env = dict(os.environ, PYTHONPATH=str(REPO_DIR), LABKIT_REAPER="off")
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert done.stdout.strip() == "None", done.stderr
