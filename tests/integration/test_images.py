"""The course's images against the real daemon: built offline, run, bundled and loaded.

These tests remove catalog images and make them again; every test leaves the
images it touched present, as the daemon had them.
"""

from __future__ import annotations

import gzip
import io
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import docker.errors
import pytest

from labkit.core import engine, wait
from labkit.core.errors import LabkitError
from labkit.core.shell import sh
from labkit.features import images

pytestmark = pytest.mark.docker

OFFLINE_SET = ["busybox", "hello-world", "hello-dock"]


def _forget(client: object, names: list[str], replaced: list[str]) -> None:
    """Remove catalog images by name, dependants first; note their ids in ``replaced``.

    ``force`` only untags an image a container still uses: the ``restores`` fixture
    deletes such leftovers once the test is done, if nothing uses them by then.
    """
    for entry in reversed(images.resolve(names)):
        try:
            replaced.append(client.images.get(entry.name).id)  # type: ignore[attr-defined]
            client.images.remove(entry.name, force=True)  # type: ignore[attr-defined]
        except docker.errors.ImageNotFound:
            pass


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LABKIT_OFFLINE", "1")


@pytest.fixture
def replaced(docker_client: object) -> Iterator[list[str]]:
    """Ids of images a test untagged; removed afterwards unless something still uses them."""
    ids: list[str] = []
    yield ids
    for image_id in ids:
        try:
            if not docker_client.images.get(image_id).tags:  # type: ignore[attr-defined]
                docker_client.images.remove(image_id)  # type: ignore[attr-defined]
        except docker.errors.APIError:  # gone already, or a container still uses it
            pass


@pytest.fixture
def restores(docker_client: object, replaced: list[str]) -> Iterator[list[str]]:
    """Names a test may remove; ensured again afterwards, whatever happened."""
    touched: list[str] = []
    yield touched
    if touched:
        images.ensure(touched, out=io.StringIO())


def test_ensure_builds_offline_then_finds_everything_present(
    docker_client: object, offline: None, restores: list[str], replaced: list[str]
) -> None:
    restores.extend(OFFLINE_SET)
    _forget(docker_client, OFFLINE_SET, replaced)
    out = io.StringIO()
    states = images.ensure(OFFLINE_SET, out=out)
    assert [s.name for s in states] == ["busybox:latest", "hello-world:latest", "labkit/hello-dock:latest"]
    assert [s.source for s in states] == ["built"] * 3
    assert [s.offline_built for s in states] == [True, True, False]
    lines = out.getvalue().splitlines()
    assert len(lines) == 3 and all(" built in " in line and "(LABKIT_OFFLINE=1)" in line for line in lines)

    for state in states:
        labels = docker_client.images.get(state.name).labels  # type: ignore[attr-defined]
        assert labels[images.LABEL_IMAGE] == state.name
        assert engine.LABEL_SESSION not in labels  # course infrastructure survives `labkit reset`
    # hello-dock is built FROM busybox, yet does not claim to be an offline busybox
    assert docker_client.images.get("labkit/hello-dock").labels[engine.LABEL_OFFLINE] == ""  # type: ignore[attr-defined]
    assert docker_client.images.get("busybox").labels[engine.LABEL_OFFLINE] == "busybox-static"  # type: ignore[attr-defined]

    started = time.monotonic()
    again_out = io.StringIO()
    again = images.ensure(OFFLINE_SET, out=again_out)
    assert time.monotonic() - started < 1.0
    assert [s.source for s in again] == ["present"] * 3
    assert [s.image_id for s in again] == [s.image_id for s in states]
    assert again_out.getvalue().split() == [w for s in states for w in (s.name, "present")]


def test_status_is_fast_and_changes_nothing(docker_client: object) -> None:
    before = {i.id for i in docker_client.images.list(all=True)}  # type: ignore[attr-defined]
    started = time.monotonic()
    states = images.status()
    assert time.monotonic() - started < 1.0
    assert [s.name for s in states] == [e.name for e in images.CATALOG]
    assert all(s.source in ("present", "missing") for s in states)
    assert all((s.image_id is not None) == s.present for s in states)
    assert {i.id for i in docker_client.images.list(all=True)} == before  # type: ignore[attr-defined]


