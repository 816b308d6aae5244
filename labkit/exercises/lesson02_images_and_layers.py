"""Lesson 02: images are stacks of layers; a container adds a writable one."""

from __future__ import annotations

import shlex
from typing import Any

import docker.errors

from labkit.core import engine, refs, wait
from labkit.core.cleanup import remove_images, remove_name
from labkit.core.errors import ImageMissing
from labkit.core.i18n import N_, _, ngettext
from labkit.core.paths import PACKAGE_DIR
from labkit.core.probes import image_id
from labkit.exercises._lesson02_images import SHORT_ID, ListFacts, PruneFacts, list_verdict, prune_verdict
from labkit.exercises.machinery.catalog import register
from labkit.exercises.machinery.model import Context, Exercise, Text, Verdict, not_yet, passed
from labkit.exercises.machinery.runner import exercise_labels
from labkit.features import images, layers
from labkit.features.images import builders

LESSON = "02"
TARGET = "lab/layered:v1"
#: The label the lesson's Dockerfile sets, so a build under any name (or none) can be found.
MATERIAL_LABEL = "labkit.material=layered"
#: The provided build context, found from the installed package so the command works from any folder.
CONTEXT = PACKAGE_DIR / "lessons" / "layered"
MIN_LAYERS = 3
#: The image the lesson builds as a demonstration: renaming it is not doing the exercise.
DEMO = "lab/notes:v1"
BUILD_COMMAND = f"docker build -t {TARGET} {shlex.quote(str(CONTEXT))}"


# --- layers.build ---------------------------------------------------------------------


def _near_builds(client: Any) -> list[str]:
    """Images that look like an attempt under another name: built from the lesson's folder, or named *layered*."""
    names: list[str] = []
    for image in client.images.list(filters={"label": MATERIAL_LABEL}):
        names.extend(image.tags or [_("an untagged image {id}").format(id=image.short_id.split(":")[-1])])
    for image in client.images.list():
        for tag in image.tags:
            if refs.parse(tag).short_name == "layered" and tag not in names:
                names.append(tag)
    return sorted(set(names))


def _missing(client: Any) -> Verdict:
    near = _near_builds(client)
    if not near:
        return not_yet(
            _("There is no image {target} on this daemon yet.").format(target=TARGET),
            _(
                "An image is built from a folder holding a Dockerfile: which folder does the exercise name, and which "
                "option gives the result its name?"
            ),
        )
    if not any(":" in n for n in near):  # tags all hold a colon; only unnamed builds were found
        return not_yet(
            _("You built the lesson's image, but it has no name ({near}).").format(near=near[0]),
            _(
                "Without a name an image is known only by its id. The build can name what it makes (with the cache, "
                "building again is instant), or `docker tag` can add a name to the image you have."
            ),
            found=", ".join(near),
        )
    return not_yet(
        _("No image is named {target}, but found {near}.").format(target=TARGET, near=", ".join(near)),
        _(
            "The name must be exactly {target}: repository lab/layered, tag v1 (without `:v1` Docker uses "
            "`latest`). `docker tag` adds a second name to an image, or the build can give the right one."
        ).format(target=TARGET),
        found=", ".join(near),
    )


def _build(ctx: Context) -> Verdict:
    client = ctx.client
    try:
        built = layers.read(TARGET, client)
    except ImageMissing:
        return _missing(client)
    n = len(built.diff_ids)
    evidence = {"layers": n, "metadata_steps": len(built.metadata_steps), "history_entries": len(built.steps)}
    demo_id = image_id(client, DEMO)
    if demo_id is not None and built.id == demo_id:
        return not_yet(
            _("{target} is the lesson's demo image {demo} under a second name.").format(target=TARGET, demo=DEMO),
            _(
                "`docker tag` only adds a name to an image that exists; this exercise wants a new image, built from "
                "the lesson's own folder."
            ),
            **evidence,
        )
    if n >= MIN_LAYERS:
        return passed(
            _("{target} has {n} filesystem layers and {n_metadata_steps} metadata-only steps.").format(
                target=TARGET, n=n, n_metadata_steps=len(built.metadata_steps)
            ),
            **evidence,
        )
    base_id = image_id(client, "busybox")
    if base_id is not None and built.id == base_id:
        return not_yet(
            _("{target} is busybox under a second name: same image id, one layer.").format(target=TARGET),
            _(
                "`docker tag` only adds a name to an existing image; this exercise wants a new one, built from the "
                "lesson's folder."
            ),
            **evidence,
        )
    if n == 1:
        return not_yet(
            _("{target} has only {plural}: the base image, and none of its own.").format(
                target=TARGET, plural=ngettext("{n} layer", "{n} layers", n).format(n=n)
            ),
            _(
                "Its Dockerfile adds no files (no COPY or RUN): was it built from another folder? The lesson's "
                "folder is {context}."
            ).format(context=CONTEXT),
            **evidence,
        )
    return not_yet(
        _("{target} has {plural}; the exercise wants at least {min_layers}.").format(
            target=TARGET,
            plural=ngettext("{n} filesystem layer", "{n} filesystem layers", n).format(n=n),
            min_layers=MIN_LAYERS,
        ),
        _(
            "Each COPY, ADD or RUN instruction adds one layer: was the Dockerfile changed to do everything "
            "in one step? Build the lesson's unchanged folder ({context}), or give yours more COPY/RUN steps."
        ).format(context=CONTEXT),
        **evidence,
    )


