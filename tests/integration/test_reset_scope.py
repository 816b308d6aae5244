"""An exercise's reset removes what labkit made and the names it asks for, nothing else (issue 12)."""

from __future__ import annotations

import secrets

import pytest

from labkit import exercises
from labkit.core import engine

pytestmark = pytest.mark.docker


def test_a_container_labkit_did_not_make_survives_a_reset(docker_client: object, tracked: list[object]) -> None:
    exercise = exercises.get("welcome.first-container")
    assert exercise.images == ("hello-world",)
    client = docker_client
    theirs = client.containers.create("hello-world", name=f"not-labkit-{secrets.token_hex(4)}")  # type: ignore[attr-defined]
    ours = client.containers.create("hello-world", labels=engine.labels("00"))  # type: ignore[attr-defined]
    tracked.extend([theirs, ours])
    exercises.reset_exercise(exercise)
    left = {c.id for c in client.containers.list(all=True, filters={"ancestor": "hello-world"})}  # type: ignore[attr-defined]
    assert theirs.id in left, "a container labkit never made was removed"
    assert ours.id not in left, "labkit's own container from the exercise's image stayed"
