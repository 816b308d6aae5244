"""Lesson 10's ``load.back``: remove an image, then ``docker load`` it back from its save archive.

Setup makes a small image of its own, ``lab/cargo`` (busybox plus one file holding a
random token, so its id is new every time and no course image is ever touched), saves
it to ``<workspace>/archives/cargo.tar`` and reports its id and when it was saved. It
passes when ``lab/cargo`` is there again with that same id, and the daemon's events since
the save hold a ``delete`` of that id followed by a ``load``: the image really left, and
the archive brought it back.

Named near-misses: ``docker import`` of the same tar (it reads the archive as a plain
filesystem: a different, one-layer image, with the archive's own files in it), loaded
while the image was still there (nothing was restored), removed and not loaded yet, only
untagged and tagged again, another image under the name, the archive gone, and events
rolled out of the daemon's buffer (cannot tell).
"""

from __future__ import annotations

import contextlib
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import docker.errors

from labkit.core import engine, fmt
from labkit.core.errors import ImageMissing
from labkit.core.i18n import N_, _
from labkit.core.paths import workspace_dir
from labkit.core.probes import image_id
from labkit.exercises import _lesson10_archive_reader as _archives
from labkit.exercises import _lesson10_images as images
from labkit.exercises.machinery.model import Context, Exercise, Verdict, not_yet, passed
from labkit.exercises.machinery.runner import exercise_labels

LESSON = "10"
CARGO = "lab/cargo"
CARGO_TAG = f"{CARGO}:latest"
BASE = "busybox:latest"
ARCHIVE = "cargo.tar"


def archive_path() -> Path:
    """Where setup saves ``lab/cargo``: ``<workspace>/archives/cargo.tar`` (lesson 10's archive folder)."""
    return workspace_dir() / "archives" / ARCHIVE


def _setup(ctx: Context) -> dict[str, Any]:
    """Commit a one-file image on busybox as lab/cargo, save it to the archive, and report its id.

    Raises:
        ImageMissing: busybox is not on this daemon.
    """
    client = ctx.client
    if image_id(client, BASE) is None:
        raise ImageMissing(BASE)
    labels = engine.unowned(exercise_labels(ctx.exercise))  # the image keeps them; an image has no owner
    token = secrets.token_hex(8)
    container = client.containers.create(BASE, ["true"], labels=labels, network_disabled=True)
    try:
        container.put_archive("/", _archives.tar_bytes({"cargo.txt": f"{token}\n".encode()}))
        image = container.commit(repository=CARGO, tag="latest")  # keeps the labels: reset finds it
    finally:
        container.remove(force=True)
    path = archive_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as f:
        for chunk in image.save(named=True):
            f.write(chunk)
    return {"image": CARGO, "id": str(image.id).removeprefix("sha256:")[:12], "path": str(path), "saved": fmt.utc_now()}


@dataclass(frozen=True)
class LoadFacts:
    """What the daemon shows about lab/cargo since setup saved it.

    Attributes:
        present: the full id ``lab/cargo:latest`` names now, or ``None``.
        layers: how many layers that image has.
        events: ``(action, image id)`` of image events since the save, oldest first; ``None``
            when the daemon's event buffer no longer reaches back to the save.
        archive: the archive file is still there.
    """

    present: str | None
    layers: int = 0
    events: tuple[tuple[str, str], ...] | None = None
    archive: bool = True


def _short(full: str) -> str:
    return full.removeprefix("sha256:")[:12]


