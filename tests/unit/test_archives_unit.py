"""Reading image archives without a daemon: save layouts (legacy and OCI), exports, and damaged files."""

from __future__ import annotations

import gzip
import hashlib
import json
from pathlib import Path

import pytest

from labkit.exercises._lesson10_archive_reader import read_archive, tar_bytes

LAYERS = [tar_bytes({"bin/": None, "bin/sh": b"#!busybox\n"}), tar_bytes({"www/index.html": b"<h1>hi</h1>\n"})]


def _sha(data: bytes) -> str:
    return f"sha256:{hashlib.sha256(data).hexdigest()}"


def _config(layers: list[bytes]) -> bytes:
    return json.dumps(
        {
            "config": {"Cmd": ["/serve"]},
            "rootfs": {"type": "layers", "diff_ids": [_sha(x) for x in layers]},
            "history": [{}, {}, {}],
        }
    ).encode()


def _legacy(
    tags: list[str] | None, layers: list[bytes] = LAYERS, *, drop: int | None = None, tamper: int | None = None
) -> bytes:
    """A tar laid out as Docker 20.10's `docker save` writes it."""
    config = _config(layers)
    config_name = f"{hashlib.sha256(config).hexdigest()}.json"
    files: dict[str, bytes | None] = {config_name: config}
    names = []
    for i, layer in enumerate(layers):
        folder = hashlib.sha256(f"v1-{i}".encode()).hexdigest()
        names.append(f"{folder}/layer.tar")
        files[f"{folder}/"] = None
        files[f"{folder}/VERSION"] = b"1.0"
        if i != drop:
            files[f"{folder}/layer.tar"] = layer + b"x" if i == tamper else layer
    files["manifest.json"] = json.dumps([{"Config": config_name, "RepoTags": tags, "Layers": names}]).encode()
    return tar_bytes(files)


def _oci(name: str, *, gzip_layers: bool = False) -> bytes:
    """A tar in the OCI image layout, without a manifest.json (as tools other than Docker write it)."""
    files: dict[str, bytes | None] = {"oci-layout": b'{"imageLayoutVersion":"1.0.0"}'}
    config = _config(LAYERS)
    blobs = [gzip.compress(x, mtime=0) if gzip_layers else x for x in LAYERS]
    for blob in [config, *blobs]:
        files[f"blobs/sha256/{hashlib.sha256(blob).hexdigest()}"] = blob
    manifest = json.dumps({"config": {"digest": _sha(config)}, "layers": [{"digest": _sha(b)} for b in blobs]}).encode()
    files[f"blobs/sha256/{hashlib.sha256(manifest).hexdigest()}"] = manifest
    files["index.json"] = json.dumps(
        {"manifests": [{"digest": _sha(manifest), "annotations": {"io.containerd.image.name": name}}]}
    ).encode()
    return tar_bytes(files)


def _write(tmp_path: Path, data: bytes, name: str = "a.tar") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_legacy_save_is_read_whole(tmp_path: Path) -> None:
    archive = read_archive(_write(tmp_path, _legacy(["labkit/hello-dock:latest"])))
    assert (archive.kind, archive.layout) == ("save", "legacy")
    image = archive.find("labkit/hello-dock")
    assert image is not None and image.complete
    assert image.diff_ids == tuple(_sha(x) for x in LAYERS) and image.cmd == ("/serve",) and image.history == 3
    assert archive.by_id(image.image_id) is image


def test_saved_by_id_has_no_tags(tmp_path: Path) -> None:
    archive = read_archive(_write(tmp_path, _legacy(None)))
    assert archive.kind == "save" and archive.images[0].tags == () and archive.find("labkit/hello-dock") is None


def test_missing_and_tampered_layers_show(tmp_path: Path) -> None:
    missing = read_archive(_write(tmp_path, _legacy(["x:1"], drop=1), "m.tar")).images[0]
    assert missing.missing == (1,) and not missing.complete
    tampered = read_archive(_write(tmp_path, _legacy(["x:1"], tamper=0), "t.tar")).images[0]
    assert tampered.damaged == (0,) and not tampered.complete


def test_gzip_compressed_save_is_read(tmp_path: Path) -> None:
    archive = read_archive(_write(tmp_path, gzip.compress(_legacy(["busybox"]))))
    assert archive.kind == "save" and archive.compression == "gzip"
    assert archive.find("busybox:latest") is not None and archive.images[0].complete


@pytest.mark.parametrize("gzip_layers", [False, True])
def test_oci_layout_without_manifest_json(tmp_path: Path, gzip_layers: bool) -> None:
    archive = read_archive(_write(tmp_path, _oci("docker.io/labkit/hello-dock:latest", gzip_layers=gzip_layers)))
    assert (archive.kind, archive.layout) == ("save", "oci")
    image = archive.find("labkit/hello-dock:latest")
    assert image is not None and image.complete, image


def test_export_is_told_apart(tmp_path: Path) -> None:
    data = tar_bytes({".dockerenv": b"", "bin/": None, "etc/": None, "etc/hosts": b"", "www/": None})
    archive = read_archive(_write(tmp_path, data))
    assert archive.kind == "export" and ".dockerenv" in archive.top_level


def test_other_tar(tmp_path: Path) -> None:
    assert read_archive(_write(tmp_path, tar_bytes({"notes.txt": b"hi"}))).kind == "other-tar"


@pytest.mark.parametrize("keep", [0.3, 0.6, 0.9])
def test_cut_short_is_truncated(tmp_path: Path, keep: float) -> None:
    big = [tar_bytes({"big": bytes(range(256)) * 4000}), *LAYERS]
    data = _legacy(["x:1"], big)
    assert read_archive(_write(tmp_path, data[: int(len(data) * keep)])).kind == "truncated"


def test_cut_short_gzip_is_truncated(tmp_path: Path) -> None:
    data = gzip.compress(_legacy(["x:1"], [tar_bytes({"big": bytes(range(256)) * 4000})]))
    assert read_archive(_write(tmp_path, data[: len(data) // 2])).kind == "truncated"


def test_missing_empty_folder_and_not_tar(tmp_path: Path) -> None:
    assert read_archive(tmp_path / "nope.tar").kind == "missing"
    assert read_archive(_write(tmp_path, b"", "empty.tar")).kind == "empty"
    assert read_archive(tmp_path).kind == "directory"
    assert read_archive(_write(tmp_path, b"hello\n" * 200, "text.tar")).kind == "not-tar"
