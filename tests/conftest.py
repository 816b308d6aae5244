"""Fixtures: a real daemon for ``docker`` tests, and containers a test wants removed."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest


@pytest.fixture(scope="session")
def docker_client() -> Iterator[object]:
    """The real daemon; a missing daemon fails the test (CI must not skip)."""
    from labkit.core import engine
    from labkit.core.errors import DaemonUnavailable

    try:
        client = engine.client()
    except DaemonUnavailable as e:
        pytest.fail(f"these tests need a real Docker daemon: {e}")
    yield client


@pytest.fixture
def tracked(docker_client: object) -> Iterator[list[object]]:
    """Containers a test creates; force-removed afterwards whatever happened."""
    created: list[object] = []
    yield created
    for container in created:
        with contextlib.suppress(Exception):
            container.remove(force=True)  # type: ignore[attr-defined]
