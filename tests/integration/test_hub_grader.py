"""A real JupyterHub with labkit's grader: verdicts that count are decided and recorded by the hub.

Root only, like ``test_hub.py`` (whose fixture this follows, with the grader configured
by :func:`labkit.classroom.hub_grader.configure`). One hub session holds every assertion,
since a hub start costs about ten seconds: a learner's lab checks ``run.publish-detach``
through the hub (not yet, passed, not yet again after removing the container), and the
attacks a learner could try all fail: editing their own record, posting a forged
verdict, naming another learner, no token or a bogus one, opening the admins' live view or
gradebook, and a fake daemon on their socket.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest
import requests

from labkit.classroom import hub_admin
from labkit.classroom import learner_engine as le
from labkit.classroom.hub_records import grades
from labkit.core import wait
from tests.integration.test_hub import PASSWORD, _free_port, _labs, _learner_processes, _proxy_bin

pytest.importorskip("jupyterhub", reason="JupyterHub is the optional extra `hub`: pip install -e '.[hub]'")

pytestmark = [
    pytest.mark.docker,
    pytest.mark.slow,
    pytest.mark.skipif(os.geteuid() != 0, reason="the hub's grader runs checks as learners' users, as root"),
]

REPO = Path(__file__).resolve().parents[2]
#: SharedPasswordAuthenticator logs admins in with a password of their own, 32 characters at least.
ADMIN_PASSWORD = "an-admin-password-of-32-characters-or-more"
EXERCISE = "run.publish-detach"
IMAGE = "labkit/hello-dock"
SERVICE = "/services/labkit-grader"

CONFIG = """
from pathlib import Path
from labkit.classroom.hub_grader import configure

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
c.SharedPasswordAuthenticator.admin_password = "{admin_password}"
c.Authenticator.allowed_users = {{"{learner}", "{admin}"}}
c.Authenticator.admin_users = {{"{admin}"}}
c.LearnerEngineSpawner.image_archive = "{archive}"
c.Spawner.start_timeout = 90
c.Spawner.http_timeout = 60
configure(c, Path("{state}/grader"), {grader_port})
"""


@dataclass
class GradedHub:
    url: str
    learner: str
    admin: str
    grader: str  # the grader's own address (root's side of the host's loopback)
    state: Path
    process: subprocess.Popen[bytes]
    log: Path


@pytest.fixture
def graded_hub(tmp_path: Path) -> Iterator[GradedHub]:
    proxy = _proxy_bin()
    if proxy is None:
        pytest.skip("configurable-http-proxy is not installed (npm install configurable-http-proxy)")
    state = Path(tempfile.mkdtemp(prefix="lk-grader-"))
    state.chmod(0o700)
    (state / "grader").mkdir(mode=0o700)
    images = Path(tempfile.mkdtemp(prefix="lk-images-"))  # learners may traverse /tmp's 0755 folders
    images.chmod(0o755)
    learner, admin = f"g{os.getpid() % 100000}", f"ga{os.getpid() % 100000}"
    port, hub_port, grader_port = _free_port(), _free_port(), _free_port()
    archive = le.cache_images([IMAGE], images / "images.tar")
    config = CONFIG.format(
        port=port, hub_port=hub_port, proxy_api_port=_free_port(), state=state, password=PASSWORD, admin_password=ADMIN_PASSWORD,
        learner=learner, admin=admin, archive=archive, grader_port=grader_port,
    )  # fmt: skip
    (state / "jupyterhub_config.py").write_text(config)
    # PYTHONPATH: this checkout's labkit in the hub, its grader, the lab and the checks (JupyterHub keeps it)
    python = hub_admin.learner_python()  # the hub's Python must be one the learners' kernels can run
    env = dict(os.environ, PATH=f"{proxy}:{python.parent}:{os.environ['PATH']}", PYTHONPATH=str(REPO))
    log = tmp_path / "hub.log"
    out = log.open("wb")
    process = subprocess.Popen(
        [str(python), "-m", "jupyterhub", "-f", str(state / "jupyterhub_config.py")],
        cwd=state, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    grader = f"http://127.0.0.1:{grader_port}{SERVICE}"
    try:
        wait.until(
            lambda: (
                requests.get(f"http://127.0.0.1:{port}/hub/login", timeout=2).status_code == 200
                and requests.post(f"{grader}/check/x", timeout=2).status_code == 401
            ),
            "the hub's login page and its grader",
            timeout=40,
            retry_on=(OSError,),
            detail=lambda: log.read_text(errors="replace")[-1500:],
        )
        yield GradedHub(f"http://127.0.0.1:{port}", learner, admin, grader, state, process, log)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
        out.close()
        pid_file = state / "proxy.pid"
        if pid_file.exists():  # the hub stops its proxy; this only catches a hub that died first
            with contextlib.suppress(psutil.Error, ValueError):
                psutil.Process(int(pid_file.read_text())).kill()
        for proc in psutil.process_iter(["cmdline"]):  # the grader, should the hub have died before stopping it
            if f"--state={state}/grader" in (proc.info["cmdline"] or []):
                with contextlib.suppress(psutil.Error):
                    proc.kill()
        for name in (learner, admin):
            user = le.find_user(name)
            if user is not None:
                le.remove_user(user)
        shutil.rmtree(state, ignore_errors=True)
        shutil.rmtree(images, ignore_errors=True)


def _login(hub: GradedHub, name: str, password: str = PASSWORD, then: str = "") -> requests.Session:
    """A browser session logged in as ``name``; ``then`` empty starts their lab, as the hub's default does."""
    session = requests.Session()
    session.get(f"{hub.url}/hub/login", timeout=10).raise_for_status()
    login = session.post(
        f"{hub.url}/hub/login?next={then}",
        data={"username": name, "password": password, "_xsrf": session.cookies["_xsrf"]},
        timeout=120,
    )
    assert login.status_code == 200, login.text[-500:]
    return session


