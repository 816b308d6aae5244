"""Lesson 10: export/import flattens a container into one layer; save/load keeps an image whole.

``export.import`` reads the image ``lab/snapshot``: one layer holding the marker file
setup wrote into ``snapshot-me`` (a random token, so only a real snapshot has it).
``save.load`` reads the archive file setup named and compares it with the daemon's
``labkit/hello-dock``. Neither removes a catalog image: teardown removes tags by name
(a tag shared with another name is only untagged) and ids only of images it proved
were made from ``snapshot-me``.
"""

from __future__ import annotations

import contextlib
import io
import json
import secrets
import shlex
import tarfile
from pathlib import Path
from typing import Any

import docker.errors
from docker.models.images import Image

from labkit.core import refs, wait
from labkit.core.errors import ImageMissing
from labkit.core.i18n import N_, _
from labkit.core.paths import workspace_dir
from labkit.core.probes import image_id
from labkit.exercises import _lesson10_archive_reader as _archives
from labkit.exercises import _lesson10_images as images
from labkit.exercises import _lesson10_load as load
from labkit.exercises.machinery.catalog import register
from labkit.exercises.machinery.model import Context, Exercise, Verdict, not_yet, passed
from labkit.exercises.machinery.runner import exercise_labels

LESSON = "10"

# --- export.import ---------------------------------------------------------------------

SNAPSHOT = "snapshot-me"
TARGET = "lab/snapshot:latest"
REPO = "lab/snapshot"
MARKER = "/snapshot-marker.txt"
#: PID 1 sleeps in the background and leaves on SIGTERM, so stopping snapshot-me is quick.
SNAPSHOT_COMMAND = ["sh", "-c", "trap 'exit 0' TERM; while :; do sleep 3600 & wait $!; done"]
SOLUTION_PIPE = f"docker export {SNAPSHOT} | docker import - {REPO}"
#: How many candidate images a check opens at most to look for the marker (each costs one container create).
_MAX_PEEKS = 6


def _setup_snapshot(ctx: Context) -> dict[str, Any]:
    token = secrets.token_hex(8)
    container = ctx.client.containers.create(
        "busybox", SNAPSHOT_COMMAND, name=SNAPSHOT, labels=exercise_labels(ctx.exercise)
    )
    # Written through the API, not by the command line: the token is not in the container's config.
    container.put_archive("/", _archives.tar_bytes({MARKER.lstrip("/"): f"{token}\n".encode()}))
    container.start()
    wait.container_running(container)
    return {"container": SNAPSHOT, "marker": MARKER, "token": token}


def read_marker(client: docker.DockerClient, image: str, labels: dict[str, str]) -> str | None:
    """The marker file's text in ``image``, or ``None`` when the image has no such file.

    Reads it through the daemon: a container is created (never started) from the image,
    the file is copied out, and the container removed. ``true`` is given as the command
    because an imported image has none, and the daemon will not create a container without one.
    """
    container = client.containers.create(image, ["true"], labels=labels, network_disabled=True)
    try:
        try:
            stream, stat = container.get_archive(MARKER)
        except docker.errors.NotFound:
            return None
        if int(stat.get("size", 0)) > 64 * 1024:
            return "(a large file, not the marker)"
        with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as tar:
            member = next((m for m in tar.getmembers() if m.isfile()), None)
            handle = tar.extractfile(member) if member is not None else None
            return handle.read().decode(errors="replace").strip() if handle is not None else None
    finally:
        with contextlib.suppress(docker.errors.NotFound):
            container.remove(force=True)


def _snapshot_container(client: docker.DockerClient) -> Any | None:
    try:
        container = client.containers.get(SNAPSHOT)
    except docker.errors.NotFound:
        return None
    return container if container.name == SNAPSHOT else None


def _marker_state(ctx: Context, image: Image, token: str) -> str:
    """``ours`` (this setup's token), ``stale`` (another token), ``absent``, or ``layers`` (not one layer)."""
    if len(images.layers(image)) != 1:
        return "layers"
    found = read_marker(ctx.client, image.id, exercise_labels(ctx.exercise))
    if found is None:
        return "absent"
    return "ours" if found == token else "stale"


