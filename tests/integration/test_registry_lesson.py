"""Lesson 03 against the real daemon and the course's registry: push, pull, digests, near-misses.

Everything here lives under ``localhost:5000/lab/…`` and is removed by the
exercises' own teardown; the registry is left running, as it was found.
"""

from __future__ import annotations

import io
import socket
from collections.abc import Iterator

import pytest

from labkit import exercises
from labkit.core.shell import sh
from labkit.exercises import lesson03_registries as registries
from labkit.features.registry import api as registry_api
from labkit.features.registry import mirror as registry

pytestmark = pytest.mark.docker

TARGET = registries.TARGET


@pytest.fixture(autouse=True)
def clean(docker_client: object) -> Iterator[None]:
    """A running registry and no lab/ names, before and after each test."""
    registry.up(out=io.StringIO())
    for exercise_id in ("registry.push", "registry.digest"):
        exercises.reset_exercise(exercises.get(exercise_id))
    yield
    for exercise_id in ("registry.digest", "registry.push"):
        exercises.reset_exercise(exercises.get(exercise_id))
    assert not registries._lab_refs(docker_client), "lab/ names were left behind"  # type: ignore[arg-type]
    assert registry.status().running


def _digest_line(output: str) -> str:
    line = next(line for line in output.splitlines() if ": digest: sha256:" in line)
    return line.split("digest: ", 1)[1].split()[0]


def test_push_rmi_pull_round_trip_and_digests_agree(docker_client: object) -> None:
    name = "localhost:5000/lab/it-busybox:v1"
    sh(f"docker tag busybox {name}", quiet=True)
    pushed = _digest_line(sh(f"docker push {name}", quiet=True).output)
    m = registry_api.manifest("lab/it-busybox", "v1")
    assert m.digest == pushed and m.verified and m.media_type == registry_api.DOCKER_MANIFEST
    image = docker_client.images.get(name)  # type: ignore[attr-defined]
    assert f"localhost:5000/lab/it-busybox@{m.digest}" in image.attrs["RepoDigests"]
    assert m.config is not None and m.config.digest == image.id
    for layer in m.layers:
        blob = registry_api.blob("lab/it-busybox", layer.digest)
        assert blob is not None and blob.size == layer.size
    old = registry_api.manifest("lab/it-busybox", "v1", accept=())
    assert old.media_type == registry_api.SCHEMA1 and old.digest != m.digest

    sh(f"docker rmi {name}", quiet=True)
    assert docker_client.images.get("busybox").id == image.id  # type: ignore[attr-defined]  # untagged only
    ran = sh(f"docker run --rm {name} echo round-trip", quiet=True, lesson="03").output
    assert f"Unable to find image '{name}' locally" in ran and f"Digest: {m.digest}" in ran and "round-trip" in ran


def test_pull_of_an_image_on_a_local_base_says_already_exists(docker_client: object) -> None:
    name = "localhost:5000/lab/it-note:v1"
    try:
        sh("docker run --name lab03-note busybox sh -c 'echo note > /note.txt'", quiet=True, lesson="03")
        sh(f"docker commit lab03-note {name}", quiet=True)
    finally:
        sh("docker rm -f lab03-note", quiet=True, expect=None)
    sh(f"docker push {name}", quiet=True)
    sh(f"docker rmi {name}", quiet=True)
    pulled = sh(f"docker pull {name}", quiet=True).output
    assert ": Already exists" in pulled and ": Pull complete" in pulled


