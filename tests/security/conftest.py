"""What the attacks in tests/security share: for the classroom's (``test_classroom_*.py``), a real
``labkit classroom serve`` on loopback, and room for a flood's sockets.

The server, learner and event helpers are the integration tests' (``tests/integration/test_classroom.py``):
that folder goes on ``sys.path`` here so both suites start servers the same way.
"""

from __future__ import annotations

import resource
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))

# The classroom's own fixture: a server with the default limits, stopped by pid whatever happens.
from test_classroom import Server, server  # noqa: F401  (importable through the path above; `server` is a fixture)


@pytest.fixture
def many_files() -> Iterator[None]:
    """Room in this process for a thousand and more sockets (the attacker's side of a flood)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 4096 if hard == resource.RLIM_INFINITY else min(4096, hard)
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    if resource.getrlimit(resource.RLIMIT_NOFILE)[0] < 2100:
        pytest.fail(f"this test needs 2100 open files; the hard limit is {hard} (raise it: ulimit -Hn)")
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
