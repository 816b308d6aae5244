"""A classroom hub from `labkit hub up` to `labkit hub down`: three learners, their labs, their engines, attacks.

Root only, as a classroom server runs; the hub (real JupyterHub, its proxy, labkit's
spawner and authenticator) runs on loopback ports picked here, with its state in a
temporary folder. Three learners from a roster log in, two over HTTP and one in Chromium
through the hub's login page; each runs lesson 05's ``run.publish-detach`` in their own lab,
two of them holding port 8080 at once. Then each attack of one learner on another, on the
host or on the hub must fail. `labkit hub down --purge` must leave no learner process,
daemon, user or container behind.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import pytest
import requests
import websocket

from labkit.classroom import learner_engine as le
from labkit.core import wait
from tests.integration.test_hub import _cmdline, _free_port, execute

pytest.importorskip("jupyterhub", reason="JupyterHub is the optional extra `hub`: pip install -e '.[hub]'")

pytestmark = [
    pytest.mark.docker,
    pytest.mark.slow,
    pytest.mark.skipif(os.geteuid() != 0, reason="a classroom hub makes learners' users and engines as root"),
]

LABKIT = [sys.executable, "-m", "labkit"]
CHROMIUM = "/usr/bin/chromium"
SOLVE = ["docker", "run", "-d", "--name", "hello-docker-container", "-p", "8080:80", "labkit/hello-dock"]
CURL = ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "3"]


@dataclass
class Hub:
    state: Path
    url: str
    learners: list[str]
    passwords: dict[str, str]
    settings: dict[str, Any]

    def labkit(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [*LABKIT, "hub", *args, "--state", str(self.state)], capture_output=True, text=True, timeout=300
        )
        if check:
            assert done.returncode == 0, done.stderr
        return done

    def engine(self, name: str) -> le.LearnerEngine:
        user = le._lookup(le.unix_name(name))
        assert user is not None
        engine = le.running(user)
        assert engine is not None, f"{name}'s engine is not running"
        return engine


def _uids(names: list[str]) -> set[int]:
    uids = set()
    for name in names:
        user = le._lookup(le.unix_name(name))
        if user is not None:
            uids.add(user.uid)
    return uids


def _processes(uids: set[int]) -> list[psutil.Process]:
    """Live processes of these uids (zombies are dead; their parents reap them)."""
    return [
        p
        for p in psutil.process_iter(["uids", "status"])
        if p.info["uids"] and p.info["uids"].real in uids and p.info["status"] != psutil.STATUS_ZOMBIE
    ]


@pytest.fixture(scope="module")
def hub() -> Iterator[Hub]:
    state = Path(tempfile.mkdtemp(prefix="lk-hubc-")) / "hub"
    tag = f"c{os.getpid() % 10000}"
    learners = [f"{tag}a", f"{tag}b", f"{tag}c"]
    roster = state.parent / "roster.csv"
    roster.write_text("Full name,username\n" + "".join(f"Learner {n},{n.upper()}\n" for n in learners))
    port = _free_port()
    up = subprocess.run(
        [*LABKIT, "hub", "up", "--roster", str(roster), "--port", str(port), "--state", str(state),
         "--idle-timeout", "0", "--memory", "none", "--pids", "none"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    uids: set[int] = set()
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        assert "3 learner account(s) added" in up.stdout
        rows = list(csv.DictReader((state / "passwords.csv").open()))
        passwords = {r["username"]: r["password"] for r in rows}
        assert set(passwords) == {"instructor", *learners}
        settings = json.loads((state / "settings.json").read_text())
        uids = _uids(learners)
        yield Hub(state, f"http://127.0.0.1:{port}", learners, passwords, settings)
    finally:
        uids |= _uids(learners)
        down = subprocess.run(
            [*LABKIT, "hub", "down", "--purge", "--state", str(state)], capture_output=True, text=True, timeout=300
        )
        leftovers = _processes(uids)
        for proc in leftovers:
            proc.kill()
        for name in learners:  # a failed `down` must not leave users behind for the next run
            user = le._lookup(le.unix_name(name))
            if user is not None:
                le.remove_user(user)
        shutil.rmtree(state.parent, ignore_errors=True)  # the rosters written beside the state
        assert down.returncode == 0, down.stderr
        assert not leftovers, f"`labkit hub down` left learner processes: {[p.info for p in leftovers]}"
        assert not _mentioning(state), f"`labkit hub down` left the hub's processes: {_mentioning(state)}"


def _mentioning(state: Path) -> list[str]:
    """Processes whose command line names the hub's state folder (the hub, its grader, its proxy)."""
    found = []
    for proc in psutil.process_iter():
        line = _cmdline(proc)
        if str(state) in line and "pytest" not in line:
            found.append(f"{proc.pid}: {line[:200]}")
    return found


