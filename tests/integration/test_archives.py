"""Lesson 10 against the real daemon: every way a learner may type export/import and save/load, and each near-miss."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from labkit import exercises
from labkit.core.probes import image_id
from labkit.core.shell import sh

pytestmark = pytest.mark.docker

CATALOG = ("busybox:latest", "labkit/hello-dock:latest")


def _run(command: str, expect: int | None = 0) -> str:
    return sh(command, expect=expect, quiet=True, lesson="10").output


def _drop(*refs: str) -> None:
    """Remove tags the test made (a tag shared with a catalog image is only untagged)."""
    for ref in refs:
        _run(f"docker rmi --force {ref}", expect=None)


@pytest.fixture(autouse=True)
def _workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The learner's ~/labkit-work is never touched: save.load's archive goes to a temp folder.
    monkeypatch.setenv("LABKIT_WORKSPACE", str(tmp_path / "work"))


@pytest.fixture
def catalog_ids(docker_client: Any) -> Iterator[dict[str, str]]:
    """The catalog images' ids before the test; afterwards they must all still be there."""
    before = {ref: image_id(docker_client, ref) for ref in CATALOG}
    assert all(before.values()), f"catalog images missing before the test: {before}"
    yield before  # type: ignore[misc]
    after = {ref: image_id(docker_client, ref) for ref in CATALOG}
    assert after == before, "a lesson 10 test or teardown removed or changed a catalog image"


# --- export.import -----------------------------------------------------------------------


@pytest.fixture
def snapshot(docker_client: Any, catalog_ids: dict[str, str], tmp_path: Path) -> Iterator[dict[str, Any]]:
    exercise = exercises.get("export.import")
    try:
        info = dict(exercises.setup("export.import"))
        info["file"] = str(tmp_path / "snapshot.tar")
        yield info
    finally:
        exercises.reset_exercise(exercise)
        _run("docker rm --force lk10-other", expect=None)


@pytest.mark.parametrize(
    "command",
    [
        "docker export snapshot-me | docker import - lab/snapshot",
        "docker container export --output {file} snapshot-me && docker image import {file} lab/snapshot:latest",
        "docker export -o {file} snapshot-me && cat {file} | docker import - lab/snapshot",
        "docker export snapshot-me > {file} && docker import --change 'CMD [\"sh\"]' {file} docker.io/lab/snapshot",
        "docker commit snapshot-me lab/snapshot && docker export snapshot-me | docker import - lab/snapshot",
    ],
    ids=["pipe", "container-export-o-image-import", "file-then-stdin", "redirect-with-change", "import-over-a-commit"],
)
def test_export_import_variants_pass(snapshot: dict[str, Any], command: str) -> None:
    _run(command.format(file=snapshot["file"]))
    result = exercises.check("export.import")
    assert result.passed, result
    assert result.evidence["layers"] == 1


def test_nothing_yet_is_not_yet(snapshot: dict[str, Any]) -> None:
    result = exercises.check("export.import")
    assert not result.passed and "no image lab/snapshot:latest yet" in result.message
    assert "Two steps" in (result.hint or "") and "docker export" not in (result.hint or "")


@pytest.mark.parametrize("verb", ["commit", "container commit"])
def test_commit_is_named(snapshot: dict[str, Any], verb: str) -> None:
    _run(f"docker {verb} snapshot-me lab/snapshot")
    result = exercises.check("export.import")
    assert not result.passed
    assert "docker commit" in result.message and result.evidence["layers"] == 2
    assert "commit stacks" in (result.hint or "")


def test_commit_under_another_name_is_named(snapshot: dict[str, Any]) -> None:
    _run("docker commit snapshot-me lk10-committed")
    result = exercises.check("export.import")
    assert not result.passed and "you committed snapshot-me as lk10-committed:latest" in result.message


def test_another_container_lacks_the_marker(snapshot: dict[str, Any]) -> None:
    _run("docker run --name lk10-other busybox true")
    _run("docker export lk10-other | docker import - lab/snapshot")
    result = exercises.check("export.import")
    assert not result.passed and "no /snapshot-marker.txt" in result.message
    assert "Snapshot snapshot-me itself" in (result.hint or "")


