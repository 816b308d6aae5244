"""``make bench``'s classroom part, run for real and short: 10 learners for 3 s against a real server, and a kill -9.

``python -m labkit.bench --classroom-only`` is run as ``make bench`` runs it, with ``DOCKER_HOST`` pointing
nowhere: the classroom figures need no Docker. Its last line is the JSON that CI reads.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_a_short_classroom_bench_loses_nothing_across_a_kill_9(tmp_path: Path) -> None:
    env = {**os.environ, "DOCKER_HOST": f"unix://{tmp_path}/no-docker.sock"}
    args = ["--classroom-only", "--classroom-seconds", "3", "--classroom-learners", "10", "--seed", "1"]
    done = subprocess.run(
        [sys.executable, "-m", "labkit.bench", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=180
    )
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    figures = json.loads(lines[-1])
    assert figures["classroom_events_lost_after_kill9"] == 0
    assert figures["classroom_rps"] > 0 and figures["classroom_post_p95_ms"] > 0
    assert figures["classroom_learners"] == 10 and 3 <= figures["classroom_seconds"] < 5
    # Both phases acknowledged events, and the kill caught posts in flight.
    assert figures["classroom_events_acked"] > figures["classroom_rps"] * 3 * 0.9
    assert figures["classroom_kill9_in_flight"] > 0
    assert figures["classroom_stream_results"] > 0
    assert figures["overhead_ratio_sh"] is None  # the Docker part did not run
    assert any("0 missing from the database ✔" in line for line in lines), done.stdout
