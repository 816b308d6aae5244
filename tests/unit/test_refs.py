"""The one image-reference parser (labkit.core.refs): Docker's rules, tricky names included."""

from __future__ import annotations

import pytest

from labkit.core import refs
from labkit.core.errors import InvalidReference
from labkit.features.registry import api as registry_api

HEX = "a" * 64


@pytest.mark.parametrize(
    ("ref", "parts"),
    [
        ("busybox", ("docker.io", "library/busybox", "latest", "")),
        ("library/busybox", ("docker.io", "library/busybox", "latest", "")),
        ("docker.io/library/busybox:1.36", ("docker.io", "library/busybox", "1.36", "")),
        ("docker.io/busybox", ("docker.io", "library/busybox", "latest", "")),
        ("index.docker.io/labkit/hello-dock:v2", ("docker.io", "labkit/hello-dock", "v2", "")),
        ("labkit/hello-dock", ("docker.io", "labkit/hello-dock", "latest", "")),
        # a port is not a tag: the first ":" is before the last "/"
        ("localhost:5000/lab/hello-dock", ("localhost:5000", "lab/hello-dock", "latest", "")),
        ("localhost:5000/lab/hello-dock:v1", ("localhost:5000", "lab/hello-dock", "v1", "")),
        ("localhost/app", ("localhost", "app", "latest", "")),
        ("127.0.0.1:5000/x", ("127.0.0.1:5000", "x", "latest", "")),
        ("quay.io/org/app@sha256:" + HEX, ("quay.io", "org/app", "", "sha256:" + HEX)),
        ("busybox:1.36@sha256:" + HEX, ("docker.io", "library/busybox", "1.36", "sha256:" + HEX)),
        ("my_app__x-y/b.c", ("docker.io", "my_app__x-y/b.c", "latest", "")),
        ("  busybox \n", ("docker.io", "library/busybox", "latest", "")),
    ],
)
def test_parse(ref: str, parts: tuple[str, str, str, str]) -> None:
    r = refs.parse(ref)
    assert (r.registry, r.repository, r.tag, r.digest) == parts


@pytest.mark.parametrize(
    "ref",
    [
        "Busybox",
        "lab/Hello",
        "",
        "a//b",
        "busybox:",
        "busybox:-x",
        "busybox@sha256:short",
        "-x",
        "x/",
        HEX,
        "bad host!/x",
    ],
)
def test_names_docker_refuses_are_refused(ref: str) -> None:
    with pytest.raises(InvalidReference):
        refs.parse(ref)


@pytest.mark.parametrize(
    ("ref", "familiar"),
    [
        ("hello-world", "hello-world:latest"),
        ("docker.io/library/hello-world:latest", "hello-world:latest"),
        ("index.docker.io/library/hello-world", "hello-world:latest"),
        ("library/busybox", "busybox:latest"),
        ("labkit/hello-dock", "labkit/hello-dock:latest"),
        ("localhost:5000/lab/hello-dock:v1", "localhost:5000/lab/hello-dock:v1"),
        ("localhost:5000/lab/x", "localhost:5000/lab/x:latest"),
        ("busybox@sha256:" + HEX, "busybox@sha256:" + HEX),
        ("busybox:1.36@sha256:" + HEX, "busybox:1.36@sha256:" + HEX),
        # what a container's Config.Image holds when it was created by image ID
        ("sha256:" + HEX, "sha256:" + HEX),
        ("3f57d9401f8d", "3f57d9401f8d:latest"),
        # not a name: compared as written
        (HEX, HEX),
        ("Busybox", "Busybox"),
    ],
)
def test_normalize(ref: str, familiar: str) -> None:
    assert refs.normalize(ref) == familiar


def test_short_name_and_familiar_name() -> None:
    r = refs.parse("localhost:5000/lab/hello-dock:v1")
    assert (r.short_name, r.familiar_name) == ("hello-dock", "localhost:5000/lab/hello-dock")
    assert refs.parse("busybox").familiar_name == "busybox"


def test_the_registry_lesson_calls_the_same_parser() -> None:
    # notebook 03 prints registry_api.parse_reference(...): the repr is what it shows
    assert registry_api.parse_reference is refs.parse
    assert (
        repr(registry_api.parse_reference("busybox"))
        == "Reference(registry='docker.io', repository='library/busybox', tag='latest', digest='')"
    )
