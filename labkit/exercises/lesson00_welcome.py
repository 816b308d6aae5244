"""Lesson 00: the learner's first container."""

from __future__ import annotations

from labkit.core.i18n import N_, _
from labkit.core.probes import containers_from, describe, image_id, state
from labkit.exercises.machinery.catalog import register
from labkit.exercises.machinery.model import Context, Exercise, Verdict, not_yet, passed


def _first_container(ctx: Context) -> Verdict:
    client = ctx.client
    ran = containers_from(client, "hello-world")
    if not ran:
        if image_id(client, "hello-world") is None:
            return not_yet(
                _("There is no hello-world image on this daemon yet, and no container from it."),
                _(
                    "Which docker command makes a container from an image and starts it? It pulls a missing image first "
                    "(offline, `labkit registry up` serves hello-world)."
                ),
            )
        return not_yet(
            _("No container made from hello-world exists yet."),
            _(
                "The image is here, but `docker pull` (or `docker image ls`) makes no container. Which command creates a "
                "container from an image and starts it?"
            ),
        )
    good = [c for c in ran if state(c)["status"] == "exited" and state(c)["exit_code"] == 0]
    if good:
        return passed(
            _("A container from hello-world ran to the end and exited with code 0."),
            containers=len(ran),
            exited_ok=len(good),
        )
    created = [c for c in ran if state(c)["status"] == "created"]
    if created:
        return not_yet(
            _("Found {container}: it was created but never started.").format(container=describe(created[0])),
            _(
                "`docker create` only prepares a container: it still has to be started (`docker start` can start this "
                "one), or made and started in one go by another command."
            ),
            containers=len(ran),
        )
    failed = [c for c in ran if state(c)["status"] == "exited"]
    if failed:
        return not_yet(
            _("Found {container}: it did not exit cleanly.").format(container=describe(failed[0])),
            _(
                "What did its output say? `docker logs {name}` shows it again; once the cause is fixed, run a new one."
            ).format(name=failed[0].name),
            containers=len(ran),
        )
    return not_yet(
        _("Found {container}: it has not finished yet.").format(container=describe(ran[0])),
        _("hello-world prints its message and exits within a second; check again in a moment."),
        containers=len(ran),
    )


FIRST_CONTAINER = register(
    Exercise(
        id="welcome.first-container",
        lesson="00",
        title=N_("Your first container"),
        prompt=N_("Run a container from the hello-world image and let it finish."),
        check=_first_container,
        hints=(
            N_("Every container starts from an image; this one is called hello-world."),
            N_("`docker run IMAGE` creates a container from IMAGE and starts it."),
            N_("Type: docker run hello-world"),
        ),
        solution=("docker run hello-world",),
        images=("hello-world",),
    )
)