_FLATTEN = N_("export writes the container's files as one tar; import makes that tar a one-layer image.")


def _judge(ctx: Context, image: Image, token: str) -> Verdict:
    client = ctx.client
    layers = images.layers(image)
    evidence = {"layers": len(layers), "cmd": images.cmd(image), "history": len(image.history())}
    catalog = images.catalog_ids(client)
    snapshot = _snapshot_container(client)
    gone = (
        ""
        if snapshot is not None
        else _(" ({snapshot} is gone: run the setup again to get it back.)").format(snapshot=SNAPSHOT)
    )
    if image.id in catalog:
        return not_yet(
            _("{target} is {catalog} under a second name: same image id.").format(
                target=TARGET, catalog=catalog[image.id]
            ),
            _("`docker tag` only adds a name to an image that exists; {flatten}{gone}").format(
                flatten=_(_FLATTEN), gone=gone
            ),
            **evidence,
        )
    if len(layers) > 1:
        if images.is_commit(image, snapshot, ctx.exercise.id):
            return not_yet(
                _(
                    "{target} has {layers} layers and kept {snapshot}'s command as its CMD ({evidence}): that is "
                    "what `docker commit` makes."
                ).format(target=TARGET, layers=len(layers), snapshot=SNAPSHOT, evidence=evidence["cmd"]),
                _(
                    "commit stacks the container's changes as a new layer on top of its image's layers and keeps its "
                    "configuration and history. Flatten it instead, with export and import; importing under the same name "
                    "moves the tag."
                ),
                **evidence,
            )
        return not_yet(
            _("{target} has {layers} layers; an imported image has exactly one.").format(
                target=TARGET, layers=len(layers)
            ),
            _("It was built, committed or pulled, not imported. {flatten}{gone}").format(
                flatten=_(_FLATTEN), gone=gone
            ),
            **evidence,
        )
    state = _marker_state(ctx, image, token)
    if state == "ours":
        return passed(
            _(
                "{target} has one layer holding {marker} from {snapshot}, with no CMD ({cmd}) and "
                "{history} history entry: a flattened snapshot."
            ).format(target=TARGET, marker=MARKER, snapshot=SNAPSHOT, cmd=evidence["cmd"], history=evidence["history"]),
            marker="found, token matches",
            **evidence,
        )
    if state == "stale":
        return not_yet(
            _("{target} holds {marker}, but from an earlier {snapshot}: setup has run again since.").format(
                target=TARGET, marker=MARKER, snapshot=SNAPSHOT
            ),
            _("Snapshot the current {snapshot} again.").format(snapshot=SNAPSHOT),
            **evidence,
        )
    return not_yet(
        _("{target} has one layer, but no {marker}: it is a snapshot of another container, not of {snapshot}.").format(
            target=TARGET, marker=MARKER, snapshot=SNAPSHOT
        ),
        _("Snapshot {snapshot} itself, the container setup started.{gone}").format(snapshot=SNAPSHOT, gone=gone),
        **evidence,
    )


