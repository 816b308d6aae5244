"""Attacks on the course's registry: who may push, who may read, what another user on the machine can reach.

The registry the daemon trusts as its mirror must not take pushes from anyone but
labkit's login: one ``library/busybox`` pushed by another user would be what every
``docker run busybox`` on the machine runs. Each test here attacks a gated registry of
its own (own port, own state folder, own docker config), started the way ``labkit
registry up`` starts it; the machine's registry on 5000 is never touched.

The tests acting as another user (``nobody``, through ``runuser``) need root.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import socket
import stat
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest

from labkit.core import http
from labkit.features.registry import credentials, gate, process
from labkit.features.registry.credentials import Credentials

pytestmark = pytest.mark.security

REPOSITORY = "library/busybox"  # what an attacker would poison


@dataclass(frozen=True)
class Gated:
    base: str
    port: int
    login: Credentials
    state: Path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def gated() -> Iterator[Gated]:
    """A gated registry on a free port, its state in a folder other users may traverse (as a home folder is)."""
    program = process.registry_program()
    if program is None:
        pytest.fail("these tests need Debian's docker-registry (scripts/provision-docker installs it)")
    state = Path(tempfile.mkdtemp(prefix="labkit-sec-"))
    os.chmod(state, 0o755)  # so that only the registry's own 0700 folders keep other users out
    port = _free_port()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LABKIT_STATE_DIR", str(state))
        patch.setenv("LABKIT_REGISTRY_PORT", str(port))
        patch.setenv("DOCKER_CONFIG", str(state / "docker-config"))  # never the user's own docker login
        try:
            process.start_process(program, port, io.StringIO())
            login = credentials.read(process.credentials_file())
            assert login is not None
            yield Gated(f"http://127.0.0.1:{port}", port, login, state)
        finally:
            process.down()
            shutil.rmtree(state, ignore_errors=True)


def _as_nobody(*command: str) -> subprocess.CompletedProcess[str]:
    runuser = shutil.which("runuser")
    if runuser is None or os.geteuid() != 0:
        pytest.skip("acting as another user needs root and runuser")
    return subprocess.run(
        [runuser, "-u", "nobody", "--", *command], capture_output=True, text=True, timeout=30, check=False
    )


def _post_upload(base: str, authorization: str = "") -> http.Response:
    headers = {"Authorization": authorization} if authorization else {}
    return http.request("POST", f"{base}/v2/{REPOSITORY}/blobs/uploads/", headers=headers, data=b"")


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _push_image(base: str, login: Credentials, repository: str, tag: str) -> str:
    """Push a tiny image over the Registry API with the login; returns its manifest digest."""
    auth = {"Authorization": login.basic()}
    layer = os.urandom(512)
    config = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}}).encode()
    for blob in (layer, config):
        started = http.request("POST", f"{base}/v2/{repository}/blobs/uploads/", headers=auth, data=b"")
        assert started.status == 202, started.body
        location = started.header("Location")
        location = location if location.startswith("http") else base + location
        answer = http.request(
            "PUT",
            location + ("&" if "?" in location else "?") + f"digest={_digest(blob)}",
            headers={**auth, "Content-Type": "application/octet-stream"},
            data=blob,
        )
        assert answer.status == 201, answer.body
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
            "config": {
                "mediaType": "application/vnd.docker.container.image.v1+json",
                "size": len(config),
                "digest": _digest(config),
            },
            "layers": [
                {
                    "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
                    "size": len(layer),
                    "digest": _digest(layer),
                }
            ],
        }
    ).encode()
    answer = http.request(
        "PUT",
        f"{base}/v2/{repository}/manifests/{tag}",
        headers={**auth, "Content-Type": "application/vnd.docker.distribution.manifest.v2+json"},
        data=manifest,
    )
    assert answer.status == 201, answer.body
    return _digest(manifest)


# --- pushes ----------------------------------------------------------------------------------


def test_an_anonymous_push_is_refused(gated: Gated) -> None:
    answer = _post_upload(gated.base)
    assert answer.status == 401
    assert answer.header("WWW-Authenticate").startswith("Bearer realm=")
    assert answer.header("Docker-Distribution-Api-Version") == "registry/2.0"
    for method in ("PUT", "PATCH", "DELETE"):
        assert http.request(method, f"{gated.base}/v2/{REPOSITORY}/manifests/latest", data=b"{}").status == 401


def test_another_user_cannot_push(gated: Gated) -> None:
    done = _as_nobody(
        "curl",
        "-s",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "-X",
        "POST",
        f"{gated.base}/v2/{REPOSITORY}/blobs/uploads/",
    )
    assert done.stdout == "401", done.stderr


def test_labkit_login_may_push(gated: Gated) -> None:
    assert _post_upload(gated.base, gated.login.basic()).status == 202
    token = http.request("GET", f"{gated.base}/token", headers={"Authorization": gated.login.basic()}).json()["token"]
    assert _post_upload(gated.base, f"Bearer {token}").status == 202


def test_a_wrong_password_is_refused(gated: Gated) -> None:
    wrong = Credentials(gated.login.username, gated.login.password[:-1] + "x")
    assert _post_upload(gated.base, wrong.basic()).status == 401
    assert http.request("GET", f"{gated.base}/token", headers={"Authorization": wrong.basic()}).status == 401


def test_an_anonymous_token_does_not_push(gated: Gated) -> None:
    for login in ("", Credentials("someone", "docker-hub-password").basic()):
        answer = http.request("GET", f"{gated.base}/token", headers={"Authorization": login} if login else {})
        assert answer.status == 200
        token = answer.json()["token"]
        assert _post_upload(gated.base, f"Bearer {token}").status == 401
        assert _post_upload(gated.base, f"Bearer {token.replace('.pull.', '.push.')}").status == 401


def test_a_write_smuggled_behind_a_read_is_not_served(gated: Gated) -> None:
    smuggled = f"POST /v2/{REPOSITORY}/blobs/uploads/ HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n".encode()
    with socket.create_connection(("127.0.0.1", gated.port), timeout=10) as s:
        s.sendall(b"GET /v2/_catalog HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n" + smuggled)
        answer = b""
        while chunk := s.recv(65536):
            answer += chunk
    assert answer.count(b"HTTP/1.1 ") == 1 and answer.startswith(b"HTTP/1.1 200 ")
    assert b"202 Accepted" not in answer


# --- reads -----------------------------------------------------------------------------------


def test_anyone_reads_a_pushed_manifest(gated: Gated) -> None:
    digest = _push_image(gated.base, gated.login, "lab/sec", "v1")
    accept = {"Accept": "application/vnd.docker.distribution.manifest.v2+json"}
    answer = http.request("GET", f"{gated.base}/v2/lab/sec/manifests/v1", headers=accept)
    assert answer.status == 200 and answer.header("Docker-Content-Digest") == digest
    assert http.request("HEAD", f"{gated.base}/v2/lab/sec/manifests/v1", headers=accept).status == 200
    assert "lab/sec" in http.request("GET", f"{gated.base}/v2/_catalog").json()["repositories"]
    done = _as_nobody(
        "curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-H", f"Accept: {accept['Accept']}",
        f"{gated.base}/v2/lab/sec/manifests/v1",
    )  # fmt: skip
    assert done.stdout == "200", done.stderr


def test_the_ping_challenges_but_names_a_registry(gated: Gated) -> None:
    answer = http.request("GET", f"{gated.base}/v2/")
    assert answer.status == 401
    assert answer.header("WWW-Authenticate") == (
        f'Bearer realm="http://127.0.0.1:{gated.port}/token",service="{gate.SERVICE}"'
    )
    assert answer.header("Docker-Distribution-Api-Version") == "registry/2.0"
    assert http.request("GET", f"{gated.base}/v2/", headers={"Authorization": gated.login.basic()}).status == 200


# --- what another user can reach -------------------------------------------------------------


def test_the_socket_and_the_login_are_out_of_reach(gated: Gated) -> None:
    sock, secret = process.socket_path(), process.credentials_file()
    assert stat.S_IMODE(sock.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(secret.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    assert _as_nobody("cat", str(secret)).returncode != 0
    bypass = _as_nobody(
        "curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--unix-socket", str(sock), "-X", "POST",
        f"http://x/v2/{REPOSITORY}/blobs/uploads/",
    )  # fmt: skip
    assert bypass.returncode != 0 and bypass.stdout in ("", "000")


def test_the_registry_listens_on_no_tcp_port(gated: Gated) -> None:
    record = process.recorded()
    assert record is not None and process.is_ours(record)
    kinds = {c.type for c in psutil.Process(int(record["pid"])).net_connections(kind="inet")}
    assert not kinds, "docker-registry has an inet socket: it is reachable without the gate"


# --- slow and odd clients --------------------------------------------------------------------


def test_a_slow_client_is_dropped_after_the_deadline(gated: Gated) -> None:
    """A half-sent head is dropped at the deadline, and a byte now and then buys no more time."""
    trickled = 0
    with socket.create_connection(("127.0.0.1", gated.port), timeout=10) as s:
        started = time.monotonic()
        s.sendall(b"POST /v2/library/busybox/blobs/uploads/ HTTP/1.1\r\nHost: x\r\n")  # and never the end
        s.settimeout(0.5)
        while time.monotonic() - started < gate.HEAD_TIMEOUT + 3:
            try:
                if s.recv(1) == b"":
                    break  # the gate closed the connection
            except TimeoutError:
                try:
                    s.sendall(b"X")
                    trickled += 1
                except OSError:
                    break
            except OSError:
                break
        else:
            pytest.fail("the gate still holds a half-sent head past its deadline")
        waited = time.monotonic() - started
    assert gate.HEAD_TIMEOUT - 0.5 <= waited <= gate.HEAD_TIMEOUT + 3 and trickled > 0


def test_a_huge_head_is_refused(gated: Gated) -> None:
    with socket.create_connection(("127.0.0.1", gated.port), timeout=10) as s:
        s.sendall(b"GET /v2/_catalog HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * (gate.MAX_HEAD + 100) + b"\r\n\r\n")
        assert s.recv(65536).startswith(b"HTTP/1.1 400 ")


# --- the docker CLI and daemon, as a learner and as another user would use them ----------------


@pytest.mark.docker
def test_docker_pulls_without_a_login_and_pushes_only_with_it(
    gated: Gated, docker_client: object, tmp_path: Path
) -> None:
    name = f"localhost:{gated.port}/lab/sec-cli:v1"
    anonymous = {**os.environ, "DOCKER_CONFIG": str(tmp_path / "anonymous")}
    learner = {**os.environ, "DOCKER_CONFIG": str(tmp_path / "learner")}

    def docker(env: dict[str, str], *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["docker", *args], env=env, input=stdin, capture_output=True, text=True, timeout=120, check=False
        )

    assert docker(anonymous, "tag", "busybox", name).returncode == 0
    try:
        refused = docker(anonymous, "push", name)
        assert refused.returncode != 0 and "unauthorized" in (refused.stdout + refused.stderr)
        wrong = docker(learner, "login", "-u", gated.login.username, "--password-stdin", name.split("/")[0], stdin="x")
        assert wrong.returncode != 0
        login = docker(
            learner,
            "login",
            "-u",
            gated.login.username,
            "--password-stdin",
            name.split("/")[0],
            stdin=gated.login.password,
        )
        assert login.returncode == 0, login.stderr
        pushed = docker(learner, "push", name)
        assert pushed.returncode == 0, pushed.stderr
        assert docker(anonymous, "rmi", name).returncode == 0
        pulled = docker(anonymous, "pull", name)
        assert pulled.returncode == 0 and "Downloaded newer image" in pulled.stdout, pulled.stderr
    finally:
        docker(anonymous, "rmi", name)
