"""Reading an image archive from disk, without the daemon (lesson 10's exercises use it).

``docker save`` writes a tar holding ``manifest.json`` (which config and which layer
files make each image, and its tags), the image's config (with its history) and one
tar per layer. Docker 20.10 writes the *legacy* layout (``<id>/layer.tar``,
``<config id>.json``, ``repositories``); Docker 25 and later write an *OCI* layout
(``oci-layout``, ``index.json``, ``blobs/sha256/…``) that still carries a
``manifest.json``. ``docker export`` writes something else entirely: a container's
files, one tar, no manifest.

:func:`read_archive` says which of these a file is, and for a save archive lists
each image with its tags, the diff ids its config promises, and the digest of each
layer file actually present, so a truncated or edited archive shows. Nothing here
talks to Docker; comparing with the daemon is the check's job.

Example:
    >>> read_archive("/no/such/file.tar").kind
    'missing'
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import re
import tarfile
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Literal

from labkit.core.refs import normalize

Kind = Literal["missing", "directory", "empty", "not-tar", "truncated", "export", "other-tar", "save"]

#: Top-level folders every container's root filesystem has: three of them in a tar without a
#: manifest mean ``docker export`` output (which also holds ``.dockerenv``).
_ROOT_DIRS = frozenset({"bin", "dev", "etc", "proc", "sys", "usr", "var", "tmp", "root", "lib", "sbin"})
_LEGACY_MEMBER = re.compile(r"^[0-9a-f]{64}(?:/(?:layer\.tar|json|VERSION))?$|^[0-9a-f]{64}\.json$")
_CHUNK = 1024 * 1024
# Errors reading a damaged or cut-short archive: tarfile's own, and the decompressors' beneath it.
_DAMAGED = (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile, OSError)


@dataclass(frozen=True)
class SavedImage:
    """One image in a save archive, as its manifest, config and layer files describe it.

    Attributes:
        image_id: ``sha256:`` of the config file: the image id ``docker load`` gives it.
        tags: the names it is saved under, normalized (``busybox:latest``); empty when saved by id.
        diff_ids: the layers its config lists (``rootfs.diff_ids``), oldest first.
        layers: the layer files the manifest lists, in the same order.
        digests: the ``sha256:`` of each layer file's uncompressed content; ``None`` where the file
            is missing or cut short.
        cmd: the ``Cmd`` in its config, or ``None``.
        history: how many history entries its config holds.
    """

    image_id: str
    tags: tuple[str, ...]
    diff_ids: tuple[str, ...]
    layers: tuple[str, ...]
    digests: tuple[str | None, ...]
    cmd: tuple[str, ...] | None = None
    history: int = 0

    @property
    def missing(self) -> tuple[int, ...]:
        """Positions (0 = oldest) of layers the manifest lists but the archive lacks or cuts short."""
        return tuple(i for i, d in enumerate(self.digests) if d is None)

    @property
    def damaged(self) -> tuple[int, ...]:
        """Positions of layers present whose content does not match the diff id the config promises."""
        return tuple(
            i
            for i, d in enumerate(self.digests)
            if d is not None and (i >= len(self.diff_ids) or d != self.diff_ids[i])
        )

    @property
    def complete(self) -> bool:
        """Every layer is there, whole, and as many as the config lists."""
        return not self.missing and not self.damaged and len(self.digests) == len(self.diff_ids)


@dataclass(frozen=True)
class Archive:
    """What a file turned out to be.

    Attributes:
        path: the file read.
        kind: ``missing``, ``directory``, ``empty``, ``not-tar``, ``truncated`` (a save
            archive cut short), ``export`` (a container's filesystem), ``other-tar`` or ``save``.
        layout: for ``save``: ``legacy`` (Docker up to 24) or ``oci``.
        images: for ``save``: the images it holds.
        compression: ``gzip`` (or another) when the tar is compressed, else ``None``.
        top_level: the first few top-level names in the tar, for messages.
        detail: what went wrong reading it, for ``not-tar`` and ``truncated``.
        size: the file's size in bytes.
    """

    path: Path
    kind: Kind
    layout: str = ""
    images: tuple[SavedImage, ...] = ()
    compression: str | None = None
    top_level: tuple[str, ...] = ()
    detail: str = ""
    size: int = 0

    def find(self, ref: str) -> SavedImage | None:
        """The image saved under ``ref`` (any spelling: ``labkit/hello-dock`` = ``…:latest``)."""
        wanted = normalize(ref)
        return next((image for image in self.images if wanted in image.tags), None)

    def by_id(self, image_id: str) -> SavedImage | None:
        """The image with this id, whatever it was saved as."""
        return next((image for image in self.images if image.image_id == image_id), None)


def _compression(path: Path) -> str | None:
    with open(path, "rb") as f:
        magic = f.read(6)
    if magic.startswith(b"\x1f\x8b"):
        return "gzip"
    if magic.startswith(b"BZh"):
        return "bzip2"
    if magic.startswith(b"\xfd7zXZ\x00"):
        return "xz"
    return None


def _digest(stream: IO[bytes]) -> str:
    """``sha256:`` of a layer's uncompressed content: its diff id (OCI blobs may be gzipped)."""
    head = stream.read(2)
    source: IO[bytes] = stream
    h = hashlib.sha256()
    if head == b"\x1f\x8b":
        source = gzip.GzipFile(fileobj=_Prefixed(head, stream))  # type: ignore[assignment]
    else:
        h.update(head)
    while chunk := source.read(_CHUNK):
        h.update(chunk)
    return f"sha256:{h.hexdigest()}"


class _Prefixed(io.RawIOBase):
    """A stream with bytes already read put back in front (to sniff gzip's magic)."""

    def __init__(self, head: bytes, rest: IO[bytes]) -> None:
        self._head, self._rest = head, rest

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self._head:
            n = min(len(buffer), len(self._head))
            buffer[:n], self._head = self._head[:n], self._head[n:]
            return n
        data = self._rest.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def _json(tar: tarfile.TarFile, members: Mapping[str, tarfile.TarInfo], name: str) -> Any:
    member = members.get(name)
    handle = tar.extractfile(member) if member is not None else None
    if handle is None:
        return None
    try:
        return json.loads(handle.read())
    except ValueError:
        return None


def _blob(digest: str) -> str:
    algorithm, _, hexdigest = digest.partition(":")
    return f"blobs/{algorithm}/{hexdigest}"


def _image(
    tar: tarfile.TarFile,
    members: Mapping[str, tarfile.TarInfo],
    config_name: str,
    tags: Iterable[str],
    layers: list[str],
) -> SavedImage:
    """One image from its config file name, its tags and its layer files.

    Raises:
        tarfile.TarError: the archive ends inside one of its files.
    """
    member = members.get(config_name)
    raw = tar.extractfile(member).read() if member is not None else b""  # type: ignore[union-attr]
    try:
        config = json.loads(raw) if raw else {}
    except ValueError:
        config = {}
    digests: list[str | None] = []
    for name in layers:
        layer = members.get(name)
        handle = tar.extractfile(layer) if layer is not None else None
        if handle is None:
            digests.append(None)
            continue
        try:
            digests.append(_digest(handle))
        except _DAMAGED:
            digests.append(None)  # the file is listed but the archive ends inside it
    cmd = (config.get("config") or {}).get("Cmd")
    return SavedImage(
        image_id=f"sha256:{hashlib.sha256(raw).hexdigest()}" if raw else "",
        tags=tuple(normalize(t) for t in tags or () if t),
        diff_ids=tuple((config.get("rootfs") or {}).get("diff_ids") or ()),
        layers=tuple(layers),
        digests=tuple(digests),
        cmd=tuple(cmd) if isinstance(cmd, list) else None,
        history=len(config.get("history") or ()),
    )


def _from_manifest(
    tar: tarfile.TarFile, members: Mapping[str, tarfile.TarInfo], manifest: Any
) -> tuple[SavedImage, ...]:
    images = []
    for entry in manifest if isinstance(manifest, list) else []:
        if isinstance(entry, dict) and isinstance(entry.get("Config"), str):
            images.append(
                _image(tar, members, entry["Config"], entry.get("RepoTags") or (), list(entry.get("Layers") or ()))
            )
    return tuple(images)


def _oci_tags(annotations: Mapping[str, str]) -> list[str]:
    # containerd and Docker 25+ put the full name here; plain OCI tools only the tag in ref.name.
    full = annotations.get("io.containerd.image.name")
    return [full] if full else []


def _from_index(
    tar: tarfile.TarFile, members: Mapping[str, tarfile.TarInfo], index: Any, tags: list[str] | None = None
) -> list[SavedImage]:
    images: list[SavedImage] = []
    for descriptor in (index or {}).get("manifests") or ():
        if not isinstance(descriptor, dict) or "digest" not in descriptor:
            continue
        names = tags if tags is not None else _oci_tags(descriptor.get("annotations") or {})
        target = _json(tar, members, _blob(descriptor["digest"]))
        if not isinstance(target, dict):
            continue
        if "manifests" in target:  # an index inside the index (one entry per platform)
            images.extend(_from_index(tar, members, target, names))
        elif isinstance(target.get("config"), dict):
            layers = [_blob(layer["digest"]) for layer in target.get("layers") or () if "digest" in layer]
            images.append(_image(tar, members, _blob(target["config"]["digest"]), names, layers))
    return images


def _classify_plain(names: list[str], top: list[str]) -> Kind:
    """What a tar without a manifest is: cut short (it has layers), a filesystem, or something else."""
    if any(_LEGACY_MEMBER.match(n) for n in names) or "oci-layout" in top or "blobs" in top:
        return "truncated"  # docker save writes the manifest last: layers without it were cut short
    if ".dockerenv" in top or len(_ROOT_DIRS.intersection(top)) >= 3:
        return "export"
    return "other-tar"


def read_archive(path: str | os.PathLike[str]) -> Archive:
    """Read ``path`` and say what it is: a save archive (with its images), an export, or neither.

    Never raises for a bad file: a missing, empty, damaged or foreign file is a ``kind``.

    Example:
        >>> import tempfile
        >>> with tempfile.NamedTemporaryFile(suffix=".tar") as f:
        ...     read_archive(f.name).kind
        'empty'
    """
    file = Path(path).expanduser()
    if not file.exists():
        return Archive(file, "missing")
    if file.is_dir():
        return Archive(file, "directory")
    size = file.stat().st_size
    if size == 0:
        return Archive(file, "empty")
    compression = _compression(file)
    try:
        tar = tarfile.open(file, "r:*")  # noqa: SIM115 - closed by the `with tar:` below
    except _DAMAGED as e:
        kind: Kind = "truncated" if compression else "not-tar"  # a compressed stream cut short does not open
        return Archive(file, kind, compression=compression, detail=str(e), size=size)
    with tar:
        try:
            listed = tar.getmembers()
        except _DAMAGED as e:
            return Archive(file, "truncated", compression=compression, detail=str(e), size=size)
        names = [m.name.removeprefix("./").rstrip("/") or "." for m in listed]
        members = dict(zip(names, listed, strict=True))
        top = sorted({n.split("/", 1)[0] for n in names if n != "."})
        base = {"compression": compression, "top_level": tuple(top[:12]), "size": size}
        try:
            manifest = _json(tar, members, "manifest.json")
            if manifest is not None:
                layout = "oci" if "oci-layout" in members else "legacy"
                return Archive(file, "save", layout, _from_manifest(tar, members, manifest), **base)  # type: ignore[arg-type]
            index = _json(tar, members, "index.json")
            if index is not None and "oci-layout" in members:
                return Archive(file, "save", "oci", tuple(_from_index(tar, members, index)), **base)  # type: ignore[arg-type]
        except _DAMAGED as e:
            return Archive(file, "truncated", detail=str(e), **base)  # type: ignore[arg-type]
        return Archive(file, _classify_plain(names, top), **base)  # type: ignore[arg-type]


def tar_bytes(files: Mapping[str, bytes | None], mtime: float = 0) -> bytes:
    """A small uncompressed tar in memory: ``{name: content}``; ``None`` makes a folder.

    Example:
        >>> len(tar_bytes({"a.txt": b"hi"})) % 512
        0
    """
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.mtime = int(mtime)
            if data is None:
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            else:
                info.size, info.mode = len(data), 0o644
                tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()