def _teardown_build(ctx: Context) -> None:
    """Remove the exercise's image and the lesson image under any other name (idempotent)."""
    client = ctx.client
    doomed = {TARGET} | {tag for image in client.images.list(filters={"label": MATERIAL_LABEL}) for tag in image.tags}
    ids = {image.id for image in client.images.list(filters={"label": MATERIAL_LABEL})}
    for ref in sorted(doomed) + sorted(ids):
        try:
            client.images.remove(ref, force=True)
        except docker.errors.ImageNotFound:
            pass
        except docker.errors.APIError as e:
            if e.status_code != 404:  # an image removed by a tag above is gone under its id too
                raise


BUILD = register(
    Exercise(
        id="layers.build",
        lesson=LESSON,
        title=N_("Build an image in layers"),
        prompt=N_("Build lab/layered:v1 from the lesson's folder, so that it has at least 3 filesystem layers."),
        check=_build,
        hints=(
            N_("`docker build` reads a Dockerfile in a folder (the build context) and makes an image from it."),
            Text(
                N_("`docker build -t NAME:TAG FOLDER` names the result; the folder here is {folder}."), folder=CONTEXT
            ),
            Text(N_("Type: {command}"), command=BUILD_COMMAND),
        ),
        solution=(BUILD_COMMAND,),
        images=(TARGET,),
        teardown=_teardown_build,
    )
)


# --- layers.diff ----------------------------------------------------------------------

COW = "cow"
#: PID 1 sleeps in the background and leaves on SIGTERM, so `docker stop cow` is quick.
COW_COMMAND = ["sh", "-c", "trap 'exit 0' TERM; while :; do sleep 3600 & wait $!; done"]
_KINDS = {0: "C", 1: "A", 2: "D"}


def _setup_diff(ctx: Context) -> dict[str, Any]:
    container = ctx.client.containers.run(
        "busybox", COW_COMMAND, name=COW, detach=True, labels=exercise_labels(ctx.exercise)
    )
    wait.container_running(container)
    return {"container": COW}


def _changes(container: Any) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {"A": [], "C": [], "D": []}
    for change in container.diff() or []:
        found[_KINDS.get(int(change.get("Kind", 0)), "C")].append(str(change.get("Path")))
    return {kind: sorted(paths) for kind, paths in found.items()}  # the daemon's order is its disk's


def _diff(ctx: Context) -> Verdict:
    container = engine.find_container(COW)
    if container is None or container.name != COW:
        return not_yet(
            _("There is no container named {cow}.").format(cow=COW),
            _('Run the setup cell (`labkit.setup("layers.diff")`): it starts cow for you.'),
        )
    if container.labels.get("labkit.exercise") != "layers.diff":
        return not_yet(
            _("A container named {cow} exists, but it is not the one setup started.").format(cow=COW),
            _('Run `labkit.setup("layers.diff")`: it replaces this {cow} with the exercise\'s own.').format(cow=COW),
        )
    found = _changes(container)
    evidence = {kind: ", ".join(paths) for kind, paths in found.items() if paths}
    if found["A"] and found["D"]:
        return passed(
            _("docker diff {cow} shows {plural} (A) and {plural2} (D).").format(
                cow=COW,
                plural=ngettext("{n} added path", "{n} added paths", len(found["A"])).format(n=len(found["A"])),
                plural2=ngettext("{n} deleted path", "{n} deleted paths", len(found["D"])).format(n=len(found["D"])),
            ),
            **evidence,
        )
    running = container.status == "running"
    start = (
        "" if running else _(" ({cow} is stopped: `docker start {cow}` first, exec needs it running)").format(cow=COW)
    )
    if not any(found.values()):
        return not_yet(
            _("{cow}'s writable layer is still empty: docker diff {cow} shows nothing.").format(cow=COW),
            _(
                "Change its files from inside: which docker command runs one more command in a running "
                "container? Create one new file with it, and delete one that came with the image{start}."
            ).format(start=start),
        )
    if found["D"]:
        return not_yet(
            _("You deleted {path} (D), but added nothing yet.").format(path=found["D"][0]),
            _("Now add a file the image does not have (`touch` creates an empty one){start}.").format(start=start),
            **evidence,
        )
    if found["A"]:
        return not_yet(
            _("You added {path} (A), but deleted nothing that came from the image.").format(path=found["A"][0]),
            _(
                "Now delete a file that came with the image (busybox keeps its programs in /bin). Deleting a "
                "file you created yourself leaves no trace: it was only ever in the writable layer{start}."
            ).format(start=start),
            **evidence,
        )
    return not_yet(
        _("Only changes (C) so far: {paths}.").format(paths=", ".join(found["C"])),
        _(
            "C means an existing file or folder was modified; the exercise wants a new file (A) and a file "
            "of the image removed (D){start}."
        ).format(start=start),
        **evidence,
    )


