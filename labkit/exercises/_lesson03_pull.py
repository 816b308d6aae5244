"""Lesson 03's registry helpers and the ``images.pull-rmi`` exercise (registered by the lesson module).

The registry's names (``hosts``), starting it (``ensure_registry``) and emptying what the
lesson pushed (``delete_lab_from_registry``) serve every exercise of lesson 03.
"""

from __future__ import annotations

import contextlib
import io
import shlex
import time
from typing import Any

import docker
import docker.errors

from labkit.core import fmt
from labkit.core.cleanup import remove_images, remove_name
from labkit.core.errors import LabkitError
from labkit.core.i18n import N_, _
from labkit.core.probes import image_id
from labkit.core.shell import sh
from labkit.exercises._lesson03_verdicts import PullFacts, pull_verdict, read_pull_events
from labkit.exercises.machinery.model import Context, Exercise, Verdict, not_yet
from labkit.exercises.machinery.runner import exercise_labels
from labkit.features.images import builders
from labkit.features.registry import api as registry_api
from labkit.features.registry import mirror as registry

LESSON = "03"
#: The lesson's namespace in the registry: every repository under it is the lesson's own.
NAMESPACE = "lab/"


def hosts() -> tuple[str, ...]:
    """The names of the course's registry as a docker image name may start: both reach it."""
    port = registry.port()
    return (f"localhost:{port}", f"127.0.0.1:{port}")


def delete_lab_from_registry(base: str | None = None, repositories: tuple[str, ...] | None = None) -> list[str]:
    """Delete every manifest under ``lab/`` (or in ``repositories``) from the registry, best effort.

    A registry that is not running has nothing to delete: that is not an error here.
    """
    deleted: list[str] = []
    try:
        names = (
            repositories
            if repositories is not None
            else tuple(r for r in registry_api.catalog(base=base) if r.startswith(NAMESPACE))
        )
        for repository in names:
            for tag in registry_api.tags(repository, base=base):
                digest = registry_api.manifest_digest(repository, tag, base=base)
                if digest and registry_api.delete_manifest(repository, digest, base=base):
                    deleted.append(f"{repository}:{tag}")
    except LabkitError:
        pass
    return deleted


def ensure_registry() -> str:
    """Start the course's registry if needed (quietly: setup shows its own summary).

    Raises:
        LabkitError: it could not start.
    """
    registry.up(out=io.StringIO())
    return registry.url()


# --- images.pull-rmi -------------------------------------------------------------------------

PULL_ID = "images.pull-rmi"
#: Outside ``lab/``: registry.push's teardown empties ``lab/``, and this exercise must survive it.
PULL_REPOSITORY = "lab03/pull-me"
PULL_TAGS = ("v1", "v2")
#: The tag the learner removes and pulls back; v1 is its likely slip.
PULL_TAG = "v2"
#: The name the prompt and hints use (the registry's default port, as for registry.push).
PULL_TARGET = f"localhost:{registry.DEFAULT_PORT}/{PULL_REPOSITORY}:{PULL_TAG}"


def _pull_name(tag: str = PULL_TAG) -> str:
    return f"{hosts()[0]}/{PULL_REPOSITORY}:{tag}"


def _daemon_nano(client: docker.DockerClient) -> int:
    """The daemon's clock, in nanoseconds (its events carry its own times, not this machine's)."""
    return round((fmt.timestamp(client.info().get("SystemTime")) or time.time()) * 1e6) * 1000


def _stamp(nano: int) -> str:
    """``seconds.nanoseconds``, as ``GET /events`` reads ``since`` and ``until``."""
    return f"{nano // 10**9}.{nano % 10**9:09d}"


