"""Lesson 00: the learner's first container."""

from __future__ import annotations

from labkit.core.probes import containers_from, describe, image_id, state
from labkit.exercises.machinery.catalog import register
from labkit.exercises.machinery.model import Context, Exercise, Verdict, not_yet, passed


def _first_container(ctx: Context) -> Verdict:
    client = ctx.client
    ran = containers_from(client, "hello-world")
    if not ran:
        if image_id(client, "hello-world") is None:
            return not_yet(
                "There is no hello-world image on this daemon yet, and no container from it.",
                "Which docker command makes a container from an image and starts it? It pulls a missing image first "
                "(offline, `labkit registry up` serves hello-world).",
            )
        return not_yet(
            "No container made from hello-world exists yet.",
            "The image is here, but `docker pull` (or `docker image ls`) makes no container. Which command creates a "
            "container from an image and starts it?",
        )
    good = [c for c in ran if state(c)["status"] == "exited" and state(c)["exit_code"] == 0]
    if good:
        return passed(
            "A container from hello-world ran to the end and exited with code 0.",
            containers=len(ran),
            exited_ok=len(good),
        )
    created = [c for c in ran if state(c)["status"] == "created"]
    if created:
        return not_yet(
            f"Found {describe(created[0])}: it was created but never started.",
            "`docker create` only prepares a container: it still has to be started (`docker start` can start this "
            "one), or made and started in one go by another command.",
            containers=len(ran),
        )
    failed = [c for c in ran if state(c)["status"] == "exited"]
    if failed:
        return not_yet(
            f"Found {describe(failed[0])}: it did not exit cleanly.",
            f"What did its output say? `docker logs {failed[0].name}` shows it again; once the cause is fixed, "
            "run a new one.",
            containers=len(ran),
        )
    return not_yet(
        f"Found {describe(ran[0])}: it has not finished yet.",
        "hello-world prints its message and exits within a second; check again in a moment.",
        containers=len(ran),
    )


FIRST_CONTAINER = register(
    Exercise(
        id="welcome.first-container",
        lesson="00",
        title="Your first container",
        prompt="Run a container from the hello-world image and let it finish.",
        check=_first_container,
        hints=(
            "Every container starts from an image; this one is called hello-world.",
            "`docker run IMAGE` creates a container from IMAGE and starts it.",
            "Type: docker run hello-world",
        ),
        solution=("docker run hello-world",),
        images=("hello-world",),
    )
)
