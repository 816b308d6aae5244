"""Progress of real builds, pulls, pushes, bundles and loads, read back from a StringIO.

Every image here is a throwaway (``labkit-activity-test/…`` and
``127.0.0.1:5000/labkit-test/activity:<random>``), removed at the end; the
catalog images are only read.
"""

from __future__ import annotations

import contextlib
import io
import re
import secrets
from collections.abc import Iterator
from pathlib import Path

import docker
import docker.errors
import pytest

from labkit.core import activity, fmt
from labkit.features.images import archive, builders, catalog, pull
from labkit.features.registry import api as registry_api
from labkit.features.registry import mirror as registry
from labkit.features.registry import seeding

REMOTE_REPOSITORY = "labkit-test/activity"  # one repository in the registry, a new tag per run
DOCKERFILE = """FROM busybox:latest
COPY payload /payload
RUN wc -c /payload
LABEL purpose=labkit-activity-test
"""


@pytest.fixture
def throwaway(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, docker_client: docker.DockerClient
) -> Iterator[catalog.CatalogImage]:
    """A catalog-like entry built from a temporary context (with 2 MB of its own bytes), removed afterwards."""
    if not registry.status().running:
        pytest.skip("the local registry is not running (`labkit registry up`)")
    monkeypatch.setattr(catalog, "CONTEXTS_DIR", tmp_path)
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "Dockerfile").write_text(DOCKERFILE)
    (tmp_path / "site" / "payload").write_bytes(secrets.token_bytes(2_000_000))  # a layer no one else has
    entry = catalog.CatalogImage(f"labkit-activity-test/site:{secrets.token_hex(4)}", "dockerfile", context="site")
    yield entry
    for image in docker_client.images.list(filters={"label": "purpose=labkit-activity-test"}):
        docker_client.images.remove(image.id, force=True)


def test_a_build_shows_every_step(throwaway: catalog.CatalogImage) -> None:
    live = io.StringIO()
    with activity.showing(live, "plain"):
        builders.build(throwaway, io.StringIO())
    steps = re.findall(
        r"^building labkit-activity-test/site:\w+: step (\d+)/(\d+): (.*)$", live.getvalue(), re.MULTILINE
    )
    total = int(steps[0][1])
    assert [int(n) for n, _, _ in steps] == list(range(1, total + 1))
    assert steps[0][2] == "FROM busybox:latest" and steps[1][2] == "COPY payload /payload"


def test_push_and_pull_show_bytes(throwaway: catalog.CatalogImage, docker_client: docker.DockerClient) -> None:
    builders.build(throwaway, io.StringIO())
    tag = throwaway.tag
    remote = f"127.0.0.1:5000/{REMOTE_REPOSITORY}"
    pushed, pulled = io.StringIO(), io.StringIO()
    try:
        with activity.showing(pushed, "plain"):
            seeding._push(throwaway.name, remote, tag)
        docker_client.images.remove(throwaway.name)  # the pull must fetch the payload layer again
        with activity.showing(pulled, "plain"):
            assert pull.try_pull(f"{remote}:{tag}", timeout=60) is None
    finally:
        digest = registry_api.manifest_digest(REMOTE_REPOSITORY, tag)
        if digest:
            registry_api.delete_manifest(REMOTE_REPOSITORY, digest)
        for ref in (f"{remote}:{tag}", throwaway.name):
            with contextlib.suppress(docker.errors.ImageNotFound):
                docker_client.images.remove(ref, force=True)
    # the payload's layer is the one that moves: busybox's is mounted from library/busybox
    assert re.search(
        r"^pushing labkit-activity-test/site:\w+: 100% \(2\.0 MB of 2\.0 MB\), [01]/1 layers$",
        pushed.getvalue(),
        re.MULTILINE,
    ), pushed.getvalue()
    lines = pulled.getvalue().splitlines()
    assert any(re.search(r": 100% \(2\.0 MB of 2\.0 MB\), (extracting )?[01]/1 layers$", line) for line in lines), lines
    assert "extracting" in lines[-1]  # the phase after the download gets its own line
    percents = [int(p) for p in re.findall(r": (\d+)% \(", pulled.getvalue())]
    assert percents == sorted(percents)  # never backwards


def test_bundle_and_load_show_bytes(tmp_path: Path) -> None:
    target = tmp_path / "busybox.tar"
    saved, loaded = io.StringIO(), io.StringIO()
    with activity.showing(saved, "plain"):
        archive.bundle(target, ["busybox"], out=io.StringIO())
    assert re.search(
        r"^saving to busybox\.tar: \d+% \([\d.]+ [kM]B of [\d.]+ [kM]B\)$", saved.getvalue(), re.MULTILINE
    ), saved.getvalue()
    with activity.showing(loaded, "tty"):
        assert archive.load(target, out=io.StringIO()) == ["busybox:latest"]  # same image: nothing changes
    frames = [f.removesuffix("\x1b[K") for f in loaded.getvalue().split("\r") if f]
    size = target.stat().st_size
    assert frames[-2].startswith("loading busybox.tar [####################] 100% (")
    assert frames[-2].endswith(f"of {fmt.size(size, 'progress')})") and frames[-1] == ""


def test_fast_work_shows_nothing_with_the_default_delay(throwaway: catalog.CatalogImage) -> None:
    """What notebooks rely on: work done within the delay leaves no trace."""
    live = io.StringIO()
    with activity.showing(live, "plain", delay=activity.DELAY):
        assert pull.try_pull("busybox:latest", timeout=30) is None  # present: the mirror answers "up to date"
    assert live.getvalue() == ""
