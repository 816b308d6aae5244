"""Lesson 09: executable images and bind mounts.

``labkit/rmbyext`` is an executable image: its ENTRYPOINT is a tool that deletes the
files with a given extension under ``/zone`` and appends what it deleted to
``/zone/rmbyext.log`` (see ``labkit/images/contexts/rmbyext/rmbyext``). It can only
reach the learner's files through a bind mount, so the exercise is passed when the
folder setup made has lost its ``.pdf`` file *and* holds the tool's log saying so.

The folder lives in the learner's workspace (``~/labkit-work/mounts/zone``, or under
``LABKIT_WORKSPACE``), where they can look at it with their own eyes; teardown removes
the lesson's whole ``mounts`` folder.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import shlex
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from labkit.core.errors import LabkitError
from labkit.core.i18n import N_, _
from labkit.core.paths import workspace_dir
from labkit.core.probes import containers_from, state
from labkit.exercises.machinery.catalog import register
from labkit.exercises.machinery.model import Context, Exercise, Verdict, not_yet, passed
from labkit.features import images

LESSON = "09"
IMAGE = "labkit/rmbyext"
#: Where the tool looks inside the container, and the name of its log there.
TARGET = "/zone"
LOG_NAME = "rmbyext.log"
#: What setup puts in the folder, and the one extension the exercise asks to delete.
FILES = ("t1.txt", "t2.pdf", "t3.jpg", "t4.txt")
EXTENSION = "pdf"
DOOMED = tuple(name for name in FILES if name.endswith(f".{EXTENSION}"))
KEPT = tuple(name for name in FILES if name not in DOOMED)


def lesson_dir() -> Path:
    """The lesson's own folder in the workspace: the demo and the exercise live under it."""
    return workspace_dir() / "mounts"


def zone_dir() -> Path:
    """The folder the exercise's setup fills."""
    return lesson_dir() / "zone"


def solution_command(path: str | Path | None = None) -> str:
    """The reference command; with no argument, the ``{path}`` placeholder the runner fills (and quotes).

    Example:
        >>> solution_command("/home/ada/my work/zone")
        "docker run --rm -v '/home/ada/my work/zone':/zone labkit/rmbyext pdf"
    """
    folder = "{path}" if path is None else shlex.quote(str(path))
    return f"docker run --rm -v {folder}:{TARGET} {IMAGE} {EXTENSION}"


# --- the tool's log -------------------------------------------------------------------

_HEADER = re.compile(r"^\[(?P<time>[^\]]*)\] rmbyext \.(?P<ext>\S+)$")
_DELETED = re.compile(r"^deleted: (?P<path>.+)$")
_NOT_DELETED = re.compile(r"^not deleted: (?P<path>.+)$")


@dataclass
class Run:
    """One run of the tool, as its log recorded it."""

    time: str
    extension: str
    deleted: list[str] = field(default_factory=list)
    not_deleted: list[str] = field(default_factory=list)


def parse_log(text: str) -> list[Run]:
    """The runs an ``rmbyext.log`` records, oldest first.

    Lines the tool did not write are ignored, so a hand-edited log yields what is left
    of the tool's own lines.

    Example:
        >>> [(r.extension, r.deleted) for r in parse_log("[2026-01-31 12:00:00 UTC] rmbyext .pdf\\ndeleted: t2.pdf\\n1 file deleted.\\n")]
        [('pdf', ['t2.pdf'])]
    """
    runs: list[Run] = []
    for line in text.splitlines():
        if header := _HEADER.match(line):
            runs.append(Run(header["time"], header["ext"]))
        elif runs and (deleted := _DELETED.match(line)):
            runs[-1].deleted.append(deleted["path"])
        elif runs and (kept := _NOT_DELETED.match(line)):
            runs[-1].not_deleted.append(kept["path"])
    return runs


def _read_log(folder: Path) -> list[Run] | None:
    """The runs recorded in the folder's log, or ``None`` when there is no log."""
    try:
        return parse_log((folder / LOG_NAME).read_text(errors="replace"))
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return None


