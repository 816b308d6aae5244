"""The image exercises' verdicts from sample facts: images.list, images.prune, images.pull-rmi (no daemon)."""

from __future__ import annotations

from typing import Any

import pytest

from labkit.exercises import get
from labkit.exercises._lesson02_images import ListFacts, PruneFacts, list_verdict, prune_verdict
from labkit.exercises._lesson03_verdicts import (
    EVENTS_KEPT,
    PullEvents,
    PullFacts,
    pull_verdict,
    read_pull_events,
)
from labkit.exercises.machinery.runner import SetupInfo
from labkit.features.images.builders import relabelled_dockerfile

V2 = "sha256:" + "2b" * 32
V1 = "sha256:" + "1a" * 32
BUSYBOX = "sha256:" + "c4" * 32
LIST = ListFacts("lab/inventory:v2", V2, {V1: "lab/inventory:v1", BUSYBOX: "busybox:latest"})


# --- images.list ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "answer",
    [V2[7:19], V2, V2[7:], V2.upper(), f"  '{V2[7:19]}' ", f"`{V2[7:19]}`", "sha256:" + V2[7:19], V2[7:30]],
)
def test_every_spelling_of_the_id_passes(answer: str) -> None:
    verdict = list_verdict(answer, LIST)
    assert verdict.passed, verdict.message
    assert verdict.evidence["image_id"] == V2


@pytest.mark.parametrize(
    ("answer", "said", "hinted"),
    [
        (V1[7:19], "lab/inventory:v1: the right repository, but another tag", "TAG column"),
        (BUSYBOX[7:19], "the ID of busybox:latest, not of lab/inventory:v2", "REPOSITORY and TAG"),
        (V2[7:13], "the start of the right ID, 6 of the 12", "whole IMAGE ID"),
        ("1.98MB", "a size", "column after TAG"),
        ("1.98 MB", "a size", "column after TAG"),
        ("lab/inventory:v2", "an image name", "column after TAG"),
        ("abcdefabcdef", "No image on this daemon has an ID starting with", "copying"),
        ("1a1a", "too few", "whole IMAGE ID"),
        ("the second one", "not an image ID", "lab/inventory:v2"),
    ],
)
def test_list_near_misses_are_named(answer: str, said: str, hinted: str) -> None:
    verdict = list_verdict(answer, LIST)
    assert not verdict.passed
    assert said in verdict.message and hinted in (verdict.hint or "")


def test_list_without_the_image_asks_for_setup() -> None:
    verdict = list_verdict(V2[7:19], ListFacts("lab/inventory:v2", "", {}))
    assert not verdict.passed and "setup" in (verdict.hint or "")


# --- images.prune -----------------------------------------------------------------------------


def _prune(**changes: Any) -> PruneFacts:
    base: dict[str, Any] = {"made": 3, "left": (), "kept": "lab/kept:v1", "kept_present": True}
    return PruneFacts(**{**base, **changes})


def test_prune_passes_when_only_the_dangling_ones_went() -> None:
    verdict = prune_verdict(_prune())
    assert verdict.passed and "3 dangling images setup made are gone" in verdict.message
    assert "also removed" not in verdict.message


def test_an_unfiltered_prune_passes_but_says_what_else_went() -> None:
    verdict = prune_verdict(_prune(others_gone=2))
    assert verdict.passed and "also removed 2 other dangling images" in verdict.message


def test_nothing_done_yet_leaves_the_first_tier_to_the_runner() -> None:
    verdict = prune_verdict(_prune(left=("a", "b", "c")))
    assert not verdict.passed and verdict.hint is None and "all still here" in verdict.message


def test_some_left_names_them() -> None:
    verdict = prune_verdict(_prune(left=("bbbbbbbbbbbb",)))
    assert not verdict.passed and "1 of the 3 dangling images setup made is still here: bbbbbbbbbbbb" in verdict.message


def test_a_named_image_of_the_lesson_gone_is_prune_all() -> None:
    verdict = prune_verdict(_prune(kept_present=False))
    assert not verdict.passed and "lab/kept:v1 is gone too" in verdict.message and "-a" in (verdict.hint or "")


def test_a_course_image_gone_comes_first_and_says_how_to_get_it_back() -> None:
    verdict = prune_verdict(_prune(kept_present=False, course_missing=("busybox:latest", "hello-world:latest")))
    assert not verdict.passed and "busybox:latest, hello-world:latest are gone too" in verdict.message
    assert "labkit images ensure" in (verdict.hint or "")


# --- images.pull-rmi --------------------------------------------------------------------------

NAMES = ["localhost:5000/lab03/pull-me", "127.0.0.1:5000/lab03/pull-me"]
MADE = {V1: "v1", V2: "v2"}


def _event(action: str, ident: str, when: int, kind: str = "image") -> dict[str, Any]:
    return {"Type": kind, "Action": action, "id": ident, "timeNano": when}


def test_events_are_sorted_into_deletes_untags_and_pulls() -> None:
    events = [
        _event("push", "localhost:5000/lab03/pull-me:v2", 5),  # setup's own, before since
        _event("untag", V2, 11),
        _event("delete", V2, 12),
        _event("untag", V1, 13),
        _event("start", "c0ffee", 14, kind="container"),
        _event("pull", "127.0.0.1:5000/lab03/pull-me:v2", 15),
        _event("pull", "localhost:5000/lab03/pull-me", 16),  # docker pull -a
        _event("pull", "busybox:latest", 17),
    ]
    found = read_pull_events(events, since_nano=10, made=MADE, names=NAMES)
    assert found.deleted == {"v2": 12}
    assert found.untagged == frozenset({"v1"})  # v2's untag came with its delete
    assert found.pulls == (("v2", 15), ("*", 16))
    assert found.count == 7


