"""Attacks on ``labkit trace``'s TCP mode, for real, on loopback, against the real daemon.

Whoever talks to the proxy talks to the daemon, which is root on this machine. On
``127.0.0.1`` every local user and every web page the learner opens can connect, so
each test here plays one of them and checks it gets nothing: no TLS client
certificate, no answer; a browser's request (``Origin``, ``text/plain``) or a
rebinding ``Host``, a 403 that never reaches the daemon. The last test is the learner:
the docker CLI, given what ``labkit trace start --tcp`` prints, works through it.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import socket
import ssl
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

import labkit
from labkit.core import engine
from labkit.core.shell import sh
from labkit.features import trace

pytestmark = [pytest.mark.docker, pytest.mark.security]

#: Seconds any one attempt may take.
ATTEMPT = 5


@pytest.fixture(autouse=True)
def _proxy_runs_this_labkit(monkeypatch: pytest.MonkeyPatch) -> None:
    """The background proxy is ``python -m labkit``: make it import the labkit under test."""
    here = str(Path(labkit.__file__).resolve().parents[1])
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [here, os.environ.get("PYTHONPATH")])))


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def tcp_proxy(docker_client: object) -> Iterator[trace.TraceStatus]:
    status = trace.start(tcp=_free_port())
    try:
        yield status
    finally:
        trace.stop(remove_log=True)
    assert not Path(status.cert_path).exists()  # a stopped proxy leaves no key behind


def _port(status: trace.TraceStatus) -> int:
    return int(status.docker_host.rsplit(":", 1)[1])


def _tls(status: trace.TraceStatus, with_certificate: bool = True) -> ssl.SSLSocket:
    """A TLS connection that trusts the proxy's CA, with or without the client certificate."""
    context = ssl.create_default_context(cafile=str(Path(status.cert_path, "ca.pem")))
    if with_certificate:
        context.load_cert_chain(str(Path(status.cert_path, "cert.pem")), str(Path(status.cert_path, "key.pem")))
    raw = socket.create_connection(("127.0.0.1", _port(status)), timeout=ATTEMPT)
    return context.wrap_socket(raw, server_hostname="127.0.0.1")


def _exchange(sock: socket.socket, request: bytes) -> bytes:
    """Send a request; everything the server sends back until it closes (or the read times out)."""
    answer = b""
    try:
        sock.sendall(request)
        while data := sock.recv(65536):
            answer += data
            if b"\r\n\r\n" in answer and b"Connection: close" not in answer:
                break  # a kept-alive answer: its head is enough here
    except (OSError, ssl.SSLError):
        pass  # refused: reset, alert, or timed out
    finally:
        sock.close()
    return answer


def _curl(*args: str, user: str | None = None) -> subprocess.CompletedProcess[str]:
    command = ["curl", "-sS", "-m", str(ATTEMPT), "-o", "-", "-w", "\nHTTP %{http_code}", *args]
    if user is not None:
        command = ["runuser", "-u", user, "--", *command]
    return subprocess.run(command, capture_output=True, text=True, timeout=3 * ATTEMPT, check=False)


def _start_request(port: int, container: str, *headers: str) -> bytes:
    """What a web page can send without a CORS preflight: a POST with a text/plain body."""
    head = [f"POST /v1.41/containers/{container}/start HTTP/1.1", f"Host: 127.0.0.1:{port}", *headers]
    return ("\r\n".join([*head, "Content-Type: text/plain", "Content-Length: 2", "", "{}"])).encode()


@pytest.fixture
def victim(tracked: list[object]) -> object:
    """A labelled container, created and not started: what an attacker would start."""
    container = engine.client().containers.create("busybox", ["sleep", "30"], labels=engine.labels("test"))
    tracked.append(container)
    return container


def _state(container: object) -> str:
    container.reload()  # type: ignore[attr-defined]
    return str(container.attrs["State"]["Status"])  # type: ignore[attr-defined]


# --- an unauthenticated client ----------------------------------------------------------


