"""Lesson 09's pure logic: reading the tool's log, the solution's placeholder, the tool's contract."""

from __future__ import annotations

from labkit.exercises import get
from labkit.exercises import lesson09_bind_mounts as mounts
from labkit.exercises.machinery.runner import fill
from labkit.features.images.catalog import find

LOG = """\
[2026-01-31 12:00:00 UTC] rmbyext .txt
deleted: t1.txt
deleted: sub dir/t4.txt
2 files deleted.
a line someone typed
[2026-01-31 12:00:05 UTC] rmbyext .pdf
not deleted: locked.pdf
0 files deleted.
"""


def test_parse_log_reads_runs_and_ignores_foreign_lines() -> None:
    runs = mounts.parse_log(LOG)
    assert [(r.time, r.extension, r.deleted, r.not_deleted) for r in runs] == [
        ("2026-01-31 12:00:00 UTC", "txt", ["t1.txt", "sub dir/t4.txt"], []),
        ("2026-01-31 12:00:05 UTC", "pdf", [], ["locked.pdf"]),
    ]
    assert mounts.parse_log("deleted: before any header\n") == []
    assert mounts.parse_log("") == []


def test_listing_reads_as_english() -> None:
    assert mounts._listing([]) == "nothing"
    assert mounts._listing(["a"]) == "a"
    assert mounts._listing(["a", "b", "c"]) == "a, b and c"


def test_files_split_into_doomed_and_kept() -> None:
    assert mounts.DOOMED == ("t2.pdf",) and mounts.KEPT == ("t1.txt", "t3.jpg", "t4.txt")


def test_solution_uses_the_path_setup_reports() -> None:
    (command,) = get("mounts.rmbyext").solution
    assert fill(command, {"path": "/home/ada/labkit-work/mounts/zone"}) == (
        "docker run --rm -v /home/ada/labkit-work/mounts/zone:/zone labkit/rmbyext pdf"
    )
    assert fill(command, {"path": "/home/ada/my work/zone"}) == (
        "docker run --rm -v '/home/ada/my work/zone':/zone labkit/rmbyext pdf"
    )


def test_exercise_definition() -> None:
    exercise = get("mounts.rmbyext")
    assert exercise.lesson == "09" and len(exercise.hints) >= 2
    assert exercise.setup is not None and exercise.teardown is not None
    assert exercise.images == ("labkit/rmbyext",)


def test_the_tool_is_a_catalog_image_with_an_entrypoint() -> None:
    entry = find("rmbyext")
    assert entry.name == "labkit/rmbyext:latest" and entry.needs == ("busybox:latest",)
    dockerfile = (entry.context_dir / "Dockerfile").read_text()
    assert 'ENTRYPOINT ["/usr/local/bin/rmbyext"]' in dockerfile
    script = (entry.context_dir / "rmbyext").read_text()
    assert script.startswith("#!/bin/sh\n")
    # the contract the check and the lesson rely on: exit codes and the log's fixed lines
    for fact in ("2 usage", "3 nothing mounted", "4 /zone cannot be written", 'LOG="$ZONE/rmbyext.log"', "rmbyext .%s"):
        assert fact in script