def _listing(names: list[str] | tuple[str, ...]) -> str:
    """``a``, ``a and b``, ``a, b and c``; ``nothing`` for none."""
    if not names:
        return _("nothing")
    if len(names) == 1:
        return names[0]
    return _("{names} and {last}").format(names=", ".join(names[:-1]), last=names[-1])


# --- what the daemon remembers of runs without --rm ---------------------------------------


def _same_folder(a: str, b: Path) -> bool:
    try:
        return os.path.realpath(a) == os.path.realpath(b)
    except (OSError, ValueError):
        return False


def _tool_container_verdict(ctx: Context, folder: Path) -> Verdict | None:
    """A near-miss told by the last container from the tool's image, if one was kept (no ``--rm``)."""
    kept = containers_from(ctx.client, IMAGE)
    if not kept:
        return None
    last = max(kept, key=lambda c: str(c.attrs.get("Created", "")))
    mounts = last.attrs.get("Mounts") or []
    zone = next((m for m in mounts if m.get("Destination") == TARGET), None)
    exit_code = state(last)["exit_code"]
    evidence = {"container": last.name, "exit_code": exit_code}
    if zone is None:
        others = ", ".join(str(m.get("Destination")) for m in mounts)
        where = _(" (something was mounted at {others} instead)").format(others=others) if others else ""
        return not_yet(
            _(
                "The container {name} ran {image} with nothing mounted at {target}{where}: the tool refused to "
                "run, since the container's own files are all it could have cleaned."
            ).format(name=last.name, image=IMAGE, target=TARGET, where=where),
            _("The tool only looks at {target}: bind-mount the exercise folder there.").format(target=TARGET),
            **evidence,
        )
    source = str(zone.get("Source", ""))
    if not _same_folder(source, folder):
        return not_yet(
            _(
                "The container {name} ran {image} with {source} mounted at {target}: that is another folder, so "
                "this one was not touched."
            ).format(name=last.name, image=IMAGE, source=source, target=TARGET),
            _(
                "The part before the colon is the folder on your machine: it must be the exercise folder, {folder}."
            ).format(folder=folder),
            mounted=source,
            **evidence,
        )
    if not zone.get("RW", True):
        return not_yet(
            _(
                "The container {name} had the exercise folder mounted read-only, so the tool could not delete "
                "anything (it exited with code 4)."
            ).format(name=last.name),
            _("Drop `:ro` (or `readonly` in --mount): the tool needs to change the folder."),
            **evidence,
        )
    if exit_code == 2:
        return not_yet(
            _("The container {name} ran the tool without an extension, so it only printed its usage.").format(
                name=last.name
            ),
            _("Words after the image name go to the tool: which extension does the exercise ask it to delete?"),
            **evidence,
        )
    return None


def _stray_log(folder: Path) -> Path | None:
    """A log the tool wrote in a likely wrong folder since setup (e.g. ``$(pwd)`` was not the folder)."""
    try:
        since = (folder / DOOMED[0]).stat().st_mtime
    except OSError:
        return None
    places = [workspace_dir(), Path.home(), lesson_dir(), lesson_dir() / "demo"]
    # Where `$(pwd)` pointed, when the check runs where the learner typed (unless that folder was deleted).
    with contextlib.suppress(OSError):
        places.insert(0, Path.cwd())
    for place in places:
        log = place / LOG_NAME
        try:
            if not _same_folder(str(place), folder) and log.is_file() and log.stat().st_mtime >= since:
                return log
        except OSError:
            continue
    return None


def _parent_log(folder: Path) -> Path | None:
    """The log of a run that had a folder *above* the exercise folder mounted, and deleted its pdf."""
    for parent in list(folder.parents)[:6]:  # far enough for ~/labkit-work and its parents
        runs = _read_log(parent)
        if not runs:
            continue
        inside = folder.relative_to(parent).as_posix()
        if any(f"{inside}/{name}" in run.deleted for run in runs for name in DOOMED):
            return parent / LOG_NAME
    return None


# --- the check --------------------------------------------------------------------------


def _folder(ctx: Context) -> Path:
    reported = (ctx.setup or {}).get("path")
    return Path(reported) if reported else zone_dir()


