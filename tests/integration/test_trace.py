"""labkit trace against the real daemon: the CLI works through the proxy, and the trace shows what it did."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from labkit.core import engine
from labkit.core.interactive import interactive
from labkit.core.shell import sh
from labkit.features import trace

pytestmark = pytest.mark.docker


@pytest.fixture
def proxy(docker_client: object) -> Iterator[trace.TraceStatus]:
    status = trace.start()
    try:
        yield status
    finally:
        trace.stop(remove_log=True)


def _version(api: str) -> tuple[int, ...]:
    return tuple(int(part) for part in api.split("."))


def _calls() -> list[tuple[str, str, int | None]]:
    return [(c.method, c.route, c.status) for c in trace.load()]


def test_docker_run_through_the_proxy_records_create_start_wait(proxy: trace.TraceStatus) -> None:
    socket_file = Path(proxy.socket)
    assert stat.S_ISSOCK(socket_file.stat().st_mode) and stat.S_IMODE(socket_file.stat().st_mode) == 0o600
    out = sh(f"DOCKER_HOST={proxy.docker_host} docker run --rm hello-world", quiet=True).output
    assert "Hello from labkit" in out or "Hello from Docker" in out
    calls = _calls()
    assert ("POST", "/containers/create", 201) in calls
    assert ("POST", "/containers/{id}/start", 204) in calls
    assert ("POST", "/containers/{id}/wait", 200) in calls
    attach = [c for c in trace.load() if c.route == "/containers/{id}/attach"]
    assert attach and attach[0].hijacked and attach[0].status == 101
    # The CLI speaks the highest version both sides know: the daemon's, unless the CLI is older
    # (a 28.2 CLI tops out at API 1.50 before a 28.5 daemon's 1.51). `.Client.APIVersion` is that choice.
    negotiated = sh("docker version --format '{{.Client.APIVersion}}'", quiet=True).output.strip()
    assert negotiated and {c.api for c in trace.load() if c.api} == {negotiated}
    assert _version(negotiated) <= _version(engine.client().version()["ApiVersion"])


def test_interactive_session_through_the_proxy(proxy: trace.TraceStatus, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", proxy.docker_host)
    engine.reset_client()
    try:
        with interactive("docker run --rm -it busybox sh", lesson="test", show=False) as term:
            assert term.run("echo through the proxy") == "through the proxy\n"
            assert term.exit() == 0
    finally:
        monkeypatch.delenv("DOCKER_HOST")
        engine.reset_client()
    attach = [c for c in trace.load() if c.route == "/containers/{id}/attach"]
    assert attach and "stdin=1" in attach[0].query and attach[0].hijacked


def test_exec_and_curl_through_the_proxy(proxy: trace.TraceStatus, tracked: list[object]) -> None:
    container = engine.client().containers.run("busybox", ["sleep", "60"], detach=True, labels=engine.labels("test"))
    tracked.append(container)
    out = sh(f"DOCKER_HOST={proxy.docker_host} docker exec {container.id} echo hi from exec", quiet=True).output
    assert out == "hi from exec\n"
    listed = sh(f"curl -s --unix-socket {proxy.socket} http://localhost/v1.41/containers/json", quiet=True).output
    assert container.id in {c["Id"] for c in json.loads(listed)}
    calls = _calls()
    assert ("POST", "/containers/{id}/exec", 201) in calls
    assert ("POST", "/exec/{id}/start", 101) in calls
    assert ("GET", "/containers/json", 200) in calls


def test_stop_ends_the_process_and_removes_the_socket(docker_client: object) -> None:
    status = trace.start()
    try:
        assert status.running and status.pid is not None
        pid = status.pid
        assert Path(f"/proc/{pid}").exists()
        assert trace.start().pid != pid  # a new start is a new recording: the old process goes
        assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().split()[2]
        pid = trace.status().pid
    finally:
        assert trace.stop(remove_log=True)
    assert (pid is not None and not os.path.exists(f"/proc/{pid}/cmdline")) or not trace._alive(pid)  # type: ignore[arg-type]
    assert not Path(status.socket).exists()
    assert not trace.status().running
    assert trace.stop() is False  # nothing left to stop, and nothing else is signalled


def test_tcp_listener(docker_client: object) -> None:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    status = trace.start(tcp=port)
    try:
        assert status.docker_host == f"tcp://127.0.0.1:{port}"
        assert status.env["DOCKER_TLS_VERIFY"] == "1" and Path(status.cert_path, "key.pem").is_file()
        sh(f"{status.shell_env} docker version --format '{{{{.Server.APIVersion}}}}'", quiet=True)
        assert ("GET", "/version", 200) in _calls()
        # the address alone is not enough: the CLI without the certificate is turned away
        alone = sh(f"DOCKER_HOST={status.docker_host} docker version", quiet=True, expect=None)
        assert alone.exit_code != 0
    finally:
        trace.stop(remove_log=True)
    assert not Path(status.cert_path).exists()  # the certificates go with the proxy


def test_the_trace_commands_exit_codes(docker_client: object) -> None:
    """`labkit trace start|host|show|stop` through the one CLI: the proxy it starts runs `python -m labkit trace serve`."""
    import subprocess
    import sys
    import tempfile

    with tempfile.TemporaryDirectory(prefix="lkt-", dir="/tmp") as folder:  # short: a unix socket path has ~100 bytes
        env = {**os.environ, "LABKIT_STATE_DIR": folder}

        def labkit(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [sys.executable, "-m", "labkit", "trace", *args], capture_output=True, text=True, env=env, timeout=60
            )

        started = labkit("start", "--json")
        try:
            assert started.returncode == 0, started.stderr
            pid = json.loads(started.stdout)["pid"]
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            assert argv[1:5] == [b"-m", b"labkit", b"trace", b"serve"]
            host = labkit("host")
            assert host.returncode == 0 and host.stdout.strip() == f"unix://{folder}/trace/docker.sock"
            sh(f"DOCKER_HOST={host.stdout.strip()} docker version --format '{{{{.Server.APIVersion}}}}'", quiet=True)
            shown = labkit("show", "--json")
            assert shown.returncode == 0 and any(c["path"].endswith("/version") for c in json.loads(shown.stdout))
        finally:
            stopped = labkit("stop")
        assert stopped.returncode == 0 and stopped.stdout.strip() == "trace proxy stopped"
        gone = labkit("host")
        assert gone.returncode == 2 and gone.stderr.count("\n") == 1 and "no trace proxy is running" in gone.stderr