def _login(hub: Hub, name: str, password: str, next_page: str = "") -> requests.Session:
    session = requests.Session()
    session.get(f"{hub.url}/hub/login", timeout=10).raise_for_status()
    answer = session.post(
        f"{hub.url}/hub/login?next={next_page}",
        data={"username": name, "password": password, "_xsrf": session.cookies["_xsrf"]},
        timeout=180,
    )  # following the redirects starts the learner's lab, as a browser does
    assert answer.history and answer.history[0].status_code == 302, (name, answer.status_code, answer.text[-300:])
    return session


def _lab_ready(hub: Hub, session: requests.Session, name: str) -> None:
    def answers() -> bool:
        session.get(f"{hub.url}/user/{name}/lab", timeout=30)  # does the lab's OAuth dance with the hub
        return session.get(f"{hub.url}/user/{name}/api/status", timeout=10).status_code == 200

    wait.until(answers, f"{name}'s lab", timeout=120, retry_on=(requests.RequestException,))


def _lab_env(engine: le.LearnerEngine) -> dict[str, str]:
    """What the learner's lab gives its terminals and kernels: the hub's token and the grader's address."""
    labs = [p for p in _processes({engine.user.uid}) if "jupyterhub-singleuser" in _cmdline(p)]
    assert len(labs) == 1, labs
    env = labs[0].environ()
    return {name: env[name] for name in ("JUPYTERHUB_API_TOKEN", "LABKIT_HUB_GRADER")}


def _lab_token(engine: le.LearnerEngine) -> str:
    return _lab_env(engine)["JUPYTERHUB_API_TOKEN"]


