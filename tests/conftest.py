"""Shared fixtures: a real daemon for ``docker`` tests, and a leak check over the whole run."""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Iterator

import pytest

# Tests never touch the learner's own state: answers, registry pid files and setup
# records go to a throwaway folder for the whole run (subprocesses inherit it).
_OWN_STATE = "LABKIT_STATE_DIR" not in os.environ
os.environ.setdefault("LABKIT_STATE_DIR", os.path.join(os.environ.get("TMPDIR", "/tmp"), f"labkit-test-state-{os.getpid()}"))
# One labkit.session for the whole run, notebook kernels included (they inherit the
# environment), so the leak check below looks at this run's resources only.
os.environ.setdefault("LABKIT_SESSION", f"test-{os.getpid()}-{secrets.token_hex(3)}")

_before: set[str] = set()


def _labelled_containers() -> set[str]:
    from labkit import engine

    try:
        label = f"{engine.LABEL_SESSION}={engine.session_id()}"
        return {c.id for c in engine.client().containers.list(all=True, filters={"label": label})}
    except Exception:  # no daemon: the docker fixture reports that as a failure
        return set()


def pytest_sessionstart(session: pytest.Session) -> None:
    _before.update(_labelled_containers())


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Fail the run when it leaves containers labelled with its session behind."""
    leaked = _labelled_containers() - _before
    if leaked:
        from labkit import engine

        names = []
        for container_id in sorted(leaked):
            try:
                c = engine.client().containers.get(container_id)
                names.append(f"{c.name} (lesson {c.labels.get(engine.LABEL_LESSON)})")
                c.remove(force=True)
            except Exception:
                names.append(container_id[:12])
        print(f"\nLEAK: the run left {len(leaked)} labkit-labelled container(s): {', '.join(names)}")
        session.exitstatus = 1
    if _OWN_STATE:
        shutil.rmtree(os.environ["LABKIT_STATE_DIR"], ignore_errors=True)


@pytest.fixture(scope="session")
def docker_client() -> Iterator[object]:
    """The real daemon; a missing daemon fails the test (CI must not skip)."""
    from labkit import engine
    from labkit.errors import DaemonUnavailable

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
        try:
            container.remove(force=True)  # type: ignore[attr-defined]
        except Exception:
            pass
