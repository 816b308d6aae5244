"""A real JupyterHub with labkit's spawner: a learner's lab works like a laptop's, and lasts.

One hub session, several hub processes (each start of a lab costs about 6 s): a learner logs
in over HTTP and gets a lab on their own engine, in their cgroup; a kernel made through the
lab's REST API runs ``%docker``, ``labkit.check`` and the dashboard against the learner's
daemon, and a terminal opens as the learner in their namespace; stopping and starting the
server keeps their notebook and images; the hub restarts without losing the lab; and a hub
with the idle culler stops the idle lab, daemon and containers included.

Root only, as a classroom server runs; skipped when JupyterHub (the ``hub`` extra) or
configurable-http-proxy is not installed. The hub, its proxy and the learner's server run
on loopback ports picked here; the learner's user ``lk-h<pid>`` is deleted afterwards, and
the test fails when any of the learner's processes, daemon or cgroups outlive the lab.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import pytest
import requests
import websocket

from labkit.classroom import hub_admin
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
c.ConfigurableHTTPProxy.auth_token = "{proxy_token}"
c.JupyterHub.db_url = "sqlite:///{state}/jupyterhub.sqlite"
c.JupyterHub.cookie_secret_file = "{state}/cookie_secret"
c.ConfigurableHTTPProxy.pid_file = "{state}/proxy.pid"
c.JupyterHub.spawner_class = "labkit.classroom.hub_spawner.LearnerEngineSpawner"
c.JupyterHub.authenticator_class = "shared-password"
c.SharedPasswordAuthenticator.user_password = "{password}"
c.Authenticator.allowed_users = {{"{learner}"}}
c.LearnerEngineSpawner.image_archive = "{archive}"
c.Spawner.mem_limit = {memory}
c.LearnerEngineSpawner.pids_limit = {pids}
c.Spawner.environment = {{"PYTHONPATH": "{repo}"}}  # the labs import this checkout's labkit, as the hub does
c.Spawner.start_timeout = 90
c.Spawner.http_timeout = 60
# a restart of the hub leaves the labs and the proxy running
c.JupyterHub.cleanup_servers = False
c.JupyterHub.cleanup_proxy = False
"""
CULLER = """
from labkit.classroom.hub_spawner import configure_culler
configure_culler(c, timeout={timeout}, every={every})
"""
MEMORY = 1 << 30
PIDS = 600


@dataclass
class Hub:
    """One hub session: its state folder and ports stay, its process can be restarted."""

    state: Path
    log: Path
    config: str
    url: str
    hub_port: int
    learner: str
    env: dict[str, str]
    python: Path
    process: subprocess.Popen[bytes] | None = None
    starts: list[float] = field(default_factory=list)

    def start(self, extra: str = "") -> None:
        (self.state / "jupyterhub_config.py").write_text(self.config + extra)
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [str(self.python), "-m", "jupyterhub", "-f", str(self.state / "jupyterhub_config.py")],
                cwd=self.state, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        wait.until(
            lambda: requests.get(f"{self.url}/hub/login", timeout=2).status_code == 200,
            "the hub's login page",
            timeout=30,
            retry_on=(OSError,),
            detail=self.tail,
        )

    def stop(self) -> None:
        """SIGTERM the hub alone (not its session): with cleanup_servers off, labs stay."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        self.process = None

    def tail(self, chars: int = 1500) -> str:
        return self.log.read_text(errors="replace")[-chars:]


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[Hub]:
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
        port=port, hub_port=hub_port, proxy_api_port=_free_port(), proxy_token=uuid.uuid4().hex, state=state,
        password=PASSWORD, learner=learner, archive=archive, memory=MEMORY, pids=PIDS, repo=REPO,
    )  # fmt: skip
    # the hub, its labs and their kernels import this checkout's labkit (readable by everyone)
    python = hub_admin.learner_python()  # one the learners' kernels can run
    path = f"{proxy}:{python.parent}:{os.environ['PATH']}"
    env = dict(os.environ, PATH=path, PYTHONPATH=str(REPO))
    hub = Hub(state, tmp_path / "hub.log", config, f"http://127.0.0.1:{port}", hub_port, learner, env, python)
    try:
        hub.start()
        yield hub
    finally:
        hub.stop()
        pid_file = state / "proxy.pid"
        if pid_file.exists():  # the hub leaves its proxy running (cleanup_proxy = False)
            with contextlib.suppress(psutil.Error, ValueError):
                psutil.Process(int(pid_file.read_text())).kill()
        with_user = le.find_user(learner)
        if with_user is not None:
            le.remove_user(with_user)
        shutil.rmtree(state, ignore_errors=True)
        shutil.rmtree(images, ignore_errors=True)


def _learner_processes(uid: int) -> list[psutil.Process]:
    """The learner's live processes (a zombie is dead: its parent reaps it)."""
    return [
        p
        for p in psutil.process_iter(["uids", "status"])
        if p.info["uids"] and p.info["uids"].real == uid and p.info["status"] != psutil.STATUS_ZOMBIE
    ]


