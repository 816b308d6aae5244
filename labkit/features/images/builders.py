"""Making catalog images from local materials: no registry, no network but the apt mirror.

Three ways, one per :data:`~labkit.images.catalog.Builder`:

- ``busybox-static``: Debian's static ``/bin/busybox`` and a symlink per applet,
  packed into a tar in memory and imported (under a second);
- ``dockerfile``: ``docker build`` of a folder in ``labkit/images/contexts/``;
- ``debootstrap``: a minimal Debian root filesystem (:mod:`labkit.images.debootstrap`),
  tarred and imported (about 30 s to a minute, depending on the mirror).
"""

from __future__ import annotations

import io
import json
import re
import struct
import subprocess
import tarfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TextIO

from labkit.core import activity, engine
from labkit.core.errors import CommandFailed, LabkitError, NotSupported, WaitTimeout
from labkit.core.i18n import _
from labkit.features.images import debootstrap
from labkit.features.images.catalog import CatalogImage
from labkit.features.streams import BuildSteps

#: Where Debian's busybox-static puts its binary.
BUSYBOX_PATHS = ("/bin/busybox", "/usr/bin/busybox")


def import_changes(entry: CatalogImage) -> list[str]:
    """The Dockerfile instructions ``docker import`` applies: the command and the labels.

    Example:
        >>> import_changes(CatalogImage("busybox:latest", "busybox-static", cmd=("sh",)))[0]
        'CMD ["sh"]'
    """
    changes = [f"CMD {json.dumps(list(entry.cmd))}"] if entry.cmd else []
    changes += [f"LABEL {json.dumps(k)}={json.dumps(v)}" for k, v in entry.labels().items()]
    return changes


def _import(entry: CatalogImage, src: str | bytes) -> None:
    """Import a root filesystem tar (a path, or the bytes themselves) as ``entry.name``.

    Raises:
        LabkitError: the daemon refused the tar.
    """
    api = engine.client().api
    with engine.converted():
        if isinstance(src, bytes):
            result = api.import_image_from_data(
                src, repository=entry.repository, tag=entry.tag, changes=import_changes(entry)
            )
        else:
            result = api.import_image(src, repository=entry.repository, tag=entry.tag, changes=import_changes(entry))
    for line in str(result).splitlines():
        try:
            message = json.loads(line)
        except ValueError:
            continue
        if isinstance(message, dict) and message.get("error"):
            raise LabkitError(
                _("docker import of {name} failed: {error}").format(name=entry.name, error=message["error"]),
                _("run `labkit doctor` and try again"),
            )


# --- busybox-static ---------------------------------------------------------------


def find_static_busybox() -> Path:
    """Debian's static busybox binary.

    Raises:
        NotSupported: none is installed, or only a dynamically linked one (useless in an image).
    """
    for candidate in BUSYBOX_PATHS:
        path = Path(candidate)
        if path.is_file():
            if is_dynamic_elf(path.read_bytes()):
                raise NotSupported(
                    _("{path} is linked against the host's libraries and cannot run alone in an image").format(
                        path=path
                    ),
                    _("apt-get install busybox-static (it replaces the dynamic busybox)"),
                )
            return path
    raise NotSupported(_("no busybox binary to build the busybox image from"), "apt-get install busybox-static")


def is_dynamic_elf(data: bytes) -> bool:
    """Whether an ELF executable asks for a program interpreter (the dynamic loader).

    Example:
        >>> is_dynamic_elf(b"#!/bin/sh")
        False
    """
    if data[:4] != b"\x7fELF" or len(data) < 64:
        return False
    is64, endian = data[4] == 2, "<" if data[5] == 1 else ">"
    if is64:
        (phoff,) = struct.unpack_from(endian + "Q", data, 0x20)
        phentsize, phnum = struct.unpack_from(endian + "HH", data, 0x36)
    else:
        (phoff,) = struct.unpack_from(endian + "I", data, 0x1C)
        phentsize, phnum = struct.unpack_from(endian + "HH", data, 0x2A)
    for i in range(phnum):
        offset = phoff + i * phentsize
        if offset + 4 > len(data):
            break
        (p_type,) = struct.unpack_from(endian + "I", data, offset)
        if p_type == 3:  # PT_INTERP
            return True
    return False


