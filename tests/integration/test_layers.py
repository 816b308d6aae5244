"""Lesson 02 against the real daemon: the lesson image, the explorer, the storage view, the near-misses."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from labkit import exercises
from labkit.core import engine
from labkit.core.shell import sh
from labkit.exercises import lesson02_images_and_layers as lesson
from labkit.features import layers
from labkit.notebook.layer_explorer import explore

pytestmark = pytest.mark.docker

LABELS = 'LABEL labkit.lesson="02" labkit.session="lesson-02"'


def _build(tmp_path: Path, tag: str, dockerfile: str) -> None:
    """Build a throwaway context; its LABEL line makes `labkit reset --lesson 02` remove it."""
    (tmp_path / "Dockerfile").write_text(dockerfile)
    sh(f"docker build -q -t {tag} {tmp_path}", quiet=True)


@pytest.fixture
def clean_build(docker_client: object) -> Iterator[None]:
    exercise = exercises.get("layers.build")
    exercises.reset_exercise(exercise)
    yield
    exercises.reset_exercise(exercise)
    sh("docker rmi -f lab/layered:latest layered:v1 lab/onelayer:v1", quiet=True, expect=None)


def test_lesson_image_explorer_lists_its_instructions(clean_build: None) -> None:
    sh(lesson.BUILD_COMMAND, quiet=True)
    explorer = explore("lab/layered:v1")
    labels = [step.label for step in explorer.image.steps]
    assert labels[0].startswith("(base layer")  # busybox, imported offline
    assert [label.split()[0] for label in labels[1:]] == ["LABEL", "ENV", "COPY", "RUN", "COPY", "CMD"]
    assert len(explorer.image.diff_ids) == 4 and explorer.image.exact
    assert [s.instruction.split()[0] for s in explorer.image.layer_steps[1:]] == ["COPY", "RUN", "COPY"]
    html = explorer._repr_html_()
    assert html == explore("lab/layered:v1")._repr_html_()
    assert html.count("metadata only") == 3
    common = layers.shared("busybox", "lab/layered:v1")
    assert len(common.layers) == 1 and "share 1 layer" in str(common)


class TestBuildNearMisses:
    def test_missing(self, clean_build: None) -> None:
        result = exercises.check("layers.build")
        assert not result.passed and "no image lab/layered:v1" in result.message
        assert "which option gives the result its name" in (result.hint or "")
        assert lesson.BUILD_COMMAND not in (result.hint or "")

    def test_built_under_another_tag(self, clean_build: None) -> None:
        sh(f"docker build -q -t lab/layered {lesson.CONTEXT}", quiet=True)
        result = exercises.check("layers.build")
        assert not result.passed and "lab/layered:latest" in result.message
        assert "without `:v1` Docker uses `latest`" in (result.hint or "")

    def test_built_without_a_name(self, clean_build: None) -> None:
        sh(f"docker build -q {lesson.CONTEXT}", quiet=True)
        result = exercises.check("layers.build")
        assert not result.passed and "has no name" in result.message and "`docker tag`" in (result.hint or "")

    def test_named_without_the_lab_prefix(self, clean_build: None, tmp_path: Path) -> None:
        _build(tmp_path, "layered:v1", f"FROM busybox\n{LABELS}\nRUN touch /a\nRUN touch /b\n")
        result = exercises.check("layers.build")
        assert not result.passed and "layered:v1" in result.message and "exactly lab/layered:v1" in (result.hint or "")

    def test_too_few_layers(self, clean_build: None, tmp_path: Path) -> None:
        _build(tmp_path, "lab/layered:v1", f"FROM busybox\n{LABELS}\nRUN touch /a /b /c\n")
        result = exercises.check("layers.build")
        assert not result.passed and "2 filesystem layers" in result.message
        assert "one step" in (result.hint or "")

    def test_wrong_context_with_no_layers_of_its_own(self, clean_build: None, tmp_path: Path) -> None:
        _build(tmp_path, "lab/layered:v1", f'FROM busybox\n{LABELS}\nCMD ["sh"]\n')
        result = exercises.check("layers.build")
        assert not result.passed and "none of its own" in result.message and "another folder" in (result.hint or "")

    def test_busybox_retagged(self, clean_build: None) -> None:
        sh("docker tag busybox lab/layered:v1", quiet=True)
        result = exercises.check("layers.build")
        assert not result.passed and "busybox under a second name" in result.message
        exercises.reset_exercise(exercises.get("layers.build"))
        assert layers.read("busybox").diff_ids  # the teardown only removed the name, busybox stays

    def test_demo_image_retagged(self, clean_build: None) -> None:
        sh(f"docker build -q -t {lesson.DEMO} {layers.lesson_dir('notes')}", quiet=True)
        sh(f"docker tag {lesson.DEMO} lab/layered:v1", quiet=True)
        try:
            result = exercises.check("layers.build")
            assert not result.passed and "demo image" in result.message
        finally:
            sh(f"docker rmi -f {lesson.DEMO}", quiet=True, expect=None)

    def test_any_build_of_the_tag_with_three_layers_passes(self, clean_build: None, tmp_path: Path) -> None:
        _build(tmp_path, "lab/layered:v1", f"FROM busybox\n{LABELS}\nRUN touch /a\nRUN touch /b\n")
        assert exercises.check("layers.build").passed


@pytest.fixture
def cow(docker_client: object) -> Iterator[None]:
    exercises.setup("layers.diff")
    yield
    exercises.reset_exercise(exercises.get("layers.diff"))


class TestDiffNearMisses:
    def test_nothing_changed_yet(self, cow: None) -> None:
        result = exercises.check("layers.diff")
        assert not result.passed and "still empty" in result.message

    def test_only_added(self, cow: None) -> None:
        sh("docker exec cow touch /tmp/mine", quiet=True)
        result = exercises.check("layers.diff")
        assert not result.passed and "added /tmp/mine" in result.message
        assert "delete a file that came with the image" in (result.hint or "")

    def test_added_then_deleted_own_file_is_not_a_d(self, cow: None) -> None:
        sh("docker exec cow sh -c 'touch /tmp/gone && rm /tmp/gone && touch /tmp/kept'", quiet=True)
        result = exercises.check("layers.diff")
        assert not result.passed and "deleted nothing" in result.message
        assert "leaves no trace" in (result.hint or "")

    def test_only_deleted(self, cow: None) -> None:
        sh("docker exec cow rm /bin/vi", quiet=True)
        result = exercises.check("layers.diff")
        assert not result.passed and "deleted /bin/vi" in result.message and "touch" in (result.hint or "")

    def test_only_changed(self, cow: None) -> None:
        sh("docker exec cow sh -c 'echo extra >> /etc/group'", quiet=True)
        result = exercises.check("layers.diff")
        assert not result.passed and result.message.startswith("Only changes (C)")
        assert "/etc/group" in result.message

    def test_stopped_container_keeps_its_layer(self, cow: None) -> None:
        sh("docker stop cow", quiet=True)
        result = exercises.check("layers.diff")
        assert not result.passed and "docker start cow" in (result.hint or "")
        sh("docker start cow", quiet=True)
        sh("docker exec cow touch /tmp/new-file", quiet=True)
        sh("docker exec cow rm /bin/vi", quiet=True)
        sh("docker stop cow", quiet=True)
        assert exercises.check("layers.diff").passed  # a stopped container still has its writable layer

    def test_cow_made_by_hand(self, docker_client: object) -> None:
        exercise = exercises.get("layers.diff")
        exercises.reset_exercise(exercise)
        try:
            sh("docker run -d --name cow busybox sleep 60", quiet=True, lesson="02")
            sh("docker exec cow touch /tmp/new-file", quiet=True)
            sh("docker exec cow rm /bin/vi", quiet=True)
            result = exercises.check("layers.diff")
            assert not result.passed and "not the one setup started" in result.message
        finally:
            exercises.reset_exercise(exercise)

    def test_missing(self, docker_client: object) -> None:
        exercises.reset_exercise(exercises.get("layers.diff"))
        result = exercises.check("layers.diff")
        assert not result.passed and "setup" in (result.hint or "")


def test_writable_layer_seen_from_the_host(docker_client: object) -> None:
    """A written file is a regular file in UpperDir; a deleted image file is a whiteout there."""
    name = "lk-test-layers-upper"
    sh(f"docker run -d --name {name} busybox sleep 60", quiet=True, lesson="02")
    try:
        sh(f"docker exec {name} sh -c 'echo hello > /tmp/note.txt && rm /bin/vi'", quiet=True)
        where = layers.storage(name)
        info = engine.client().info()
        if info.get("Driver") != "overlay2" or not where.visible:
            pytest.skip(f"the daemon's layers are not on this filesystem (driver {info.get('Driver')})")
        assert len(where.lower) == 1 + where.image_layers  # the init layer + busybox's one layer
        report = layers.upper_report(name, ["/tmp/note.txt", "/bin/vi", "/bin/sh"])
        assert "/tmp/note.txt: a regular file, first line 'hello'" in report
        assert "/bin/vi: a whiteout" in report
        assert "/bin/sh: not there" in report
    finally:
        sh(f"docker rm -f {name}", quiet=True)