def _cmdline(proc: psutil.Process) -> str:
    try:
        return " ".join(proc.cmdline())
    except psutil.Error:  # it ended, or became a zombie, since it was listed
        return ""


def _labs(uid: int) -> list[psutil.Process]:
    return [p for p in _learner_processes(uid) if "jupyterhub-singleuser" in _cmdline(p)]


class Learner:
    """A logged-in learner's browser session, and their API token for the lab's REST API."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.session = requests.Session()
        self.token = ""

    @property
    def lab(self) -> str:
        return f"{self.hub.url}/user/{self.hub.learner}"

    def _hub_headers(self) -> dict[str, str]:
        xsrf = self.session.cookies.get("_xsrf", path="/hub/") or self.session.cookies["_xsrf"]
        return {"X-XSRFToken": xsrf, "Referer": f"{self.hub.url}/hub/home"}

    def log_in(self) -> None:
        self.session.get(f"{self.hub.url}/hub/login", timeout=10).raise_for_status()
        login = self.session.post(
            f"{self.hub.url}/hub/login?next=",
            data={"username": self.hub.learner, "password": PASSWORD, "_xsrf": self.session.cookies["_xsrf"]},
            timeout=120,
        )
        assert login.status_code == 200, login.text[-500:]

    def new_token(self) -> str:
        made = self.session.post(
            f"{self.hub.url}/hub/api/users/{self.hub.learner}/tokens",
            json={"note": "test", "expires_in": 600},
            headers=self._hub_headers(),
            timeout=30,
        )
        assert made.status_code == 201, made.text
        self.token = str(made.json()["token"])
        return self.token

    def server(self, method: str) -> None:
        done = self.session.request(
            method, f"{self.hub.url}/hub/api/users/{self.hub.learner}/server", headers=self._hub_headers(), timeout=120
        )
        assert done.status_code in (201, 202, 204), done.text

    def api(self, method: str, path: str, **kwargs: object) -> requests.Response:
        """The lab's REST API with the learner's token: the lab asks the hub who that is."""
        headers = {"Authorization": f"token {self.token}"}
        return self.session.request(method, f"{self.lab}/api/{path}", headers=headers, timeout=60, **kwargs)  # type: ignore[arg-type]

    def wait_for_lab(self) -> float:
        began = time.monotonic()
        wait.until(
            lambda: self.api("GET", "status").status_code == 200,
            "the learner's lab through the proxy",
            timeout=90,
            retry_on=(OSError,),
            detail=self.hub.tail,
        )
        return time.monotonic() - began

    def socket(self, path: str) -> websocket.WebSocket:
        url = f"{self.lab.replace('http://', 'ws://')}/{path}"
        return websocket.create_connection(url, header=[f"Authorization: token {self.token}"], timeout=60)


def execute(ws: websocket.WebSocket, code: str) -> str:
    """Run ``code`` in a kernel over its websocket (Jupyter's JSON protocol); its output as text.

    Raises:
        AssertionError: the cell failed (its traceback in the message).
    """
    msg_id = uuid.uuid4().hex
    header = {"msg_id": msg_id, "msg_type": "execute_request", "username": "", "session": "t", "version": "5.3"}
    content = {"code": code, "silent": False, "store_history": False, "user_expressions": {}, "allow_stdin": False}
    ws.send(json.dumps({"header": header, "parent_header": {}, "metadata": {}, "content": content, "channel": "shell"}))
    out: list[str] = []
    status, idle = "", False
    while not (status and idle):
        msg = json.loads(ws.recv())
        if msg.get("parent_header", {}).get("msg_id") != msg_id:
            continue
        kind, body = msg["msg_type"], msg["content"]
        if kind == "stream":
            out.append(body["text"])
        elif kind in ("execute_result", "display_data"):
            out.append(body["data"].get("text/plain", ""))
        elif kind == "error":
            out.append("\n".join(body["traceback"]))
        elif kind == "execute_reply":
            status = body["status"]
        elif kind == "status" and body["execution_state"] == "idle":
            idle = True
    text = "".join(out)
    assert status == "ok", re.sub(r"\x1b\[[0-9;]*m", "", text)[-2000:]
    return text


def in_terminal(ws: websocket.WebSocket, command: str) -> str:
    """Type ``command`` into a terminal's websocket; its output up to a marker only the shell prints."""
    ws.send(json.dumps(["stdin", f"{command}; echo DONE$((6*7))\r"]))
    seen = ""
    while "DONE42" not in seen:
        kind, *rest = json.loads(ws.recv())
        if kind == "stdout":
            seen += rest[0]
    return seen


def test_a_learners_lab_works_like_a_laptops_and_lasts(hub: Hub) -> None:
    learner = Learner(hub)
    began = time.monotonic()
    learner.log_in()
    learner.session.get(f"{learner.lab}/lab", timeout=30)  # following the redirects starts the lab
    learner.new_token()
    print(f"login -> lab ready: {time.monotonic() - began + learner.wait_for_lab():.1f} s")

    assert learner.session.get(f"{learner.lab}/lab", timeout=30).status_code == 200  # JupyterLab itself
    user = le.find_user(hub.learner)
    assert user is not None
    engine = le.running(user)
    assert engine is not None and le.status(user) == "running"
    (lab,) = _labs(user.uid)
    assert lab.environ().get("DOCKER_HOST") == user.docker_host
    assert os.readlink(f"/proc/{lab.pid}/ns/net") == os.readlink(f"/proc/{le.netns_pid(engine)}/ns/net")
    assert os.readlink(f"/proc/{lab.pid}/ns/net") != os.readlink("/proc/self/ns/net")
    assert (user.home / "labkit-work" / "00-welcome.ipynb").is_file()
    images = le.run_as(engine, ["docker", "image", "inspect", "busybox"])
    assert images.returncode == 0, images.stderr

    # limits: the lab is in the learner's cgroups with the hub's mem_limit and pids_limit
    if le.limits_enforced()["memory"]:
        assert engine.cgroups
        assert f"/labkit/{user.unix_user}" in Path(f"/proc/{lab.pid}/cgroup").read_text()
        values = {
            f.name: f.read_text().strip()
            for g in engine.cgroups
            for f in g.iterdir()
            if f.name.endswith("max") or f.name == "memory.limit_in_bytes"
        }
        assert values.get("pids.max") == str(PIDS) and str(MEMORY) in (
            values.get("memory.max"),
            values.get("memory.limit_in_bytes"),
        ), values

    # from the lab's namespace: the hub's API (relayed) answers; the proxy's port on the host's loopback does not
    curl = ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "3"]
    api = le.run_as(engine, [*curl, f"http://127.0.0.1:{hub.hub_port}/hub/api/"])
    assert api.stdout == "200", api
    public = le.run_as(engine, [*curl, f"{hub.url}/hub/login"])
    assert public.returncode != 0 and public.stdout == "000", public

    # a kernel made through the lab's REST API: the hub's Python, labkit loaded, the learner's daemon
    kernel = learner.api("POST", "kernels", json={"name": "python3"})
    assert kernel.status_code == 201, kernel.text
    ws = learner.socket(f"api/kernels/{kernel.json()['id']}/channels")
    try:
        where = execute(ws, "import os, sys, labkit\nprint(sys.executable, labkit.__file__, os.environ['DOCKER_HOST'])")
        assert where.split() == [str(hub.python), str(REPO / "labkit" / "__init__.py"), user.docker_host], where
        assert "hi" in execute(ws, "%docker run --rm busybox echo hi").split()
        assert "welcome.first-container" in execute(ws, "labkit.check('welcome.first-container')")
        execute(ws, "board = labkit.dashboard()\nassert board.ready.wait(10)")
        execute(ws, "%docker run -d --name followed busybox sleep 300")
        shown = "any(r.name == 'followed' and r.state == 'running' for r in board.rows.values())"
        execute(ws, f"from labkit.core import wait\nwait.until(lambda: {shown}, 'the row', timeout=10)")
        execute(ws, "%docker rm -f followed\nboard.close()")
        print(f"the learner's tree with a lab and a kernel: {_memory_mb(engine):.0f} MB")
    finally:
        ws.close()
    assert learner.api("DELETE", f"kernels/{kernel.json()['id']}").status_code == 204

    # a terminal: the learner, in their namespace and cgroup, DOCKER_HOST set, in the workspace
    terminal = learner.api("POST", "terminals")
    assert terminal.status_code == 200, terminal.text
    ws = learner.socket(f"terminals/websocket/{terminal.json()['name']}")
    try:
        said = in_terminal(
            ws, "echo U=$(id -un) H=$DOCKER_HOST N=$(readlink /proc/self/ns/net) W=$PWD; docker ps -q | wc -l"
        )
    finally:
        ws.close()
    netns = os.readlink(f"/proc/{le.netns_pid(engine)}/ns/net")
    assert f"U={user.unix_user} H={user.docker_host} N={netns} W={user.home}/labkit-work" in said, said
    assert learner.api("DELETE", f"terminals/{terminal.json()['name']}").status_code == 204

    # stop and start: the learner's notebook and images stay; the images are not loaded again
    saved = learner.api("PUT", "contents/mine.ipynb", json={"type": "notebook", "content": _notebook("kept")})
    assert saved.status_code in (200, 201), saved.text
    assert le.run_as(engine, ["docker", "tag", "busybox", "mine:kept"]).returncode == 0
    learner.server("DELETE")
    wait.until(
        lambda: le.status(user) == "stopped" and not _labs(user.uid), "the learner's lab and daemon to stop", timeout=30
    )
    assert not le.learner_cgroups(user)
    began = time.monotonic()
    learner.server("POST")
    print(f"start again -> lab ready: {time.monotonic() - began + learner.wait_for_lab():.1f} s")
    assert "kept" in json.dumps(learner.api("GET", "contents/mine.ipynb").json()["content"])
    engine = le.running(user)
    assert engine is not None
    assert le.run_as(engine, ["docker", "image", "inspect", "mine:kept"]).returncode == 0
    loads = re.findall(r"course images: (loaded|present) in ([0-9.]+) s", hub.log.read_text())
    assert [kind for kind, _ in loads] == ["loaded", "present"], loads
    print(f"course images: loaded in {loads[0][1]} s, already present in {loads[1][1]} s")

    # the hub restarts: the lab runs on, the new hub finds it and relays its API into the namespace again
    (lab,) = _labs(user.uid)
    hub.stop()
    assert lab.is_running() and le.status(user) == "running"
    hub.start()
    learner.new_token()  # a token the lab has never seen: it must ask the hub, through the relay
    assert learner.api("GET", "status").status_code == 200
    (again,) = _labs(user.uid)
    assert again.pid == lab.pid
    api = le.run_as(engine, [*curl, f"http://127.0.0.1:{hub.hub_port}/hub/api/"])
    assert api.stdout == "200", api

    # a hub with the idle culler: the idle lab is stopped, daemon, containers and cgroups with it
    assert le.run_as(engine, ["docker", "run", "-d", "busybox", "sleep", "600"]).returncode == 0
    hub.stop()
    culled = time.monotonic()
    hub.start(CULLER.format(timeout=5, every=2))
    wait.until(lambda: le.status(user) == "stopped", "the culler to stop the idle lab", timeout=60, detail=hub.tail)
    wait.until(lambda: not _learner_processes(user.uid), "no process of the learner left", timeout=15)
    print(f"hub with the culler started -> idle lab culled: {time.monotonic() - culled:.1f} s")
    wait.until(lambda: not le.learner_cgroups(user), "the learner's cgroups to go", timeout=15)
    hub.stop()


def _memory_mb(engine: le.LearnerEngine) -> float:
    for group in engine.cgroups:
        for name in ("memory.current", "memory.usage_in_bytes"):
            if (group / name).exists():
                return int((group / name).read_text()) / 2**20
    return 0.0


def _notebook(text: str) -> dict[str, object]:
    cell = {"cell_type": "markdown", "metadata": {}, "source": text}
    return {"cells": [cell], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
