"""Image references (``localhost:5000/lab/hello-dock:v1``), read the way the docker CLI reads them.

One parser for every place labkit compares or splits image names: the checks
("was this container made from busybox?"), the image catalog, the registry
lesson and the archive reader.

The rules are Docker's (``distribution/reference``): the first part of the name
is a registry when it holds a ``.`` or a ``:`` or is ``localhost``; otherwise the
image is Docker Hub's (``docker.io``, also spelled ``index.docker.io``), where a
one-part name lives under ``library/``. Path parts are lower case; after the last
``/`` a ``:`` starts the tag (``latest`` when neither tag nor digest is given),
and ``@`` starts a digest.

Example:
    >>> parse("localhost:5000/lab/hello-dock:v1")
    Reference(registry='localhost:5000', repository='lab/hello-dock', tag='v1', digest='')
    >>> normalize("docker.io/library/busybox")
    'busybox:latest'
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from labkit.core.errors import InvalidReference
from labkit.core.i18n import _

#: Docker Hub's canonical name; ``index.docker.io`` is the same registry.
DOCKER_HUB = "docker.io"
_HUB_ALIASES = frozenset({"docker.io", "index.docker.io"})
_OFFICIAL = "library/"

_PATH_PART = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*")
_DOMAIN = re.compile(
    r"(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*(?::[0-9]+)?|\[[0-9a-fA-F:]+\](?::[0-9]+)?"
)
_TAG = re.compile(r"[\w][\w.-]{0,127}")
_DIGEST = re.compile(r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}")
_IMAGE_ID = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class Reference:
    """An image name split into its parts.

    Attributes:
        registry: ``docker.io`` for Docker Hub, else the host (and port) as written.
        repository: the path inside the registry; Docker Hub's official images are ``library/...``.
        tag: ``latest`` when the name gave neither tag nor digest; ``""`` when it gave only a digest.
        digest: ``sha256:...`` when the name pinned one, else ``""``.
    """

    registry: str
    repository: str
    tag: str
    digest: str = ""

    @property
    def familiar_name(self) -> str:
        """The name as ``docker images`` shows it, without tag: ``busybox``, ``lab/app``, ``localhost:5000/lab/app``."""
        if self.registry == DOCKER_HUB:
            return self.repository.removeprefix(_OFFICIAL)
        return f"{self.registry}/{self.repository}"

    @property
    def short_name(self) -> str:
        """The last part of the repository: ``hello-dock`` for ``localhost:5000/lab/hello-dock:v1``."""
        return self.repository.rsplit("/", 1)[-1]

    @property
    def familiar(self) -> str:
        """The short form with tag and digest: ``busybox:latest``, ``lab/app@sha256:...``."""
        return self.familiar_name + (f":{self.tag}" if self.tag else "") + (f"@{self.digest}" if self.digest else "")


def parse(ref: str) -> Reference:
    """Split an image name the way the docker CLI does.

    Raises:
        InvalidReference: Docker would refuse the name (upper case in the path, an empty part,
            a bad tag or digest, or a 64-hex image ID where a name belongs).

    Example:
        >>> parse("busybox")
        Reference(registry='docker.io', repository='library/busybox', tag='latest', digest='')
        >>> parse("index.docker.io/labkit/hello-dock:v2").familiar
        'labkit/hello-dock:v2'
    """
    text = ref.strip()
    if _IMAGE_ID.fullmatch(text):
        raise InvalidReference(ref, _("that is an image ID, not a name"))
    name, at, digest = text.partition("@")
    if at and not _DIGEST.fullmatch(digest):
        raise InvalidReference(ref, _("{digest!r} is not a digest (sha256:<hex>)").format(digest=digest))
    first, slash, rest = name.partition("/")
    # A first part with upper case is a host too: Docker says so, then refuses the name if it is not one.
    if slash and ("." in first or ":" in first or first == "localhost" or first != first.lower()):
        host, path = first, rest
        if not _DOMAIN.fullmatch(host):
            raise InvalidReference(ref, _("{host!r} is not a registry address").format(host=host))
    else:
        host, path = DOCKER_HUB, name
    if host in _HUB_ALIASES:
        host = DOCKER_HUB
        if "/" not in path:
            path = _OFFICIAL + path
    repository, tag = path, ""
    if ":" in path.rsplit("/", 1)[-1]:
        repository, tag = path.rsplit(":", 1)
        if not _TAG.fullmatch(tag):
            raise InvalidReference(ref, _("{tag!r} is not a tag").format(tag=tag))
    if repository != repository.lower():
        raise InvalidReference(ref, _("repository names must be lower case"))
    if not all(_PATH_PART.fullmatch(part) for part in repository.split("/")):
        raise InvalidReference(ref, _("each part of the name is letters and digits, joined by . _ or -"))
    return Reference(host, repository, tag or ("" if digest else "latest"), digest)


def normalize(ref: str) -> str:
    """One spelling per image, for comparing names: ``docker.io/library/hello-world`` → ``hello-world:latest``.

    A string that is not a valid name (an image ID, say) comes back trimmed but
    otherwise as it is, so it still equals only itself.

    Example:
        >>> normalize("library/busybox"), normalize("localhost:5000/lab/x")
        ('busybox:latest', 'localhost:5000/lab/x:latest')
    """
    try:
        return parse(ref).familiar
    except InvalidReference:
        return ref.strip()