def test_plain_http_client_gets_no_api(tcp_proxy: trace.TraceStatus) -> None:
    port = _port(tcp_proxy)
    answer = _exchange(
        socket.create_connection(("127.0.0.1", port), timeout=ATTEMPT),
        f"GET /version HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode(),
    )
    assert not answer.startswith(b"HTTP/") and b"ApiVersion" not in answer
    done = _curl(f"http://127.0.0.1:{port}/version")
    assert done.returncode != 0 and "ApiVersion" not in done.stdout
    assert trace.load() == []


def test_tls_client_without_the_certificate_is_refused(tcp_proxy: trace.TraceStatus) -> None:
    port = _port(tcp_proxy)
    answer = _exchange(
        _tls(tcp_proxy, with_certificate=False), f"GET /version HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode()
    )
    assert answer == b""
    for insecure in (["-k"], ["--cacert", str(Path(tcp_proxy.cert_path, "ca.pem"))]):
        done = _curl(*insecure, f"https://127.0.0.1:{port}/version")
        assert done.returncode != 0 and "ApiVersion" not in done.stdout, done
    assert trace.load() == []


# --- a web page: cross-site POST, DNS rebinding -----------------------------------------


def test_a_web_page_cannot_start_a_container(tcp_proxy: trace.TraceStatus, victim: object) -> None:
    port = _port(tcp_proxy)
    name = victim.name  # type: ignore[attr-defined]
    origin = "Origin: http://evil.example"
    # What a browser can really do: it holds no client certificate, so it gets no HTTP at all.
    plain = _exchange(
        socket.create_connection(("127.0.0.1", port), timeout=ATTEMPT), _start_request(port, name, origin)
    )
    assert not plain.startswith(b"HTTP/")
    # Even a client that has the certificate is refused when it sends what a browser sends.
    for headers in ([origin], ["Origin: null"], ["Sec-Fetch-Site: cross-site", "Sec-Fetch-Mode: no-cors"]):
        answer = _exchange(_tls(tcp_proxy), _start_request(port, name, *headers))
        assert answer.startswith(b"HTTP/1.1 403 "), answer
        assert b"labkit trace refused this request: a web browser's request" in answer
    assert _state(victim) == "created"  # never started
    refused = trace.load()
    assert len(refused) == 3 and all(c.refused and c.status == 403 for c in refused)


def test_a_rebound_host_name_is_refused(tcp_proxy: trace.TraceStatus, victim: object) -> None:
    port = _port(tcp_proxy)
    for host in (f"evil.example:{port}", "127.0.0.1", f"127.0.0.1:{port + 1}"):
        answer = _exchange(
            _tls(tcp_proxy), f"GET /v1.41/containers/json?all=1 HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()
        )
        assert answer.startswith(b"HTTP/1.1 403 ") and b"is not the proxy's address" in answer, answer
        assert victim.id.encode() not in answer  # type: ignore[attr-defined]
        answer = _exchange(
            _tls(tcp_proxy), _start_request(port, victim.name).replace(b"127.0.0.1:%d" % port, host.encode())
        )  # type: ignore[attr-defined]
        assert answer.startswith(b"HTTP/1.1 403 ")
    assert _state(victim) == "created"
    ok = _exchange(_tls(tcp_proxy), f"GET /_ping HTTP/1.1\r\nHost: localhost:{port}\r\n\r\n".encode())
    assert ok.startswith(b"HTTP/1.1 200 ")  # the proxy's own names pass


# --- another user of this machine -------------------------------------------------------


def _nobody() -> str:
    if os.geteuid() != 0 or shutil.which("runuser") is None:
        pytest.skip("needs root and runuser to act as another local user")
    try:
        return pwd.getpwnam("nobody").pw_name
    except KeyError:
        pytest.skip("no user named nobody")