def _pull(present: dict[str, str | None] | None = None, **events: Any) -> PullFacts:
    return PullFacts(
        name="localhost:5000/lab03/pull-me:v2",
        tag="v2",
        made={"v1": V1, "v2": V2},
        present=present if present is not None else {"v1": V1, "v2": V2},
        events=PullEvents(**events),
    )


def test_deleted_then_pulled_passes() -> None:
    verdict = pull_verdict(_pull(deleted={"v2": 5}, pulls=(("v2", 9),), count=4))
    assert verdict.passed and verdict.evidence["deleted"] == "v2"


def test_a_pull_of_every_tag_counts() -> None:
    assert pull_verdict(_pull(deleted={"v2": 5}, pulls=(("*", 9),), count=4)).passed


def test_a_pull_before_the_delete_does_not_count() -> None:
    verdict = pull_verdict(_pull(deleted={"v2": 5}, pulls=(("v2", 3),), count=4))
    assert not verdict.passed and "not by a pull" in verdict.message


def test_untouched_gives_the_first_tier() -> None:
    verdict = pull_verdict(_pull())
    assert not verdict.passed and verdict.hint is None and "untouched since setup" in verdict.message


def test_removed_but_not_pulled_back() -> None:
    verdict = pull_verdict(_pull({"v1": V1, "v2": None}, deleted={"v2": 5}, count=2))
    assert not verdict.passed and "gone from this daemon: removed" in verdict.message
    assert "docker pull localhost" not in (verdict.hint or "")


def test_pulled_without_removing() -> None:
    verdict = pull_verdict(_pull(pulls=(("v2", 9),), count=1))
    assert not verdict.passed and "never removed first" in verdict.message and "Image is up to date" in verdict.message


def test_wrong_tag_removed_and_pulled() -> None:
    verdict = pull_verdict(_pull(deleted={"v1": 5}, pulls=(("v1", 9),), count=4))
    assert not verdict.passed and "You worked on :v1" in verdict.message and "tag v2" in (verdict.hint or "")


def test_wrong_tag_pulled_after_removing_the_right_one() -> None:
    verdict = pull_verdict(_pull({"v1": V1, "v2": None}, deleted={"v2": 5}, pulls=(("v1", 9),), count=4))
    assert not verdict.passed and "you pulled :v1 instead" in verdict.message


def test_rmi_that_only_untagged() -> None:
    facts = PullFacts(
        name="localhost:5000/lab03/pull-me:v2",
        tag="v2",
        made={"v1": V1, "v2": V2},
        present={"v1": V1, "v2": V2},
        events=PullEvents(untagged=frozenset({"v2"}), pulls=(("v2", 9),), count=3),
        other_names=("lab/spare:v2",),
    )
    verdict = pull_verdict(facts)
    assert not verdict.passed and "only took a name away" in verdict.message and "lab/spare:v2" in verdict.message


def test_the_name_pointing_at_another_image() -> None:
    verdict = pull_verdict(_pull({"v1": V1, "v2": BUSYBOX}, deleted={"v2": 5}, count=3))
    assert not verdict.passed and "names another image" in verdict.message


def test_registry_down_after_removing() -> None:
    facts = PullFacts(
        name="localhost:5000/lab03/pull-me:v2",
        tag="v2",
        made={"v1": V1, "v2": V2},
        present={"v1": V1, "v2": None},
        events=PullEvents(deleted={"v2": 5}, count=2),
        registry_up=False,
    )
    verdict = pull_verdict(facts)
    assert not verdict.passed and "labkit registry up" in (verdict.hint or "")


def test_a_full_event_log_is_said_not_guessed() -> None:
    verdict = pull_verdict(_pull(count=EVENTS_KEPT))
    assert not verdict.passed and "event log since setup is full" in verdict.message


# --- what they share --------------------------------------------------------------------------


def test_relabelled_dockerfile_is_one_label_step_with_quoted_values() -> None:
    text = relabelled_dockerfile("busybox", {"labkit.lesson": "02", "note": 'say "hi"'})
    assert text.splitlines() == ["FROM busybox", 'LABEL "labkit.lesson"="02" "note"="say \\"hi\\""']


def test_setup_keys_for_the_check_only_are_not_shown() -> None:
    info = SetupInfo(exercise="images.prune", kept="lab/kept:v1", _made=["sha256:x"])
    assert info.shown() == [("kept", "lab/kept:v1")]
    assert "_made" not in str(info) and "kept: lab/kept:v1" in str(info)


@pytest.mark.parametrize("exercise_id", ["images.list", "images.prune", "images.pull-rmi"])
def test_only_the_last_hint_gives_the_command(exercise_id: str) -> None:
    exercise = get(exercise_id)
    assert len(exercise.hints) == 3
    commands = [c.replace("{image}", "localhost:5000/lab03/pull-me:v2") for c in exercise.solution]
    for early in exercise.hints[:-1]:
        assert not any(command in early for command in commands), early
    assert all(command in exercise.hints[-1] for command in commands)