DIFF = register(
    Exercise(
        id="layers.diff",
        lesson=LESSON,
        title=N_("Copy-on-write, seen by docker diff"),
        prompt=N_("In the running container cow, add a new file and delete a file that came from the image."),
        check=_diff,
        hints=(
            N_("`docker exec cow COMMAND` runs a command inside the running container cow."),
            N_("`touch PATH` creates a file; `rm PATH` deletes one. busybox keeps its programs in /bin."),
            N_("Type: docker exec cow touch /tmp/new-file, then docker exec cow rm /bin/vi"),
        ),
        solution=(f"docker exec {COW} touch /tmp/new-file", f"docker exec {COW} rm /bin/vi"),
        setup=_setup_diff,
        names=(COW,),
    )
)


# --- images.list ----------------------------------------------------------------------

INVENTORY = "lab/inventory"
INVENTORY_TAGS = ("v1", "v2")
#: The image the learner reads the ID of; its sibling tag v1 is the likely slip.
INVENTORY_ASKED = f"{INVENTORY}:v2"


def _exercise_label(exercise_id: str) -> str:
    return f"labkit.exercise={exercise_id}"


def _setup_list(ctx: Context) -> dict[str, Any]:
    """Two images in one repository, tags v1 and v2, with different IDs (their labels differ)."""
    for tag in INVENTORY_TAGS:
        builders.build_relabelled(
            "busybox", {**exercise_labels(ctx.exercise), "labkit.version": tag}, tag=f"{INVENTORY}:{tag}"
        )
    return {"image": INVENTORY_ASKED}


def _teardown_list(ctx: Context) -> int:
    """Remove lab/inventory's tags (only untagging an image that has other names) and every image setup made."""
    removed = sum(remove_name(f"{INVENTORY}:{tag}") for tag in INVENTORY_TAGS)
    return removed + remove_images(_exercise_label(LIST_ID))


def _list_facts(client: Any) -> ListFacts:
    others: dict[str, str] = {}
    for image in client.images.list():
        others[str(image.id)] = (
            sorted(image.tags, key=len) or [_("an untagged image ({id})").format(id=image.short_id.split(":")[-1])]
        )[0]
    wanted = image_id(client, INVENTORY_ASKED) or ""
    others.pop(wanted, None)
    return ListFacts(INVENTORY_ASKED, wanted, others)


def _check_list(ctx: Context) -> Verdict:
    return list_verdict(ctx.answer or "", _list_facts(ctx.client))


def _reference_list(ctx: Context) -> str:
    """The ID as ``docker image ls`` shows it: its first 12 hex digits.

    Raises:
        ImageMissing: setup has not made the image.
    """
    found = image_id(ctx.client, INVENTORY_ASKED)
    if found is None:
        raise ImageMissing(INVENTORY_ASKED)
    return found.removeprefix("sha256:")[:SHORT_ID]


