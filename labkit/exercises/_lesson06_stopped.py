"""Lesson 06's ``start.again``: a stopped container is still there, to start again.

``start.again``
    Setup runs ``napper`` and stops it, and reports its id. It passes when the container of
    that id runs again (``docker start``; ``docker restart`` of a stopped container starts it
    too). Its log holds one ``ready`` line per start, shown as evidence. Named near-misses: a
    new container under the name (removed and run again), a new container from the same
    image while ``napper`` is still stopped (``docker run`` makes a container every time),
    still stopped, paused, gone.

Lesson 07's ``ls.all``, which finds a stopped container in a list, is
:mod:`~labkit.exercises._lesson07_listing`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import docker

from labkit.core import engine, fmt, wait
from labkit.core.i18n import N_, _
from labkit.exercises import _lesson06_containers as present
from labkit.exercises import _lesson06_history as past
from labkit.exercises.machinery.model import Context, Exercise, Verdict, not_yet, passed
from labkit.exercises.machinery.runner import exercise_labels

LESSON = "06"
READY_TIMEOUT = 20.0

# --- start.again ----------------------------------------------------------------------

NAPPER = "napper"
NAPPER_IMAGE = "busybox"
NAPPER_READY = f"{NAPPER}: ready"


def _setup_start(ctx: Context) -> dict[str, Any]:
    container = ctx.client.containers.run(
        NAPPER_IMAGE,
        ["sh", "-c", present.signal_script(NAPPER)],
        name=NAPPER,
        detach=True,
        labels=exercise_labels(ctx.exercise),
    )
    wait.log_line(container, NAPPER_READY, timeout=READY_TIMEOUT)
    container.stop(timeout=5)  # its SIGTERM handler exits at once
    container.reload()
    state = container.attrs.get("State", {})
    return {"container": NAPPER, "id": str(container.id)[:12], "stopped": str(state.get("FinishedAt") or "")}


@dataclass(frozen=True)
class StartFacts:
    """What the daemon shows about ``napper`` and containers made since setup stopped it.

    Attributes:
        exists: a container named ``napper`` exists.
        same: it has the id setup reported.
        status: its state.
        runs: how many times it has started (its ``ready`` lines), ``None`` when its log is unreadable.
        newcomers: names of other containers from its image created after setup stopped it.
    """

    exists: bool
    same: bool = False
    status: str = ""
    runs: int | None = None
    newcomers: tuple[str, ...] = ()


def start_verdict(facts: StartFacts, setup_id: str) -> Verdict:
    """Judge ``start.again`` (pure)."""
    new = facts.newcomers
    made = (
        _(" You made {names} from the same image instead: `docker run` makes a new container every time.").format(
            names=", ".join(new[:3])
        )
        if new
        else ""
    )
    if not facts.exists:
        return not_yet(
            _("There is no container named {napper}: it was removed, or setup never ran.{made}").format(
                napper=NAPPER, made=made
            ),
            _(
                'Run `labkit.setup("start.again")` again: it makes {napper} and stops it. Then bring that same '
                "one back."
            ).format(napper=NAPPER),
        )
    if not facts.same:
        return not_yet(
            _(
                "{napper} is a new container, not the one setup stopped (id {setup_id}): removing a container "
                "and running the image again makes another one, with a fresh writable layer."
            ).format(napper=NAPPER, setup_id=setup_id),
            _('Run `labkit.setup("start.again")` again, and this time bring back the container that is there.'),
        )
    evidence: dict[str, Any] = {"status": facts.status, "id": setup_id}
    if facts.runs is not None:
        evidence["starts"] = facts.runs
    if facts.status == "running":
        return passed(
            _(
                "{napper} runs again: the same container (id {setup_id}), with its files and settings, started "
                "{runs} times in all."
            ).format(napper=NAPPER, setup_id=setup_id, runs=facts.runs or _("more than one")),
            **evidence,
        )
    if facts.status == "paused":
        return not_yet(
            _("{napper} is paused: it ran, then was frozen.").format(napper=NAPPER),
            _("`docker unpause` lets it run again."),
            **evidence,
        )
    if made:
        return not_yet(
            _("{napper} is still {status}.{made}").format(napper=NAPPER, status=facts.status, made=made),
            _("Which command starts a container that already exists?"),
            **evidence,
        )
    return not_yet(
        _("{napper} is still {status}: a stopped container keeps its files and settings, ready to run again.").format(
            napper=NAPPER, status=facts.status
        ),
        _("Which command starts a container that already exists, rather than making a new one?"),
        **evidence,
    )


def _newcomers(client: docker.DockerClient, image_id: str, since: float | None, own_id: str) -> tuple[str, ...]:
    """Containers from ``image_id`` created after ``since`` that another exercise or lesson did not make."""
    if since is None:
        return ()
    found = []
    for other in client.containers.list(all=True, filters={"ancestor": image_id}):
        labels = other.labels
        if (
            str(other.id).startswith(own_id)
            or labels.get("labkit.exercise")
            or labels.get(engine.LABEL_LESSON, LESSON) != LESSON
        ):
            continue
        created = fmt.timestamp(other.attrs.get("Created"))
        if created is not None and created > since:
            found.append(str(other.name))
    return tuple(sorted(found))


def _check_start(ctx: Context) -> Verdict:
    reported = ctx.setup or {}
    setup_id = str(reported.get("id") or "")
    if not setup_id:
        return not_yet(
            _("The exercise is not set up: there is no stopped {napper} yet.").format(napper=NAPPER),
            _('Run `labkit.setup("start.again")` first: it makes one.'),
        )
    since = fmt.timestamp(reported.get("stopped"))
    image = ctx.client.images.get(NAPPER_IMAGE)
    newcomers = _newcomers(ctx.client, str(image.id), since, setup_id)
    container = engine.find_container(NAPPER)
    if container is None or container.name != NAPPER:
        return start_verdict(StartFacts(exists=False, newcomers=newcomers), setup_id)
    lines = past.log_lines(container)
    facts = StartFacts(
        exists=True,
        same=str(container.id).startswith(setup_id),
        status=present.status(container),
        runs=None if lines is None else sum(NAPPER_READY in line for line in lines),
        newcomers=tuple(n for n in newcomers if n != NAPPER),
    )
    return start_verdict(facts, setup_id)


START_AGAIN = Exercise(
    id="start.again",
    lesson=LESSON,
    title=N_("Start a stopped container again"),
    prompt=N_("The container napper has stopped. Make it run again: the same container, not a new one."),
    check=_check_start,
    hints=(
        N_("`docker ps -a` lists napper as Exited. `docker run` would make a new container; what reuses this one?"),
        N_("`docker start NAME` starts an existing container with the command and settings it was created with."),
        N_("Type: docker start napper"),
    ),
    solution=(f"docker start {NAPPER}",),
    setup=_setup_start,
    names=(NAPPER,),
)
