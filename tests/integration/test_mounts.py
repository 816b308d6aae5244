"""Lesson 09 against the real daemon: the labkit/rmbyext tool, and mounts.rmbyext's check.

Every variant and near-miss below is typed as a learner would type it (``labkit.sh``
runs the real command), then checked. The workspace is a temporary folder, so the
tests never write into the learner's ``~/labkit-work``.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Iterator
from pathlib import Path

import pytest

from labkit import exercises
from labkit.core.shell import sh
from labkit.exercises import lesson09_bind_mounts as mounts
from labkit.features import images

pytestmark = pytest.mark.docker

EXERCISE = "mounts.rmbyext"


@pytest.fixture(scope="module", autouse=True)
def _image(docker_client: object) -> None:
    images.ensure([mounts.IMAGE])


@pytest.fixture
def zone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The exercise set up in a throwaway workspace; everything it made removed afterwards."""
    monkeypatch.setenv("LABKIT_WORKSPACE", str(tmp_path / "work"))
    exercise = exercises.get(EXERCISE)
    try:
        info = exercises.setup(EXERCISE)
        path = Path(info["path"])
        assert path == tmp_path / "work" / "mounts" / "zone"
        assert sorted(p.name for p in path.iterdir()) == sorted(mounts.FILES)
        yield path
    finally:
        exercises.reset_exercise(exercise)


def run(command: str, expect: int = 0) -> str:
    return sh(command, expect=expect, quiet=True, lesson=mounts.LESSON).output


def q(path: Path | str) -> str:
    return shlex.quote(str(path))


# --- the tool -----------------------------------------------------------------------------


def test_usage_without_an_extension_exits_2(docker_client: object) -> None:
    out = run(f"docker run --rm {mounts.IMAGE}", expect=2)
    assert out.startswith("usage: rmbyext EXTENSION")
    assert "is not a file extension" in run(f"docker run --rm {mounts.IMAGE} 'p*'", expect=2)


def test_without_a_mount_it_refuses_with_3(docker_client: object) -> None:
    out = run(f"docker run --rm {mounts.IMAGE} pdf", expect=3)
    assert "nothing is mounted at /zone" in out


def test_read_only_mount_fails_with_4_and_deletes_nothing(tmp_path: Path) -> None:
    (tmp_path / "a.pdf").write_text("x")
    for mount in (f"-v {q(tmp_path)}:/zone:ro", f"--mount type=bind,source={q(tmp_path)},target=/zone,readonly"):
        out = run(f"docker run --rm {mount} {mounts.IMAGE} pdf", expect=4)
        assert "cannot write to /zone: Read-only file system" in out
        assert "mounted read-only (:ro)" in out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.pdf"]


