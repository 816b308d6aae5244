"""registry_api and lesson 03's verdicts without a daemon: headers, digests, near-miss classification.

The HTTP tests talk to a tiny real HTTP server in a thread that answers like a
registry and records what it was asked; nothing is mocked.
"""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from typing import ClassVar

import pytest

from labkit.exercises import lesson03_registries as registries
from labkit.exercises._lesson03_verdicts import (
    DigestFacts,
    PushFacts,
    digest_verdict,
    push_verdict,
)
from labkit.features.registry import api as registry_api

MANIFEST = json.dumps(
    {
        "schemaVersion": 2,
        "mediaType": registry_api.DOCKER_MANIFEST,
        "config": {
            "mediaType": "application/vnd.docker.container.image.v1+json",
            "size": 966,
            "digest": "sha256:" + "c" * 64,
        },
        "layers": [
            {
                "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
                "size": 1068607,
                "digest": "sha256:" + "1" * 64,
            },
            {
                "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
                "size": 210,
                "digest": "sha256:" + "2" * 64,
            },
        ],
    },
    indent=3,
).encode()


class FakeRegistry(http.server.BaseHTTPRequestHandler):
    """Answers like distribution 2.8 for one repository, ``lab/x``, and records request headers."""

    seen: ClassVar[list[dict[str, str]]] = []

    def log_message(self, *args: object) -> None:  # keep pytest's output clean
        pass

    def _answer(self, status: int, body: bytes, content_type: str, extra: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Docker-Distribution-Api-Version", "registry/2.0")
        for key, value in (extra or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _route(self) -> None:
        FakeRegistry.seen.append({"method": self.command, "path": self.path, "accept": self.headers.get("Accept", "")})
        if self.path == "/v2/lab/x/manifests/v1":
            if registry_api.DOCKER_MANIFEST in self.headers.get("Accept", ""):
                self._answer(
                    200,
                    MANIFEST,
                    registry_api.DOCKER_MANIFEST,
                    {"Docker-Content-Digest": registry_api.digest_of(MANIFEST)},
                )
            else:  # what a 2.x registry does for an old client: convert to schema 1
                old = json.dumps(
                    {
                        "schemaVersion": 1,
                        "fsLayers": [{"blobSum": "sha256:" + "2" * 64}, {"blobSum": "sha256:" + "1" * 64}],
                    }
                ).encode()
                self._answer(200, old, registry_api.SCHEMA1, {"Docker-Content-Digest": "sha256:" + "5" * 64})
        elif self.path == "/v2/lab/x/tags/list":
            self._answer(200, b'{"name":"lab/x","tags":["v1","v0"]}', "application/json")
        elif self.path == "/v2/lab/x/blobs/sha256:" + "1" * 64:
            self._answer(
                200,
                b"x" * 1068607 if self.command == "GET" else b"",
                "application/octet-stream",
                {"Docker-Content-Digest": "sha256:" + "1" * 64},
            )
        else:
            body = b'{"errors":[{"code":"NAME_UNKNOWN","message":"repository name not known to registry"}]}'
            self._answer(404, body, "application/json")

    def do_GET(self) -> None:
        self._route()

    def do_HEAD(self) -> None:
        if self.path.startswith("/v2/lab/x/blobs/"):
            FakeRegistry.seen.append({"method": "HEAD", "path": self.path, "accept": ""})
            ok = self.path.endswith("1" * 64)
            self.send_response(200 if ok else 404)
            self.send_header("Content-Length", "1068607" if ok else "0")
            self.send_header("Content-Type", "application/octet-stream")
            self.end_headers()
            return
        self._route()


@pytest.fixture
def fake() -> Iterator[str]:
    FakeRegistry.seen = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), FakeRegistry)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_manifest_requests_send_every_modern_media_type(fake: str) -> None:
    m = registry_api.manifest("lab/x", "v1", base=fake)
    accept = FakeRegistry.seen[-1]["accept"].split(", ")
    assert accept == list(registry_api.ACCEPT)
    assert {
        registry_api.DOCKER_MANIFEST,
        registry_api.DOCKER_MANIFEST_LIST,
        registry_api.OCI_MANIFEST,
        registry_api.OCI_INDEX,
    } == set(accept)
    assert m.media_type == registry_api.DOCKER_MANIFEST and m.verified and m.size == len(MANIFEST)
    assert m.config is not None and m.config.digest == "sha256:" + "c" * 64
    assert [layer.size for layer in m.layers] == [1068607, 210]


def test_without_accept_the_registry_answers_schema_1(fake: str) -> None:
    old = registry_api.manifest("lab/x", "v1", base=fake, accept=())
    assert FakeRegistry.seen[-1]["accept"] == ""
    assert old.media_type == registry_api.SCHEMA1 and old.config is None
    assert [layer.digest for layer in old.layers] == ["sha256:" + "1" * 64, "sha256:" + "2" * 64]  # base layer first
    assert not old.verified  # a signed schema 1 manifest's digest is not the sha256 of what was sent


def test_tags_blobs_and_unknown_names(fake: str) -> None:
    assert registry_api.tags("lab/x", base=fake) == ["v0", "v1"]
    assert registry_api.tags("lab/nothing", base=fake) == []
    assert registry_api.find_manifest("lab/nothing", "v1", base=fake) is None
    with pytest.raises(registry_api.RegistryRefused, match="404 NAME_UNKNOWN"):
        registry_api.manifest("lab/nothing", "v1", base=fake)
    blob = registry_api.blob("lab/x", "sha256:" + "1" * 64, base=fake)
    assert blob is not None and blob.size == 1068607
    assert registry_api.blob("lab/x", "sha256:" + "9" * 64, base=fake) is None
    assert registry_api.manifest_digest("lab/x", "v1", base=fake) == registry_api.digest_of(MANIFEST)