def load_verdict(facts: LoadFacts, wanted: str, path: str) -> Verdict:
    """Judge ``load.back`` (pure): ``wanted`` is the 12-digit id setup reported."""
    events = facts.events
    mine = [action for action, full in events or () if _short(full) == wanted]
    deleted_at = next((n for n, action in enumerate(mine) if action == "delete"), None)
    loads_after = deleted_at is not None and "load" in mine[deleted_at:]
    gone_file = (
        ""
        if facts.archive
        else _(" The archive {path} is gone too: run the setup again to get both back.").format(path=path)
    )
    evidence: dict[str, Any] = {"wanted": wanted}
    if facts.present is not None:
        evidence.update(found=_short(facts.present), layers=facts.layers)
    if facts.present is not None and _short(facts.present) == wanted:
        if events is None:
            return not_yet(
                _(
                    "{cargo} is here with the id it was saved with, but the daemon's event log no longer reaches "
                    "back to the save, so labkit cannot see whether it was removed and loaded."
                ).format(cargo=CARGO),
                _('Run `labkit.setup("load.back")` again, do both steps, and check at once.'),
                **evidence,
            )
        if loads_after:
            return passed(
                _(
                    "{cargo} was removed and is back from the archive with the same id ({wanted}): `docker load` "
                    "restored the image itself (its layers, its config and its name), not a copy."
                ).format(cargo=CARGO, wanted=wanted),
                **evidence,
            )
        if "load" in mine:
            return not_yet(
                _("You loaded the archive while {cargo} was still here, so nothing needed restoring.").format(
                    cargo=CARGO
                ),
                _("Remove the image first, see that `docker images` no longer lists it, then load it back."),
                **evidence,
            )
        if "untag" in mine and deleted_at is None:
            return not_yet(
                _("{cargo} lost its name and got it back, but the image itself never left: same id, no load.").format(
                    cargo=CARGO
                ),
                _("Remove the image (not only its name), then bring it back from the archive."),
                **evidence,
            )
        return not_yet(
            _("{cargo} is still the image setup saved (id {wanted}): it has not been removed yet.").format(
                cargo=CARGO, wanted=wanted
            ),
            _("Two steps: remove the image from the daemon, then restore it from {path}.").format(path=path),
            **evidence,
        )
    if facts.present is not None:
        imported = any(action == "import" and full == facts.present for action, full in events or ())
        if imported or facts.layers == 1:
            return not_yet(
                _(
                    "{cargo} is a new image (id {short}, {layers} layer), not the one saved (id {wanted}): `docker "
                    "import` read the save archive as a plain filesystem, so the image holds the archive's own "
                    "files (manifest.json, the layer folders) instead of the saved image."
                ).format(cargo=CARGO, short=_short(facts.present), layers=facts.layers, wanted=wanted),
                "import is for what `docker export` writes; which command reads back what `docker save` wrote, "
                "layers, config and name?" + gone_file,
                **evidence,
            )
        return not_yet(
            _("{cargo} names another image (id {short}), not the one saved (id {wanted}).").format(
                cargo=CARGO, short=_short(facts.present), wanted=wanted
            ),
            _("Remove it and bring back the saved one from {path}.{gone_file}").format(path=path, gone_file=gone_file),
            **evidence,
        )
    if deleted_at is not None or "untag" in mine:
        return not_yet(
            _("{cargo} is gone from the daemon: the first step is done.{gone_file}").format(
                cargo=CARGO, gone_file=gone_file
            ),
            _("Now bring it back from {path}: which command reads what `docker save` wrote?").format(path=path),
            **evidence,
        )
    return not_yet(
        _("There is no image {cargo}.{gone_file}").format(cargo=CARGO, gone_file=gone_file),
        _('Run `labkit.setup("load.back")` again.'),
        **evidence,
    )


def _events(client: docker.DockerClient, since: float | None) -> tuple[tuple[str, str], ...] | None:
    """Image events since ``since``; ``None`` when the buffer no longer reaches back to setup's ``save``."""
    if since is None:
        return None
    try:
        found = list(
            client.api.events(
                since=f"{since - 1.0:.9f}", until=f"{time.time():.9f}", filters={"type": "image"}, decode=True
            )
        )
    except (docker.errors.APIError, ValueError):
        return None
    events = tuple((str(e.get("Action") or ""), str((e.get("Actor") or {}).get("ID") or "")) for e in found)
    return events if any(action == "save" for action, _ in events) else None


def _check(ctx: Context) -> Verdict:
    reported = ctx.setup or {}
    wanted = str(reported.get("id") or "")
    if not wanted:
        return not_yet(
            _("The exercise is not set up: there is no {cargo} and no archive yet.").format(cargo=CARGO),
            _('Run `labkit.setup("load.back")` first: it makes the image and saves it.'),
        )
    path = str(reported.get("path") or archive_path())
    try:
        image = ctx.client.images.get(CARGO_TAG)
        present, layers = str(image.id), len(images.layers(image))
    except docker.errors.ImageNotFound:
        present, layers = None, 0
    facts = LoadFacts(
        present=present,
        layers=layers,
        events=_events(ctx.client, fmt.timestamp(reported.get("saved"))),
        archive=Path(path).is_file(),
    )
    return load_verdict(facts, wanted, path)


def _teardown(ctx: Context) -> int:
    """Remove lab/cargo (its tags, and the saved image by its labels) and the archive. Idempotent."""
    client = ctx.client
    removed = 0
    for image in client.images.list(name=CARGO):  # by tag: an image that has another name only loses this one
        for tag in image.tags:
            if tag.startswith(f"{CARGO}:"):
                removed += images.remove_image(client, tag)
    for image in client.images.list(filters={"label": f"labkit.exercise={ctx.exercise.id}"}):
        removed += images.remove_image(client, image.id)
    for path in {archive_path(), Path(str((ctx.setup or {}).get("path") or archive_path()))}:
        if path.is_file():
            path.unlink(missing_ok=True)
            removed += 1
    with contextlib.suppress(OSError):
        archive_path().parent.rmdir()  # only when empty
    return removed


LOAD_BACK = Exercise(
    id="load.back",
    lesson=LESSON,
    title=N_("Remove an image and load it back from its archive"),
    prompt=N_(
        "Setup saved the image lab/cargo to the archive it names. Remove lab/cargo from the daemon, "
        "then bring it back from that archive, with the same id."
    ),
    check=_check,
    hints=(
        N_("Note the id setup printed. Remove the image first; `docker images lab/cargo` should then list nothing."),
        N_("`docker rmi` removes an image; the command that reads a `docker save` archive back is save's partner."),
        N_("Type: docker rmi lab/cargo, then docker load -i PATH, where PATH is the path setup printed."),
    ),
    solution=(f"docker rmi {CARGO}", "docker load -i {path}"),
    setup=_setup,
    images=(CARGO,),
    teardown=_teardown,
)
