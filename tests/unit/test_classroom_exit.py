"""The exit-time flush to the classroom adds at most half a second (issue 12), whatever the server does."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from labkit.classroom import client
from labkit.core.paths import REPO_DIR

#: Queues one event as a `labkit check` would, prints when it is done, and exits (the atexit flush runs then).
_SUBMIT = """
import time
from labkit.classroom import client
client.submit({"id": "exit-test-1", "kind": "hint"})
print(time.time(), flush=True)
"""


@pytest.fixture
def hanging_server() -> Iterator[str]:
    """A server that accepts connections (the kernel's backlog does) and never answers."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(16)
        yield f"http://127.0.0.1:{server.getsockname()[1]}"


def _join(state: Path, url: str) -> None:
    state.mkdir(parents=True, exist_ok=True)
    (state / "classroom.json").write_text(json.dumps({"url": url, "token": "t", "learner": "ada", "key": "k"}))


def test_exit_waits_at_most_the_deadline(tmp_path: Path, hanging_server: str) -> None:
    state = tmp_path / "state"
    _join(state, hanging_server)
    env = dict(os.environ, LABKIT_STATE_DIR=str(state), PYTHONPATH=str(REPO_DIR))
    done = subprocess.run(
        [sys.executable, "-c", _SUBMIT], env=env, capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    ended = time.time()
    assert done.returncode == 0, done.stderr
    exit_took = ended - float(done.stdout.split()[0])
    assert exit_took < client.EXIT_FLUSH_DEADLINE + 0.4, f"exit took {exit_took:.2f} s"  # it was 2.3 s
    assert client.queue_path().name in {p.name for p in state.iterdir()}  # the event stays queued


def test_the_at_exit_flush_gives_up_at_the_deadline(monkeypatch: pytest.MonkeyPatch) -> None:
    """A sender stuck on the lock or the network: _at_exit returns on time all the same."""
    monkeypatch.setattr(client, "_last_failure", None)
    monkeypatch.setattr(client, "queued", lambda: 1)
    monkeypatch.setattr(client, "flush", lambda timeout=10.0: time.sleep(5))
    started = time.monotonic()
    client._at_exit()
    assert time.monotonic() - started < client.EXIT_FLUSH_DEADLINE + 0.2