def test_nothing_listening_is_a_labkit_error() -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound but not listening: connections are refused
        with pytest.raises(registry_api.RegistryUnreachable, match="labkit registry up"):
            registry_api.tags("lab/x", base=f"http://127.0.0.1:{port}")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("sha256:" + "ab" * 32, "sha256:" + "ab" * 32),
        ("  SHA256:" + "AB" * 32 + "\n", "sha256:" + "ab" * 32),
        ("'sha256:" + "ab" * 32 + "'", "sha256:" + "ab" * 32),
        ("ab" * 32, None),
        ("sha256:" + "ab" * 6, None),
        ("sha512:" + "ab" * 32, None),
        ("sha256:" + "xy" * 32, None),
        ("", None),
        (None, None),
    ],
)
def test_normalize_digest(text: str | None, expected: str | None) -> None:
    assert registry_api.normalize_digest(text) == expected


# --- near-miss classification -----------------------------------------------------------------

SOURCE = "sha256:" + "c" * 64
GOOD = "sha256:" + "d" * 64


@pytest.mark.parametrize(
    ("facts", "passes", "needle"),
    [
        (
            PushFacts(SOURCE, remote_config=SOURCE, remote_digest=GOOD, repo_digests=(GOOD,)),
            True,
            "it is labkit/hello-dock",
        ),
        (PushFacts(SOURCE, remote_config=SOURCE, remote_digest=GOOD), True, "it is labkit/hello-dock"),
        (
            PushFacts(SOURCE, remote_config=SOURCE, remote_digest=GOOD, repo_digests=("sha256:" + "e" * 64,)),
            False,
            "not the manifest your daemon pushed",
        ),
        (
            PushFacts(SOURCE, remote_config="sha256:" + "f" * 64, remote_names="busybox:latest"),
            False,
            "holds busybox:latest",
        ),
        (PushFacts(SOURCE, remote_config=""), False, "multi-platform index"),
        (PushFacts(SOURCE, local_tag_id=SOURCE), False, "tagged, not pushed"),
        (PushFacts(SOURCE, local_tag_id="sha256:" + "f" * 64), False, "names another image"),
        (PushFacts(SOURCE, other_tags=("latest",)), False, "under :latest"),
        (PushFacts(SOURCE, elsewhere=("lab/web:v1",)), False, "as lab/web:v1"),
        (
            PushFacts(SOURCE, other_local_names=("localhost:5000/hello-dock:v1",)),
            False,
            "is tagged localhost:5000/hello-dock:v1",
        ),
        (PushFacts(SOURCE), False, "no lab/hello-dock:v1 yet"),
    ],
)
def test_push_verdicts(facts: PushFacts, passes: bool, needle: str) -> None:
    verdict = push_verdict(facts)
    assert verdict.passed is passes
    assert needle in verdict.message
    if not passes:
        assert verdict.hint


def test_push_near_misses_have_distinct_hints() -> None:
    cases = [
        PushFacts(SOURCE, remote_config="sha256:" + "f" * 64),
        PushFacts(SOURCE, local_tag_id=SOURCE),
        PushFacts(SOURCE, other_tags=("v2",)),
        PushFacts(SOURCE, elsewhere=("lab/web:v1",)),
        PushFacts(SOURCE),
    ]
    hints = [push_verdict(f).hint for f in cases]
    assert len(set(hints)) == len(hints)
    assert "docker uses :latest" not in (push_verdict(PushFacts(SOURCE, other_tags=("v2",))).hint or "")


FACTS = DigestFacts(
    manifest=GOOD,
    config=SOURCE,
    layers=frozenset({"sha256:" + "1" * 64, "sha256:" + "2" * 64}),
    schema1="sha256:" + "5" * 64,
    seeded="sha256:" + "6" * 64,
    others={"sha256:" + "7" * 64: "hello-world"},
)


@pytest.mark.parametrize(
    ("answer", "passes", "needle"),
    [
        (GOOD, True, "is the digest of the manifest"),
        (f"  {GOOD.upper()}\n", True, "is the digest of the manifest"),
        (f'"{GOOD}"', True, "is the digest of the manifest"),
        ("d" * 64, False, "names its algorithm"),
        ("sha256:" + "d" * 12, False, "12 of its 64"),
        ("d" * 12, False, "12 of its 64"),
        ("not a digest", False, "That is not a digest"),
        (SOURCE, False, "image ID"),
        ("sha256:" + "2" * 64, False, "one of the image's layers"),
        ("sha256:" + "5" * 64, False, "schema 1"),
        ("sha256:" + "6" * 64, False, "labkit/hello-dock:latest"),
        ("sha256:" + "7" * 64, False, "another image: hello-world"),
        ("sha256:" + "8" * 64, False, "well-formed digest, but not"),
    ],
)
def test_digest_verdicts(answer: str, passes: bool, needle: str) -> None:
    verdict = digest_verdict(answer, FACTS)
    assert verdict.passed is passes, verdict
    assert needle in verdict.message
    if not passes:
        assert verdict.hint and GOOD not in verdict.message + verdict.hint  # a hint never gives the answer away


def test_names_and_namespace() -> None:
    assert registries.TARGET == "localhost:5000/lab/hello-dock:v1"
    assert registries.PUSH.names == (registries.DEMO_CONTAINER,)
    assert registries.DIGEST.is_answer and not registries.PUSH.is_answer
    assert len(registries.PUSH.hints) >= 2 and len(registries.DIGEST.hints) >= 2