def test_it_recurses_sorts_keeps_its_log_and_appends_runs(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    for name in ("b.pdf", "a.pdf", "sub/c.pdf", "keep.txt", "space me.pdf"):
        (tmp_path / name).write_text("x")
    out = run(f"docker run --rm -v {q(tmp_path)}:/zone {mounts.IMAGE} .pdf")
    assert "deleted: a.pdf\ndeleted: b.pdf\ndeleted: space me.pdf\ndeleted: sub/c.pdf\n4 files deleted.\n" in out
    run(f"docker run --rm -v {q(tmp_path)}:/zone {mounts.IMAGE} log")  # never its own log
    log = (tmp_path / mounts.LOG_NAME).read_text()
    runs = mounts.parse_log(log)
    assert [(r.extension, r.deleted) for r in runs] == [
        ("pdf", ["a.pdf", "b.pdf", "space me.pdf", "sub/c.pdf"]),
        ("log", []),
    ]
    assert log.rstrip().endswith("0 files deleted.")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.txt", mounts.LOG_NAME, "sub"]
    # the container ran as root: what it created on the host belongs to uid 0
    assert (tmp_path / mounts.LOG_NAME).stat().st_uid == 0


# --- every correct way passes -----------------------------------------------------------

VARIANTS = [
    'docker run --rm -v "{path}:/zone" labkit/rmbyext pdf',
    'docker run --rm --volume "{path}:/zone" labkit/rmbyext .pdf',
    'docker container run --rm --mount type=bind,source="{path}",target=/zone labkit/rmbyext pdf',
    'docker run --mount "type=bind,src={path},dst=/zone" --rm labkit/rmbyext pdf',
    'docker run -v "{path}:/zone:rw" labkit/rmbyext pdf',  # no --rm: the container stays, reset removes it
    'docker run -v "{path}":/zone --rm docker.io/labkit/rmbyext:latest pdf',
    'cd "{path}" && docker run --rm -v "$(pwd):/zone" labkit/rmbyext pdf',
]


@pytest.mark.parametrize("command", VARIANTS)
def test_variant_passes(zone: Path, command: str) -> None:
    assert not exercises.check(EXERCISE).passed
    run(command.format(path=zone))
    result = exercises.check(EXERCISE)
    assert result.passed, result
    assert result.evidence["deleted"] == "t2.pdf"


def test_reference_solution_fills_the_path(zone: Path) -> None:
    assert exercises.solution(EXERCISE) == f"docker run --rm -v {shlex.quote(str(zone))}:/zone labkit/rmbyext pdf"
    assert exercises.solve(EXERCISE, quiet=True).passed


def test_extra_pdf_of_the_learners_own_is_fine(zone: Path) -> None:
    (zone / "mine.pdf").write_text("x")
    run(f"docker run --rm -v {q(zone)}:/zone labkit/rmbyext pdf")
    assert exercises.check(EXERCISE).passed


# --- near-misses, each named --------------------------------------------------------------


def test_no_setup_no_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LABKIT_WORKSPACE", str(tmp_path / "empty"))
    exercises.reset_exercise(exercises.get(EXERCISE))
    result = exercises.check(EXERCISE)
    assert not result.passed and "There is no exercise folder" in result.message
    assert 'labkit.setup("mounts.rmbyext")' in (result.hint or "")


def test_folder_removed_after_setup(zone: Path) -> None:
    mounts._remove_tree(zone)
    result = exercises.check(EXERCISE)
    assert not result.passed and f"no exercise folder at {zone}" in result.message


def test_nothing_done_yet(zone: Path) -> None:
    result = exercises.check(EXERCISE)
    assert not result.passed and "the tool has not run on this folder yet" in result.message
    assert "which option bind-mounts" in (result.hint or "") and str(zone) not in (result.hint or "")


def test_deleted_by_hand(zone: Path) -> None:
    run(f"rm {q(zone / 't2.pdf')}")
    result = exercises.check(EXERCISE)
    assert not result.passed and "deleted by hand" in result.message
    assert "setup cell again" in (result.hint or "")


def test_deleted_by_hand_inside_a_container(zone: Path) -> None:
    run(f"docker run --rm -v {q(zone)}:/zone busybox rm /zone/t2.pdf")
    result = exercises.check(EXERCISE)
    assert not result.passed and "not by the tool" in result.message


def test_another_extension_is_named(zone: Path) -> None:
    run(f"docker run --rm -v {q(zone)}:/zone labkit/rmbyext txt")
    result = exercises.check(EXERCISE)
    assert not result.passed
    assert "ran for another extension: with .txt it deleted t1.txt and t4.txt" in result.message


def test_another_extension_as_well_as_pdf(zone: Path) -> None:
    run(f"docker run --rm -v {q(zone)}:/zone labkit/rmbyext pdf")
    run(f"docker run --rm -v {q(zone)}:/zone labkit/rmbyext jpg")
    result = exercises.check(EXERCISE)
    assert not result.passed and "also ran for another extension: with .jpg it deleted t3.jpg" in result.message


def test_upper_case_matches_nothing(zone: Path) -> None:
    run(f"docker run --rm -v {q(zone)}:/zone labkit/rmbyext PDF")
    result = exercises.check(EXERCISE)
    assert not result.passed and "matched nothing here (extensions are case-sensitive)" in result.message


def test_others_deleted_by_hand_after_the_tool(zone: Path) -> None:
    run(f"docker run --rm -v {q(zone)}:/zone labkit/rmbyext pdf")
    (zone / "t3.jpg").unlink()
    result = exercises.check(EXERCISE)
    assert not result.passed and "but t3.jpg is missing too" in result.message


def test_pdf_back_after_the_run(zone: Path) -> None:
    run(f"docker run --rm -v {q(zone)}:/zone labkit/rmbyext pdf")
    (zone / "t2.pdf").write_text("back")
    result = exercises.check(EXERCISE)
    assert not result.passed and "(again?)" in result.message


def test_log_from_another_folder(zone: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    other.mkdir()
    (other / "report.pdf").write_text("x")
    run(f"docker run --rm -v {q(other)}:/zone labkit/rmbyext pdf")
    (zone / mounts.LOG_NAME).write_bytes((other / mounts.LOG_NAME).read_bytes())
    (zone / "t2.pdf").unlink()
    result = exercises.check(EXERCISE)
    assert not result.passed and "lists report.pdf, which were never in this folder" in result.message


def test_ran_from_the_wrong_working_folder(zone: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`-v "$(pwd):/zone"` typed where the notebook lives, not in the exercise folder."""
    elsewhere = tmp_path / "notebooks"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    run('docker run --rm -v "$(pwd):/zone" labkit/rmbyext pdf')
    result = exercises.check(EXERCISE)
    assert not result.passed and f"it ran with {elsewhere} mounted at /zone" in result.message


def test_parent_folder_mounted(zone: Path) -> None:
    run(f"docker run --rm -v {q(zone.parent)}:/zone labkit/rmbyext pdf")
    result = exercises.check(EXERCISE)
    assert (
        not result.passed
        and f"with {zone.parent} mounted at /zone, a folder above the exercise folder" in result.message
    )


def test_kept_container_mounted_read_only(zone: Path) -> None:
    run(f"docker run -v {q(zone)}:/zone:ro labkit/rmbyext pdf", expect=4)
    result = exercises.check(EXERCISE)
    assert not result.passed and "mounted read-only" in result.message and "Drop `:ro`" in (result.hint or "")


def test_kept_container_mounted_another_folder(zone: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    other.mkdir()
    run(f"docker run --volume {q(other)}:/zone labkit/rmbyext pdf")
    result = exercises.check(EXERCISE)
    assert not result.passed and f"with {other} mounted at /zone: that is another folder" in result.message


def test_kept_container_mounted_elsewhere_in_the_container(zone: Path) -> None:
    run(f"docker run -v {q(zone)}:/data labkit/rmbyext pdf", expect=3)
    result = exercises.check(EXERCISE)
    assert not result.passed and "nothing mounted at /zone (something was mounted at /data instead)" in result.message


def test_kept_container_without_extension(zone: Path) -> None:
    run(f"docker run -v {q(zone)}:/zone labkit/rmbyext", expect=2)
    result = exercises.check(EXERCISE)
    assert not result.passed and "without an extension" in result.message


# --- reset ---------------------------------------------------------------------------------


def test_teardown_removes_the_lesson_folder_and_is_idempotent(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LABKIT_WORKSPACE", str(tmp_path))
    exercise = exercises.get(EXERCISE)
    exercises.setup(EXERCISE)
    (mounts.lesson_dir() / "demo").mkdir()
    run(f"docker run -v {q(mounts.zone_dir())}:/zone labkit/rmbyext pdf")  # a kept container, root-owned log
    report = exercises.reset_exercise(exercise)
    assert report.other == 1 and report.containers == 1
    assert not mounts.lesson_dir().exists() and os.listdir(tmp_path) == []
    assert exercises.reset_exercise(exercise).other == 0