def _no_snapshot(ctx: Context, token: str) -> Verdict:
    client = ctx.client
    snapshot = _snapshot_container(client)
    other_tags = sorted(t for image in client.images.list(name=REPO) for t in image.tags)
    if other_tags:
        return not_yet(
            _("There is no {target}, but there is {names}.").format(target=TARGET, names=", ".join(other_tags)),
            _(
                "The exercise wants {target}, the tag latest being what a name without a tag means: add that "
                "name to this image (`docker tag`), or import again under it."
            ).format(target=TARGET),
            found=", ".join(other_tags),
        )
    peeked = 0
    for image in images.candidates(client, snapshot):
        if images.is_commit(image, snapshot, ctx.exercise.id):
            return not_yet(
                _("No image is named {target}, but you committed {snapshot} as {label}.").format(
                    target=TARGET, snapshot=SNAPSHOT, label=images.label(image)
                ),
                _(
                    "`docker commit` keeps every layer and the configuration; the exercise wants a flattened image: "
                    "export, then import."
                ),
                found=images.label(image),
            )
        if len(images.layers(image)) != 1 or peeked >= _MAX_PEEKS:
            continue
        peeked += 1
        if _marker_state(ctx, image, token) == "ours":
            if not image.tags:
                short = image.short_id.split(":")[-1]
                return not_yet(
                    _("You imported {snapshot}, but without a name: the image is only known by its id {short}.").format(
                        snapshot=SNAPSHOT, short=short
                    ),
                    _(
                        "`docker import` takes the image's name after the file (or `-`); `docker tag` can still name "
                        "this one."
                    ),
                    found=images.label(image),
                )
            return not_yet(
                _("You imported {snapshot} as {label}; the exercise wants the name {target}.").format(
                    snapshot=SNAPSHOT, label=images.label(image), target=TARGET
                ),
                _("Add the name {repo} to it (`docker tag`), or import again under that name.").format(repo=REPO),
                found=images.label(image),
            )
    if snapshot is None:
        return not_yet(
            _("There is no image {target}, and the container {snapshot} is gone.").format(
                target=TARGET, snapshot=SNAPSHOT
            ),
            _('Run the setup again (`labkit.setup("{id}")`) to get it back.').format(id=ctx.exercise.id),
        )
    return not_yet(
        _("There is no image {target} yet.").format(target=TARGET),
        _(
            "Two steps: one command writes a container's filesystem out as a tar, another makes an image from such "
            "a tar. They can share a file, or a pipe."
        ),
    )


def _check_snapshot(ctx: Context) -> Verdict:
    token = (ctx.setup or {}).get("token")
    if not token:
        return not_yet(
            _("The exercise is not set up: there is no {snapshot} with its marker yet.").format(snapshot=SNAPSHOT),
            _('Run `labkit.setup("{id}")` first: it starts {snapshot}.').format(id=ctx.exercise.id, snapshot=SNAPSHOT),
        )
    try:
        image = ctx.client.images.get(TARGET)
    except docker.errors.ImageNotFound:
        return _no_snapshot(ctx, str(token))
    return _judge(ctx, image, str(token))


def _teardown_snapshot(ctx: Context) -> int:
    """Remove lab/snapshot (every tag), commits of snapshot-me and imports of it under another name.

    Idempotent. Images under other names go only when they hold this setup's token or
    carry the exercise's labels; a catalog image is never removed (tags are removed by name,
    which only untags an image another name still holds).
    """
    client = ctx.client
    removed = 0
    token = str((ctx.setup or {}).get("token") or "")
    catalog = images.catalog_ids(client)
    for image in client.images.list(name=REPO):
        for tag in image.tags:
            if refs.normalize(tag).startswith(f"{REPO}:"):
                removed += images.remove_image(client, tag)
    peeked = 0
    for image in images.candidates(client, None):
        if image.id in catalog:
            continue
        if images.is_commit(image, None, ctx.exercise.id):
            removed += images.remove_image(client, image.id)
        elif token and len(images.layers(image)) == 1 and peeked < _MAX_PEEKS:
            peeked += 1
            try:
                ours = _marker_state(ctx, image, token) == "ours"
            except docker.errors.NotFound:  # removed meanwhile
                continue
            if ours:
                removed += images.remove_image(client, image.id)
    return removed


SNAPSHOT_EXERCISE = register(
    Exercise(
        id="export.import",
        lesson=LESSON,
        title=N_("Flatten a container into an image"),
        prompt=N_("Export the container snapshot-me and import its filesystem as the image lab/snapshot:latest."),
        check=_check_snapshot,
        hints=(
            N_(
                "`docker export` writes a container's filesystem as a tar; `docker import` makes an image from "
                "such a tar."
            ),
            (
                N_(
                    "`docker import` reads the tar from a file, or from standard input when the file is given as a "
                    "dash; the name after that becomes the image's name."
                )
            ),
            N_("Type: docker export snapshot-me | docker import - lab/snapshot"),
        ),
        solution=(SOLUTION_PIPE,),
        setup=_setup_snapshot,
        names=(SNAPSHOT,),
        images=(REPO,),
        teardown=_teardown_snapshot,
    )
)