def _records(hub: GradedHub) -> dict[str, dict[str, object]]:
    """The grader's records, as Gradescope results per learner."""
    return dict(json.loads(grades(hub.state / "grader", "gradescope")))


def _passed(hub: GradedHub, learner: str, exercise: str) -> bool | None:
    book = _records(hub).get(learner)
    if book is None:
        return None
    tests = {t["name"]: t for t in book["tests"]}  # type: ignore[attr-defined]
    return bool(tests[exercise]["score"])


def test_verdicts_that_count_come_from_the_hub(graded_hub: GradedHub) -> None:
    hub = graded_hub
    session = _login(hub, hub.learner)

    def lab_answers() -> bool:
        session.get(f"{hub.url}/user/{hub.learner}/lab", timeout=30)
        return session.get(f"{hub.url}/user/{hub.learner}/api/status", timeout=10).status_code == 200

    wait.until(lab_answers, "the learner's lab", timeout=90, detail=lambda: hub.log.read_text()[-1500:])
    user = le.find_user(hub.learner)
    assert user is not None
    engine = le.running(user)
    assert engine is not None
    (lab,) = _labs(user.uid)
    lab_env = lab.environ()
    token, grader_in_lab = lab_env["JUPYTERHUB_API_TOKEN"], lab_env["LABKIT_HUB_GRADER"]
    # what `labkit check` in the lab's terminal or a notebook does: ask the grader through the relay
    in_lab = {"LABKIT_HUB_GRADER": grader_in_lab, "JUPYTERHUB_API_TOKEN": token, "PYTHONPATH": str(REPO)}

    def lab_check() -> subprocess.CompletedProcess[str]:
        return le.run_as(engine, [sys.executable, "-m", "labkit", "check", EXERCISE], timeout=120, env=in_lab)

    def post(path: str, body: object = None, auth: str | None = token) -> requests.Response:
        headers = {"Authorization": f"token {auth}"} if auth else {}
        if isinstance(body, bytes):
            return requests.post(f"{hub.grader}/{path}", data=body, headers=headers, timeout=120)
        return requests.post(f"{hub.grader}/{path}", json=body, headers=headers, timeout=120)

    # 1. nothing running yet: the hub's verdict is "not yet", and recorded
    before = lab_check()
    assert before.returncode == 1, before
    assert "not yet" in before.stdout and "recorded by: the hub" in before.stdout, before.stdout
    assert _passed(hub, hub.learner, EXERCISE) is False

    # 2. the learner runs the container in their own namespace: passed, recorded
    run = le.run_as(engine, ["docker", "run", "-d", "--name", "hello-docker-container", "-p", "8080:80", IMAGE])
    assert run.returncode == 0, run.stderr
    after = lab_check()
    assert after.returncode == 0, after
    assert "passed" in after.stdout and "recorded by: the hub" in after.stdout, after.stdout
    assert _passed(hub, hub.learner, EXERCISE) is True
    direct = post(f"check/{EXERCISE}", {})
    assert direct.status_code == 200 and direct.json()["passed"] and direct.json()["learner"] == hub.learner

    # 3. attacks that must fail
    # editing their own progress record: the grader never reads it
    record = user.home / ".local/state/labkit/progress.jsonl"
    forged = {"kind": "check", "learner": hub.learner, "exercise": "welcome.first-container", "passed": True}
    edit = le.run_as(engine, ["sh", "-c", f"echo '{json.dumps(forged)}' >> {record}"], netns=False)
    assert edit.returncode == 0, edit.stderr
    assert _passed(hub, hub.learner, "welcome.first-container") is False
    # a forged verdict to any endpoint, another learner's name, no token, a bogus token
    assert post("check/welcome.first-container", {"passed": True}).status_code == 400
    assert post("api/events", {"passed": True, "exercise": EXERCISE}).status_code in (403, 404, 405)
    other = post(f"check/{EXERCISE}", {"learner": f"{hub.learner}x"})
    assert other.status_code == 400 and "token" in other.json()["error"], other.text
    assert post(f"check/{EXERCISE}", {}, auth=None).status_code == 401
    assert post(f"check/{EXERCISE}", {}, auth="not-a-token").status_code == 401
    assert post("check/no.such-exercise", {}).status_code == 404
    assert post(f"check/{EXERCISE}", b"not json").status_code == 400
    assert set(_records(hub)) == {hub.learner}
    # the admins' live view and gradebook: a learner's token or browser session gets 403
    for path in ("", "/api/state", "/api/gradebook.csv", "/api/results.json"):
        denied = requests.get(f"{hub.grader}{path}", headers={"Authorization": f"token {token}"}, timeout=10)
        assert denied.status_code == 403, (path, denied.status_code)
    assert session.get(f"{hub.url}{SERVICE}/", timeout=30).status_code == 403
    assert session.get(f"{hub.url}{SERVICE}/api/gradebook.csv", timeout=30).status_code == 403
    admin = _login(hub, hub.admin, ADMIN_PASSWORD, then="/hub/home")  # no lab for the admin
    page = admin.get(f"{hub.url}{SERVICE}/", timeout=30)
    assert page.status_code == 200 and "<html" in page.text.lower(), page.text[:300]
    book = admin.get(f"{hub.url}{SERVICE}/api/gradebook.csv", timeout=30)
    assert book.status_code == 200 and book.text.splitlines()[1].startswith(hub.learner), book.text[:300]
    state = admin.get(f"{hub.url}{SERVICE}/api/state", timeout=30).json()
    assert hub.learner in json.dumps(state)
    # a fake daemon on the learner's socket: "could not check", nothing recorded
    fake = subprocess.Popen(
        le.as_user(user, [sys.executable, "-c", FAKE_DAEMON, str(user.socket)]),
        env=le.user_env(user), stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert fake.stdout is not None and fake.stdout.readline().strip() == "listening"
        faked = post(f"check/{EXERCISE}", {})
        assert faked.status_code == 503 and "not their engine's" in faked.json()["error"], faked.text
    finally:
        fake.kill()
        fake.wait(timeout=10)
        os.replace(f"{user.socket}.real", user.socket)
    print(f"fake daemon: {faked.json()['error']}")

    # 4. the same learner without the state: not yet, and the gradebook follows the latest verdict
    removed = le.run_as(engine, ["docker", "rm", "-f", "hello-docker-container"])
    assert removed.returncode == 0, removed.stderr
    again = post(f"check/{EXERCISE}", {})
    assert again.status_code == 200 and not again.json()["passed"], again.text
    assert _passed(hub, hub.learner, EXERCISE) is False
    mode = (hub.state / "grader" / "grader.sqlite").stat()
    assert mode.st_uid == 0 and mode.st_mode & 0o077 == 0
    assert le.find_user(hub.admin) is None  # the admin never started a lab

    hub.process.send_signal(signal.SIGTERM)
    hub.process.wait(timeout=30)
    wait.until(lambda: not _learner_processes(user.uid), "no process of the learner left", timeout=15)


#: A learner's own "daemon": their real socket moved aside, a listener in its place that
#: answers every request with Docker's ping and an empty container list.
FAKE_DAEMON = """
import contextlib, os, socket, sys, threading
path = sys.argv[1]
os.rename(path, path + ".real")
server = socket.socket(socket.AF_UNIX)
server.bind(path)
server.listen(8)
print("listening", flush=True)
def answer(conn):
    with conn, contextlib.suppress(OSError):
        conn.recv(65536)
        conn.sendall(b"HTTP/1.1 200 OK\\r\\nContent-Type: application/json\\r\\nContent-Length: 2\\r\\n\\r\\n[]")
while True:
    conn, _ = server.accept()
    threading.Thread(target=answer, args=(conn,), daemon=True).start()
"""
