"""An image's layers, read from the daemon (lesson 02); the notebook shows them with :mod:`labkit.notebook.layer_explorer`.

An image is a stack of read-only layers, listed by ``docker image inspect`` as
``RootFS.Layers`` (diff ids, oldest first). ``docker history`` lists the steps that
built it (newest first), one per Dockerfile instruction; only some of them made
a layer, the rest (``ENV``, ``CMD``, ``LABEL`` …) changed metadata. This module
lines the two up, so each layer is shown with the instruction that made it.

Where a container's layers sit on the host is :mod:`labkit.features.layer_storage`, re-exported
here (``layers.storage``, ``layers.upper_report``); :func:`lower_report` joins those folders to the image's steps.

Example:
    >>> from labkit.features import layers
    >>> layers.instruction("/bin/sh -c #(nop)  ENV A=1")
    'ENV A=1'
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker

from labkit.core import engine, fmt
from labkit.core.errors import ImageMissing, LabkitError, NoSuchImage
from labkit.core.i18n import _, ngettext
from labkit.core.paths import PACKAGE_DIR
from labkit.features.layer_storage import Storage, storage, upper_report

#: Instructions that change only the image's configuration, never its files.
METADATA_INSTRUCTIONS = frozenset(
    {
        "ARG",
        "CMD",
        "ENTRYPOINT",
        "ENV",
        "EXPOSE",
        "HEALTHCHECK",
        "LABEL",
        "MAINTAINER",
        "ONBUILD",
        "SHELL",
        "STOPSIGNAL",
        "USER",
        "VOLUME",
        "WORKDIR",
    }
)
_SHELL = "/bin/sh -c "
_NOP = "#(nop)"
# The classic builder writes `COPY file:<64 hex> in /dest`: keep a readable prefix of the hash.
_CONTENT_HASH = re.compile(r"\b((?:file|dir|multi):[0-9a-f]{12})[0-9a-f]{52}\b")
# A classic-builder RUN with build arguments starts `|2 A=1 B=2 /bin/sh -c …`.
_BUILD_ARGS = re.compile(r"^\|\d+ (?:\S+=\S* )*")


# --- pure logic: history ↔ layers -------------------------------------------------


def instruction(created_by: str) -> str:
    """The Dockerfile instruction behind a ``docker history`` CREATED BY entry.

    Handles the classic builder (``/bin/sh -c #(nop)  ENV …`` for metadata,
    ``/bin/sh -c cmd`` for RUN) and BuildKit (``RUN /bin/sh -c cmd # buildkit``).

    Example:
        >>> instruction("/bin/sh -c echo hi > /x")
        'RUN echo hi > /x'
        >>> instruction("COPY f /f # buildkit")
        'COPY f /f'
    """
    text = created_by.strip()
    if text.endswith("# buildkit"):
        text = text[: -len("# buildkit")].rstrip()
    text = _BUILD_ARGS.sub("", text)
    if text.startswith(_SHELL):
        rest = text[len(_SHELL) :].strip()
        text = rest[len(_NOP) :].strip() if rest.startswith(_NOP) else f"RUN {rest}"
    elif text.startswith("RUN " + _SHELL):
        text = "RUN " + text[len("RUN " + _SHELL) :].strip()
    text = re.sub(r"\s+", " ", text)
    return _CONTENT_HASH.sub(r"\1…", text)


def keyword(step_instruction: str) -> str:
    """The instruction's keyword (``RUN``, ``ENV`` …), or ``""`` for an imported base."""
    word = step_instruction.split(" ", 1)[0] if step_instruction else ""
    return word.upper() if word.isalpha() and word.isupper() else ""


def is_metadata(step_instruction: str) -> bool:
    """Whether an instruction only changes the image's configuration (no layer).

    Example:
        >>> is_metadata("CMD [\\"sh\\"]"), is_metadata("COPY a /a")
        (True, False)
    """
    return keyword(step_instruction) in METADATA_INSTRUCTIONS


@dataclass(frozen=True)
class Step:
    """One step of an image's history, and the layer it made (``None`` for metadata only)."""

    instruction: str
    created_by: str
    size: int
    comment: str = ""
    layer: str | None = None

    @property
    def label(self) -> str:
        """The instruction, or what stands in for it on an imported base."""
        if self.instruction:
            return self.instruction
        return f"(base layer: {self.comment})" if self.comment else "(base layer)"


def match_layers(history: Sequence[Mapping[str, Any]], diff_ids: Sequence[str]) -> tuple[tuple[Step, ...], bool]:
    """Line up ``docker history`` entries (newest first, as the API gives them) with RootFS diff ids.

    A step made a layer unless its instruction is metadata-only. When that count does
    not equal the number of layers (an odd builder, a squashed image), steps with a
    non-zero size are taken as the layer makers instead; when neither lines up, layers
    are given out oldest first and the second value is False.

    Returns:
        The steps oldest first, each with its diff id or ``None``; and whether the match is exact.

    Example:
        >>> steps, exact = match_layers(
        ...     [{"CreatedBy": "/bin/sh -c #(nop)  CMD [\\"sh\\"]", "Size": 0},
        ...      {"CreatedBy": "", "Size": 100, "Comment": "Imported from -"}], ["sha256:a"])
        >>> [(s.label, s.layer) for s in steps], exact
        ([('(base layer: Imported from -)', 'sha256:a'), ('CMD ["sh"]', None)], True)
    """
    oldest_first = list(reversed(history))
    texts = [instruction(str(h.get("CreatedBy") or "")) for h in oldest_first]
    sizes = [int(h.get("Size") or 0) for h in oldest_first]
    by_kind = [not is_metadata(t) for t in texts]
    by_size = [s > 0 for s in sizes]
    exact = True
    if sum(by_kind) == len(diff_ids):
        makes_layer = by_kind
    elif sum(by_size) == len(diff_ids):
        makes_layer = by_size
    else:
        makes_layer, exact = by_kind, False
    layers = iter(diff_ids)
    steps = []
    for h, text, size, makes in zip(oldest_first, texts, sizes, makes_layer, strict=True):
        steps.append(
            Step(
                instruction=text,
                created_by=str(h.get("CreatedBy") or ""),
                size=size,
                comment=str(h.get("Comment") or "").strip(),
                layer=next(layers, None) if makes else None,
            )
        )
    return tuple(steps), exact


def plural(n: int, word: str) -> str:
    """``1 layer``, ``3 layers``.

    Example:
        >>> plural(1, "layer"), plural(0, "entry")
        ('1 layer', '0 entries')
    """
    if n == 1:
        return f"1 {word}"
    return f"{n} {word[:-1]}ies" if word.endswith("y") else f"{n} {word}s"


def short(layer_id: str) -> str:
    """``sha256:d6bb6152751b…`` → ``d6bb6152751b`` (12 hex digits, as docker shows ids)."""
    return layer_id.split(":", 1)[-1][:12]


# --- reading the daemon -------------------------------------------------------------


@dataclass(frozen=True)
class ImageLayers:
    """An image's layers and history, lined up."""

    ref: str
    id: str
    tags: tuple[str, ...]
    diff_ids: tuple[str, ...]
    steps: tuple[Step, ...]
    exact: bool = True

    @property
    def layer_steps(self) -> tuple[Step, ...]:
        """The steps that made a filesystem layer, oldest first."""
        return tuple(s for s in self.steps if s.layer is not None)

    @property
    def metadata_steps(self) -> tuple[Step, ...]:
        """The steps that changed only metadata."""
        return tuple(s for s in self.steps if s.layer is None)

    @property
    def instructions(self) -> tuple[str, ...]:
        """Every step's instruction, oldest first (``""`` for an imported base)."""
        return tuple(s.instruction for s in self.steps)

    @property
    def size(self) -> int:
        return sum(s.size for s in self.steps)


def read(image: str, client: docker.DockerClient | None = None) -> ImageLayers:
    """Read an image's RootFS layers and its history from the daemon.

    Raises:
        NoSuchImage: the daemon has no such image (an :class:`ImageMissing`).
        DaemonUnavailable: the daemon did not answer.
    """
    client = client or engine.client()
    try:
        with engine.converted(image):
            found = client.images.get(image)
            history = client.api.history(found.id)
    except ImageMissing as e:
        raise NoSuchImage(image) from e
    return from_attrs(image, found.attrs, history)


def from_attrs(ref: str, attrs: Mapping[str, Any], history: Sequence[Mapping[str, Any]]) -> ImageLayers:
    """Build :class:`ImageLayers` from ``docker image inspect`` and ``docker history`` JSON."""
    diff_ids = tuple((attrs.get("RootFS") or {}).get("Layers") or ())
    steps, exact = match_layers(history, diff_ids)
    return ImageLayers(ref, str(attrs.get("Id", "")), tuple(attrs.get("RepoTags") or ()), diff_ids, steps, exact)


@dataclass(frozen=True)
class Shared:
    """What two images have in common: the layers at the bottom of both stacks."""

    first: ImageLayers
    second: ImageLayers
    layers: tuple[str, ...]

    @property
    def size(self) -> int:
        return sum(s.size for s in self.first.layer_steps[: len(self.layers)])

    def __str__(self) -> str:
        a, b = self.first.ref, self.second.ref
        n = len(self.layers)
        if not n:
            return _("{a} and {b} share no layers: each stores all of its own.").format(a=a, b=b)
        lines = [
            ngettext(
                "{a} and {b} share {n} layer ({size}), stored once on disk:",
                "{a} and {b} share {n} layers ({size}), stored once on disk:",
                n,
            ).format(a=a, b=b, n=n, size=fmt.size(self.size))
        ]
        for step in self.first.layer_steps[:n]:
            lines.append(_("  shared: {layer}  {label}").format(layer=short(step.layer or ""), label=step.label))
        for image in (self.first, self.second):
            own = len(image.diff_ids) - n
            total = ngettext("{n} layer", "{n} layers", len(image.diff_ids)).format(n=len(image.diff_ids))
            common = _("the shared one") if n == 1 else _("the {n} shared").format(n=n)
            own_layers = ngettext("{n} layer", "{n} layers", own).format(n=own)
            lines.append(
                _("{image} has {total}: {shared} + {own} of its own.").format(
                    image=image.ref, total=total, shared=common, own=own_layers
                )
            )
        return "\n".join(lines)

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(str(self))


def shared(first: str, second: str, client: docker.DockerClient | None = None) -> Shared:
    """The layers two images share (a common bottom of their stacks).

    Layers are stacked, so two images share a layer only if they also share
    everything below it: the common prefix of their diff ids.

    Raises:
        ImageMissing: either image is missing.
    """
    a, b = read(first, client), read(second, client)
    common = []
    for x, y in zip(a.diff_ids, b.diff_ids, strict=False):
        if x != y:
            break
        common.append(x)
    return Shared(a, b, tuple(common))


def lesson_dir(name: str) -> Path:
    """A lesson's build context, from the installed package (notebooks run from a workspace copy).

    Raises:
        LabkitError: there is no such context (a broken installation).
    """
    path = PACKAGE_DIR / "lessons" / name
    if not (path / "Dockerfile").is_file():
        raise LabkitError(
            _("lesson materials {name!r} are missing at {path}").format(name=name, path=path),
            _("reinstall labkit (`make lab` does it)"),
        )
    return path


# --- where a container's layers live (Storage, storage, upper_report: layer_storage.py) ---------


def _layer_files(folder: Path, limit: int = 4) -> str:
    """A short, sorted listing of what one layer folder holds."""
    files = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if not p.is_dir())
    if len(files) <= limit:
        return ", ".join(files) if files else _("(no files)")
    top = sorted(p.name + ("/" if p.is_dir() else "") for p in folder.iterdir())
    return _("files under {names}").format(names=", ".join(top))


