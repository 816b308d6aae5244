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
from labkit.core.i18n import N_, _
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
                _("There is no container named {created}, but there is {name}.").format(
                    created=CREATED, name=similar[0].name
                ),
                _("The name must be exactly {created}; a container can be renamed (`docker rename OLD NEW`).").format(
                    created=CREATED
                ),
            )
        return not_yet(
            _("There is no container named {created} yet.").format(created=CREATED),
            _("Which command makes a container without starting it? It takes the same options as `docker run`."),
        )
    image = str(container.attrs.get("Config", {}).get("Image", ""))
    ports = present.host_ports(container)
    evidence = {"image": image, "status": present.status(container), "ports": ports or "none"}
    redo = _("Remove it (`docker rm -f {created}`) and create it again").format(created=CREATED)
    if not is_image(ctx.client, container, CREATED_IMAGE):
        return not_yet(
            _("{created} was created from {image}, not {created_image}.").format(
                created=CREATED, image=image, created_image=CREATED_IMAGE
            ),
            _("{redo} from {created_image}.").format(redo=redo, created_image=CREATED_IMAGE),
            **evidence,
        )
    if past.was_started(container):
        now = (
            _("is running")
            if present.status(container) == "running"
            else _("has run and is now {status}").format(status=present.status(container))
        )
        return not_yet(
            _("{created} was started: it {now}. The exercise wants it created only.").format(created=CREATED, now=now),
            _("`docker run` is create + start. {redo}, without starting it.").format(redo=redo),
            **evidence,
        )
    published = ports.get("80/tcp", [])
    if CREATED_PORT in published:
        return passed(
            _(
                "{created} exists in state created, from {created_image}, with port 80 published on "
                "{created_port}; nothing runs yet."
            ).format(created=CREATED, created_image=CREATED_IMAGE, created_port=CREATED_PORT),
            **evidence,
        )
    if container.attrs.get("HostConfig", {}).get("PublishAllPorts") and not ports:
        return not_yet(
            _("{created} publishes its ports on random host ports (-P), not on {created_port}.").format(
                created=CREATED, created_port=CREATED_PORT
            ),
            _("-P picks free host ports; the exercise wants host port {created_port}. {redo}, choosing it.").format(
                created_port=CREATED_PORT, redo=redo
            ),
            **evidence,
        )
    if published:
        return not_yet(
            _("{created} publishes port 80 on host port {host_port}, not {created_port}.").format(
                created=CREATED, host_port=published[0] or _("a random one"), created_port=CREATED_PORT
            ),
            _("In `-p HOST:CONTAINER` the host port comes first. {redo}.").format(redo=redo),
            **evidence,
        )
    if ports:
        other = next(iter(ports))
        return not_yet(
            _("{created} publishes container port {other}, but hello-dock's web server listens on port 80.").format(
                created=CREATED, other=other
            ),
            _("In `-p HOST:CONTAINER` the container port comes second. {redo}.").format(redo=redo),
            **evidence,
        )
    return not_yet(
        _("{created} publishes no port.").format(created=CREATED),
        _("Ports are chosen when a container is created, not when it starts. {redo}, publishing its port 80.").format(
            redo=redo
        ),
        **evidence,
    )