def test_another_local_user_cannot_reach_the_api_over_tcp(tcp_proxy: trace.TraceStatus) -> None:
    nobody = _nobody()
    port = _port(tcp_proxy)
    for url in (f"http://127.0.0.1:{port}/version", f"https://127.0.0.1:{port}/version"):
        done = _curl("-k", url, user=nobody)
        assert done.returncode != 0 and "ApiVersion" not in done.stdout, done
    for name in ("key.pem", "cert.pem", "ca.pem"):  # and cannot borrow the learner's certificate
        read = subprocess.run(
            ["runuser", "-u", nobody, "--", "cat", str(Path(tcp_proxy.cert_path, name))],
            capture_output=True,
            text=True,
            timeout=ATTEMPT,
            check=False,
        )
        assert read.returncode != 0 and "BEGIN" not in read.stdout
    assert trace.load() == []


def test_another_local_user_cannot_reach_the_api_over_the_unix_socket(docker_client: object) -> None:
    nobody = _nobody()
    status = trace.start()
    try:
        done = _curl("--unix-socket", status.socket, "http://localhost/version", user=nobody)
        assert done.returncode != 0 and "ApiVersion" not in done.stdout, done
        assert trace.load() == []
    finally:
        trace.stop(remove_log=True)


# --- the learner ------------------------------------------------------------------------


def test_the_docker_cli_works_with_what_labkit_trace_prints(
    docker_client: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = _free_port()

    def labkit_trace(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "labkit", "trace", *args], capture_output=True, text=True, timeout=60, check=False
        )

    started = labkit_trace("start", "--tcp", str(port))
    try:
        assert started.returncode == 0, started.stderr
        (tried,) = [line for line in started.stdout.splitlines() if line.strip().startswith("try: ")]
        prefix = tried.strip().removeprefix("try: ").removesuffix(" docker run --rm hello-world")
        assert f"DOCKER_HOST=tcp://127.0.0.1:{port}" in prefix and "DOCKER_TLS_VERIFY=1" in prefix
        assert "DOCKER_CERT_PATH=" in prefix and "DOCKER_CERT_PATH=" in started.stdout.splitlines()[0]

        # the line the learner copies
        version = sh(f"{prefix} docker version --format '{{{{.Server.APIVersion}}}}'", quiet=True).output.strip()
        assert version
        out = sh(f"{prefix} docker run --rm busybox echo through TLS", quiet=True).output
        assert out == "through TLS\n"
        # stdin through the TLS proxy: the CLI half-closes its side, the output still comes back
        out = sh(f"echo typed | {prefix} docker run --rm -i busybox cat", quiet=True).output
        assert out == "typed\n"

        # eval "$(labkit trace env)" gives the same three variables
        exported = labkit_trace("env").stdout
        env = dict(line.removeprefix("export ").split("=", 1) for line in exported.splitlines())
        assert set(env) == {"DOCKER_HOST", "DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH"}
        assert (
            sh(f'eval "$({sys.executable} -m labkit trace env)" && docker info --format ok', quiet=True).output
            == "ok\n"
        )
        host = labkit_trace("host")
        assert host.stdout.strip() == env["DOCKER_HOST"] and "DOCKER_TLS_VERIFY=1" in host.stderr

        # the docker SDK (what labkit itself uses) reads the same variables; requests lets
        # REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE replace the CA docker-py gives it, so not those
        monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
        monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
        client = docker.from_env(environment=env, timeout=ATTEMPT)
        try:
            assert client.ping()
        finally:
            client.close()

        calls = [(c.method, c.route, c.status) for c in trace.load()]
        assert ("GET", "/version", 200) in calls and ("GET", "/info", 200) in calls
        assert ("POST", "/containers/create", 201) in calls and ("POST", "/containers/{id}/start", 204) in calls
        assert ("POST", "/containers/{id}/wait", 200) in calls
        attach = [c for c in trace.load() if c.route == "/containers/{id}/attach"]
        assert attach and all(c.hijacked for c in attach)
        assert not any(c.refused for c in trace.load())
        assert json.loads(labkit_trace("start", "--tcp", str(port), "--json").stdout)["env"]["DOCKER_TLS_VERIFY"] == "1"
    finally:
        stopped = labkit_trace("stop")
    assert stopped.returncode == 0 and not trace.tls_folder().exists()