def lower_report(container: str, client: docker.DockerClient | None = None) -> str:
    """Each LowerDir folder of a container, top first, with the image step that made it and what it holds.

    Raises:
        LabkitError: no such container, or its image is gone.
    """
    client = client or engine.client()
    where = storage(container, client)
    if where.driver != "overlay2" or not where.lower:
        return _("{container} uses the {driver} storage driver: there are no lower folders to list.").format(
            container=where.container, driver=where.driver or _("unknown")
        )
    if not where.visible:
        return _(
            "The layers of {container} are not on this machine's filesystem (on Docker Desktop they are inside its VM)."
        ).format(container=where.container)
    with engine.converted():
        image_ref = client.containers.get(container).attrs["Image"]
    image = read(image_ref, client)
    makers = list(reversed(image.layer_steps))  # LowerDir lists the top layer first
    lines = [_("LowerDir of {container}, top first:").format(container=where.container)]
    k = 0
    for folder in where.lower:
        path = Path(folder)
        if folder.rstrip("/").endswith("-init/diff"):
            lines.append(
                _("  init layer: {files}  (made by Docker for every container)").format(files=_layer_files(path))
            )
            continue
        step = makers[k] if k < len(makers) else None
        k += 1
        number = len(makers) - k + 1
        made_by = step.label if step else "?"
        lines.append(
            _("  image layer {number}: {files}  ← {made_by}").format(
                number=number, files=_layer_files(path), made_by=made_by
            )
        )
    return "\n".join(lines)


__all__ = [
    "ImageLayers",
    "NoSuchImage",
    "Shared",
    "Step",
    "Storage",
    "instruction",
    "is_metadata",
    "lesson_dir",
    "lower_report",
    "match_layers",
    "read",
    "shared",
    "storage",
    "upper_report",
]
