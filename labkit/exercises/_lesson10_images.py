"""Lesson 10's images as ``export.import`` reads them: the course's own, likely attempts, and what each holds.

Readers only, plus :func:`remove_image` for teardown; the verdicts stay in
:mod:`labkit.exercises.lesson10_export_import_save_load`.
"""

from __future__ import annotations

import json
from typing import Any

import docker
import docker.errors
from docker.models.images import Image

from labkit.core import refs
from labkit.core.i18n import _
from labkit.core.probes import image_id
from labkit.features.images.catalog import CATALOG


def catalog_ids(client: docker.DockerClient) -> dict[str, str]:
    """``{image id: catalog name}`` for the course's images present on the daemon."""
    found = {}
    for entry in CATALOG:
        found_id = image_id(client, entry.name)
        if found_id is not None:
            found[found_id] = entry.name
    return found


def remove_image(client: docker.DockerClient, ref: str) -> int:
    """Remove a tag or an image id; 1 if something went, 0 if it was already gone.

    A tag that another name shares is only untagged: the daemon never deletes an image by
    one of several names, so a catalog image tagged ``lab/snapshot`` stays.
    """
    try:
        client.images.remove(ref, force=True)
        return 1
    except docker.errors.ImageNotFound:
        return 0
    except docker.errors.APIError as e:
        if e.status_code == 404:
            return 0
        if e.status_code == 409:  # in use by a running container: leave it, reset removes that container first
            return 0
        raise


def layers(image: Image) -> list[str]:
    return list((image.attrs.get("RootFS") or {}).get("Layers") or [])


def cmd(image: Image) -> str:
    return json.dumps((image.attrs.get("Config") or {}).get("Cmd"))


def is_commit(image: Image, snapshot: Any | None, exercise_id: str) -> bool:
    """Made by ``docker commit`` of snapshot-me: the image names its container, or kept its labels."""
    if snapshot is not None and image.attrs.get("Container") == snapshot.id:
        return True
    labels = (image.attrs.get("Config") or {}).get("Labels") or {}
    return labels.get("labkit.exercise") == exercise_id


def label(image: Image) -> str:
    if image.tags:
        return ", ".join(image.tags)
    return _("an untagged image {short_id}").format(short_id=image.short_id.split(":")[-1])


def candidates(client: docker.DockerClient, snapshot: Any | None) -> list[Image]:
    """Images that may be an attempt under another name, newest first.

    Named like ``*snapshot*``, untagged, committed from snapshot-me (its labels), or, while
    snapshot-me exists, made after it: any name a learner may have typed.
    """
    since = str(snapshot.attrs.get("Created", "")) if snapshot is not None else ""
    catalog = catalog_ids(client)
    found: dict[str, Image] = {}
    for image in client.images.list():
        if image.id in catalog:
            continue
        named = any("snapshot" in refs.parse(t).short_name for t in image.tags)
        created = str(image.attrs.get("Created", ""))
        recent = bool(since) and created >= since  # RFC 3339 times from one daemon compare as text
        labels = (image.attrs.get("Config") or {}).get("Labels") or image.attrs.get("Labels") or {}
        committed = labels.get("labkit.exercise") == "export.import"
        # Without snapshot-me there is no time to compare with: untagged images are the other suspects.
        if named or committed or recent or (not image.tags and not since):
            found[image.id] = image
    return sorted(found.values(), key=lambda i: str(i.attrs.get("Created", "")), reverse=True)
