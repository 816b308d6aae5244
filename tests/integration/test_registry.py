"""The local registry mirror: started, seeded, pulled from by the daemon, stopped.

The registry's state (pid files, config, data, login) goes to a pytest temporary folder,
so it never mixes with a learner's. A registry that was already
answering before the run is used and left running; one the tests start is stopped.
``LABKIT_REGISTRY_PORT`` moves all of it to another port (the daemon's mirror test
then has nothing to test: its mirror is on 5000).
"""

from __future__ import annotations

import http.server
import io
import json
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import docker.errors
import pytest
import yaml

from labkit.core import engine
from labkit.core import http as labkit_http
from labkit.core.errors import LabkitError, NotSupported, PortInUse
from labkit.core.shell import sh
from labkit.features import images
from labkit.features.registry import api as registry_api
from labkit.features.registry import mirror as registry
from labkit.features.registry import process


@pytest.fixture(scope="module", autouse=True)
def registry_state(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The registry's data (some 50 MB once seeded) in pytest's own temporary folders, which it prunes."""
    state = tmp_path_factory.mktemp("labkit-state")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LABKIT_STATE_DIR", str(state))
        yield state


@pytest.fixture(scope="module")
def running(docker_client: object, registry_state: Path) -> Iterator[registry.RegistryStatus]:
    """A seeded registry for the module; stopped afterwards if the tests started it."""
    images.ensure(["busybox", "hello-world", "hello-dock"], out=io.StringIO())
    before = registry.status()
    out = io.StringIO()
    try:
        status = registry.up(out=out)
        yield status
    finally:
        if not before.running:
            assert registry.down()
            assert not registry.status().running


@pytest.mark.docker
def test_up_seeds_the_catalog_under_docker_hub_names(running: registry.RegistryStatus, docker_client: object) -> None:
    assert running.running and running.url == registry.url()
    for repository in ("library/busybox", "library/hello-world", "labkit/hello-dock"):
        assert repository in running.repositories
    tags = [t for i in docker_client.images.list() for t in i.tags]  # type: ignore[attr-defined]
    assert not [t for t in tags if t.startswith("127.0.0.1:")], "temporary push tags were left behind"
    digests = [d for i in docker_client.images.list() for d in i.attrs.get("RepoDigests") or []]  # type: ignore[attr-defined]
    assert not [d for d in digests if d.startswith("127.0.0.1:")]


@pytest.mark.docker
def test_up_is_idempotent(running: registry.RegistryStatus) -> None:
    out = io.StringIO()
    again = registry.up(out=out)
    assert again.running and again.pid == running.pid
    text = out.getvalue()
    assert text.startswith(f"registry already running at {registry.url()}")
    assert "docker logged in" not in text  # once is enough
    assert "pushed" not in text and text.count("already in the registry") >= 3


@pytest.mark.docker
def test_docker_run_pulls_hello_world_from_the_mirror_offline(
    running: registry.RegistryStatus, docker_client: object
) -> None:
    if registry.port() != registry.DEFAULT_PORT:
        pytest.skip(f"LABKIT_REGISTRY_PORT moved the registry to {registry.port()}; the daemon's mirror is on 5000")
    mirrors = [m.rstrip("/") for m in docker_client.info()["RegistryConfig"].get("Mirrors") or []]  # type: ignore[attr-defined]
    assert registry.MIRROR_URL in mirrors, "start dockerd with --registry-mirror http://127.0.0.1:5000"
    original = docker_client.images.get("hello-world").id  # type: ignore[attr-defined]
    docker_client.images.remove("hello-world:latest", force=True)  # type: ignore[attr-defined]
    try:
        output = sh("docker run --rm hello-world", quiet=True, lesson="test").output
        assert "Unable to find image 'hello-world:latest' locally" in output
        assert "Pulling from library/hello-world" in output
        assert "Status: Downloaded newer image for hello-world:latest" in output
        assert "Hello from labkit's offline hello-world!" in output
        # the very image that was seeded, labels and all
        assert docker_client.images.get("hello-world").id == original  # type: ignore[attr-defined]
    finally:
        images.ensure(["hello-world"], out=io.StringIO())


@pytest.mark.docker
def test_status_reports_the_process_labkit_started(running: registry.RegistryStatus) -> None:
    status = registry.status()
    assert status.running and status.repositories == running.repositories
    if status.managed:
        assert status.pid is not None and status.gate_pid is not None
        cmdline = Path(f"/proc/{status.pid}/cmdline").read_bytes().split(b"\0")
        assert Path(cmdline[0].decode()).name == "docker-registry"
        config = yaml.safe_load(Path(cmdline[2].decode()).read_text())
        assert config["http"]["net"] == "unix" and config["http"]["addr"] == str(process.socket_path())
        gate_cmdline = Path(f"/proc/{status.gate_pid}/cmdline").read_bytes().split(b"\0")
        assert process.GATE_MODULE.encode() in gate_cmdline and str(registry.port()).encode() in gate_cmdline


@pytest.mark.docker
def test_up_logged_docker_in_so_pushes_and_deletes_go_through(running: registry.RegistryStatus) -> None:
    """The learner's plain ``docker push`` and the lesson's API delete both pass the gate; an anonymous one does not."""
    host = f"localhost:{registry.port()}"
    name = f"{host}/lab/it-login:v1"
    sh(f"docker tag busybox {name}", quiet=True)
    try:
        assert registry.push_login(host) is not None, "neither labkit's login nor docker's stored one"
        sh(f"docker push {name}", quiet=True)
        digest = registry_api.manifest_digest("lab/it-login", "v1")
        assert digest is not None
        anonymous = labkit_http.request("DELETE", f"{registry.url()}/v2/lab/it-login/manifests/{digest}")
        assert anonymous.status == 401 or not running.managed  # someone else's registry may have no gate
        assert registry_api.delete_manifest("lab/it-login", digest) is True
        assert registry_api.manifest_digest("lab/it-login", "v1") is None
    finally:
        sh(f"docker rmi {name}", quiet=True, expect=None)


@pytest.mark.docker
def test_down_stops_only_what_labkit_started_and_keeps_the_data(running: registry.RegistryStatus) -> None:
    if not registry.status().managed:  # someone else's registry: down() must leave it running
        assert registry.down() is False
        assert registry.status().running
        return
    before = registry.status()
    pid, gate_pid = before.pid, before.gate_pid
    assert registry.down() is True
    stopped = registry.status()
    assert not stopped.running and stopped.pid is None and stopped.gate_pid is None and not stopped.managed
    for gone in (pid, gate_pid):
        assert (
            not Path(f"/proc/{gone}").exists()
            or Path(f"/proc/{gone}/stat").read_text().split(")")[-1].split()[0] == "Z"
        )
    assert not process.socket_path().exists()
    assert registry.down() is False  # nothing left to stop
    out = io.StringIO()
    restarted = registry.up(out=out)  # the data survived: nothing to push again
    assert restarted.running and restarted.repositories == before.repositories
    assert "pushed" not in out.getvalue()


def test_a_port_held_by_another_program_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        monkeypatch.setenv("LABKIT_REGISTRY_PORT", str(server.server_address[1]))
        with pytest.raises(PortInUse) as info:
            registry.up(out=io.StringIO())
        assert info.value.port == server.server_address[1]
        assert "not a Docker registry" in str(info.value)
        assert registry.status().running is False
    finally:
        server.shutdown()
        server.server_close()


def test_down_never_signals_a_process_it_did_not_start(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LABKIT_STATE_DIR", str(tmp_path))
    stranger = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (tmp_path / "registry").mkdir()
        pid_file = tmp_path / "registry" / "registry.pid"
        start = registry._start_time(stranger.pid)
        pid_file.write_text(json.dumps({"pid": stranger.pid, "start": start, "program": "/usr/bin/docker-registry"}))
        assert registry.status().pid is None and not registry.status().managed
        assert registry.down() is False
        assert stranger.poll() is None, "down() signalled a process that is not its registry"
        assert not pid_file.exists()
    finally:
        stranger.kill()
        stranger.wait()


def test_the_config_listens_on_a_unix_socket_behind_the_gate(tmp_path: Path) -> None:
    config = yaml.safe_load(registry.config_text(tmp_path / "sock" / "registry.sock", tmp_path / "data"))
    assert "auth" not in config  # the gate checks pushes: the registry's own auth would refuse mirror pulls too
    assert config["http"] == {**config["http"], "addr": str(tmp_path / "sock" / "registry.sock"), "net": "unix"}
    assert config["storage"]["filesystem"]["rootdirectory"] == str(tmp_path / "data")
    assert config["storage"]["delete"]["enabled"] is True


def test_the_port_can_be_moved_but_the_mirror_url_cannot(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LABKIT_REGISTRY_PORT", "5099")
    assert registry.url() == "http://127.0.0.1:5099"
    assert registry.MIRROR_URL == "http://127.0.0.1:5000"
    monkeypatch.setenv("LABKIT_REGISTRY_PORT", "http")
    with pytest.raises(LabkitError, match="not a port number"):
        registry.port()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def no_registry_program(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> int:
    """A machine without docker-registry: own state folder, own free port."""
    monkeypatch.setattr(registry, "registry_program", lambda: None)
    monkeypatch.setenv("LABKIT_STATE_DIR", str(tmp_path / "state"))
    port = _free_port()
    monkeypatch.setenv("LABKIT_REGISTRY_PORT", str(port))
    return port


@pytest.mark.docker
def test_without_the_program_or_the_image_the_fix_is_named(
    docker_client: object, no_registry_program: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(process, "FALLBACK_IMAGE", "labkit-test/no-such-registry:0")
    with pytest.raises(NotSupported) as info:
        registry.up(out=io.StringIO())
    assert "apt-get install docker-registry" in str(info.value)
    assert not registry.status().running


STAND_IN_DOCKERFILE = """\
FROM debian:bookworm
COPY docker-registry /bin/registry
COPY config.yml /etc/docker/registry/config.yml
EXPOSE 5000
VOLUME /var/lib/registry
CMD ["/bin/registry", "serve", "/etc/docker/registry/config.yml"]
"""


@pytest.mark.docker
@pytest.mark.slow
def test_falls_back_to_a_registry_container(
    docker_client: object, no_registry_program: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """registry:2 is played by Debian's binary in a Debian image, shaped like the real one.

    Under another name, so a real registry:2 on the daemon is never touched.
    """
    monkeypatch.setattr(process, "FALLBACK_IMAGE", "labkit-test/registry:2")
    program = shutil.which("docker-registry") or "/usr/bin/docker-registry"
    context = tmp_path / "stand-in"
    context.mkdir()
    shutil.copy(program, context / "docker-registry")
    (context / "config.yml").write_text(
        "version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: /var/lib/registry\nhttp:\n  addr: :5000\n"
    )
    (context / "Dockerfile").write_text(STAND_IN_DOCKERFILE)
    images.ensure(["debian", "busybox"], out=io.StringIO())
    stand_in, _ = docker_client.images.build(  # type: ignore[attr-defined]
        path=str(context), tag=process.FALLBACK_IMAGE, labels=engine.labels("test"), rm=True, forcerm=True
    )
    monkeypatch.setattr(images, "CATALOG", tuple(e for e in images.CATALOG if e.name == "busybox:latest"))
    try:
        status = registry.up(out=io.StringIO())
        assert status.running and status.managed and status.pid is None
        assert status.url == f"http://127.0.0.1:{no_registry_program}"
        assert status.repositories == ["library/busybox"]
        container = docker_client.containers.get(registry.FALLBACK_CONTAINER)  # type: ignore[attr-defined]
        assert container.labels[engine.LABEL_LESSON] == "registry"
        bindings = container.attrs["HostConfig"]["PortBindings"]["5000/tcp"]
        assert bindings == [{"HostIp": "127.0.0.1", "HostPort": str(no_registry_program)}]
        assert registry.down() is True
        assert not registry.status().running
        with pytest.raises(docker.errors.NotFound):
            docker_client.containers.get(registry.FALLBACK_CONTAINER)  # type: ignore[attr-defined]
    finally:
        registry.down()
        docker_client.images.remove(stand_in.id, force=True)  # type: ignore[attr-defined]