CREATE_ONLY = register(
    Exercise(
        id="create.only",
        lesson=LESSON,
        title=N_("Create a container without starting it"),
        prompt=N_(
            "Create, but do not start, a container named created-only from labkit/hello-dock publishing "
            "host port 8081 to its port 80."
        ),
        check=_create_only,
        hints=(
            N_("One command makes a container without starting it; `docker run` would do that and start it."),
            N_("`docker create` takes the options of `docker run`: --name NAME, -p HOST:CONTAINER, then the image."),
            N_("Type: docker create --name created-only -p 8081:80 labkit/hello-dock"),
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
            _("This exercise's containers have not been made yet."),
            _('Run `labkit.setup("rm.stopped")` first: it makes three stopped containers and a running one.'),
        )
    left = [name for name in STALE if present.own(name, "rm.stopped") is not None]
    keeper = present.own(KEEPER, "rm.stopped")
    evidence = {"stopped_left": ", ".join(left) or "none", KEEPER: "gone" if keeper is None else present.status(keeper)}
    if keeper is None:
        return not_yet(
            _("{keeper} is gone too: it was a running container, and it should have stayed.").format(keeper=KEEPER),
            _(
                "`docker rm -f` (or removing it after `docker stop`) removes running containers as well. "
                'Run `labkit.setup("rm.stopped")` again and remove only the stopped ones.'
            ),
            **evidence,
        )
    if present.status(keeper) != "running":
        return not_yet(
            _("{keeper} is {status}: it should still be running.").format(keeper=KEEPER, status=present.status(keeper)),
            _("Start it again (`docker start {keeper}`){more}.").format(
                keeper=KEEPER, more=_(" and remove the stopped ones") if left else ""
            ),
            **evidence,
        )
    if left:
        return not_yet(
            _("{left} of the {stale} stopped containers still exist: {names}.").format(
                left=len(left), stale=len(STALE), names=", ".join(left)
            ),
            _(
                "Which command removes containers? It takes several names at once, and refuses a running one "
                "unless forced."
            ),
            **evidence,
        )
    return passed(
        _("The {stale} stopped containers are gone and {keeper} still runs.").format(stale=len(STALE), keeper=KEEPER),
        **evidence,
    )


RM_STOPPED = register(
    Exercise(
        id="rm.stopped",
        lesson=LESSON,
        title=N_("Remove the stopped containers, keep the running one"),
        prompt=N_("Remove the stopped containers stale-1, stale-2, stale-3; leave still-running running."),
        check=_rm_stopped,
        hints=(
            N_("List them with `docker ps -a`: which ones are not running?"),
            N_("`docker rm NAME...` removes stopped containers and refuses a running one unless you add -f."),
            N_("Type: docker rm stale-1 stale-2 stale-3"),
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
                _("There is no container named {ephemeral}, but there is {name}, started with --rm.").format(
                    ephemeral=EPHEMERAL, name=other.name
                ),
                _("The name must be exactly {ephemeral}; a container can be renamed (`docker rename OLD NEW`).").format(
                    ephemeral=EPHEMERAL
                ),
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
                _("A container named {ephemeral} ran and removed itself: its command finished at once.").format(
                    ephemeral=EPHEMERAL
                ),
                _(
                    "With --rm a container is removed as soon as its main process ends: run an image whose main "
                    "process keeps running (labkit/hello-dock serves its page until it is stopped)."
                ),
            )
        return not_yet(
            _("There is no container named {ephemeral}.").format(ephemeral=EPHEMERAL),
            _(
                "`docker run` needs three things here: one option removes the container once it stops, one keeps it "
                "in the background, one names it. Which are they?"
            ),
        )
    host = container.attrs.get("HostConfig", {})
    config = container.attrs.get("Config", {})
    status = present.status(container)
    evidence = {"status": status, "auto_remove": bool(host.get("AutoRemove"))}
    if not host.get("AutoRemove"):
        return not_yet(
            _(
                "{ephemeral} was started without --rm: when it stops it will stay behind, like every other container."
            ).format(ephemeral=EPHEMERAL),
            _(
                "--rm is chosen when the container is made: remove this one (`docker rm -f {ephemeral}`) and "
                "run a new one that removes itself."
            ).format(ephemeral=EPHEMERAL),
            **evidence,
        )
    if status == "created":
        return not_yet(
            _("{ephemeral} has --rm, but it was only created: nothing runs yet.").format(ephemeral=EPHEMERAL),
            _("Start it: `docker start {ephemeral}`.").format(ephemeral=EPHEMERAL),
            **evidence,
        )
    if status != "running":
        return not_yet(
            _("{ephemeral} is {status}: with --rm it is on its way out.").format(ephemeral=EPHEMERAL, status=status),
            _("Run it again, from an image whose main process keeps running."),
            **evidence,
        )
    if config.get("AttachStdout") or config.get("AttachStderr"):
        # `docker run` without -d and `docker create` both record attached output; only
        # the former attached a terminal, and the daemon's events say which it was.
        attached = past.was_attached(ctx.client, container)
        evidence["attached"] = "unknown" if attached is None else attached
        if attached is not False:
            how = "" if attached else _(" (or it was created and started long ago; labkit cannot tell)")
            return not_yet(
                _("{ephemeral} runs with --rm, but attached to a terminal: `docker run` without -d{how}.").format(
                    ephemeral=EPHEMERAL, how=how
                ),
                _(
                    "An attached run holds your terminal, and Ctrl+C there stops the container (so --rm removes "
                    "it). Stop it (`docker stop {ephemeral}`) and run it again in the background."
                ).format(ephemeral=EPHEMERAL),
                **evidence,
            )
    return passed(
        _("{ephemeral} runs detached with --rm: when it stops, the daemon removes it.").format(ephemeral=EPHEMERAL),
        **evidence,
    )


RUN_AUTO_REMOVE = register(
    Exercise(
        id="run.auto-remove",
        lesson=LESSON,
        title=N_("A container that removes itself"),
        prompt=N_("Run a detached container named ephemeral that keeps running and removes itself when it stops."),
        check=_auto_remove,
        hints=(
            N_("One option of `docker run` tells the daemon to remove the container once it stops."),
            (
                N_(
                    "--rm removes it when it stops, -d runs it in the background, --name names it; "
                    "labkit/hello-dock keeps running."
                )
            ),
            N_("Type: docker run --rm -d --name ephemeral labkit/hello-dock"),
        ),
        solution=(f"docker run --rm -d --name {EPHEMERAL} labkit/hello-dock",),
        names=(EPHEMERAL,),
        teardown=past.forget_earlier_attempts,
    )
)


# --- ls.all (defined beside this module) ----------------------------------------------

LS_ALL = register(listing.LS_ALL)