def test_busybox_image_runs_its_applets(docker_client: object) -> None:
    images.ensure(["busybox"], out=io.StringIO())
    done = sh(
        "docker run --rm busybox sh -c 'echo -n my-secret | base64; id -un; ls -ld /tmp'", quiet=True, lesson="test"
    )
    secret, user, tmp = done.output.splitlines()
    assert secret == "bXktc2VjcmV0" and user == "root" and tmp.startswith("drwxrwxrwt")


def test_hello_world_prints_labkits_six_steps_every_time(docker_client: object) -> None:
    images.ensure(["hello-world"], out=io.StringIO())
    script = (images.find("hello-world").context_dir / "hello").read_text()
    expected = script.split("<<'TEXT'\n", 1)[1].rsplit("TEXT", 1)[0]
    first = sh("docker run --rm hello-world", quiet=True, lesson="test").output
    second = sh("docker run --rm hello-world", quiet=True, lesson="test").output
    assert first == second == expected
    assert "labkit's offline hello-world" in first and " 6. The daemon started the container." in first
    assert "the client asked the daemon to pull" in first  # the client decides to pull, not the daemon


def test_hello_dock_serves_its_page_on_a_published_port(docker_client: object, tracked: list[object]) -> None:
    images.ensure(["hello-dock"], out=io.StringIO())
    port = _free_port()
    container = docker_client.containers.run(  # type: ignore[attr-defined]
        "labkit/hello-dock", detach=True, ports={"80/tcp": ("127.0.0.1", port)}, labels=engine.labels("test")
    )
    tracked.append(container)
    assert wait.http_ok(f"http://127.0.0.1:{port}/", timeout=15) == 200
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as response:
        page = response.read().decode()
    assert "<title>hello-dock · labkit</title>" in page
    # PID 1 handles SIGTERM, so `docker stop` does not wait out the grace period
    started = time.monotonic()
    container.stop(timeout=10)
    assert time.monotonic() - started < 3.0
    container.reload()
    assert container.attrs["State"]["ExitCode"] == 0


def test_bundle_and_load_round_trip(docker_client: object, tmp_path: Path, restores: list[str]) -> None:
    restores.append("busybox")
    images.ensure(["busybox"], out=io.StringIO())
    original = docker_client.images.get("busybox:latest").id  # type: ignore[attr-defined]
    out = io.StringIO()
    path = images.bundle(tmp_path / "course" / "busybox.tar.gz", ["busybox"], out=out)
    assert path.read_bytes()[:2] == b"\x1f\x8b" and gzip.open(path).read(512)  # a real gzip stream
    assert not list(path.parent.glob("*.part"))
    assert out.getvalue().splitlines()[0].startswith("saving 1 image (busybox:latest)")

    docker_client.images.remove("busybox:latest", force=True)  # type: ignore[attr-defined]
    loaded_out = io.StringIO()
    assert images.load(path, out=loaded_out) == ["busybox:latest"]
    assert docker_client.images.get("busybox:latest").id == original  # type: ignore[attr-defined]
    assert "busybox:latest" in loaded_out.getvalue()


def test_load_says_what_is_wrong_with_a_bad_file(docker_client: object, tmp_path: Path) -> None:
    with pytest.raises(LabkitError, match="no image bundle at"):
        images.load(tmp_path / "missing.tar", out=io.StringIO())
    junk = tmp_path / "junk.tar.gz"
    junk.write_bytes(gzip.compress(b"this is not a docker image archive" * 100)[:200])
    with pytest.raises(LabkitError, match="not an image bundle Docker can load") as info:
        images.load(junk, out=io.StringIO())
    assert "labkit images bundle" in str(info.value)


@pytest.mark.slow
def test_debian_is_built_with_debootstrap_from_the_apt_mirror(
    docker_client: object, offline: None, restores: list[str], replaced: list[str]
) -> None:
    restores.append("debian")
    _forget(docker_client, ["debian"], replaced)
    out = io.StringIO()
    (state,) = images.ensure(["debian"], out=out)
    assert state.source == "built" and state.offline_built
    lines = out.getvalue().splitlines()
    assert len(lines) <= 15, lines
    assert lines[-1].startswith("debian:bookworm") and "built in" in lines[-1]
    assert any("base system installed" in line for line in lines)
    done = sh(
        "docker run --rm debian:bookworm bash -c 'cat /etc/debian_version; ls /var/lib/apt/lists'",
        quiet=True,
        lesson="test",
    )
    assert done.output.split()[0].startswith("12.")
    labels = docker_client.images.get("debian:bookworm").labels  # type: ignore[attr-defined]
    assert labels[engine.LABEL_OFFLINE] == "debootstrap"