_SETUP_AGAIN = N_('Run the setup cell again (`labkit.setup("mounts.rmbyext")`) to get the four files back, then {what}')


def _check(ctx: Context) -> Verdict:
    folder = _folder(ctx)
    if not folder.is_dir():
        return not_yet(
            _("There is no exercise folder at {folder}.").format(folder=folder),
            _('Run the setup cell (`labkit.setup("mounts.rmbyext")`): it creates the folder and its four files.'),
        )
    missing = [name for name in FILES if not (folder / name).exists()]
    doomed_left = [name for name in DOOMED if name not in missing]
    kept_gone = [name for name in KEPT if name in missing]
    runs = _read_log(folder)
    evidence: dict[str, Any] = {"folder": str(folder)}
    if missing:
        evidence["missing"] = _listing(missing)

    if not runs:  # no log, or a log without a single run of the tool in it
        no_log = (
            _("there is no {log_name} in it").format(log_name=LOG_NAME)
            if runs is None
            else _("its {log_name} records no run of the tool").format(log_name=LOG_NAME)
        )
        if doomed_left:
            found = _tool_container_verdict(ctx, folder)
            if found is not None:
                return found
            stray = _stray_log(folder)
            if stray is not None:
                return not_yet(
                    _(
                        "{listing} is still in the exercise folder, but the tool wrote a log at {stray}: it ran with "
                        "{parent} mounted at {target}, not this folder."
                    ).format(listing=_listing(doomed_left), stray=stray, parent=stray.parent, target=TARGET),
                    _(
                        "The path before the colon is the folder on this machine: it must be the exercise folder, "
                        "{folder}."
                    ).format(folder=folder),
                    stray_log=str(stray),
                    **evidence,
                )
            also = _(" ({listing} went missing too)").format(listing=_listing(kept_gone)) if kept_gone else ""
            return not_yet(
                _("{listing} is still in {folder} and {no_log}: the tool has not run on this folder yet{also}.").format(
                    listing=_listing(doomed_left), folder=folder, no_log=no_log, also=also
                ),
                _(
                    "The tool sees only what is mounted at {target} inside its container: which option bind-mounts "
                    "a folder of this machine there? And the extension to delete goes after the image's name."
                ).format(target=TARGET),
                **evidence,
            )
        above = _parent_log(folder)
        if above is not None:
            return not_yet(
                _(
                    "The tool deleted {listing}, but with {parent} mounted at {target}, a folder above the exercise "
                    "folder: its log is {above}, and it went through every subfolder there."
                ).format(listing=_listing(DOOMED), parent=above.parent, target=TARGET, above=above),
                _(_SETUP_AGAIN).format(what=_("mount the exercise folder itself, not a folder above it.")),
                log=str(above),
                **evidence,
            )
        return not_yet(
            _(
                "{listing} is gone, but {no_log}: the file was deleted by hand (or by another program), not by "
                "the tool."
            ).format(listing=_listing(DOOMED), no_log=no_log),
            _(_SETUP_AGAIN).format(what=_("let the tool do the deleting, through a bind mount.")),
            **evidence,
        )

    evidence["log_runs"] = "; ".join(
        _(".{extension} deleted {listing}").format(extension=r.extension, listing=_listing(r.deleted)) for r in runs
    )
    logged = {path for run in runs for path in run.deleted}
    if logged and not logged & set(FILES):
        return not_yet(
            _(
                "The {log_name} here lists {listing}, which were never in this folder: it comes from a run on "
                "another folder."
            ).format(log_name=LOG_NAME, listing=_listing(sorted(logged))),
            _(_SETUP_AGAIN).format(what=_("mount this folder.")),
            **evidence,
        )
    wrong = [run for run in runs if run.extension != EXTENSION and run.deleted]
    if wrong:
        what = "; ".join(
            _("with .{extension} it deleted {listing}").format(extension=run.extension, listing=_listing(run.deleted))
            for run in wrong
        )
        also = _(" also") if any(run.extension == EXTENSION for run in runs) else ""
        return not_yet(
            _("The log shows the tool{also} ran for another extension: {what}.").format(also=also, what=what),
            _(_SETUP_AGAIN).format(what=_("run the tool once, for {extension} only.").format(extension=EXTENSION)),
            **evidence,
        )
    if doomed_left:
        tried = sorted({run.extension for run in runs if run.extension != EXTENSION})
        if tried:
            case = _(" (extensions are case-sensitive)") if any(t.lower() == EXTENSION for t in tried) else ""
            return not_yet(
                _("The tool ran for {tried}, which matched nothing here{case}, so {listing} is still there.").format(
                    tried=", ".join("." + t for t in tried), case=case, listing=_listing(doomed_left)
                ),
                _("The word after the image name is the extension to delete: {extension}.").format(extension=EXTENSION),
                **evidence,
            )
        return not_yet(
            _("The log says the tool ran for .{extension}, yet {listing} is in the folder (again?).").format(
                extension=EXTENSION, listing=_listing(doomed_left)
            ),
            _("Run the tool once more on the folder."),
            **evidence,
        )
    unlogged = [name for name in DOOMED if name not in logged]
    if unlogged:
        return not_yet(
            _("{listing} is gone, but the tool's log does not list it: it was deleted some other way.").format(
                listing=_listing(unlogged)
            ),
            _(_SETUP_AGAIN).format(what=_("let the tool do the deleting.")),
            **evidence,
        )
    if kept_gone:
        return not_yet(
            _(
                "The tool deleted {listing}, but {listing2} is missing too, and the log does not list it: it "
                "was deleted some other way."
            ).format(listing=_listing(DOOMED), listing2=_listing(kept_gone)),
            _(_SETUP_AGAIN).format(what=_("touch nothing but the tool.")),
            **evidence,
        )
    return passed(
        _(
            "{listing} is gone from {folder} while {listing2} remain, and the tool's {log_name} records deleting it."
        ).format(listing=_listing(DOOMED), folder=folder, listing2=_listing(KEPT), log_name=LOG_NAME),
        folder=str(folder),
        deleted=_listing(sorted(logged)),
        remaining=_listing(list(KEPT)),
    )


