"""The images the lessons use, and how to make each one without a network.

A lesson that needs a new image adds one line to :data:`CATALOG`. Order matters
only through ``needs``: :func:`resolve` puts every image after the images it is
built ``FROM``.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from labkit.core import refs
from labkit.core.engine import LABEL_OFFLINE
from labkit.core.errors import LabkitError
from labkit.core.i18n import _

#: Every catalog image carries this label, whose value is its catalog name.
LABEL_IMAGE = "labkit.image"
#: Dockerfile images carry a digest of their build context, so a changed context is rebuilt.
LABEL_CONTEXT = "labkit.context"
#: Dockerfiles and files for the images built with ``docker build``.
CONTEXTS_DIR = Path(__file__).resolve().parent / "contexts"

Builder = Literal["busybox-static", "dockerfile", "debootstrap"]


@dataclass(frozen=True)
class CatalogImage:
    """One image the lessons use.

    Attributes:
        name: the reference learners type, with its tag (``busybox:latest``).
        build: how to make it offline: ``busybox-static`` (Debian's static busybox,
            imported), ``dockerfile`` (``docker build`` of ``contexts/<context>``) or
            ``debootstrap`` (a minimal Debian of the suite named by the tag, imported).
        needs: catalog images that must exist first (the Dockerfile's ``FROM``).
        context: the folder under ``contexts/`` for ``dockerfile`` builds.
        cmd: the default command of an imported root filesystem.
        summary: what the lessons use it for.
    """

    name: str
    build: Builder
    needs: tuple[str, ...] = ()
    context: str = ""
    cmd: tuple[str, ...] = ()
    summary: str = ""

    @property
    def repository(self) -> str:
        """``labkit/hello-dock`` for ``labkit/hello-dock:latest``."""
        return refs.parse(self.name).familiar_name

    @property
    def tag(self) -> str:
        """``bookworm`` for ``debian:bookworm``."""
        return refs.parse(self.name).tag

    @property
    def own(self) -> bool:
        """True for labkit's own images; False for stand-ins for someone else's Docker Hub image."""
        return self.repository.startswith("labkit/")

    @property
    def registry_path(self) -> str:
        """The repository path on a registry: official images live under ``library/``."""
        return refs.parse(self.name).repository

    @property
    def context_dir(self) -> Path:
        """The build context of a ``dockerfile`` image."""
        return CONTEXTS_DIR / self.context

    def labels(self) -> dict[str, str]:
        """The labels the image carries when labkit builds it.

        Never ``labkit.session``: every image built ``FROM`` this one would inherit
        it, and ``labkit reset`` would remove course infrastructure. A Dockerfile
        image inherits its base's labels, so ``labkit.offline-build`` is always set,
        to an empty value on labkit's own images (an empty label means "no").

        Example:
            >>> CatalogImage("busybox:latest", "busybox-static").labels()  # doctest: +NORMALIZE_WHITESPACE
            {'labkit.image': 'busybox:latest', 'labkit.offline-build': 'busybox-static'}
        """
        labels = {LABEL_IMAGE: self.name, LABEL_OFFLINE: "" if self.own else self.build}
        if self.build == "dockerfile":
            labels[LABEL_CONTEXT] = self.context_digest()
        return labels

    def context_digest(self) -> str:
        """A digest of the build context's file names, exec bits and contents (not their times)."""
        digest = hashlib.sha256()
        for path in sorted(p for p in self.context_dir.rglob("*") if p.is_file()):
            data = path.read_bytes()
            digest.update(
                f"{path.relative_to(self.context_dir).as_posix()}\0{data.startswith(b'#!')}\0{len(data)}\0".encode()
            )
            digest.update(data)
        return digest.hexdigest()[:16]

    def is_stale(self, labels: dict[str, str] | None) -> bool:
        """True when an image on the daemon was built from an older version of this entry's context."""
        if self.build != "dockerfile" or labels is None or LABEL_IMAGE not in labels:
            return False  # pulled from elsewhere, or not built by labkit: leave it alone
        return labels.get(LABEL_CONTEXT) != self.context_digest()


CATALOG: tuple[CatalogImage, ...] = (
    CatalogImage("busybox:latest", "busybox-static", cmd=("sh",), summary="a tiny Linux userland: shells, echo, httpd"),
    CatalogImage(
        "hello-world:latest",
        "dockerfile",
        needs=("busybox:latest",),
        context="hello-world",
        summary="the first `docker run`",
    ),
    CatalogImage("debian:bookworm", "debootstrap", cmd=("bash",), summary="a full distribution with apt"),
    CatalogImage(
        "labkit/hello-dock:latest",
        "dockerfile",
        needs=("busybox:latest",),
        context="hello-dock",
        summary="a web page on port 80",
    ),
    CatalogImage(
        "labkit/rmbyext:latest",
        "dockerfile",
        needs=("busybox:latest",),
        context="rmbyext",
        summary="deletes files by extension in the folder mounted at /zone",
    ),
)


def find(name: str, catalog: tuple[CatalogImage, ...] = CATALOG) -> CatalogImage:
    """The catalog entry for a name as a learner might type it.

    ``busybox``, ``busybox:latest``, ``docker.io/library/busybox`` and, for labkit's
    own images, ``hello-dock`` all work.

    Raises:
        LabkitError: no catalog image has that name.

    Example:
        >>> find("hello-dock").name
        'labkit/hello-dock:latest'
    """
    wanted = refs.normalize(name)
    for entry in catalog:
        if entry.name in (wanted, f"labkit/{wanted}") or name in (entry.repository, refs.parse(entry.name).short_name):
            return entry
    known = ", ".join(e.name for e in catalog)
    raise LabkitError(
        _("no image named {name!r} in labkit's catalog").format(name=name),
        _("the catalog has {known}").format(known=known),
    )


def resolve(names: list[str] | None = None, catalog: tuple[CatalogImage, ...] = CATALOG) -> list[CatalogImage]:
    """The entries to make for ``names`` (all when ``None``), dependencies first.

    Each image comes after everything it ``needs``; otherwise catalog order holds.

    Raises:
        LabkitError: an unknown name, or a catalog whose ``needs`` loop or name a missing entry.

    Example:
        >>> [e.name for e in resolve(["hello-dock"])]
        ['busybox:latest', 'labkit/hello-dock:latest']
    """
    wanted = list(catalog) if names is None else [find(n, catalog) for n in names]
    by_name = {e.name: e for e in catalog}
    ordered: list[CatalogImage] = []
    visiting: set[str] = set()

    def visit(entry: CatalogImage) -> None:
        if entry in ordered:
            return
        if entry.name in visiting:
            raise LabkitError(
                _("the image catalog has a loop through {name}").format(name=entry.name),
                _("fix `needs` in labkit/images/catalog.py"),
            )
        visiting.add(entry.name)
        for need in entry.needs:
            if need not in by_name:
                raise LabkitError(
                    _("{name} needs {need}, which is not in the catalog").format(name=entry.name, need=need),
                    _("add it to labkit/images/catalog.py"),
                )
            visit(by_name[need])
        visiting.discard(entry.name)
        ordered.append(entry)

    for entry in sorted(wanted, key=list(catalog).index):
        visit(entry)
    return ordered


_FROM = re.compile(r"^\s*FROM\s+(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?", re.I | re.M)


def dockerfile_bases(dockerfile: str) -> list[str]:
    """The images a Dockerfile builds ``FROM``, without ``scratch`` and its own stages.

    Example:
        >>> dockerfile_bases("FROM busybox AS tools\\nFROM scratch\\nCOPY --from=tools / /")
        ['busybox:latest']
    """
    stages: set[str] = set()
    bases: list[str] = []
    for match in _FROM.finditer(dockerfile):
        image, stage = match.group(1), match.group(2)
        if image != "scratch" and image.lower() not in stages:
            bases.append(refs.normalize(image))
        if stage:
            stages.add(stage.lower())
    return bases
