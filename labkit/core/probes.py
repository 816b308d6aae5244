"""Small readers of live daemon state, shared by exercise checks.

Each returns plain facts; deciding what they mean is the check's job.
"""

from __future__ import annotations

from typing import Any

import docker
import docker.errors
from docker.models.containers import Container

from labkit.core.refs import normalize


def image_id(client: docker.DockerClient, ref: str) -> str | None:
    """The id of a local image, or ``None`` when the daemon does not have it."""
    try:
        return str(client.images.get(ref).id)
    except docker.errors.ImageNotFound:
        return None


def is_image(client: docker.DockerClient, container: Container, ref: str) -> bool:
    """Whether ``container`` was created from ``ref``, by image ID or however the name was spelled."""
    wanted = image_id(client, ref)
    if wanted and container.attrs.get("Image") == wanted:
        return True
    return normalize(str(container.attrs.get("Config", {}).get("Image", ""))) == normalize(ref)


def containers_from(client: docker.DockerClient, ref: str) -> list[Container]:
    """Every container (any state) created from image ``ref``, however the learner spelled it.

    Matches the image the container was created from by id, and also by name,
    so ``hello-world``, ``hello-world:latest`` and ``docker.io/library/hello-world``
    are one image, and a container survives its image being re-pulled.
    """
    wanted_id = image_id(client, ref)
    wanted_name = normalize(ref)
    found = []
    # The list endpoint is one call; inspect (reload) only the matches.
    for container in client.containers.list(all=True, sparse=True):
        attrs = container.attrs
        listed = str(attrs.get("Image", ""))
        if (wanted_id and attrs.get("ImageID") == wanted_id) or (listed and normalize(listed) == wanted_name):
            try:
                container.reload()
            except docker.errors.NotFound:  # removed between the list and the inspect
                continue
            found.append(container)
    return found


def state(container: Container) -> dict[str, Any]:
    """The parts of a container's state checks talk about."""
    raw = container.attrs.get("State", {})
    return {
        "status": raw.get("Status"),
        "exit_code": raw.get("ExitCode"),
        "started": raw.get("StartedAt", "").startswith("0001") is False,
    }


def describe(container: Container) -> str:
    """``name (status, exit N)`` for messages and evidence."""
    s = state(container)
    if s["status"] == "exited":
        return f"{container.name} (exited with code {s['exit_code']})"
    return f"{container.name} ({s['status']})"


def port_publishers(client: docker.DockerClient) -> dict[int, list[tuple[str, str]]]:
    """Host ports that running containers publish: ``{8080: [(container id, name)]}``.

    One list call; shared by the exercises (who holds 8080?), the doctor (are the
    lesson ports free?) and the shell (which container holds the port a run wanted?).
    """
    found: dict[int, list[tuple[str, str]]] = {}
    for container in client.containers.list(sparse=True):
        name = (container.attrs.get("Names") or ["?"])[0].lstrip("/")
        ports = {int(b["PublicPort"]) for b in container.attrs.get("Ports") or [] if b.get("PublicPort")}
        for port in ports:
            found.setdefault(port, []).append((str(container.id), name))
    return found