# --- save.load -------------------------------------------------------------------------

SOURCE = "labkit/hello-dock:latest"
SOURCE_NAME = "labkit/hello-dock"
ARCHIVE_NAME = "hello-dock.tar"
#: Files the notebook's demo writes next to the exercise's archive; teardown removes them too (the
#: demo's image, lab/dock-flat, carries the lesson's labels instead, so ``labkit reset`` finds it).
DEMO_FILES = ("dock-demo-export.tar", "hello-dock-save.tar", "dock-flat-save.tar")


def archive_dir() -> Path:
    """The folder lesson 10 writes its archives to: ``<workspace>/archives``."""
    return workspace_dir() / "archives"


def _setup_save(ctx: Context) -> dict[str, Any]:
    if image_id(ctx.client, SOURCE) is None:
        raise ImageMissing(SOURCE)
    folder = archive_dir()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / ARCHIVE_NAME
    path.unlink(missing_ok=True)
    return {"image": SOURCE_NAME, "path": str(path)}


def _save_command(path: str) -> str:
    return f"docker save --output {path} {SOURCE_NAME}"


def _check_save(ctx: Context) -> Verdict:
    path = str((ctx.setup or {}).get("path") or "")
    if not path:
        return not_yet(
            _("The exercise is not set up: it has no archive path yet."),
            _('Run `labkit.setup("{id}")` first: it names the file to write.').format(id=ctx.exercise.id),
        )
    try:
        wanted = ctx.client.images.get(SOURCE)
    except docker.errors.ImageNotFound:
        return not_yet(
            _("{source} is not on this daemon, so there is nothing to compare the archive with.").format(source=SOURCE),
            _("`labkit images ensure` brings the course's images back."),
        )
    archive = _archives.read_archive(path)
    simple = {
        "missing": (
            _("There is no file at {path} yet.").format(path=path),
            _("Which command writes an image, whole, to a tar file? And how do you tell it where to write?"),
        ),
        "directory": (
            _("{path} is a folder, not a file.").format(path=path),
            _("Remove the folder (`rmdir {quoted}`), then save to that path.").format(quoted=shlex.quote(path)),
        ),
        "empty": (
            _("{path} is empty (0 bytes).").format(path=path),
            _(
                "The shell creates the file of `> FILE` before docker even runs, so a failed save leaves it empty. "
                "Run the save again and read its error."
            ),
        ),
        "not-tar": (
            _("{path} is not a tar archive.").format(path=path),
            _("Something other than `docker save` wrote it: save the image over it."),
        ),
        "truncated": (
            _("{path} ends early: the archive was cut short, so some of it is missing.").format(path=path),
            _("Save again and let the command finish."),
        ),
        "export": (
            _(
                "{path} holds a container's files ({files} …) and no manifest.json: "
                "that's `docker export` output, not `docker save`."
            ).format(path=path, files=", ".join(archive.top_level[:6])),
            _("export writes one container's filesystem; save writes an image: its layers, its config and its name."),
        ),
        "other-tar": (
            _("{path} is a tar archive, but not one `docker save` wrote: it has no manifest.json.").format(path=path),
            _("Save the image over it."),
        ),
    }
    if archive.kind in simple:
        message, hint = simple[archive.kind]
        return not_yet(message, hint, file=archive.kind)
    evidence: dict[str, Any] = {"layout": archive.layout, "images": len(archive.images)}
    if archive.compression:
        evidence["compression"] = archive.compression
    saved = archive.find(SOURCE)
    if saved is None:
        return _wrong_image(ctx, archive, wanted, evidence)
    daemon_layers = images.layers(wanted)
    evidence.update(layers=len(saved.layers), tags=", ".join(saved.tags))
    if saved.image_id != wanted.id:
        return not_yet(
            _("{path} holds another build of {source} (image {image_id}; the daemon's is {id}).").format(
                path=path, source=SOURCE, image_id=saved.image_id[7:19], id=wanted.id[7:19]
            ),
            _("The image was rebuilt after you saved it: save it again."),
            **evidence,
        )
    if saved.missing or not saved.complete or list(saved.diff_ids) != daemon_layers:
        lost = len(saved.missing) + len(saved.damaged)
        return not_yet(
            _("{path} lists {layers} layers for {source}, but {lost} of them are missing or damaged.").format(
                path=path, layers=len(saved.layers), source=SOURCE, lost=lost
            ),
            _("The file was cut short or edited after the save: save it again."),
            **evidence,
        )
    return passed(
        _(
            "{path} is a save archive of {source}: its {layers} layers match the image's RootFS.Layers, and "
            "its config ({history} history entries, CMD {dumps}) travels with them."
        ).format(
            path=path,
            source=SOURCE,
            layers=len(saved.layers),
            history=saved.history,
            dumps=json.dumps(list(saved.cmd) if saved.cmd else None),
        ),
        **evidence,
    )


