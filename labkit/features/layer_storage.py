"""Where a container's layers live on the host (overlay2's UpperDir, LowerDir …), for lesson 02.

Re-exported by :mod:`labkit.features.layers`, so notebooks call ``layers.storage(...)``;
:func:`labkit.features.layers.lower_report` lines these folders up with the image's history.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker.errors

from labkit.core import engine
from labkit.core.errors import LabkitError
from labkit.core.i18n import _


@dataclass(frozen=True)
class Storage:
    """A container's layers on the host, as its storage driver reports them."""

    container: str
    driver: str
    upper: str | None
    lower: tuple[str, ...]
    merged: str | None
    work: str | None
    image_layers: int

    @property
    def visible(self) -> bool:
        """Whether this process can look at the layer folders (not on Docker Desktop's VM, not rootless)."""
        return bool(self.upper) and os.access(str(self.upper), os.R_OK | os.X_OK)

    def host_path(self, path: str) -> Path | None:
        """Where ``path`` (inside the container) sits in the writable layer, or ``None`` without one."""
        return Path(self.upper) / path.lstrip("/") if self.upper else None

    def __str__(self) -> str:
        if self.driver != "overlay2" or not self.upper:
            return _(
                "{container} uses the {driver} storage driver, which does not report "
                "lower and upper directories: the ideas are the same, the folders are not shown."
            ).format(container=self.container, driver=self.driver or _("unknown"))
        init = sum(1 for d in self.lower if d.rstrip("/").endswith("-init/diff"))
        lines = [
            _("{container} uses overlay2:").format(container=self.container),
            f"  UpperDir  {self.upper}",
            _("            the container's own writable layer"),
            _(
                "  LowerDir  {folders} folders, top first: {init} init layer (Docker's /etc/hosts & co.) "
                "+ {layers} image layers"
            ).format(folders=len(self.lower), init=init, layers=len(self.lower) - init),
        ]
        lines.extend(f"            {d}" for d in self.lower)
        lines += [
            f"  MergedDir {self.merged}",
            _("            what the container sees: upper over lower"),
            f"  WorkDir   {self.work}",
            _("            scratch space overlayfs needs for copy-up"),
        ]
        if not self.visible:
            lines.append(
                _(
                    "These folders are not reachable from here (Docker Desktop keeps them inside its VM; "
                    "a remote or rootless daemon keeps them elsewhere)."
                )
            )
        return "\n".join(lines)

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(str(self))


def storage(container: str, client: docker.DockerClient | None = None) -> Storage:
    """Where a container's layers are, from ``GraphDriver`` in ``docker container inspect``.

    Raises:
        LabkitError: no such container.
    """
    client = client or engine.client()
    with engine.converted():
        try:
            found = client.containers.get(container)
        except docker.errors.NotFound as e:
            raise LabkitError(
                _("there is no container named {container}").format(container=container),
                _("run the cells above that start it"),
            ) from e
        image_attrs = client.images.get(found.attrs["Image"]).attrs if found.attrs.get("Image") else {}
    graph = found.attrs.get("GraphDriver") or {}
    data = graph.get("Data") or {}
    lower = tuple(d for d in str(data.get("LowerDir") or "").split(":") if d)
    return Storage(
        container=found.name,
        driver=str(graph.get("Name") or ""),
        upper=data.get("UpperDir"),
        lower=lower,
        merged=data.get("MergedDir"),
        work=data.get("WorkDir"),
        image_layers=len((image_attrs.get("RootFS") or {}).get("Layers") or ()),
    )


def upper_report(container: str, paths: Sequence[str], client: docker.DockerClient | None = None) -> str:
    """What each container path looks like in the container's writable layer, seen from the host.

    A file written in the container is an ordinary file there; a file deleted from
    an image layer is a *whiteout*, a character device numbered 0/0 that hides it.

    Raises:
        LabkitError: no such container.
    """
    where = storage(container, client)
    if where.driver != "overlay2" or not where.upper:
        return _("{container} uses the {driver} storage driver: there is no UpperDir to look into.").format(
            container=where.container, driver=where.driver or _("unknown")
        )
    if not where.visible:
        return _(
            "The writable layer of {container} is at {upper}, but not on this machine's filesystem "
            "(on Docker Desktop it is inside the Docker VM), so labkit cannot show it."
        ).format(container=where.container, upper=where.upper)
    lines = [_("In UpperDir ({upper}):").format(upper=where.upper)]
    for path in paths:
        host = where.host_path(path)
        assert host is not None
        try:
            info = os.lstat(host)
        except FileNotFoundError:
            lines.append(_("  {path}: not there (the container has not changed it)").format(path=path))
            continue
        if stat.S_ISCHR(info.st_mode) and info.st_rdev == 0:
            lines.append(_("  {path}: a whiteout (character device 0/0) hiding the image's file").format(path=path))
        elif stat.S_ISREG(info.st_mode):
            text = host.read_text(errors="replace").strip().splitlines()
            if text:
                lines.append(_("  {path}: a regular file, first line {line!r}").format(path=path, line=text[0]))
            else:
                lines.append(_("  {path}: an empty file").format(path=path))
        elif stat.S_ISDIR(info.st_mode):
            lines.append(_("  {path}: a directory").format(path=path))
        else:
            lines.append(_("  {path}: present").format(path=path))
    return "\n".join(lines)
