"""Lesson 06's ``start.again`` and ``ls.all``: a stopped container is still there, to start or to list.

``start.again``
    Setup runs ``napper`` and stops it, and reports its id. It passes when the container of
    that id runs again (``docker start``; ``docker restart`` of a stopped container starts it
    too). Its log holds one ``ready`` line per start, shown as evidence. Named near-misses: a
    new container under the name (removed and run again), a new container from the same
    image while ``napper`` is still stopped (``docker run`` makes a container every time),
    still stopped, paused, gone.

``ls.all`` (answer)
    Setup makes four containers named ``shelf-<word>`` (random words): three running and one
    exited, which ``docker container ls`` does not show. The answer is the exited one's
    name; its full or 12-digit id is accepted too (it names the same container). Named
    near-misses: a running one's name (``ls`` shows it already), a container setup did not
    make, a typo of the right name, nothing at all.
"""

from __future__ import annotations

import difflib
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import docker

from labkit.core import engine, fmt, wait
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
        f" You made {', '.join(new[:3])} from the same image instead: `docker run` makes a new container every time."
        if new
        else ""
    )
    if not facts.exists:
        return not_yet(
            f"There is no container named {NAPPER}: it was removed, or setup never ran.{made}",
            f'Run `labkit.setup("start.again")` again: it makes {NAPPER} and stops it. Then bring that same one back.',
        )
    if not facts.same:
        return not_yet(
            f"{NAPPER} is a new container, not the one setup stopped (id {setup_id}): removing a container and "
            "running the image again makes another one, with a fresh writable layer.",
            'Run `labkit.setup("start.again")` again, and this time bring back the container that is there.',
        )
    evidence: dict[str, Any] = {"status": facts.status, "id": setup_id}
    if facts.runs is not None:
        evidence["starts"] = facts.runs
    if facts.status == "running":
        return passed(
            f"{NAPPER} runs again: the same container (id {setup_id}), with its files and settings, "
            f"started {facts.runs or 'more than one'} times in all.",
            **evidence,
        )
    if facts.status == "paused":
        return not_yet(
            f"{NAPPER} is paused: it ran, then was frozen.", "`docker unpause` lets it run again.", **evidence
        )
    if made:
        return not_yet(
            f"{NAPPER} is still {facts.status}.{made}",
            "Which command starts a container that already exists?",
            **evidence,
        )
    return not_yet(
        f"{NAPPER} is still {facts.status}: a stopped container keeps its files and settings, ready to run again.",
        "Which command starts a container that already exists, rather than making a new one?",
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
            f"The exercise is not set up: there is no stopped {NAPPER} yet.",
            'Run `labkit.setup("start.again")` first: it makes one.',
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
    title="Start a stopped container again",
    prompt=f"The container {NAPPER} has stopped. Make it run again: the same container, not a new one.",
    check=_check_start,
    hints=(
        f"`docker ps -a` lists {NAPPER} as Exited. `docker run` would make a new container; what reuses this one?",
        "`docker start NAME` starts an existing container with the command and settings it was created with.",
        f"Type: docker start {NAPPER}",
    ),
    solution=(f"docker start {NAPPER}",),
    setup=_setup_start,
    names=(NAPPER,),
)


# --- ls.all ---------------------------------------------------------------------------

SHELF = "shelf-"
WORDS = (
    "amber",
    "birch",
    "cedar",
    "dune",
    "ember",
    "fjord",
    "garnet",
    "harbor",
    "iris",
    "juniper",
    "kestrel",
    "lagoon",
)
#: Label telling setup's exited container from its running ones (``docker ps -a`` does not show labels).
ROLE = "labkit.ls-all"


def _setup_ls(ctx: Context) -> dict[str, Any]:
    words = list(WORDS)
    chosen = [words.pop(secrets.randbelow(len(words))) for _ in range(4)]
    labels = exercise_labels(ctx.exercise)
    for word in chosen[:3]:
        name = SHELF + word
        ctx.client.containers.run(
            "busybox",
            ["sh", "-c", present.signal_script(name)],
            name=name,
            detach=True,
            labels={**labels, ROLE: "running"},
        )
    hidden = ctx.client.containers.run(
        "busybox", ["true"], name=SHELF + chosen[3], detach=True, labels={**labels, ROLE: "stopped"}
    )
    hidden.wait(timeout=READY_TIMEOUT)
    return {"containers": f"4 named {SHELF}…, 3 of them running"}