def test_three_learners_each_get_a_lab_an_engine_of_their_own_and_port_8080(hub: Hub, tmp_path: Path) -> None:
    a, b, c = hub.learners
    # wrong passwords and unknown names are refused; names are matched as typed in any case
    refused = requests.Session()
    refused.get(f"{hub.url}/hub/login", timeout=10)
    for name, password in ((a, "not-the-password"), ("nobody", hub.passwords[a])):
        answer = refused.post(
            f"{hub.url}/hub/login?next=",
            data={"username": name, "password": password, "_xsrf": refused.cookies["_xsrf"]},
            allow_redirects=False,
            timeout=30,
        )
        assert answer.status_code == 403, (name, answer.status_code)

    sessions = {a: _login(hub, a.upper(), hub.passwords[a]), b: _login(hub, b, hub.passwords[b])}
    for name, session in sessions.items():
        _lab_ready(hub, session, name)
    _chromium_login(hub, c, tmp_path)

    status = json.loads(hub.labkit("status", "--json").stdout)
    assert status["running"] is True
    rows = {row["name"]: row for row in status["learners"]}
    assert set(rows) == set(hub.learners)
    for name in hub.learners:
        user = le._lookup(le.unix_name(name))
        assert user is not None
        assert rows[name] | {"password": None} == {
            "name": name,
            "unix_user": f"lk-{name}",
            "docker_host": f"unix:///run/user/{user.uid}/docker.sock",
            "server": "running",
            "engine": "running",
            "url": f"{hub.url}/user/{name}/",
            "password": None,
        }
        engine = hub.engine(name)
        images = le.run_as(engine, ["docker", "image", "inspect", "--format", "{{.Id}}", "labkit/hello-dock"])
        assert images.returncode == 0, f"the course images are not in {name}'s daemon: {images.stderr}"
        assert (user.home / "labkit-work" / "05-running-containers.ipynb").is_file()

    # each learner publishes 8080 in their own lab and passes lesson 05's exercise there
    for name in (a, b, c):
        engine = hub.engine(name)
        le.run_as(engine, ["docker", "rm", "-f", "hello-docker-container"])
        run = le.run_as(engine, SOLVE)
        assert run.returncode == 0, run.stderr
        check = le.run_as(engine, [*LABKIT, "check", "run.publish-detach"], timeout=120, env=_lab_env(engine))
        assert check.returncode == 0, check.stdout + check.stderr
        assert "recorded by: the hub" in check.stdout, check.stdout
    for name in (a, b, c):
        page = le.run_as(hub.engine(name), [*CURL, "http://127.0.0.1:8080/"])
        assert page.stdout == "200", (name, page)
    # the gradebook is the hub's: three passes
    grades = list(csv.DictReader(io.StringIO(hub.labkit("grades").stdout)))
    passed = {row["learner"]: row["run.publish-detach"] for row in grades}
    assert passed == dict.fromkeys(hub.learners, "1"), grades
    # the host's own 8080 is not theirs: nothing of theirs listens there
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", 8080)) != 0 or _someone_else_on_8080()
    # B's page goes; A's stays: each reached their own
    assert le.run_as(hub.engine(b), ["docker", "rm", "-f", "hello-docker-container"]).returncode == 0
    assert le.run_as(hub.engine(b), [*CURL, "http://127.0.0.1:8080/"]).stdout == "000"
    assert le.run_as(hub.engine(a), [*CURL, "http://127.0.0.1:8080/"]).stdout == "200"

    # stopping and starting a lab keeps the learner's notebooks and images
    note = le._lookup(le.unix_name(a))
    assert note is not None
    marker = note.home / "labkit-work" / "mine.txt"
    le.run_as(hub.engine(a), ["sh", "-c", f"echo kept > {marker}"])
    hub.labkit("stop", a)
    assert le.status(note) == "stopped"
    hub.labkit("start", a)
    assert marker.read_text() == "kept\n"
    assert le.run_as(hub.engine(a), ["docker", "image", "inspect", "labkit/hello-dock"]).returncode == 0


def _someone_else_on_8080() -> bool:
    """Port 8080 on the host held by a process that is no learner's (a lesson run on the host, say)."""
    for conn in psutil.net_connections("tcp"):
        if conn.laddr and conn.laddr.port == 8080 and conn.status == psutil.CONN_LISTEN and conn.pid:
            return not psutil.Process(conn.pid).username().startswith(le.PREFIX)
    return False


def _chromium_login(hub: Hub, name: str, tmp_path: Path) -> None:
    """Log in through the hub's login page in Debian's Chromium and wait for JupyterLab."""
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail("Debian's chromium is missing (CI must not skip the hub's browser login)")
        pytest.skip("Debian's chromium is not installed")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            page.goto(f"{hub.url}/hub/login")
            page.fill("#username_input", name)
            page.fill("#password_input", hub.passwords[name])
            page.click("#login_submit")
            page.wait_for_selector(".jp-LabShell", timeout=180_000)
            page.wait_for_selector(".jp-Notebook", timeout=60_000)  # the spawner's default: 00-welcome.ipynb
            artifacts = Path(__file__).resolve().parents[2] / "test-artifacts"
            artifacts.mkdir(exist_ok=True)
            page.screenshot(path=str(artifacts / "hub-learner-lab.png"))
            assert f"/user/{name}/lab" in page.url
        finally:
            browser.close()


