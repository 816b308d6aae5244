"""make lab's workspace: copies lessons out of the checkout, never overwrites a learner's work."""

from __future__ import annotations

import socket
from pathlib import Path

from labkit.lab import AVOID_PORTS, free_port, sync_workspace


def test_copies_missing_lessons_and_keeps_edited_ones(tmp_path: Path) -> None:
    source, workspace = tmp_path / "src", tmp_path / "work"
    source.mkdir()
    (source / "00-a.ipynb").write_text("fresh a")
    (source / "01-b.ipynb").write_text("fresh b")
    (source / "notes.txt").write_text("not a lesson")
    workspace.mkdir()
    (workspace / "00-a.ipynb").write_text("my edits")
    copied, kept = sync_workspace(source, workspace)
    assert copied == ["01-b.ipynb"] and kept == ["00-a.ipynb"]
    assert (workspace / "00-a.ipynb").read_text() == "my edits"
    assert (workspace / "01-b.ipynb").read_text() == "fresh b"
    assert not (workspace / "notes.txt").exists()


def test_port_skips_busy_and_lesson_ports() -> None:
    assert free_port(8080) not in AVOID_PORTS
    assert free_port(8888) != 8888
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen(1)
        busy = held.getsockname()[1]
        assert free_port(busy) != busy