@dataclass(frozen=True)
class Shelf:
    """One of setup's containers: name, full id, state, and whether it is the one that stopped."""

    name: str
    id: str
    status: str
    hidden: bool


def _plain(answer: str) -> str:
    """Spaces, quotes and the leading ``/`` of an inspect name forgiven."""
    return answer.strip().strip("'\"`").strip().lstrip("/")


def ls_verdict(answer: str, shelves: Sequence[Shelf], others: Sequence[str] = ()) -> Verdict:
    """Judge an ``ls.all`` answer against setup's containers and the daemon's other names (pure)."""
    hidden = next((s for s in shelves if s.hidden), None)
    if hidden is None:
        return not_yet(
            "The stopped container setup made is gone (or setup never ran).",
            'Run `labkit.setup("ls.all")` again; list the containers before removing any.',
        )
    given = _plain(answer)
    if not given:
        return not_yet("The answer is empty.", "Submit a container's name, as the NAMES column shows it.")
    if given == hidden.name:
        return passed(
            f"{hidden.name} is the one: it has exited, so `docker container ls` hides it and `ls -a` shows it.",
            status=hidden.status,
        )
    if len(given) >= 12 and hidden.id.removeprefix("sha256:").startswith(given.lower().removeprefix("sha256:")):
        return passed(
            f"That is its id; its name is {hidden.name}. `ls -a` showed it: it has exited.", status=hidden.status
        )
    shown = next((s for s in shelves if s.name == given), None)
    if shown is not None:
        return not_yet(
            f"{given} is {shown.status}: `docker container ls` already lists it.",
            "The one asked for is missing from that list. Which option lists every container, whatever its state?",
        )
    close = difflib.get_close_matches(given, [s.name for s in shelves], n=1, cutoff=0.75)
    if close and close[0] == hidden.name:
        return not_yet(f"No container is named {given!r}; it is close to the one you want.", "Copy the name exactly.")
    if given in others:
        return not_yet(
            f"{given} is a container, but setup did not make it: the names it made start with {SHELF}.",
            f"Which option lists every container, stopped ones too? Look for the {SHELF} name among them.",
        )
    return not_yet(
        f"No container is named {given!r}.",
        f"`docker container ls` lists running containers only. Which option shows the {SHELF} one that stopped?",
    )


def _shelves(client: docker.DockerClient, exercise_id: str) -> list[Shelf]:
    found = client.containers.list(all=True, filters={"label": f"labkit.exercise={exercise_id}"})
    return [Shelf(str(c.name), str(c.id), present.status(c), c.labels.get(ROLE) == "stopped") for c in found]


def _check_ls(ctx: Context) -> Verdict:
    shelves = _shelves(ctx.client, ctx.exercise.id)
    given = _plain(ctx.answer or "")
    others: list[str] = []
    if given and not any(s.name == given for s in shelves):
        found = engine.find_container(given)
        others = [str(found.name)] if found is not None and found.name == given else []
    return ls_verdict(ctx.answer or "", shelves, others)


def _reference_ls(ctx: Context) -> str:
    hidden = [s for s in _shelves(ctx.client, ctx.exercise.id) if s.hidden]
    return hidden[0].name if hidden else ""


LS_ALL = Exercise(
    id="ls.all",
    lesson=LESSON,
    title="Find the container that ls does not show",
    prompt=f"Setup made four containers named {SHELF}…; `docker container ls` shows three. "
    "Submit the name of the fourth, the one that has stopped.",
    check=_check_ls,
    hints=(
        "`docker container ls` (or `docker ps`) lists only running containers by default.",
        "One option of `docker container ls` adds the stopped ones; its STATUS column then says Exited.",
        f"Type: docker container ls -a, and submit the {SHELF} name whose status is Exited.",
    ),
    solution=(f"docker container ls -a --filter name={SHELF}",),
    setup=_setup_ls,
    reference_answer=_reference_ls,
)
