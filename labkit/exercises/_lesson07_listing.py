"""Lesson 07's ``ls.all``: the stopped container that ``docker container ls`` does not show.

``ls.all`` (answer)
    Setup makes four containers named ``shelf-<word>`` (random words): three running and one
    exited, which ``docker container ls`` does not show. The answer is the exited one's
    name; its full or 12-digit id is accepted too (it names the same container). Named
    near-misses: a running one's name (``ls`` shows it already), a container setup did not
    make, a typo of the right name, nothing at all.

Its containers run the script of :func:`labkit.exercises._lesson06_containers.signal_script`,
which lesson 06's containers run too.
"""

from __future__ import annotations

import difflib
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import docker

from labkit.core import engine
from labkit.core.i18n import N_, _
from labkit.exercises import _lesson06_containers as present
from labkit.exercises.machinery.model import Context, Exercise, Verdict, not_yet, passed
from labkit.exercises.machinery.runner import exercise_labels

LESSON = "07"
READY_TIMEOUT = 20.0

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
    return {"containers": _("4 named {shelf}…, 3 of them running").format(shelf=SHELF)}


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
            _("The stopped container setup made is gone (or setup never ran)."),
            _('Run `labkit.setup("ls.all")` again; list the containers before removing any.'),
        )
    given = _plain(answer)
    if not given:
        return not_yet(_("The answer is empty."), _("Submit a container's name, as the NAMES column shows it."))
    if given == hidden.name:
        return passed(
            _("{name} is the one: it has exited, so `docker container ls` hides it and `ls -a` shows it.").format(
                name=hidden.name
            ),
            status=hidden.status,
        )
    if len(given) >= 12 and hidden.id.removeprefix("sha256:").startswith(given.lower().removeprefix("sha256:")):
        return passed(
            _("That is its id; its name is {name}. `ls -a` showed it: it has exited.").format(name=hidden.name),
            status=hidden.status,
        )
    shown = next((s for s in shelves if s.name == given), None)
    if shown is not None:
        return not_yet(
            _("{given} is {status}: `docker container ls` already lists it.").format(given=given, status=shown.status),
            _("The one asked for is missing from that list. Which option lists every container, whatever its state?"),
        )
    close = difflib.get_close_matches(given, [s.name for s in shelves], n=1, cutoff=0.75)
    if close and close[0] == hidden.name:
        return not_yet(
            _("No container is named {given!r}; it is close to the one you want.").format(given=given),
            _("Copy the name exactly."),
        )
    if given in others:
        return not_yet(
            _("{given} is a container, but setup did not make it: the names it made start with {shelf}.").format(
                given=given, shelf=SHELF
            ),
            _("Which option lists every container, stopped ones too? Look for the {shelf} name among them.").format(
                shelf=SHELF
            ),
        )
    return not_yet(
        _("No container is named {given!r}.").format(given=given),
        _(
            "`docker container ls` lists running containers only. Which option shows the {shelf} one that stopped?"
        ).format(shelf=SHELF),
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
    title=N_("Find the container that ls does not show"),
    prompt=N_(
        "Setup made four containers named shelf-…; `docker container ls` shows three. Submit the name "
        "of the fourth, the one that has stopped."
    ),
    check=_check_ls,
    hints=(
        N_("`docker container ls` (or `docker ps`) lists only running containers by default."),
        N_("One option of `docker container ls` adds the stopped ones; its STATUS column then says Exited."),
        N_("Type: docker container ls -a, and submit the shelf- name whose status is Exited."),
    ),
    solution=(f"docker container ls -a --filter name={SHELF}",),
    setup=_setup_ls,
    reference_answer=_reference_ls,
)
