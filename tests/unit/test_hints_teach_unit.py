"""Hints that teach (issue 11): before the last tier, no hint hands over the reference command.

Pure: no daemon. Every exercise's tiers but the last, and every near-miss the pure verdicts
can return, are held to ``tests/hint_rules.py``. The first "not yet" after setup is held to the
same rule on the real daemon by ``tests/integration/test_hints_teach.py``.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from hint_rules import WILDCARD, commands, leaks

from labkit.exercises import all_exercises, get
from labkit.exercises import lesson07_create_and_remove as lesson07
from labkit.exercises import lesson09_bind_mounts as lesson09
from labkit.exercises import lesson10_export_import_save_load as lesson10
from labkit.exercises._lesson03_verdicts import PushFacts, push_verdict
from labkit.exercises.lesson01_vm_vs_container import kernel_verdict
from labkit.exercises.lesson05_running_containers import port_verdict
from labkit.exercises.lesson08_interactive_and_exec import FileFacts, base64_verdict, file_verdict
from labkit.exercises.machinery.model import Verdict
from labkit.exercises.machinery.runner import fill


def _setup_values(exercise_id: str) -> dict[str, Any]:
    """What setup would report, where it is known without a daemon; other placeholders match any word."""
    known: dict[str, dict[str, Any]] = {
        "rm.stopped": {"stopped": " ".join(lesson07.STALE)},
        "mounts.rmbyext": {"path": str(lesson09.zone_dir())},
        "save.load": {"path": str(lesson10.archive_dir() / lesson10.ARCHIVE_NAME)},
    }
    return known.get(exercise_id, {})


#: The lessons' exercises (other unit tests register stand-ins of their own in the same catalog).
LESSONS = [
    e.id
    for e in all_exercises()
    if e.check.__module__.startswith(("labkit.exercises.lesson", "labkit.exercises._lesson")) and e.solution
]


def solution_of(exercise_id: str) -> list[str]:
    exercise = get(exercise_id)
    values = _setup_values(exercise_id)
    filled = [fill(line, values) for line in exercise.solution]
    # A placeholder setup reports at run time (a generated name) matches any one word.
    return [fill(line, dict.fromkeys(re.findall(r"\{(\w+)\}", line), WILDCARD)) for line in filled]


def test_the_rule_finds_a_command_in_a_pipeline_and_without_docker() -> None:
    solution = ["docker export snapshot-me | docker import - lab/snapshot"]
    assert commands(solution[0])[1:] == ["docker export snapshot-me", "docker import - lab/snapshot"]
    assert leaks("first `docker export snapshot-me`, then …", solution)
    assert leaks("Type: export snapshot-me | docker import - lab/snapshot", solution)
    assert not leaks("`docker export` writes a container's files as a tar.", solution)
    assert leaks('Type: docker run --rm -v "/a b:/zone" x', ["docker run --rm -v '/a b:/zone' x"])
    assert leaks("DOCKER_HOST=unix:///s docker run --rm hello-world", ["DOCKER_HOST=x docker run --rm hello-world"])
    assert leaks("docker container rename eager_turing web2", [f"docker container rename {WILDCARD} web2"])
    assert not leaks("docker container rename OLD NEW", [f"docker container rename {WILDCARD} web2"])
    assert not leaks("`docker rmi NAME` deletes it", [f"docker rmi {WILDCARD}"])
    assert leaks("`docker rmi localhost:5000/x:v2` deletes it", [f"docker rmi {WILDCARD}"])
    assert not leaks("docker rm stale-1 stale-22", ["docker rm stale-1 stale-2"])


@pytest.mark.parametrize("exercise_id", LESSONS)
def test_only_the_last_tier_gives_the_command(exercise_id: str) -> None:
    exercise = get(exercise_id)
    solution = solution_of(exercise_id)
    for level, tier in enumerate(exercise.hints[:-1], start=1):
        assert not leaks(tier, solution), f"{exercise_id} hint {level}/{len(exercise.hints)} gives it away: {tier}"


@pytest.mark.parametrize("exercise_id", LESSONS)
def test_the_last_tier_gives_the_command(exercise_id: str) -> None:
    """The command comes only on request, but it does come: the last tier names every step."""
    exercise = get(exercise_id)
    last = exercise.hints[-1]
    for line in exercise.solution:
        if line.lstrip().startswith("#"):
            continue  # a note to the reader ("then press Ctrl+P"), not a command
        for command in commands(line)[1:] or commands(line):
            verb = command.split()[1]  # docker VERB …
            assert f"docker {verb}" in last or f"docker container {verb}" in last, (exercise_id, command, last)


# --- near-misses the pure verdicts return: they name the mistake, not the fix line ---------------

SOURCE = "sha256:" + "c" * 64
_KERNEL = "6.18.44-fc-v595"


def _near_misses() -> list[tuple[str, Verdict]]:
    found: list[tuple[str, Verdict]] = []
    for facts in (
        PushFacts(SOURCE, remote_config=SOURCE, remote_digest="d", repo_digests=("e",)),
        PushFacts(SOURCE, remote_config="sha256:" + "f" * 64, remote_names="busybox:latest"),
        PushFacts(SOURCE, remote_config=""),
        PushFacts(SOURCE, local_tag_id=SOURCE),
        PushFacts(SOURCE, local_tag_id="sha256:" + "f" * 64),
        PushFacts(SOURCE, other_tags=("latest",)),
        PushFacts(SOURCE, elsewhere=("lab/web:v1",)),
        PushFacts(SOURCE, other_local_names=("localhost:5000/hello-dock:v1",)),
        PushFacts(SOURCE),
    ):
        found.append(("registry.push", push_verdict(facts)))
    for answer in ("6.1.0-56-amd64", f"Linux box {_KERNEL} #1", "28.2.2", "5.15.0-91-generic", "banana", ""):
        found.append(("vm.kernel", kernel_verdict(answer, _KERNEL, ["6.1.0-56-amd64"], {"28.2.2"}, _KERNEL)))
    found.append(("vm.kernel", kernel_verdict("23.1.0", _KERNEL, [], set(), "23.1.0")))
    for bindings, publish_all in (
        ({"8080/tcp": [("0.0.0.0", "8080")]}, False),
        ({"80/tcp": [("0.0.0.0", "9090")]}, False),
        ({"80/tcp": [("0.0.0.0", "32768")]}, True),
        ({"443/tcp": [("0.0.0.0", "9443")]}, False),
        ({}, False),
    ):
        verdict = port_verdict(bindings, publish_all)
        assert verdict is not None
        found.append(("run.publish-detach", verdict))
    for answer in ("my-secret", "bXktc2VjcmV0Cg==", "BXKTC2VJCMV0", "", "my secret!", "LW4gbXktc2VjcmV0Cg==", "eA=="):
        found.append(("commands.base64", base64_verdict(answer)))

    def running(content: bytes | None, kind: str = "file", **extra: Any) -> FileFacts:
        size = len(content) if content is not None else 0
        return FileFacts(exists=True, status="running", exit_code=0, kind=kind, content=content, size=size, **extra)

    for facts in (
        FileFacts(exists=False),
        FileFacts(exists=True, status="exited", exit_code=0, kind="file", content=b"hi\n", size=3),
        FileFacts(exists=True, status="exited", exit_code=137),
        FileFacts(exists=True, status="paused"),
        FileFacts(exists=True, status="created"),
        running(None, kind="missing"),
        running(None, kind="dir"),
        running(None, kind="other"),
        running(None, kind="missing", strays=("/hello.txt",)),
        running(None, kind="missing", host_copy=b"hi\n"),
        FileFacts(exists=True, status="running", kind="file", content=b"x" * 4096, size=100_000),
        *(running(c) for c in (b"", b"Hi\n", b"hi\nhi\n", b" hi\n", b"'hi'\n", b"bye\n")),
    ):
        found.append(("exec.file", file_verdict(facts)))
    return found


@pytest.mark.parametrize(("exercise_id", "verdict"), _near_misses())
def test_a_near_miss_names_the_mistake_not_the_fix_line(exercise_id: str, verdict: Verdict) -> None:
    assert not verdict.passed
    shown = f"{verdict.message}\n{verdict.hint or ''}"
    assert not leaks(shown, solution_of(exercise_id)), shown


def test_a_command_spelled_out_option_by_option_still_leaks() -> None:
    solution = ["docker run --detach --publish 8080:80 --name web labkit/hello-dock"]
    spelled = "run labkit/hello-dock with --detach, --publish 8080:80 and --name web."
    assert leaks(spelled, solution)
    assert not leaks("It runs in the foreground, and publishes no port.", solution)
    assert not leaks("Which command asks graceful to stop?", ["docker stop graceful"])  # two words: too common