class TestPushNearMisses:
    def _check(self) -> exercises.CheckResult:
        return exercises.check("registry.push")

    def test_nothing_yet(self) -> None:
        result = self._check()
        assert not result.passed and "no lab/hello-dock:v1 yet" in result.message

    def test_tagged_not_pushed(self) -> None:
        sh(f"docker tag labkit/hello-dock {TARGET}", quiet=True)
        result = self._check()
        assert not result.passed and "tagged, not pushed" in result.message and "sends it there" in (result.hint or "")

    def test_pushed_under_another_tag(self) -> None:
        sh("docker tag labkit/hello-dock localhost:5000/lab/hello-dock", quiet=True)
        sh("docker push localhost:5000/lab/hello-dock", quiet=True)
        sh("docker rmi localhost:5000/lab/hello-dock", quiet=True)
        result = self._check()
        assert not result.passed and "under :latest" in result.message and "docker uses :latest" in (result.hint or "")

    def test_pushed_under_another_repository(self) -> None:
        sh("docker tag labkit/hello-dock 127.0.0.1:5000/lab/web:v1", quiet=True)
        sh("docker push 127.0.0.1:5000/lab/web:v1", quiet=True)
        sh("docker rmi 127.0.0.1:5000/lab/web:v1", quiet=True)
        result = self._check()
        assert not result.passed and "as lab/web:v1" in result.message and "lab/hello-dock" in (result.hint or "")

    def test_a_different_image_under_the_tag(self) -> None:
        sh(f"docker tag busybox {TARGET}", quiet=True)
        sh(f"docker push {TARGET}", quiet=True)
        result = self._check()
        assert (
            not result.passed
            and "busybox:latest" in result.message
            and "make it name labkit/hello-dock" in (result.hint or "")
        )

    def test_the_other_address_of_the_same_registry_passes(self) -> None:
        sh("docker tag labkit/hello-dock 127.0.0.1:5000/lab/hello-dock:v1", quiet=True)
        sh("docker push 127.0.0.1:5000/lab/hello-dock:v1", quiet=True)
        result = self._check()
        assert result.passed, result

    def test_registry_not_running(self, monkeypatch: pytest.MonkeyPatch) -> None:
        # A port nothing listens on stands in for a stopped registry: the shared one stays up.
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            monkeypatch.setenv("LABKIT_REGISTRY_PORT", str(s.getsockname()[1]))
            result = self._check()
        assert (
            not result.passed
            and "No registry answers" in result.message
            and "labkit registry up" in (result.hint or "")
        )


class TestDigestNearMisses:
    @pytest.fixture(autouse=True)
    def pushed(self) -> None:
        exercises.setup("registry.digest")

    def _check(self, answer: str) -> exercises.CheckResult:
        return exercises.check("registry.digest", answer=answer)

    def test_right_answer_in_any_case_and_spacing(self) -> None:
        digest = registry_api.manifest("lab/hello-dock", "v1").digest
        assert self._check(f"  {digest.upper()} ").passed

    def test_near_misses_each_have_their_own_hint(self, docker_client: object) -> None:
        digest = registry_api.manifest("lab/hello-dock", "v1").digest
        image = docker_client.images.get("labkit/hello-dock")  # type: ignore[attr-defined]
        layer = registry_api.manifest("lab/hello-dock", "v1").layers[-1].digest
        old = registry_api.manifest("lab/hello-dock", "v1", accept=()).digest
        cases = {
            digest.removeprefix("sha256:"): "names its algorithm",
            digest[:19]: "12 of its 64",
            image.id: "image ID",
            layer: "one of the image's layers",
            image.attrs["RootFS"]["Layers"][-1]: "one of the image's layers",
            old: "schema 1",
            "sha256:" + "0" * 64: "not the one of lab/hello-dock:v1",
            "latest": "not a digest",
        }
        hints = set()
        for answer, needle in cases.items():
            result = self._check(answer)
            assert not result.passed and needle in result.message, (answer, result)
            hints.add(result.hint)
        assert len(hints) == len(set(cases.values()))

    def test_no_tag_in_the_registry(self) -> None:
        registries.delete_lab_from_registry(repositories=(registries.REPOSITORY,))
        result = self._check("sha256:" + "0" * 64)
        assert not result.passed and "no lab/hello-dock:v1" in result.message