def test_another_tag_is_named(snapshot: dict[str, Any]) -> None:
    _run("docker export snapshot-me | docker import - lab/snapshot:v1")
    result = exercises.check("export.import")
    assert not result.passed and "lab/snapshot:v1" in result.message
    assert "what a name without a tag means" in (result.hint or "") and "`docker tag`" in (result.hint or "")


def test_another_name_is_named_and_reset_removes_it(snapshot: dict[str, Any], docker_client: Any) -> None:
    _run("docker export snapshot-me | docker import - snapshot")
    result = exercises.check("export.import")
    assert not result.passed and "as snapshot:latest" in result.message
    assert "Add the name lab/snapshot to it (`docker tag`)" in (result.hint or "")
    exercises.reset_exercise(exercises.get("export.import"))
    assert image_id(docker_client, "snapshot:latest") is None


def test_any_name_is_found_while_snapshot_me_exists(snapshot: dict[str, Any]) -> None:
    try:
        _run("docker export snapshot-me | docker import - lk10-mine:v2")
        result = exercises.check("export.import")
        assert not result.passed and "as lk10-mine:v2" in result.message
    finally:
        _drop("lk10-mine:v2")


def test_no_name_is_named_and_reset_removes_it(snapshot: dict[str, Any], docker_client: Any) -> None:
    made = _run("docker export snapshot-me | docker import -").strip()
    result = exercises.check("export.import")
    assert not result.passed and "without a name" in result.message and made[7:19] in result.message
    assert "`docker tag` can still name this one" in (result.hint or "")
    exercises.reset_exercise(exercises.get("export.import"))
    assert image_id(docker_client, made) is None


def test_a_catalog_image_renamed_is_named_and_survives_reset(snapshot: dict[str, Any]) -> None:
    _run("docker tag busybox lab/snapshot")
    result = exercises.check("export.import")
    assert not result.passed and "busybox:latest under a second name" in result.message
    # the catalog_ids fixture asserts busybox is still there after reset


def test_a_snapshot_from_an_earlier_setup_is_stale(snapshot: dict[str, Any]) -> None:
    try:
        _run("docker export snapshot-me | docker import - lk10-keep")
        exercises.setup("export.import")  # a new snapshot-me, with a new token
        _run("docker tag lk10-keep lab/snapshot")
        result = exercises.check("export.import")
        assert not result.passed and "from an earlier snapshot-me" in result.message
    finally:
        _drop("lk10-keep")


def test_snapshot_me_gone_says_so(snapshot: dict[str, Any]) -> None:
    _run("docker rm --force snapshot-me")
    result = exercises.check("export.import")
    assert not result.passed and "snapshot-me is gone" in result.message


def test_without_setup_says_so(docker_client: Any, catalog_ids: dict[str, str]) -> None:
    exercise = exercises.get("export.import")
    exercises.reset_exercise(exercise)
    result = exercises.check("export.import")
    assert not result.passed and "not set up" in result.message


def test_reset_removes_snapshot_commit_and_marker_images(snapshot: dict[str, Any], docker_client: Any) -> None:
    _run("docker export snapshot-me | docker import - lab/snapshot")
    _run("docker tag lab/snapshot lab/snapshot:v1")
    _run("docker commit snapshot-me lk10-committed")
    report = exercises.reset_exercise(exercises.get("export.import"))
    assert report.containers == 1 and report.other >= 3
    for ref in ("lab/snapshot:latest", "lab/snapshot:v1", "lk10-committed:latest"):
        assert image_id(docker_client, ref) is None, ref
    assert exercises.reset_exercise(exercises.get("export.import")).other == 0  # idempotent


# --- save.load ---------------------------------------------------------------------------


@pytest.fixture
def archive(docker_client: Any, catalog_ids: dict[str, str], tmp_path: Path) -> Iterator[dict[str, Any]]:
    exercise = exercises.get("save.load")
    try:
        info = dict(exercises.setup("save.load"))
        assert info["path"].startswith(str(tmp_path)), info
        yield info
    finally:
        exercises.reset_exercise(exercise)
        _run("docker rm --force lk10-other", expect=None)
        _drop("lab/hd-copy")


