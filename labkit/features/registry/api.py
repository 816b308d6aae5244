"""A small client for the Registry HTTP API v2: manifests, tags, blobs, deletes.

It speaks to the course's own registry (:func:`labkit.registry.url`) by default,
and to any registry that lets anyone read. It exists so a lesson can show what a
``docker push`` stored and what a ``docker pull`` asks for, one HTTP request at a time.
Reads need no login; a delete (a write, like a push) sends the registry's push login
(:func:`labkit.registry.push_login`), which the course's registry asks for.

A registry answers ``GET /v2/<repository>/manifests/<tag>`` with whichever
manifest format the ``Accept`` header allows. Without one, a distribution 2.x
registry converts a modern image manifest to the old, signed *schema 1* format,
whose digest differs from the one ``docker push`` printed. So every manifest
request here sends :data:`ACCEPT` unless told otherwise.

Example:
    >>> from labkit import registry_api
    >>> registry_api.manifest("library/busybox", "latest").digest  # doctest: +SKIP
    'sha256:...'
"""

from __future__ import annotations

import hashlib
import json
import re
import urllib.parse
from dataclasses import dataclass
from typing import Any

from labkit.core import http, refs
from labkit.core.errors import HttpUnreachable, LabkitError, RegistryRefused, RegistryUnreachable
from labkit.core.http import Response
from labkit.core.i18n import _
from labkit.features.registry import mirror

#: A single-platform image, Docker's format (what ``docker push`` stores).
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
#: A multi-platform list of Docker manifests.
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
#: A single-platform image, OCI's format.
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
#: A multi-platform index, OCI's format.
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
#: The legacy signed format a registry falls back to when the client accepts nothing newer.
SCHEMA1 = "application/vnd.docker.distribution.manifest.v1+prettyjws"
#: Every format a modern client understands, sent on every manifest request.
ACCEPT: tuple[str, ...] = (DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, OCI_MANIFEST, OCI_INDEX)
INDEX_TYPES = frozenset({DOCKER_MANIFEST_LIST, OCI_INDEX})

DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
#: Seconds one request may take; the registry is on this machine.
TIMEOUT = 5.0


def error_code(answer: Response) -> tuple[str, str]:
    """The first ``errors[]`` entry of a registry error body: (code, message)."""
    try:
        first = (answer.json().get("errors") or [{}])[0]
        return str(first.get("code", "")), str(first.get("message", ""))
    except (ValueError, AttributeError, IndexError, TypeError):
        return "", ""


@dataclass(frozen=True)
class Descriptor:
    """What a manifest says about one blob (or, in an index, one manifest)."""

    media_type: str
    digest: str
    #: Bytes, as the manifest states them; ``None`` where the format has no sizes (schema 1).
    size: int | None
    #: ``linux/amd64`` for the entries of an index, else ``""``.
    platform: str = ""


@dataclass(frozen=True)
class Manifest:
    """A manifest as the registry served it.

    Attributes:
        repository: ``lab/hello-dock``.
        reference: the tag or digest that was asked for.
        media_type: the ``Content-Type`` it came with.
        digest: the ``Docker-Content-Digest`` header (the sha256 of the body when the header is missing).
        body: the exact bytes; their sha256 is the digest.
        config: the image's config blob (its digest is the local image ID); ``None`` for an index.
        layers: the compressed layer blobs, base layer first.
        manifests: the per-platform manifests of an index.
    """

    repository: str
    reference: str
    media_type: str
    digest: str
    body: bytes
    config: Descriptor | None = None
    layers: tuple[Descriptor, ...] = ()
    manifests: tuple[Descriptor, ...] = ()

    @property
    def size(self) -> int:
        """The manifest's own size in bytes (what ``docker push`` prints after ``size:``)."""
        return len(self.body)

    @property
    def is_index(self) -> bool:
        """True for a multi-platform list or index."""
        return self.media_type in INDEX_TYPES

    @property
    def verified(self) -> bool:
        """True when the sha256 of the body is the digest the registry announced."""
        return digest_of(self.body) == self.digest

    def json(self) -> Any:
        """The body, parsed."""
        return json.loads(self.body)


def digest_of(data: bytes) -> str:
    """The content digest of some bytes, as registries write it.

    Example:
        >>> digest_of(b"")
        'sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855'
    """
    return "sha256:" + hashlib.sha256(data).hexdigest()