def test_a_learner_cannot_reach_another_learner_the_host_or_the_hubs_admin(hub: Hub) -> None:
    a, b, _ = hub.learners
    engine_a, engine_b = hub.engine(a), hub.engine(b)
    # B's daemon: listing or stopping B's containers with B's socket
    for argv in (["docker", "ps"], ["docker", "stop", "hello-docker-container"]):
        attempt = le.run_as(engine_a, ["env", f"DOCKER_HOST={engine_b.user.docker_host}", *argv])
        assert attempt.returncode != 0 and "permission denied" in attempt.stderr.lower(), attempt
    # the host's daemon
    host = le.run_as(engine_a, ["env", "DOCKER_HOST=unix:///var/run/docker.sock", "docker", "ps"])
    assert host.returncode != 0 and "permission denied" in host.stderr.lower(), host
    # the host's /etc/shadow through a privileged container on A's own daemon
    shadow = le.run_as(
        engine_a, ["docker", "run", "--rm", "--privileged", "-v", "/:/host", "busybox", "cat", "/host/etc/shadow"]
    )
    assert shadow.returncode != 0 and "root:" not in shadow.stdout, shadow
    # B's lab in the browser, with A's login
    session = _login(hub, a, hub.passwords[a])
    other = session.get(f"{hub.url}/user/{b}/api/status", timeout=30)
    assert other.status_code == 403, other.status_code
    # the hub's admin API and page, with A's lab token and A's login
    token = _lab_token(engine_a)
    hub_port = hub.settings["hub_port"]
    for method, path in (
        ("GET", "/users"),
        ("GET", f"/users/{b}"),
        ("DELETE", f"/users/{b}/server"),
        ("POST", f"/users/{a}x"),
        ("PATCH", f"/users/{a}"),  # making themselves admin
    ):
        answer = requests.request(
            method,
            f"http://127.0.0.1:{hub_port}/hub/api{path}",
            headers={"Authorization": f"token {token}"},
            json={"admin": True},
            timeout=30,
        )
        assert answer.status_code in (403, 404), (method, path, answer.status_code)
    assert session.get(f"{hub.url}/hub/admin", timeout=30).status_code == 403
    # the instructor's live view and gradebook: the hub's admin only
    for path in ("", "api/state", "api/gradebook.csv"):
        assert session.get(f"{hub.url}/services/labkit-grader/{path}", timeout=30).status_code == 403, path
    instructor = _login(hub, "instructor", hub.passwords["instructor"], next_page="/hub/home")
    state = instructor.get(f"{hub.url}/services/labkit-grader/api/state", timeout=30)
    assert state.status_code == 200, state.text[:300]
    assert set(hub.learners) <= {row["name"] for row in state.json()["learners"]}, state.text[:500]
    gradebook = instructor.get(f"{hub.url}/services/labkit-grader/api/gradebook.csv", timeout=30)
    assert gradebook.status_code == 200 and "run.publish-detach" in gradebook.text
    # B's lab and daemon are untouched by all of it
    assert le.status(engine_b.user) == "running"


def test_a_notebook_in_a_hub_lab_shows_the_hubs_verdict(hub: Hub) -> None:
    """`labkit.check` in a kernel of the learner's lab: the verdict comes from the hub's grader."""
    a = hub.learners[0]
    # A's lab was stopped and started: their daemon stopped the container with it, and it stays stopped
    started = le.run_as(hub.engine(a), ["docker", "start", "hello-docker-container"])
    assert started.returncode == 0, started.stderr
    session = _login(hub, a, hub.passwords[a], next_page="/hub/home")
    xsrf = session.cookies.get("_xsrf", path="/hub/") or session.cookies["_xsrf"]
    made = session.post(
        f"{hub.url}/hub/api/users/{a}/tokens",
        json={"note": "test", "expires_in": 600},
        headers={"X-XSRFToken": xsrf, "Referer": f"{hub.url}/hub/home"},
        timeout=30,
    )
    assert made.status_code == 201, made.text
    auth = {"Authorization": f"token {made.json()['token']}"}
    kernel = requests.post(f"{hub.url}/user/{a}/api/kernels", json={"name": "python3"}, headers=auth, timeout=60)
    assert kernel.status_code == 201, kernel.text
    kernel_id = kernel.json()["id"]
    ws = websocket.create_connection(
        f"{hub.url.replace('http://', 'ws://')}/user/{a}/api/kernels/{kernel_id}/channels",
        header=[f"Authorization: token {made.json()['token']}"],
        timeout=120,
    )
    try:
        said = execute(ws, "import labkit\nprint(labkit.check('run.publish-detach'))")
    finally:
        ws.close()
        requests.delete(f"{hub.url}/user/{a}/api/kernels/{kernel_id}", headers=auth, timeout=60)
    assert "recorded by: the hub" in said and "passed" in said.lower(), said