@pytest.mark.parametrize(
    "command",
    [
        "docker save -o {path} labkit/hello-dock",
        "docker save --output {path} labkit/hello-dock:latest",
        "docker save labkit/hello-dock > {path}",
        "docker image save --output={path} labkit/hello-dock",
        "docker save labkit/hello-dock | gzip > {path}",
        "docker save -o {path} busybox labkit/hello-dock",
        "docker save -o {path} docker.io/labkit/hello-dock",
    ],
    ids=["-o", "--output-tag", "redirect", "image-save", "gzip", "two-images", "docker.io-prefix"],
)
def test_save_variants_pass(archive: dict[str, Any], command: str) -> None:
    _run(command.format(path=archive["path"]))
    result = exercises.check("save.load")
    assert result.passed, result
    assert result.evidence["layers"] == 3


def test_no_file_yet(archive: dict[str, Any]) -> None:
    result = exercises.check("save.load")
    assert not result.passed and "no file at" in result.message
    assert "Which command writes an image, whole, to a tar file?" in (result.hint or "")
    assert archive["path"] not in (result.hint or "")


def test_export_is_named(archive: dict[str, Any]) -> None:
    _run("docker create --name lk10-other labkit/hello-dock")
    _run(f"docker export lk10-other -o {archive['path']}")
    result = exercises.check("save.load")
    assert not result.passed and "that's `docker export` output, not `docker save`" in result.message


def test_another_image_is_named(archive: dict[str, Any]) -> None:
    _run(f"docker save -o {archive['path']} busybox")
    result = exercises.check("save.load")
    assert not result.passed and "save archive of busybox:latest, not of labkit/hello-dock" in result.message


def test_saved_by_id_is_named(archive: dict[str, Any]) -> None:
    _run(f"docker save -o {archive['path']} $(docker image inspect --format '{{{{.Id}}}}' labkit/hello-dock)")
    result = exercises.check("save.load")
    assert not result.passed and "saved by its id" in result.message
    assert "save it by its name" in (result.hint or "")


def test_another_name_for_the_same_image_is_named(archive: dict[str, Any]) -> None:
    _run("docker tag labkit/hello-dock lab/hd-copy")
    _run(f"docker save -o {archive['path']} lab/hd-copy")
    result = exercises.check("save.load")
    assert not result.passed and "under the name lab/hd-copy:latest" in result.message


@pytest.mark.parametrize("cut", [1_000_000, 2_000_000])
def test_truncated_is_named(archive: dict[str, Any], cut: int) -> None:
    # pipefail: save is killed by SIGPIPE when head stops reading, so any exit code is fine here
    _run(f"docker save labkit/hello-dock | head -c {cut} > {archive['path']}", expect=None)
    result = exercises.check("save.load")
    assert not result.passed and "cut short" in result.message


def test_truncated_gzip_is_named(archive: dict[str, Any]) -> None:
    _run(f"docker save labkit/hello-dock | gzip | head -c 300000 > {archive['path']}", expect=None)
    result = exercises.check("save.load")
    assert not result.passed and "cut short" in result.message


@pytest.mark.parametrize(
    ("command", "needle"),
    [(": > {path}", "is empty"), ("echo hello > {path}", "not a tar archive"), ("mkdir {path}", "is a folder")],
    ids=["empty", "not-tar", "folder"],
)
def test_wrong_files_are_named(archive: dict[str, Any], command: str, needle: str) -> None:
    _run(command.format(path=archive["path"]))
    result = exercises.check("save.load")
    assert not result.passed and needle in result.message
    if Path(archive["path"]).is_dir():
        Path(archive["path"]).rmdir()


def test_teardown_removes_the_archive_and_is_idempotent(archive: dict[str, Any]) -> None:
    _run(f"docker save -o {archive['path']} labkit/hello-dock")
    assert exercises.reset_exercise(exercises.get("save.load")).other == 1
    assert not Path(archive["path"]).exists()
    assert exercises.reset_exercise(exercises.get("save.load")).other == 0


def test_loading_the_saved_archive_keeps_the_catalog_image(
    archive: dict[str, Any], catalog_ids: dict[str, str]
) -> None:
    _run(f"docker save -o {archive['path']} labkit/hello-dock")
    assert "Loaded image: labkit/hello-dock:latest" in _run(f"docker load -i {archive['path']}")
    assert exercises.check("save.load").passed
