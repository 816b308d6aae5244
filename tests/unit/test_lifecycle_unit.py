"""Lesson 06's pure readers: timestamps, the latest run in a log, and the containers' scripts."""

from __future__ import annotations

import pytest

from labkit.core import fmt
from labkit.exercises import _lesson06_containers as present
from labkit.exercises import _lesson06_history as past
from labkit.exercises import lesson06_stop_kill_start as lifecycle


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("1970-01-01T00:01:40Z", 100.0),
        ("1970-01-01T00:01:40.123456789Z", 100.123456),
        ("1970-01-01T01:01:40.5+01:00", 100.5),
    ],
)
def test_timestamp_reads_docker_times_to_the_microsecond(text: str, seconds: float) -> None:
    assert fmt.timestamp(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["0001-01-01T00:00:00Z", "", None])
def test_timestamp_of_never_is_none(text: str | None) -> None:
    assert fmt.timestamp(text) is None


def test_last_run_is_what_follows_the_last_ready_line() -> None:
    log = ["x: ready", "x: got SIGTERM", "x: ready", "noise", "x: ready"]
    assert past.last_run(log, "x: ready") == []
    assert past.last_run(log[:4], "x: ready") == ["noise"]
    assert past.last_run(["before any start"], "x: ready") == ["before any start"]


def test_signal_script_logs_ready_after_its_trap_and_exits_143() -> None:
    script = present.signal_script("graceful")
    assert script.index("trap ") < script.index("graceful: ready")
    assert "exit 143" in script and "graceful: got SIGTERM" in script
    assert lifecycle.GRACEFUL_TERM in script and lifecycle.GRACEFUL_READY in script