LIST_ID = "images.list"
LIST = register(
    Exercise(
        id=LIST_ID,
        lesson=LESSON,
        title=N_("Read an image's ID from the image list"),
        prompt=N_(
            "Setup made two images in the repository lab/inventory. What is the IMAGE ID of lab/inventory:v2? "
            'Submit it: labkit.check("images.list", answer="..."), or `labkit check images.list --answer ...` in a '
            "terminal."
        ),
        check=_check_list,
        hints=(
            N_(
                "Docker lists the images it holds one line per name, with the columns REPOSITORY, TAG, IMAGE ID, "
                "CREATED and SIZE. Which command lists images?"
            ),
            N_(
                "`docker image ls` (or its older spelling `docker images`) lists them all; give it a repository name "
                "to see only that repository's lines. Two lines share the exercise's repository: the TAG column "
                "tells them apart."
            ),
            N_("Type: docker image ls lab/inventory, then copy the IMAGE ID on the v2 line."),
        ),
        solution=(f"docker image ls {INVENTORY}",),
        setup=_setup_list,
        teardown=_teardown_list,
        reference_answer=_reference_list,
        images=tuple(f"{INVENTORY}:{tag}" for tag in INVENTORY_TAGS),
    )
)


# --- images.prune ---------------------------------------------------------------------

PRUNE_ID = "images.prune"
#: How many dangling images setup leaves.
DANGLING = 3
#: An image of the lesson with a name: a prune without -a leaves it.
KEPT = "lab/kept:v1"
PRUNE_LABEL = f"{engine.LABEL_LESSON}={LESSON}"
PRUNE_COMMAND = f"docker image prune -f --filter label={PRUNE_LABEL}"


def _dangling_ids(client: Any) -> set[str]:
    return {str(image.id) for image in client.images.list(filters={"dangling": True})}


def _course_images() -> list[str]:
    return [state.name for state in images.status() if state.present]


def _setup_prune(ctx: Context) -> dict[str, Any]:
    """Three dangling images and one named one, all labelled with the lesson; what else is there, to compare."""
    labels = exercise_labels(ctx.exercise)
    others = sorted(_dangling_ids(ctx.client))
    made = [builders.build_relabelled("busybox", {**labels, "labkit.copy": str(n)}) for n in range(1, DANGLING + 1)]
    builders.build_relabelled("busybox", {**labels, "labkit.copy": "kept"}, tag=KEPT)
    return {
        "dangling": _("{count} images with no name, labelled {label}").format(count=DANGLING, label=PRUNE_LABEL),
        "kept": KEPT,
        "_made": made,
        "_course": _course_images(),
        "_other_dangling": others,
    }


def _teardown_prune(ctx: Context) -> int:
    return remove_name(KEPT) + remove_images(_exercise_label(PRUNE_ID))


def _prune_facts(client: Any, setup: dict[str, Any]) -> PruneFacts:
    made = [str(i) for i in setup.get("_made") or []]
    present = {str(image.id) for image in client.images.list(all=True)}
    now = set(_course_images())
    return PruneFacts(
        made=len(made),
        left=tuple(i.removeprefix("sha256:")[:SHORT_ID] for i in made if i in present),
        kept=KEPT,
        kept_present=image_id(client, KEPT) is not None,
        course_missing=tuple(name for name in setup.get("_course") or [] if name not in now),
        others_gone=sum(1 for i in setup.get("_other_dangling") or [] if i not in present),
        label=PRUNE_LABEL,
    )


def _check_prune(ctx: Context) -> Verdict:
    if not ctx.setup or not ctx.setup.get("_made"):
        return not_yet(
            _("The setup has not run, so there are no dangling images to remove yet."),
            _('Run `labkit.setup("{prune_id}")` first: it makes them.').format(prune_id=PRUNE_ID),
        )
    return prune_verdict(_prune_facts(ctx.client, ctx.setup))


PRUNE = register(
    Exercise(
        id=PRUNE_ID,
        lesson=LESSON,
        title=N_("Prune the lesson's dangling images"),
        prompt=N_(
            "Setup left 3 dangling images (no name: <none> in the image list), labelled labkit.lesson=02, "
            "and one named image, lab/kept:v1. Remove the dangling ones with one prune limited to that label; "
            "leave lab/kept:v1 and every other image alone."
        ),
        check=_check_prune,
        hints=(
            N_(
                "Dangling images are the ones with no name: <none> under REPOSITORY and TAG. Which `docker image` "
                "sub-command removes unused images in one go, and which of its options limits it to images "
                "carrying a label?"
            ),
            N_(
                "`docker image prune --help` lists its options: --filter takes label=KEY=VALUE, and -a would take "
                "named images too (not wanted here). prune asks y/N first; a notebook cell cannot answer, so there "
                "add -f (--force) to skip the question."
            ),
            N_("Type: docker image prune -f --filter label=labkit.lesson=02"),
        ),
        solution=(PRUNE_COMMAND,),
        setup=_setup_prune,
        teardown=_teardown_prune,
        images=(KEPT,),
    )
)
