"""The hub's JupyterHub configuration made from `labkit hub up`'s settings (no hub is started)."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("jupyterhub", reason="JupyterHub is the optional extra `hub`")

from traitlets.config import Config

from labkit.classroom import hub_config, hub_grader, hub_spawner
from labkit.classroom import learner_engine as le


def _applied(tmp_path: Path, **settings: object) -> Config:
    folder = tmp_path / "hub"
    hub_config.write(folder, hub_config.Settings(hub_port=8101, proxy_api_port=8102, grader_port=8103, **settings))  # type: ignore[arg-type]
    c = Config()
    hub_config.apply(c, folder)
    return c


def test_the_hub_is_labkits_roster_spawner_grader_and_culler_on_loopback(tmp_path: Path) -> None:
    c = _applied(tmp_path)
    assert c.JupyterHub.ip == "127.0.0.1" and c.JupyterHub.hub_ip == "127.0.0.1"
    assert c.JupyterHub.authenticator_class == "labkit.classroom.hub_auth.RosterAuthenticator"
    assert c.Authenticator.admin_users == {"instructor"} and c.Authenticator.allow_all is False
    assert c.JupyterHub.spawner_class == "labkit.classroom.hub_spawner.LearnerEngineSpawner"
    names = [s["name"] for s in c.JupyterHub.services]
    assert names[0] == hub_config.ADMIN_SERVICE and hub_grader.SERVICE in names and "idle-culler" in " ".join(names)
    assert c.JupyterHub.cleanup_servers is False  # a restarted hub keeps the labs
    assert (tmp_path / "hub" / "admin-token").stat().st_mode & 0o077 == 0


@pytest.mark.parametrize("lang", ["zh_CN", "en"])
def test_the_course_language_reaches_the_labs_and_the_graders_verdicts(tmp_path: Path, lang: str) -> None:
    c = _applied(tmp_path, lang=lang)
    assert c.LearnerEngineSpawner.language == lang
    (grader,) = [s for s in c.JupyterHub.services if s["name"] == hub_grader.SERVICE]
    assert grader["environment"]["LABKIT_LANG"] == lang
    user = le.LearnerUser("ada", "lk-ada", 1234, 1234, Path("/home/lk-ada"))
    assert hub_spawner.lab_env(user, lang)["LABKIT_LANG"] == lang
    assert "LABKIT_LANG" not in hub_spawner.lab_env(user)