def test_a_roster_added_to_a_running_hub_gives_only_its_new_names_accounts(hub: Hub) -> None:
    roster = hub.state.parent / "more.csv"
    late = f"{hub.learners[0]}late"
    roster.write_text("username\n" + "".join(f"{n}\n" for n in [*hub.learners, late]))
    again = hub.labkit("up", "--roster", str(roster))
    assert "already running" in again.stdout and "1 learner account(s) added" in again.stdout, again.stdout
    rows = list(csv.DictReader((hub.state / "passwords.csv").open()))
    assert [r["username"] for r in rows].count(hub.learners[0]) == 1 and rows[-1]["username"] == late
    _login(hub, late, rows[-1]["password"], next_page="/hub/home")  # logs in; no lab started
    hub.learners.append(late)  # so `down --purge` removes their user too


def test_a_public_hub_with_a_certificate_serves_https_and_warns_without_one(tmp_path: Path) -> None:
    """`--public --cert --key`: the login page over HTTPS on the classroom network; plain HTTP gets a warning."""
    cert, key = tmp_path / "hub.pem", tmp_path / "hub.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    state = tmp_path / "hub"
    port = _free_port()
    base = [*LABKIT, "hub"]
    try:
        up = subprocess.run(
            [*base, "up", "--public", "--cert", str(cert), "--key", str(key), "--port", str(port),
             "--idle-timeout", "0", "--state", str(state)],
            capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert up.returncode == 0, up.stdout + up.stderr
        assert "hub: up at https://" in up.stdout and f":{port}/" in up.stdout and "plain HTTP" not in up.stderr
        login = requests.get(f"https://127.0.0.1:{port}/hub/login", verify=str(cert), timeout=30)
        assert login.status_code == 200 and "password" in login.text
        with pytest.raises(requests.ConnectionError):
            requests.get(f"http://127.0.0.1:{port}/hub/login", timeout=10)
        # no open sign-up: the hub has no sign-up page, and an unknown name cannot log in
        assert requests.get(f"https://127.0.0.1:{port}/hub/signup", verify=str(cert), timeout=30).status_code == 404
    finally:
        down = subprocess.run([*base, "down", "--purge", "--state", str(state)], capture_output=True, text=True)
        assert down.returncode == 0, down.stderr
        assert not _mentioning(state), f"`labkit hub down` left the hub's processes: {_mentioning(state)}"


def test_up_answers_a_taken_port_or_a_non_root_user_in_one_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        done = subprocess.run(
            [*LABKIT, "hub", "up", "--port", str(port), "--state", str(tmp_path / "hub")],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
    assert done.returncode == 2
    assert f"port {port} is already in use by python" in done.stderr and "give `--port` another port" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and not (tmp_path / "hub" / "hub.json").exists()
    as_nobody = subprocess.run(
        ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--",
         *LABKIT, "hub", "up", "--state", str(tmp_path / "other")],
        capture_output=True, text=True, timeout=120, cwd="/", env={"PATH": "/usr/bin:/bin", "HOME": "/tmp"},
    )  # fmt: skip
    if "Permission denied" in as_nobody.stderr and "labkit" not in as_nobody.stderr:
        pytest.skip(f"nobody cannot run {sys.executable} here")
    assert as_nobody.returncode == 2, as_nobody.stderr
    assert as_nobody.stderr.strip() == (
        "labkit: a classroom hub runs as root — run `sudo labkit hub …` on the classroom server"
    )