def normalize_digest(text: str | None) -> str | None:
    """``sha256:<64 hex>`` in lower case, or ``None`` when ``text`` is not a complete digest.

    Surrounding spaces and quotes and upper-case hex are forgiven; a missing
    ``sha256:`` prefix or a shortened digest are not (they name nothing for certain).

    Example:
        >>> normalize_digest("  SHA256:" + "AB" * 32 + "\\n") == "sha256:" + "ab" * 32
        True
        >>> normalize_digest("ab" * 32) is None
        True
    """
    if text is None:
        return None
    cleaned = str(text).strip().strip("'\"`").strip().lower()
    return cleaned if DIGEST.match(cleaned) else None


#: Notebook 03 splits names with ``registry_api.parse_reference``: the one parser, under the lesson's name.
Reference = refs.Reference
parse_reference = refs.parse


def _base(base: str | None) -> str:
    return base.rstrip("/") if base is not None else mirror.url()


def request(
    path: str,
    *,
    base: str | None = None,
    method: str = "GET",
    accept: tuple[str, ...] = (),
    timeout: float = TIMEOUT,
    authorization: str = "",
) -> Response:
    """One request to the registry; HTTP error statuses are answers, not exceptions.

    Args:
        path: e.g. ``/v2/lab/hello-dock/tags/list``.
        base: the registry's URL; the course's registry by default.
        method: ``GET``, ``HEAD`` or ``DELETE``.
        accept: media types for the ``Accept`` header; none sends no header.
        authorization: an ``Authorization`` header value; none sends no header (reads need none).

    Raises:
        RegistryUnreachable: nothing answered, or what answered is not HTTP.
    """
    root = _base(base)
    headers = {"Accept": ", ".join(accept)} if accept else {}
    if authorization:
        headers["Authorization"] = authorization
    try:
        return http.request(method, root + path, headers=headers, timeout=timeout)
    except HttpUnreachable as e:
        raise RegistryUnreachable(root, e.cause) from e


def _refused(method: str, path: str, answer: Response, base: str | None) -> RegistryRefused:
    code, detail = error_code(answer)
    return RegistryRefused(method, _base(base) + path, answer.status, code, detail)


def _descriptor(raw: dict[str, Any]) -> Descriptor:
    platform = raw.get("platform") or {}
    where = "/".join(p for p in (platform.get("os"), platform.get("architecture"), platform.get("variant")) if p)
    size = raw.get("size")
    return Descriptor(
        str(raw.get("mediaType", "")), str(raw.get("digest", "")), int(size) if isinstance(size, int) else None, where
    )


def parse_manifest(repository: str, reference: str, media_type: str, body: bytes, digest: str = "") -> Manifest:
    """A :class:`Manifest` from the bytes a registry sent (any of the formats it may send).

    Raises:
        LabkitError: the body is not a manifest.
    """
    try:
        doc = json.loads(body)
    except ValueError as e:
        raise LabkitError(
            _("the registry's manifest for {repository}:{reference} is not JSON").format(
                repository=repository, reference=reference
            ),
            _("report this: the registry is broken"),
        ) from e
    if not isinstance(doc, dict):
        raise LabkitError(
            _("the registry's manifest for {repository}:{reference} is not a JSON object").format(
                repository=repository, reference=reference
            ),
            _("report this: the registry is broken"),
        )
    kind = media_type or str(doc.get("mediaType", ""))
    config = _descriptor(doc["config"]) if isinstance(doc.get("config"), dict) else None
    layers = tuple(_descriptor(layer) for layer in doc.get("layers") or [])
    if doc.get("schemaVersion") == 1:
        # Schema 1 lists blobs top layer first, and without sizes.
        layers = tuple(Descriptor("", str(f.get("blobSum", "")), None) for f in reversed(doc.get("fsLayers") or []))
    manifests = tuple(_descriptor(m) for m in doc.get("manifests") or [])
    return Manifest(repository, reference, kind, digest or digest_of(body), body, config, layers, manifests)


def manifest(repository: str, reference: str, *, base: str | None = None, accept: tuple[str, ...] = ACCEPT) -> Manifest:
    """Fetch the manifest a tag (or digest) names.

    Args:
        repository: e.g. ``lab/hello-dock`` (Docker Hub's official images are ``library/...``).
        reference: a tag (``v1``) or a digest (``sha256:...``).
        base: the registry's URL; the course's registry by default.
        accept: the formats to accept; ``()`` shows what an old client would get.

    Raises:
        RegistryRefused: the registry has no such manifest (404) or refused.
        RegistryUnreachable: no registry answered.
    """
    path = f"/v2/{repository}/manifests/{urllib.parse.quote(reference, safe=':')}"
    answer = request(path, base=base, accept=accept)
    if answer.status != 200:
        raise _refused("GET", path, answer, base)
    return parse_manifest(
        repository, reference, answer.content_type, answer.body, answer.header("Docker-Content-Digest")
    )


