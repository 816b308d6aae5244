"""A real JupyterHub with labkit's spawner: a learner logs in over HTTP and gets a lab on their own engine.

Root only, as a classroom server runs; skipped when JupyterHub (the ``hub`` extra) or
configurable-http-proxy is not installed. The hub, its proxy and the learner's server run
on loopback ports picked here; the learner's user ``lk-h<pid>`` is deleted afterwards, and
the test fails when any of the learner's processes or their daemon outlive the hub.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
import requests

from labkit.classroom import learner_engine as le
from labkit.core import wait

pytest.importorskip("jupyterhub", reason="JupyterHub is the optional extra `hub`: pip install -e '.[hub]'")

pytestmark = [
    pytest.mark.docker,
    pytest.mark.slow,
    pytest.mark.skipif(os.geteuid() != 0, reason="the hub's spawner makes learners' users and engines as root"),
]

REPO = Path(__file__).resolve().parents[2]
PASSWORD = "a-shared-class-password"


def _proxy_bin() -> Path | None:
    found = shutil.which("configurable-http-proxy")
    if found:
        return Path(found).parent
    local = REPO / ".npm-hub" / "node_modules" / ".bin"
    return local if (local / "configurable-http-proxy").exists() else None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


CONFIG = """
c.JupyterHub.ip = "127.0.0.1"
c.JupyterHub.port = {port}
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = {hub_port}
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{proxy_api_port}"
c.JupyterHub.db_url = "sqlite:///{state}/jupyterhub.sqlite"
c.JupyterHub.cookie_secret_file = "{state}/cookie_secret"
c.ConfigurableHTTPProxy.pid_file = "{state}/proxy.pid"
c.JupyterHub.spawner_class = "labkit.classroom.hub_spawner.LearnerEngineSpawner"
c.JupyterHub.authenticator_class = "shared-password"
c.SharedPasswordAuthenticator.user_password = "{password}"
c.Authenticator.allowed_users = {{"{learner}"}}
c.LearnerEngineSpawner.image_archive = "{archive}"
c.Spawner.start_timeout = 90
c.Spawner.http_timeout = 60
"""


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[tuple[str, str, subprocess.Popen[bytes], Path, int]]:
    proxy = _proxy_bin()
    if proxy is None:
        pytest.skip("configurable-http-proxy is not installed (npm install configurable-http-proxy)")
    state = Path(tempfile.mkdtemp(prefix="lk-hub-"))
    state.chmod(0o700)
    images = Path(tempfile.mkdtemp(prefix="lk-images-"))  # learners may traverse /tmp's 0755 folders
    images.chmod(0o755)
    learner = f"h{os.getpid() % 100000}"
    port, hub_port = _free_port(), _free_port()
    archive = le.cache_images(["busybox"], images / "images.tar")
    config = CONFIG.format(
        port=port, hub_port=hub_port, proxy_api_port=_free_port(), state=state,
        password=PASSWORD, learner=learner, archive=archive,
    )  # fmt: skip
    (state / "jupyterhub_config.py").write_text(config)
    env = dict(os.environ, PATH=f"{proxy}:{Path(sys.executable).parent}:{os.environ['PATH']}")
    log = (tmp_path / "hub.log").open("wb")
    process = subprocess.Popen(
        [str(Path(sys.executable).parent / "jupyterhub"), "-f", str(state / "jupyterhub_config.py")],
        cwd=state, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    try:
        wait.until(
            lambda: requests.get(f"http://127.0.0.1:{port}/hub/login", timeout=2).status_code == 200,
            "the hub's login page",
            timeout=30,
            retry_on=(OSError,),
            detail=lambda: (tmp_path / "hub.log").read_text(errors="replace")[-800:],
        )
        yield f"http://127.0.0.1:{port}", learner, process, tmp_path / "hub.log", hub_port
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
        log.close()
        pid_file = state / "proxy.pid"
        if pid_file.exists():  # the hub stops its proxy; this only catches a hub that died first
            with contextlib.suppress(psutil.Error, ValueError):
                psutil.Process(int(pid_file.read_text())).kill()
        with_user = le._lookup(le.unix_name(learner))
        if with_user is not None:
            le.remove_user(with_user)
        shutil.rmtree(state, ignore_errors=True)
        shutil.rmtree(images, ignore_errors=True)


def _learner_processes(uid: int) -> list[psutil.Process]:
    return [p for p in psutil.process_iter(["uids"]) if p.info["uids"] and p.info["uids"].real == uid]


def test_a_learner_logs_in_and_gets_a_lab_on_their_own_engine(
    hub: tuple[str, str, subprocess.Popen[bytes], Path, int],
) -> None:
    url, learner, process, log, hub_port = hub
    session = requests.Session()
    session.get(f"{url}/hub/login", timeout=10).raise_for_status()
    began = time.monotonic()
    login = session.post(
        f"{url}/hub/login?next=",
        data={"username": learner, "password": PASSWORD, "_xsrf": session.cookies["_xsrf"]},
        timeout=120,
    )
    assert login.status_code == 200, login.text[-500:]

    def lab_answers() -> bool:
        # following the redirects does the single-user server's OAuth dance with the hub
        session.get(f"{url}/user/{learner}/lab", timeout=30)
        return session.get(f"{url}/user/{learner}/api/status", timeout=10).status_code == 200

    wait.until(lab_answers, "the learner's lab through the proxy", timeout=90, detail=lambda: log.read_text()[-1500:])
    ready = time.monotonic() - began
    print(f"login -> lab ready: {ready:.1f} s")

    user = le._lookup(le.unix_name(learner))
    assert user is not None
    engine = le.running(user)
    assert engine is not None and le.status(user) == "running"
    labs = [p for p in _learner_processes(user.uid) if "jupyterhub-singleuser" in " ".join(p.cmdline())]
    assert len(labs) == 1
    lab = labs[0]
    assert lab.environ().get("DOCKER_HOST") == user.docker_host
    assert os.readlink(f"/proc/{lab.pid}/ns/net") == os.readlink(f"/proc/{le.netns_pid(engine)}/ns/net")
    assert os.readlink(f"/proc/{lab.pid}/ns/net") != os.readlink("/proc/self/ns/net")
    assert (user.home / "labkit-work" / "00-welcome.ipynb").is_file()
    version = le.run_as(engine, ["docker", "version", "--format", "{{.Server.Version}}"])
    assert version.returncode == 0 and version.stdout.strip(), version.stderr
    images = le.run_as(engine, ["docker", "image", "inspect", "busybox"])
    assert images.returncode == 0, images.stderr

    # from the lab's namespace: the hub's API (relayed) answers; the proxy's port on the host's loopback does not
    curl = ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "3"]
    api = le.run_as(engine, [*curl, f"http://127.0.0.1:{hub_port}/hub/api/"])
    assert api.stdout == "200", api
    public = le.run_as(engine, [*curl, f"{url}/hub/login"])
    assert public.returncode != 0 and public.stdout == "000", public

    xsrf = session.cookies.get("_xsrf", path="/hub/") or session.cookies["_xsrf"]
    stopped = session.delete(
        f"{url}/hub/api/users/{learner}/server", headers={"X-XSRFToken": xsrf, "Referer": f"{url}/hub/home"}, timeout=60
    )
    assert stopped.status_code in (202, 204), stopped.text
    wait.until(lambda: le.status(user) == "stopped", "the learner's daemon to stop", timeout=30)
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=30)
    wait.until(lambda: not _learner_processes(user.uid), "no process of the learner left", timeout=15)
