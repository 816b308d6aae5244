"""A registry seen over HTTP: what answers at a URL, what repositories it holds, what it has under a tag.

:mod:`.process` asks it whether the registry it started answers, :mod:`.seeding` whether an
image is already there; :mod:`.api` is the fuller Registry API v2 client the lessons use.
"""

from __future__ import annotations

from typing import Literal

from labkit.core import http
from labkit.core.errors import HttpUnreachable
from labkit.core.i18n import _

#: What a registry may store under a tag: a single image (Docker or OCI) or a multi-platform index.
MANIFEST_TYPES = (
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
)
_SINGLE_IMAGE = (MANIFEST_TYPES[0], MANIFEST_TYPES[2])

#: Seconds one request to the registry may take; it is on this machine.
REQUEST_TIMEOUT = 2.0


def _request(target: str, method: str = "GET", accept: tuple[str, ...] = ()) -> http.Response:
    """One request; HTTP errors are answers, not exceptions.

    Raises:
        HttpUnreachable: nothing that speaks HTTP answered.
    """
    return http.request(
        method, target, headers={"Accept": ", ".join(accept)} if accept else {}, timeout=REQUEST_TIMEOUT
    )


def probe(base: str) -> tuple[Literal["registry", "other", "none"], str]:
    """What answers at ``base``: a Docker registry, something else, or nothing.

    A registry says so in the ``Docker-Distribution-Api-Version`` header of ``/v2/``,
    whether or not it asks for credentials.
    """
    try:
        answer = _request(f"{base}/v2/")
    except HttpUnreachable as e:
        if e.refused:
            return "none", _("connection refused")
        return "other", _("no HTTP answer on /v2/: {cause}").format(cause=e.cause)
    if answer.header("Docker-Distribution-Api-Version").startswith("registry/2"):
        return "registry", f"HTTP {answer.status}"
    return "other", _("it answered GET /v2/ with HTTP {status} and no registry header").format(status=answer.status)


def repositories(base: str) -> list[str]:
    """The repositories a registry holds (its ``/v2/_catalog``), or ``[]`` if it will not say."""
    try:
        answer = _request(f"{base}/v2/_catalog?n=1000")
        return sorted(answer.json().get("repositories") or []) if answer.status == 200 else []
    except (HttpUnreachable, ValueError, AttributeError, TypeError):
        return []


def remote_config(base: str, repository: str, tag: str) -> str | None:
    """What the registry has under ``repository:tag``.

    Returns:
        ``None`` when it has nothing; the image's config digest (which is the local
        image id) for a single image; ``""`` for an index or anything unreadable.
    """
    target = f"{base}/v2/{repository}/manifests/{tag}"
    try:
        answer = _request(target, "HEAD", MANIFEST_TYPES)
        if answer.status == 404:
            return None
        if answer.status != 200 or answer.content_type not in _SINGLE_IMAGE:
            return ""
        answer = _request(target, "GET", _SINGLE_IMAGE)
        return str(answer.json()["config"]["digest"]) if answer.status == 200 else ""
    except (HttpUnreachable, ValueError, KeyError, TypeError):
        return ""
