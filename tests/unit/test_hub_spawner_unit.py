"""The pure parts of the hub's spawner: the lab's command line and environment, limits, the culler's service."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from traitlets.config import Config

from labkit.classroom import learner_engine as le

hub_spawner = pytest.importorskip("labkit.classroom.hub_spawner", reason="JupyterHub is the optional extra `hub`")

USER = le.LearnerUser("ada", "lk-ada", 1005, 1005, Path("/home/lk-ada"))


def test_the_lab_finds_its_kernel_spec_and_settings_and_the_learners_daemon() -> None:
    env = hub_spawner.lab_env(USER)
    assert env["DOCKER_HOST"] == USER.docker_host
    assert env["JUPYTER_PATH"] == "/home/lk-ada/.local/state/labkit/lab/jupyter"
    assert env["LABKIT_STATE_DIR"] == "/home/lk-ada/.local/state/labkit"
    assert env["PATH"].split(":")[0] == str(Path(sys.executable).parent)
    assert env["SHELL"] == "/bin/bash"
    argv = hub_spawner.lab_argv(8123, USER.home / "labkit-work", USER.home / ".local/state/labkit/lab")
    assert "--LabApp.app_settings_dir=/home/lk-ada/.local/state/labkit/lab/settings" in argv
    assert "--ServerApp.root_dir=/home/lk-ada/labkit-work" in argv


def test_limits_come_from_mem_limit_and_pids_limit() -> None:
    spawner = hub_spawner.LearnerEngineSpawner(mem_limit="1G", pids_limit=300)
    assert spawner.limits == le.Limits(memory=1 << 30, pids=300)
    assert hub_spawner.LearnerEngineSpawner(pids_limit=0).limits == le.Limits()


def test_the_culler_is_a_hub_managed_service_with_only_the_scopes_it_needs() -> None:
    c = Config()
    c.JupyterHub.services = [{"name": "other", "api_token": "x"}]
    hub_spawner.configure_culler(c, timeout=600, every=60)
    other, culler = c.JupyterHub.services
    assert other["name"] == "other"
    assert culler["command"] == [sys.executable, "-m", "jupyterhub_idle_culler", "--timeout=600", "--cull-every=60"]
    (role,) = Config(c).JupyterHub.load_roles.get_value([])
    assert role["services"] == [culler["name"]]
    assert sorted(role["scopes"]) == ["delete:servers", "list:users", "read:servers", "read:users:activity"]
