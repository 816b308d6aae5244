"""Lesson 07: a container's first and last states: create it without starting it, remove it.

``create.only`` wants a container that was created and never started. ``rm.stopped``
wants setup's stopped containers gone and its running one untouched. ``run.auto-remove``
wants a running, detached ``--rm`` container. ``ls.all`` is defined in
:mod:`~labkit.exercises._lesson07_listing`. The checks read containers with lesson 06's
readers, :mod:`~labkit.exercises._lesson06_containers` (as they are now) and
:mod:`~labkit.exercises._lesson06_history` (their past: start times, events, names).
"""

from __future__ import annotations

from typing import Any

from labkit.core import engine, wait
from labkit.core.probes import is_image
from labkit.exercises import _lesson06_containers as present
from labkit.exercises import _lesson06_history as past
from labkit.exercises import _lesson07_listing as listing
from labkit.exercises.machinery.catalog import register
from labkit.exercises.machinery.model import Context, Exercise, Verdict, not_yet, passed
from labkit.exercises.machinery.runner import exercise_labels

LESSON = "07"
#: Seconds setup waits for a container to be ready or to finish.
READY_TIMEOUT = 20.0


# --- create.only ----------------------------------------------------------------------

CREATED = "created-only"
CREATED_IMAGE = "labkit/hello-dock"
CREATED_PORT = "8081"


def _create_only(ctx: Context) -> Verdict:
    container = engine.find_container(CREATED)
    if container is None or container.name != CREATED:
        similar = past.similar_names(ctx.client, CREATED)
        if similar:
            return not_yet(
                f"There is no container named {CREATED}, but there is {similar[0].name}.",
                f"The name must be exactly {CREATED}; a container can be renamed (`docker rename OLD NEW`).",
            )
        return not_yet(
            f"There is no container named {CREATED} yet.",
            "Which command makes a container without starting it? It takes the same options as `docker run`.",
        )
    image = str(container.attrs.get("Config", {}).get("Image", ""))
    ports = present.host_ports(container)
    evidence = {"image": image, "status": present.status(container), "ports": ports or "none"}
    redo = f"Remove it (`docker rm -f {CREATED}`) and create it again"
    if not is_image(ctx.client, container, CREATED_IMAGE):
        return not_yet(
            f"{CREATED} was created from {image}, not {CREATED_IMAGE}.",
            f"{redo} from {CREATED_IMAGE}.",
            **evidence,
        )
    if past.was_started(container):
        now = (
            "is running"
            if present.status(container) == "running"
            else f"has run and is now {present.status(container)}"
        )
        return not_yet(
            f"{CREATED} was started: it {now}. The exercise wants it created only.",
            f"`docker run` is create + start. {redo}, without starting it.",
            **evidence,
        )
    published = ports.get("80/tcp", [])
    if CREATED_PORT in published:
        return passed(
            f"{CREATED} exists in state created, from {CREATED_IMAGE}, with port 80 published on {CREATED_PORT}; "
            "nothing runs yet.",
            **evidence,
        )
    if container.attrs.get("HostConfig", {}).get("PublishAllPorts") and not ports:
        return not_yet(
            f"{CREATED} publishes its ports on random host ports (-P), not on {CREATED_PORT}.",
            f"-P picks free host ports; the exercise wants host port {CREATED_PORT}. {redo}, choosing it.",
            **evidence,
        )
    if published:
        return not_yet(
            f"{CREATED} publishes port 80 on host port {published[0] or 'a random one'}, not {CREATED_PORT}.",
            f"In `-p HOST:CONTAINER` the host port comes first. {redo}.",
            **evidence,
        )
    if ports:
        other = next(iter(ports))
        return not_yet(
            f"{CREATED} publishes container port {other}, but hello-dock's web server listens on port 80.",
            f"In `-p HOST:CONTAINER` the container port comes second. {redo}.",
            **evidence,
        )
    return not_yet(
        f"{CREATED} publishes no port.",
        f"Ports are chosen when a container is created, not when it starts. {redo}, publishing its port 80.",
        **evidence,
    )