# --- setup and teardown -------------------------------------------------------------------


def _remove_tree(path: Path) -> int:
    """Remove a folder the lesson made; 1 if it existed.

    Raises:
        LabkitError: it could not be removed (e.g. a container left root-owned folders in it).
    """
    if not path.exists() and not path.is_symlink():
        return 0
    try:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()
    except OSError as e:
        raise LabkitError(
            _("could not remove {path}: {reason}").format(path=path, reason=e.strerror or e),
            _("files a container creates belong to its user (root): remove it as root, `sudo rm -rf {quote}`").format(
                quote=shlex.quote(str(path))
            ),
        ) from e
    return 1


def _setup(ctx: Context) -> dict[str, Any]:

    images.ensure([IMAGE], out=io.StringIO())  # offline, under a second when it is missing
    folder = zone_dir()
    _remove_tree(folder)
    folder.mkdir(parents=True)
    for name in FILES:
        (folder / name).write_text(f"{name}: one of the four files of exercise mounts.rmbyext\n")
    return {"path": str(folder), "files": ", ".join(FILES), "image": IMAGE}


def _teardown(ctx: Context) -> int:
    removed = 0
    reported = (ctx.setup or {}).get("path")
    if reported and not Path(reported).is_relative_to(lesson_dir()):
        removed += _remove_tree(Path(reported))  # set up under another workspace
    return removed + _remove_tree(lesson_dir())


RMBYEXT = register(
    Exercise(
        id="mounts.rmbyext",
        lesson=LESSON,
        title=N_("Clean a folder with an executable image"),
        prompt=N_("Delete the .pdf files in the folder setup made, with the labkit/rmbyext tool and a bind mount."),
        check=_check,
        hints=(
            N_("The tool runs inside a container and only sees /zone: bind-mount the folder there."),
            N_('`-v "HOST_FOLDER:/zone"` mounts a folder; the words after the image name go to the tool.'),
            N_('Type: docker run --rm -v "FOLDER:/zone" labkit/rmbyext pdf, with FOLDER the path setup printed.'),
        ),
        solution=(solution_command(),),
        setup=_setup,
        images=(IMAGE,),
        teardown=_teardown,
    )
)