def find_manifest(repository: str, reference: str, *, base: str | None = None) -> Manifest | None:
    """Like :func:`manifest`, but ``None`` when the registry has no such repository or tag.

    Raises:
        RegistryRefused: the registry answered with an error other than "unknown".
        RegistryUnreachable: no registry answered.
    """
    try:
        return manifest(repository, reference, base=base)
    except RegistryRefused as e:
        if e.status == 404:
            return None
        raise


def tags(repository: str, *, base: str | None = None) -> list[str]:
    """The tags of a repository, sorted; ``[]`` when the registry does not know it.

    Raises:
        RegistryRefused: the registry answered with another error.
        RegistryUnreachable: no registry answered.
    """
    path = f"/v2/{repository}/tags/list"
    answer = request(path, base=base)
    if answer.status == 404:
        return []
    if answer.status != 200:
        raise _refused("GET", path, answer, base)
    try:
        return sorted(json.loads(answer.body).get("tags") or [])
    except (ValueError, AttributeError) as e:
        raise LabkitError(
            _("the registry's tag list for {repository} is not JSON").format(repository=repository),
            _("report this: the registry is broken"),
        ) from e


def catalog(*, base: str | None = None) -> list[str]:
    """Every repository the registry holds (a repository whose tags were all deleted stays listed).

    Raises:
        RegistryRefused: the registry will not list them.
        RegistryUnreachable: no registry answered.
    """
    path = "/v2/_catalog?n=1000"
    answer = request(path, base=base)
    if answer.status != 200:
        raise _refused("GET", path, answer, base)
    try:
        return sorted(json.loads(answer.body).get("repositories") or [])
    except (ValueError, AttributeError) as e:
        raise LabkitError(_("the registry's catalog is not JSON"), _("report this: the registry is broken")) from e


def blob(repository: str, digest: str, *, base: str | None = None) -> Descriptor | None:
    """``HEAD`` a blob: its size and type as the registry reports them, or ``None`` when absent.

    Raises:
        RegistryRefused: the registry answered with an error other than "unknown".
        RegistryUnreachable: no registry answered.
    """
    path = f"/v2/{repository}/blobs/{digest}"
    answer = request(path, base=base, method="HEAD")
    if answer.status == 404:
        return None
    if answer.status != 200:
        raise _refused("HEAD", path, answer, base)
    length = answer.header("Content-Length")
    return Descriptor(
        answer.content_type, answer.header("Docker-Content-Digest") or digest, int(length) if length.isdigit() else None
    )


def delete_manifest(repository: str, digest: str, *, base: str | None = None) -> bool:
    """Delete a manifest (and every tag pointing at it) from one repository.

    Blobs stay until the registry's garbage collection runs; other repositories
    holding the same manifest keep it. Needs a registry with deletes enabled
    (the course's is).

    Returns:
        True if it was deleted, False if the repository did not have it.

    Raises:
        RegistryRefused: the registry refused (deletes disabled, or 401: no push login here).
        RegistryUnreachable: no registry answered.
    """
    path = f"/v2/{repository}/manifests/{digest}"
    login = mirror.push_login(_base(base).removeprefix("http://").removeprefix("https://"))
    answer = request(path, base=base, method="DELETE", authorization=login.basic() if login is not None else "")
    if answer.status in (200, 202):
        return True
    if answer.status == 404:
        return False
    raise _refused("DELETE", path, answer, base)


def manifest_digest(repository: str, reference: str, *, base: str | None = None) -> str | None:
    """The digest a tag points at (``HEAD``, so nothing is downloaded), or ``None`` when absent.

    Raises:
        RegistryRefused: the registry answered with an error other than "unknown".
        RegistryUnreachable: no registry answered.
    """
    path = f"/v2/{repository}/manifests/{urllib.parse.quote(reference, safe=':')}"
    answer = request(path, base=base, method="HEAD", accept=ACCEPT)
    if answer.status == 404:
        return None
    if answer.status != 200:
        raise _refused("HEAD", path, answer, base)
    return answer.header("Docker-Content-Digest") or None