def busybox_applets(busybox: Path) -> list[str]:
    """The applet names this busybox provides (``busybox --list``).

    Raises:
        CommandFailed: busybox did not list them.
    """
    try:
        done = subprocess.run([str(busybox), "--list"], capture_output=True, text=True, timeout=10, check=False)
    except subprocess.TimeoutExpired as e:
        raise WaitTimeout(f"`{busybox} --list`", 10) from e
    if done.returncode != 0:
        raise CommandFailed(f"{busybox} --list", done.returncode, done.stdout + done.stderr)
    return sorted({a for a in done.stdout.split() if re.fullmatch(r"[\w.\-\[]+", a) and a != "busybox"})


def busybox_rootfs(busybox: Path, applets: list[str]) -> bytes:
    """A root filesystem tar: ``bin/busybox``, a symlink per applet, and the usual folders.

    ``etc/passwd`` and ``etc/group`` name root and nobody, so ``id`` and ``--user nobody`` work.
    """
    mtime = int(busybox.stat().st_mtime)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.GNU_FORMAT) as tar:

        def add(name: str, kind: bytes, mode: int, data: bytes = b"", link: str = "") -> None:
            info = tarfile.TarInfo(name)
            info.type, info.mode, info.mtime, info.linkname, info.size = kind, mode, mtime, link, len(data)
            tar.addfile(info, io.BytesIO(data) if data else None)

        for folder, mode in (("bin", 0o755), ("etc", 0o755), ("root", 0o700), ("tmp", 0o1777)):
            add(folder, tarfile.DIRTYPE, mode)
        add("bin/busybox", tarfile.REGTYPE, 0o755, busybox.read_bytes())
        for applet in applets:
            add(f"bin/{applet}", tarfile.SYMTYPE, 0o777, link="busybox")
        add(
            "etc/passwd",
            tarfile.REGTYPE,
            0o644,
            b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
        )
        add("etc/group", tarfile.REGTYPE, 0o644, b"root:x:0:\nnogroup:x:65534:\n")
    return buffer.getvalue()


def build_busybox_static(entry: CatalogImage, out: TextIO) -> None:
    """Import Debian's static busybox as ``entry.name``.

    Raises:
        NotSupported: no static busybox on this machine.
        LabkitError: the daemon refused the import.
    """
    busybox = find_static_busybox()
    _import(entry, busybox_rootfs(busybox, busybox_applets(busybox)))


# --- dockerfile -------------------------------------------------------------------


def context_tar(folder: Path) -> bytes:
    """A build context as a tar, with modes set here rather than taken from the disk.

    A packaged file can lose its exec bit (wheels, zips, Windows checkouts), so a
    file starting with ``#!`` is 0755 and every other file 0644, owned by root.
    Setting modes here also spares the Dockerfiles a ``RUN chmod``, whose extra
    stage would leave an untagged image in ``docker images``.
    """
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            data = path.read_bytes()
            info = tarfile.TarInfo(path.relative_to(folder).as_posix())
            info.size, info.mtime = len(data), int(path.stat().st_mtime)
            info.mode = 0o755 if data.startswith(b"#!") else 0o644
            tar.addfile(info, io.BytesIO(data))
    buffer.seek(0)
    return buffer.getvalue()