def _setup_pull(ctx: Context) -> dict[str, Any]:
    """Two tags of one repository, pushed to the course's registry; the events that follow are the learner's."""
    ensure_registry()
    made: dict[str, str] = {}
    for tag in PULL_TAGS:
        name = _pull_name(tag)
        built = builders.build_relabelled("busybox", {**exercise_labels(ctx.exercise), "labkit.version": tag}, tag=name)
        sh(f"docker push {shlex.quote(name)}", quiet=True, lesson=LESSON)
        made[built] = tag
    return {"image": _pull_name(), "_made": made, "_since": _daemon_nano(ctx.client)}


def _teardown_pull(ctx: Context) -> int:
    """Every image setup made (by label), the names under either registry address, and the registry's copies."""
    removed = remove_images(f"labkit.exercise={PULL_ID}")
    for host in hosts():
        for tag in PULL_TAGS:
            removed += remove_name(f"{host}/{PULL_REPOSITORY}:{tag}")  # a name the learner pointed elsewhere
    return removed + len(delete_lab_from_registry(repositories=(PULL_REPOSITORY,)))


def _pull_facts(client: docker.DockerClient, setup: dict[str, Any]) -> PullFacts:
    made = {str(ident): str(tag) for ident, tag in (setup.get("_made") or {}).items()}
    since = int(setup.get("_since") or 0)
    present: dict[str, str | None] = {}
    for tag in PULL_TAGS:
        present[tag] = next(
            (found for host in hosts() if (found := image_id(client, f"{host}/{PULL_REPOSITORY}:{tag}"))), None
        )
    events = read_pull_events(
        client.events(since=_stamp(since), until=_stamp(_daemon_nano(client)), decode=True),
        since_nano=since,
        made=made,
        names=[f"{host}/{PULL_REPOSITORY}" for host in hosts()],
    )
    wanted = next((ident for ident, tag in made.items() if tag == PULL_TAG), "")
    other_names: tuple[str, ...] = ()
    if wanted:
        with contextlib.suppress(docker.errors.ImageNotFound):
            other_names = tuple(
                sorted(t for t in client.images.get(wanted).tags if not t.endswith(f"/{PULL_REPOSITORY}:{PULL_TAG}"))
            )
    return PullFacts(
        name=str(setup.get("image") or _pull_name()),
        tag=PULL_TAG,
        made={tag: ident for ident, tag in made.items()},
        present=present,
        events=events,
        other_names=other_names,
        registry_up=registry.probe(registry.url())[0] == "registry",
    )


def _check_pull(ctx: Context) -> Verdict:
    if not ctx.setup or not ctx.setup.get("_made"):
        return not_yet(
            _("The setup has not run, so there is no {pull_repository} to remove and pull back yet.").format(
                pull_repository=PULL_REPOSITORY
            ),
            _('Run `labkit.setup("{pull_id}")` first: it pushes the image to the course\'s registry.').format(
                pull_id=PULL_ID
            ),
        )
    return pull_verdict(_pull_facts(ctx.client, ctx.setup))


PULL_EXERCISE = Exercise(
    id=PULL_ID,
    lesson=LESSON,
    title=N_("Remove an image, then pull it back"),
    prompt=N_(
        "Setup pushed localhost:5000/lab03/pull-me:v2 to the course's registry (and kept a copy here). Delete the "
        "local copy, then download it again from the registry."
    ),
    check=_check_pull,
    hints=(
        N_(
            "Two steps: one command deletes an image from this daemon, another downloads it from a registry. "
            "After the first, the image list should no longer show it."
        ),
        N_(
            "`docker rmi NAME` (or `docker image rm NAME`) deletes it; `docker pull NAME` downloads it. Use the full "
            "name both times: registry address, repository and tag."
        ),
        N_("Type: docker rmi localhost:5000/lab03/pull-me:v2, then: docker pull localhost:5000/lab03/pull-me:v2"),
    ),
    solution=("docker rmi {image}", "docker pull {image}"),
    setup=_setup_pull,
    teardown=_teardown_pull,
    images=tuple(f"localhost:{registry.DEFAULT_PORT}/{PULL_REPOSITORY}:{tag}" for tag in PULL_TAGS),
)
