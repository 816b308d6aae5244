"""The course's images, on any machine, online or not.

For each image in :data:`CATALOG`, :func:`ensure` does the first thing that works:
already on the daemon → nothing; pullable → pulled (one attempt under a
deadline); otherwise built from local materials (:mod:`labkit.images.builders`).
:func:`bundle` and :func:`load` carry the whole set to machines that cannot build.

Example:
    >>> from labkit import images
    >>> [s.name for s in images.ensure(["hello-world"])]  # doctest: +SKIP
    busybox:latest             present
    hello-world:latest         built in 0.6 s from contexts/hello-world/Dockerfile (pull: no such host)
    ['busybox:latest', 'hello-world:latest']
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from typing import Any, Literal, TextIO

from labkit.core import engine, fmt
from labkit.core.errors import LabkitError
from labkit.core.i18n import _
from labkit.features.images.archive import bundle, load
from labkit.features.images.builders import build
from labkit.features.images.catalog import CATALOG, LABEL_IMAGE, CatalogImage, find, resolve
from labkit.features.images.pull import offline, try_pull

__all__ = [
    "CATALOG",
    "LABEL_IMAGE",
    "CatalogImage",
    "ImageState",
    "bundle",
    "ensure",
    "find",
    "load",
    "resolve",
    "status",
]

Source = Literal["present", "pulled", "built", "missing"]

_HOW = {
    "busybox-static": "from Debian's busybox-static",
    "debootstrap": "with debootstrap",
}


@dataclass(frozen=True)
class ImageState:
    """Where one catalog image stands on the daemon.

    Attributes:
        name: the catalog name, e.g. ``busybox:latest``.
        present: the daemon has it now.
        source: ``present`` (was already there), ``pulled``, ``built`` or ``missing``.
        offline_built: it carries a non-empty ``labkit.offline-build`` label: a
            stand-in labkit built for a Docker Hub image, not the original.
        image_id: the image id, when present.
        size: bytes, when present.
        seconds: how long :func:`ensure` spent on it.
        detail: why it was built rather than pulled.
    """

    name: str
    present: bool
    source: Source
    offline_built: bool = False
    image_id: str | None = None
    size: int = 0
    seconds: float = 0.0
    detail: str = ""


def _local(name: str | None = None) -> dict[str, dict[str, Any]]:
    """Image summaries by tag, from one list call (``name`` narrows it to one repository)."""
    with engine.converted():
        listing = engine.client().api.images(name=name)
    return {tag: summary for summary in listing for tag in summary.get("RepoTags") or []}


def _state(
    entry: CatalogImage, summary: dict[str, Any] | None, source: Source, seconds: float = 0.0, detail: str = ""
) -> ImageState:
    if summary is None:
        return ImageState(entry.name, False, "missing", seconds=seconds, detail=detail)
    labels = summary.get("Labels") or {}
    return ImageState(
        entry.name,
        True,
        source,
        offline_built=bool(labels.get(engine.LABEL_OFFLINE)),
        image_id=str(summary.get("Id")),
        size=int(summary.get("Size") or 0),
        seconds=seconds,
        detail=detail,
    )


def status() -> list[ImageState]:
    """Every catalog image and whether the daemon has it: one API call, no side effects.

    Raises:
        DaemonUnavailable: the daemon did not answer.
    """
    local = _local()
    return [_state(entry, local.get(entry.name), "present") for entry in CATALOG]


def _drop_old(image_id: str) -> None:
    """Remove the image a rebuild replaced, unless a container still uses it."""
    try:
        with engine.converted():
            engine.client().images.remove(image_id)
    except LabkitError:
        pass  # still used by a container (or already gone): it does no harm


def ensure(names: list[str] | None = None, *, out: TextIO = sys.stdout) -> list[ImageState]:
    """Make the catalog images (all, or ``names`` and what they are built from) available.

    Prints one line per image: present, pulled, or built and how long it took.
    ``LABKIT_OFFLINE=1`` skips the pull attempts; ``LABKIT_PULL_TIMEOUT`` bounds each.

    Args:
        names: catalog names (``busybox``, ``hello-dock``…); ``None`` for the whole catalog.
        out: where the progress lines go.

    Returns:
        One state per image handled, dependencies first.

    Raises:
        LabkitError: an unknown name, or a build that failed.
        NotSupported: an image can be neither pulled nor built on this machine.
        DaemonUnavailable: the daemon did not answer.

    Example:
        >>> [s.source for s in ensure(["busybox"])]  # doctest: +SKIP
        busybox:latest             present
        ['present']
    """
    entries = resolve(names)
    local = _local()
    states = []
    for entry in entries:
        started = time.monotonic()
        summary = local.get(entry.name)
        stale = summary is not None and entry.is_stale(summary.get("Labels"))
        if summary is not None and not stale:
            states.append(_state(entry, summary, "present"))
            print(_("{name:<26} present").format(name=entry.name), file=out, flush=True)
            continue
        why: str | None
        if stale:
            why = "its build context changed since it was built"
        else:
            why = "LABKIT_OFFLINE=1" if offline() else try_pull(entry.name, out=out)
        if why is None and (summary := _local(entry.repository).get(entry.name)) is not None:
            state = _state(entry, summary, "pulled", time.monotonic() - started)
            print(
                _("{name:<26} pulled in {duration}").format(name=entry.name, duration=fmt.duration(state.seconds)),
                file=out,
                flush=True,
            )
        else:
            why = why or "pulled, yet not on the daemon"
            build(entry, out)
            summary = _local(entry.repository).get(entry.name)
            state = _state(entry, summary, "built", time.monotonic() - started, why)
            if summary is None:
                raise LabkitError(
                    _("{name} was built but the daemon does not list it").format(name=entry.name),
                    _("run `labkit doctor`"),
                )
            if stale:
                _drop_old(str(local[entry.name]["Id"]))
            how = _HOW.get(entry.build, f"from contexts/{entry.context}/Dockerfile")
            pull_note = why if why.startswith(("LABKIT_", "its build")) else f"pull: {why}"
            print(
                _("{name:<26} built in {duration} {how} ({pull_note})").format(
                    name=entry.name, duration=fmt.duration(state.seconds), how=how, pull_note=pull_note
                ),
                file=out,
                flush=True,
            )
        states.append(state)
    return states