def build_dockerfile(entry: CatalogImage, out: TextIO) -> None:
    """``docker build`` the entry's context, with the catalog's labels and without pulling.

    Raises:
        LabkitError: the context is missing or the build failed (with the build's last lines).
    """
    context = entry.context_dir
    if not (context / "Dockerfile").is_file():
        raise LabkitError(
            _("no Dockerfile for {name} in {context}").format(name=entry.name, context=context),
            _("reinstall labkit: its image contexts are missing"),
        )
    api = engine.client().api
    steps = BuildSteps()
    with (
        activity.task(_("building {name}").format(name=entry.name), unit="steps", out=out) as progress,
        engine.converted(),
    ):
        stream = api.build(
            fileobj=io.BytesIO(context_tar(context)),
            custom_context=True,
            tag=entry.name,
            labels=entry.labels(),
            pull=False,
            rm=True,
            forcerm=True,
            decode=True,
        )
        for event in stream:
            if steps.feed(event):
                progress.update(steps.step, total=steps.steps, note=steps.instruction)
    if steps.error is not None or steps.image_id is None:
        tail = " | ".join(steps.log[-3:])
        reason = steps.error or "the daemon did not report an image"
        raise LabkitError(
            f"building {entry.name} failed: {reason}" + (f" ({tail})" if tail else ""),
            _("run `labkit doctor`; the images it is built FROM must be present"),
        )


def relabelled_dockerfile(base: str, labels: Mapping[str, str]) -> str:
    """The Dockerfile of :func:`build_relabelled`: ``FROM`` and one ``LABEL`` step (so no intermediate image).

    Example:
        >>> relabelled_dockerfile("busybox", {"labkit.lesson": "02", "labkit.copy": "1"})
        'FROM busybox\\nLABEL "labkit.lesson"="02" "labkit.copy"="1"\\n'
    """
    pairs = " ".join(f"{json.dumps(key)}={json.dumps(value)}" for key, value in labels.items())
    return f"FROM {base}\nLABEL {pairs}\n"


def build_relabelled(base: str, labels: Mapping[str, str], tag: str | None = None) -> str:
    """A new image that is ``base`` with ``labels`` added: same layers, its own ID.

    Exercises make their starting images with it (an image to find in ``docker image
    ls``, one to pull back, dangling ones to prune) without a network or a layer of their
    own. Without ``tag`` the image has no name: a dangling image, as ``docker image
    prune`` sees it. Different labels give different image IDs. ``labkit.owner`` is left
    out (:func:`labkit.core.engine.unowned`): containers made from the image would inherit it.

    Returns:
        The new image's ID (``sha256:…``).

    Raises:
        ImageMissing: ``base`` is not on the daemon.
        LabkitError: the build failed (with the build's last lines).
    """
    api = engine.client().api
    steps = BuildSteps()
    with engine.converted(base):
        stream = api.build(
            fileobj=io.BytesIO(relabelled_dockerfile(base, engine.unowned(dict(labels))).encode()),
            tag=tag,
            pull=False,
            rm=True,
            forcerm=True,
            decode=True,
        )
        for event in stream:
            steps.feed(event)
        if steps.error is not None or steps.image_id is None:
            reason = steps.error or "the daemon did not report an image"
            raise LabkitError(
                _("making an image from {base} failed: {reason}").format(base=base, reason=reason),
                _("run `labkit doctor`; `labkit images ensure` makes it"),
            )
        return str(engine.client().images.get(steps.image_id).id)


def build_debootstrap(entry: CatalogImage, out: TextIO) -> None:
    """A minimal Debian (the suite is the tag) made with debootstrap, imported as ``entry.name``.

    Raises:
        NotSupported: not root, no debootstrap, or no Debian mirror in the apt sources.
        CommandFailed: debootstrap failed (its log is kept in the state folder).
        WaitTimeout: it ran past :data:`~labkit.images.debootstrap.DEBOOTSTRAP_TIMEOUT`.
    """
    with debootstrap.rootfs_tar(entry.tag, entry.name, out) as (tar_path, progress):
        progress.show("importing into Docker")
        _import(entry, str(tar_path))


BUILDERS: dict[str, Callable[[CatalogImage, TextIO], None]] = {
    "busybox-static": build_busybox_static,
    "dockerfile": build_dockerfile,
    "debootstrap": build_debootstrap,
}


def build(entry: CatalogImage, out: TextIO) -> None:
    """Make ``entry`` from local materials.

    Raises:
        NotSupported: this machine lacks what that way of building needs.
        LabkitError: the build failed.
    """
    BUILDERS[entry.build](entry, out)