def _wrong_image(ctx: Context, archive: _archives.Archive, wanted: Image, evidence: dict[str, Any]) -> Verdict:
    path = archive.path
    same = archive.by_id(wanted.id)
    if same is not None and not same.tags:
        return not_yet(
            _(
                "{path} holds {source}'s image, but saved by its id: the archive has no name for it (RepoTags is null)."
            ).format(path=path, source=SOURCE),
            _(
                "Saved by id, `docker load` would bring back an untagged <none> image: save it by its name, so the tag "
                "travels with it."
            ),
            **evidence,
        )
    if same is not None:
        return not_yet(
            _("{path} holds {source}'s image, but under the name {names}.").format(
                path=path, source=SOURCE, names=", ".join(same.tags)
            ),
            _("`docker load` restores the names an archive holds; the exercise wants {source}.").format(source=SOURCE),
            **evidence,
        )
    names = sorted({tag for image in archive.images for tag in image.tags}) or [_("untagged images")]
    return not_yet(
        _("{path} is a save archive of {names}, not of {source}.").format(
            path=path, names=", ".join(names), source=SOURCE
        ),
        _("Save the image the exercise names, {source_name}.").format(source_name=SOURCE_NAME),
        found=", ".join(names),
        **evidence,
    )


def _teardown_save(ctx: Context) -> int:
    """Remove the exercise's archive and the demo's archives (only those names), and the folder if now empty."""
    folder = archive_dir()
    paths = {folder / ARCHIVE_NAME, *(folder / name for name in DEMO_FILES)}
    recorded = (ctx.setup or {}).get("path")
    if recorded:
        paths.add(Path(recorded))
    removed = 0
    for path in paths:
        if path.is_file() or path.is_symlink():
            path.unlink(missing_ok=True)
            removed += 1
    with contextlib.suppress(OSError):
        folder.rmdir()  # only when empty: a learner's own files there stay
    return removed


SAVE_EXERCISE = register(
    Exercise(
        id="save.load",
        lesson=LESSON,
        title=N_("Save an image, whole, to a file"),
        prompt=N_(
            "Save the image labkit/hello-dock to the tar file that setup names, with its tag and all its layers."
        ),
        check=_check_save,
        hints=(
            N_("`docker save` writes an image (its layers, config and name) to a tar; `docker load` reads one back."),
            (
                N_(
                    "`docker save --output FILE IMAGE` (or `-o FILE`, or `> FILE`) writes to FILE. Name the image, "
                    "not its id, so the tag is kept."
                )
            ),
            N_("Type: docker save --output PATH labkit/hello-dock, where PATH is the path setup printed."),
        ),
        solution=("docker save --output {path} " + SOURCE_NAME,),
        setup=_setup_save,
        teardown=_teardown_save,
    )
)


# --- load.back (defined in _lesson10_load) ---------------------------------------------

LOAD_BACK = register(load.LOAD_BACK)
