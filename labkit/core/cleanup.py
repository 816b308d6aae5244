"""Removing what labkit created, by label.

Everything labkit creates carries a ``labkit.session`` label (and a ``labkit.lesson``
label inside a lesson) and is removed by label here. What the lessons ask learners to
create by name is removed by the exercises that own it
(:mod:`labkit.exercises.machinery.reset`). The course's own images (``labkit images
ensure``) are infrastructure and stay.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import docker.errors

from labkit.core import engine
from labkit.core.i18n import _, ngettext


def already_going(e: docker.errors.APIError) -> bool:
    """The daemon refused a removal because one is already under way (a parallel reset)."""
    return e.status_code == 409 and "already in progress" in str(e)


@dataclass(frozen=True)
class ResetReport:
    """How many of each kind of resource a reset removed."""

    containers: int = 0
    networks: int = 0
    volumes: int = 0
    images: int = 0
    #: Things exercise teardowns removed that are not containers (processes, registry tags, files).
    other: int = 0

    def __str__(self) -> str:
        counted = {
            "containers": lambda n: ngettext("{n} container", "{n} containers", n),
            "networks": lambda n: ngettext("{n} network", "{n} networks", n),
            "volumes": lambda n: ngettext("{n} volume", "{n} volumes", n),
            "images": lambda n: ngettext("{n} image", "{n} images", n),
            "other": lambda n: ngettext("{n} other", "{n} other", n),
        }
        parts = [counted[kind](n).format(n=n) for kind, n in vars(self).items() if n]
        if not parts:
            return _("nothing to remove: the lab is clean")
        return _("removed {things}").format(things=_(", ").join(parts))

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(str(self))

    def __add__(self, other: ResetReport) -> ResetReport:
        return ResetReport(*(a + b for a, b in zip(vars(self).values(), vars(other).values(), strict=True)))


def remove_labelled(session: str | None = None, lesson: str | None = None) -> ResetReport:
    """Remove containers, networks, volumes and images carrying labkit's session label.

    Args:
        session: only this session's resources; ``None`` for every session's.
        lesson: only this lesson's resources (``labkit.lesson`` label).

    Raises:
        DaemonUnavailable: the daemon did not answer.
    """
    if lesson:
        label = f"{engine.LABEL_LESSON}={lesson}"
    else:
        label = f"{engine.LABEL_SESSION}={session}" if session else engine.LABEL_SESSION
    client = engine.client()
    counts = {"containers": 0, "networks": 0, "volumes": 0, "images": 0}
    with engine.converted():
        for container in client.containers.list(all=True, filters={"label": label}):
            try:
                container.remove(force=True, v=True)
                counts["containers"] += 1
            except docker.errors.NotFound:
                pass
            except docker.errors.APIError as e:
                if not already_going(e):
                    raise
                counts["containers"] += 1
        for network in client.networks.list(filters={"label": label}):
            try:
                network.remove()
                counts["networks"] += 1
            except docker.errors.NotFound:
                pass
        for volume in client.volumes.list(filters={"label": label}):
            try:
                volume.remove(force=True)
                counts["volumes"] += 1
            except docker.errors.NotFound:
                pass
        counts["images"] = remove_images(label)
    return ResetReport(**counts)


def remove_images(label: str) -> int:
    """Remove every image carrying ``label`` (``key`` or ``key=value``), under all its names.

    Forced, so an image goes even when it has several names or a stopped container
    uses it; remove running containers first. A course image never carries labkit's
    session, lesson or exercise labels, so it is never among them.

    Returns:
        How many images went.

    Raises:
        DaemonUnavailable: the daemon did not answer.
    """
    client = engine.client()
    removed = 0
    with engine.converted():
        for image in client.images.list(filters={"label": label}):
            try:
                client.images.remove(image.id, force=True)
                removed += 1
            except docker.errors.NotFound:  # went with an image removed just before (or by someone else)
                pass
    return removed


def remove_name(name: str) -> int:
    """Remove one image name, not forced: an image with other names only loses this one.

    Returns:
        1 when it went; 0 when there was no such name, or a container still uses the image
        (remove the container first).

    Raises:
        DaemonUnavailable: the daemon did not answer.
    """
    with engine.converted():
        try:
            engine.client().images.remove(name)
            return 1
        except docker.errors.APIError as e:
            if e.status_code in (404, 409):
                return 0
            raise