CREATE_ONLY = register(
    Exercise(
        id="create.only",
        lesson=LESSON,
        title="Create a container without starting it",
        prompt=f"Create, but do not start, a container named {CREATED} from {CREATED_IMAGE} publishing "
        f"host port {CREATED_PORT} to its port 80.",
        check=_create_only,
        hints=(
            "One command makes a container without starting it; `docker run` would do that and start it.",
            "`docker create` takes the options of `docker run`: --name NAME, -p HOST:CONTAINER, then the image.",
            f"Type: docker create --name {CREATED} -p {CREATED_PORT}:80 {CREATED_IMAGE}",
        ),
        solution=(f"docker create --name {CREATED} -p {CREATED_PORT}:80 {CREATED_IMAGE}",),
        names=(CREATED,),
    )
)


# --- rm.stopped -----------------------------------------------------------------------

#: Setup's stopped containers: one exited cleanly, one failed, one never started.
STALE = ("stale-1", "stale-2", "stale-3")
KEEPER = "still-running"


def _setup_stopped(ctx: Context) -> dict[str, Any]:
    labels = exercise_labels(ctx.exercise)
    client = ctx.client
    for name, command in ((STALE[0], ["true"]), (STALE[1], ["sh", "-c", "exit 1"])):
        container = client.containers.run("busybox", command, name=name, detach=True, labels=labels)
        container.wait(timeout=READY_TIMEOUT)
    client.containers.create("busybox", ["true"], name=STALE[2], labels=labels)
    keeper = client.containers.run(
        "busybox", ["sh", "-c", present.signal_script(KEEPER)], name=KEEPER, detach=True, labels=labels
    )
    wait.log_line(keeper, f"{KEEPER}: ready", timeout=READY_TIMEOUT)
    return {"stopped": " ".join(STALE), "running": KEEPER}


def _rm_stopped(ctx: Context) -> Verdict:
    if ctx.setup is None:
        return not_yet(
            "This exercise's containers have not been made yet.",
            'Run `labkit.setup("rm.stopped")` first: it makes three stopped containers and a running one.',
        )
    left = [name for name in STALE if present.own(name, "rm.stopped") is not None]
    keeper = present.own(KEEPER, "rm.stopped")
    evidence = {"stopped_left": ", ".join(left) or "none", KEEPER: "gone" if keeper is None else present.status(keeper)}
    if keeper is None:
        return not_yet(
            f"{KEEPER} is gone too: it was a running container, and it should have stayed.",
            "`docker rm -f` (or removing it after `docker stop`) removes running containers as well. "
            'Run `labkit.setup("rm.stopped")` again and remove only the stopped ones.',
            **evidence,
        )
    if present.status(keeper) != "running":
        return not_yet(
            f"{KEEPER} is {present.status(keeper)}: it should still be running.",
            f"Start it again (`docker start {KEEPER}`){' and remove the stopped ones' if left else ''}.",
            **evidence,
        )
    if left:
        return not_yet(
            f"{len(left)} of the {len(STALE)} stopped containers still exist: {', '.join(left)}.",
            "Which command removes containers? It takes several names at once, and refuses a running one "
            "unless forced.",
            **evidence,
        )
    return passed(f"The {len(STALE)} stopped containers are gone and {KEEPER} still runs.", **evidence)


RM_STOPPED = register(
    Exercise(
        id="rm.stopped",
        lesson=LESSON,
        title="Remove the stopped containers, keep the running one",
        prompt=f"Remove the stopped containers {', '.join(STALE)}; leave {KEEPER} running.",
        check=_rm_stopped,
        hints=(
            "List them with `docker ps -a`: which ones are not running?",
            "`docker rm NAME...` removes stopped containers and refuses a running one unless you add -f.",
            f"Type: docker rm {' '.join(STALE)}",
        ),
        solution=(f"docker rm {' '.join(STALE)}",),
        setup=_setup_stopped,
    )
)


# --- run.auto-remove ------------------------------------------------------------------

EPHEMERAL = "ephemeral"


def _wrong_name(ctx: Context) -> Verdict | None:
    for other in past.similar_names(ctx.client, EPHEMERAL):
        if other.attrs.get("HostConfig", {}).get("AutoRemove"):
            return not_yet(
                f"There is no container named {EPHEMERAL}, but there is {other.name}, started with --rm.",
                f"The name must be exactly {EPHEMERAL}; a container can be renamed (`docker rename OLD NEW`).",
            )
    return None


def _auto_remove(ctx: Context) -> Verdict:
    container = engine.find_container(EPHEMERAL)
    if container is None or container.name != EPHEMERAL:
        wrong = _wrong_name(ctx)
        if wrong is not None:
            return wrong
        if past.recent_end(ctx.client, EPHEMERAL, since=past.reset_at()) == "ended":
            return not_yet(
                f"A container named {EPHEMERAL} ran and removed itself: its command finished at once.",
                "With --rm a container is removed as soon as its main process ends: run an image whose main "
                "process keeps running (labkit/hello-dock serves its page until it is stopped).",
            )
        return not_yet(
            f"There is no container named {EPHEMERAL}.",
            "`docker run` needs three things here: one option removes the container once it stops, one keeps it "
            "in the background, one names it. Which are they?",
        )
    host = container.attrs.get("HostConfig", {})
    config = container.attrs.get("Config", {})
    status = present.status(container)
    evidence = {"status": status, "auto_remove": bool(host.get("AutoRemove"))}
    if not host.get("AutoRemove"):
        return not_yet(
            f"{EPHEMERAL} was started without --rm: when it stops it will stay behind, like every other container.",
            f"--rm is chosen when the container is made: remove this one (`docker rm -f {EPHEMERAL}`) and run a new "
            "one that removes itself.",
            **evidence,
        )
    if status == "created":
        return not_yet(
            f"{EPHEMERAL} has --rm, but it was only created: nothing runs yet.",
            f"Start it: `docker start {EPHEMERAL}`.",
            **evidence,
        )
    if status != "running":
        return not_yet(
            f"{EPHEMERAL} is {status}: with --rm it is on its way out.",
            "Run it again, from an image whose main process keeps running.",
            **evidence,
        )
    if config.get("AttachStdout") or config.get("AttachStderr"):
        # `docker run` without -d and `docker create` both record attached output; only
        # the former attached a terminal, and the daemon's events say which it was.
        attached = past.was_attached(ctx.client, container)
        evidence["attached"] = "unknown" if attached is None else attached
        if attached is not False:
            how = "" if attached else " (or it was created and started long ago; labkit cannot tell)"
            return not_yet(
                f"{EPHEMERAL} runs with --rm, but attached to a terminal: `docker run` without -d{how}.",
                "An attached run holds your terminal, and Ctrl+C there stops the container (so --rm removes it). "
                f"Stop it (`docker stop {EPHEMERAL}`) and run it again in the background.",
                **evidence,
            )
    return passed(f"{EPHEMERAL} runs detached with --rm: when it stops, the daemon removes it.", **evidence)


RUN_AUTO_REMOVE = register(
    Exercise(
        id="run.auto-remove",
        lesson=LESSON,
        title="A container that removes itself",
        prompt=f"Run a detached container named {EPHEMERAL} that keeps running and removes itself when it stops.",
        check=_auto_remove,
        hints=(
            "One option of `docker run` tells the daemon to remove the container once it stops.",
            (
                "--rm removes it when it stops, -d runs it in the background, --name names it; "
                "labkit/hello-dock keeps running."
            ),
            f"Type: docker run --rm -d --name {EPHEMERAL} labkit/hello-dock",
        ),
        solution=(f"docker run --rm -d --name {EPHEMERAL} labkit/hello-dock",),
        names=(EPHEMERAL,),
        teardown=past.forget_earlier_attempts,
    )
)


# --- ls.all (defined beside this module) ----------------------------------------------

LS_ALL = register(listing.LS_ALL)
