"""labkit.bench's pure parts: percentile math, ratios, round-robin timing, the rendered report, and the classroom
part's learners and stream reader. No daemon, no server."""

from __future__ import annotations

import dataclasses
import itertools
import json
import random
from pathlib import Path

import pytest

from labkit.bench import (
    CLASSROOM_EXTRA,
    CLASSROOM_KEYS,
    REQUIRED_KEYS,
    NotebookRun,
    Report,
    _bench,
    percentile,
    ratio,
    render,
    run_notebooks,
    summary,
    time_checks,
    time_runs,
)
from labkit.bench_classroom import UNLIMITED, ClassroomRun, InstructorStream, Walk
from labkit.core.errors import UsageError
from labkit.exercises.machinery.events import validate_event

EXTRA_KEYS = {
    "raw_median_ms",
    "sh_median_ms",
    "sdk_median_ms",
    "runs",
    "check_samples",
    "notebooks",
    "notebooks_failed",
    *CLASSROOM_EXTRA,
}


def _classroom(post_ms: list[float] | None = None, lost: int = 0, pace: float = 0.0) -> ClassroomRun:
    return ClassroomRun(
        learners=100,
        seconds=20.0,
        pace=pace,
        events_per_minute=UNLIMITED if pace < 1 else 60,
        post_ms=[float(n) for n in range(1, 201)] if post_ms is None else post_ms,  # 200 posts in 20 s
        failed={"429": 2, "connection": 1},
        stored=200,
        stream_results=200,
        stream_reconnects=0,
        stream_behind_s=0.031,
        acked=260,
        lost=lost,
        in_flight_at_kill=97,
        resent=340,
        restart_s=1.234,
    )


def _report(
    notebooks: list[NotebookRun] | None = None, sh_ms: float = 105.0, classroom: ClassroomRun | None = None
) -> Report:
    return Report(
        context={"daemon": "20.10 (API 1.41)", "CPUs": "2"},
        runs={"raw": [100.0, 90.0, 110.0], "sh": [sh_ms] * 3, "sdk": [99.0, 101.0, 100.0]},
        checks_ms=[float(n) for n in range(1, 21)],
        exercise_count=2,
        notebooks=notebooks,
        classroom=classroom,
    )


@pytest.mark.parametrize(
    ("samples", "q", "expected"),
    [
        ([4.0, 1.0, 3.0, 2.0], 50, 2.5),  # even count: halfway between the middle two, order does not matter
        ([5.0, 1.0, 3.0], 50, 3.0),
        ([7.0], 95, 7.0),
        ([float(n) for n in range(1, 21)], 95, 19.05),  # position 19 * 0.95 = 18.05
        ([float(n) for n in range(1, 21)], 0, 1.0),
        ([float(n) for n in range(1, 21)], 100, 20.0),
    ],
)
def test_percentile_on_known_samples(samples: list[float], q: float, expected: float) -> None:
    assert percentile(samples, q) == pytest.approx(expected)


def test_percentile_of_nothing_is_an_error() -> None:
    with pytest.raises(ValueError):
        percentile([], 50)


def test_ratio_is_median_over_median() -> None:
    assert ratio([110.0, 500.0, 100.0], [90.0, 100.0, 1000.0]) == pytest.approx(1.10)


def test_summary_figures_from_known_numbers() -> None:
    figures = summary(_report([NotebookRun("00-a.ipynb", 1.5), NotebookRun("01-b.ipynb", 2.25)]))
    assert figures["overhead_ratio_sh"] == pytest.approx(1.05)
    assert figures["overhead_ratio_sdk"] == pytest.approx(1.0)
    assert figures["check_p50_ms"] == pytest.approx(10.5)
    assert figures["check_p95_ms"] == pytest.approx(19.05)
    assert figures["notebooks_wall_s"] == pytest.approx(3.75)
    assert figures["raw_median_ms"] == 100.0 and figures["runs"] == 3 and figures["check_samples"] == 20


def test_the_json_line_is_last_and_has_exactly_the_documented_keys() -> None:
    lines = render(_report([])).splitlines()
    figures = json.loads(lines[-1])
    assert set(figures) == set(REQUIRED_KEYS) | set(CLASSROOM_KEYS) | EXTRA_KEYS
    assert list(figures)[: len(REQUIRED_KEYS) + len(CLASSROOM_KEYS)] == [*REQUIRED_KEYS, *CLASSROOM_KEYS]
    json_lines = [line for line in lines if line.startswith("{")]
    assert json_lines == [lines[-1]]


def test_targets_are_marked_next_to_the_figures() -> None:
    met = render(_report(sh_ms=105.0)).splitlines()
    missed = render(_report(sh_ms=120.0)).splitlines()
    assert any("labkit.sh" in line and "1.050" in line and "✔" in line for line in met)
    assert any("labkit.sh" in line and "1.200" in line and "✗" in line for line in missed)
    assert any("p95 19.1 ms" in line and "✔" in line for line in met)


def test_no_notebooks_is_zero_seconds_and_said_so() -> None:
    text = render(_report([]))
    assert "no notebooks" in text
    wall = json.loads(text.splitlines()[-1])["notebooks_wall_s"]
    assert wall == 0.0 and isinstance(wall, float)


def test_skipped_notebooks_are_said_to_be_skipped() -> None:
    text = render(_report(None))
    assert "skipped" in text
    assert json.loads(text.splitlines()[-1])["notebooks"] == 0


def test_a_failed_notebook_is_named_on_one_line_with_its_cell_error() -> None:
    run = NotebookRun("00-welcome.ipynb", 1.2, "cell 3 (id ab12): ImportError: no registry")
    lines = render(_report([run])).splitlines()
    failed = [line for line in lines if "FAILED" in line]
    assert len(failed) == 1 and "00-welcome.ipynb" in failed[0] and "ImportError: no registry" in failed[0]
    assert json.loads(lines[-1])["notebooks_failed"] == ["00-welcome.ipynb"]


def test_runs_are_interleaved_shuffled_and_the_warm_up_round_is_dropped() -> None:
    calls: list[str] = []
    ways = {name: (lambda name=name: calls.append(name)) for name in ("raw", "sh", "sdk")}
    samples = time_runs(ways, runs=20, rng=random.Random(7))
    assert {name: len(ms) for name, ms in samples.items()} == {"raw": 20, "sh": 20, "sdk": 20}
    assert all(ms >= 0 for values in samples.values() for ms in values)
    rounds = [tuple(calls[i : i + 3]) for i in range(0, len(calls), 3)]
    assert len(rounds) == 21 and all(sorted(r) == ["raw", "sdk", "sh"] for r in rounds)
    assert len(set(rounds)) > 1  # the order changes from round to round


def test_every_exercise_is_checked_repeat_times() -> None:
    seen: list[str] = []
    samples = time_checks(seen.append, ["a", "b"], repeat=3)
    assert len(samples) == 6 and sorted(seen) == ["a", "a", "a", "b", "b", "b"]


def test_an_empty_notebook_folder_runs_nothing(tmp_path: Path) -> None:
    assert run_notebooks(tmp_path) == []


def test_classroom_figures_from_known_numbers() -> None:
    figures = summary(_report([], classroom=_classroom()))
    assert figures["classroom_rps"] == 10.0  # 200 acknowledged posts in 20 s
    assert figures["classroom_post_p95_ms"] == pytest.approx(190.1)  # position 199 * 0.95 = 189.05
    assert figures["classroom_post_p50_ms"] == pytest.approx(100.5)
    assert figures["classroom_learners"] == 100 and figures["classroom_seconds"] == 20.0
    assert figures["classroom_events_acked"] == 260 and figures["classroom_events_lost_after_kill9"] == 0
    assert figures["classroom_posts_failed"] == {"429": 2, "connection": 1}
    assert figures["classroom_restart_s"] == 1.23 and figures["classroom_kill9_in_flight"] == 97
    assert figures["classroom_kill9_resent"] == 340
    assert figures["classroom_stream_behind_s"] == 0.03 and figures["classroom_stream_reconnects"] == 0
    assert figures["classroom_events_per_minute"] == UNLIMITED and figures["classroom_pace_s"] == 0.0


def test_a_stream_that_fell_behind_says_so() -> None:
    late = dataclasses.replace(_classroom(), stream_results=150, stream_reconnects=2, stream_behind_s=None)
    lines = render(_report([], classroom=late)).splitlines()
    assert any(
        "150 results, still behind 5 s" in line and "reconnected 2 time(s)" in line and "✗" in line for line in lines
    )
    assert json.loads(lines[-1])["classroom_stream_behind_s"] is None


def test_classroom_lines_mark_the_target_the_loss_and_how_learners_posted() -> None:
    fast = render(_report([], classroom=_classroom())).splitlines()
    assert any("p95 190.1 ms" in line and "≤ 150 ms ✗" in line for line in fast)
    assert any("200 acknowledged, 10.0/s" in line and "429 2, connection 1" in line for line in fast)
    assert any("97 posts in flight" in line and "340 posts failed meanwhile" in line for line in fast)
    assert any("260 events acknowledged in all, 0 missing from the database ✔" in line for line in fast)
    assert any("back to back" in line and "100 posts always in flight" in line for line in fast)
    assert any(f"--events-per-minute {UNLIMITED} (its limit of 60 lifted" in line for line in fast)
    assert any("200 results, up to date 0.03 s after the last post ✔" in line for line in fast)
    paced = render(_report([], classroom=_classroom([20.0] * 50, lost=3, pace=3.0))).splitlines()
    assert any("p95 20.0 ms" in line and "✔" in line for line in paced)
    assert any("learners post every 3 s or so" in line for line in paced)
    assert any("keeps its limit of 60 events a minute per learner" in line for line in paced)
    assert any("3 missing from the database ✗" in line for line in paced)


def test_a_skipped_part_gives_null_figures_and_says_so() -> None:
    no_classroom = render(_report([])).splitlines()
    assert "classroom: skipped (--skip-classroom)" in no_classroom
    figures = json.loads(no_classroom[-1])
    assert all(figures[key] is None for key in (*CLASSROOM_KEYS, *CLASSROOM_EXTRA))
    only = Report(context={"CPUs": "2"}, runs=None, checks_ms=[], exercise_count=0, classroom=_classroom())
    lines = render(only).splitlines()
    assert any("skipped (--classroom-only)" in line for line in lines)
    figures = json.loads(lines[-1])
    assert set(figures) == set(REQUIRED_KEYS) | set(CLASSROOM_KEYS) | EXTRA_KEYS
    assert figures["overhead_ratio_sh"] is None and figures["check_p95_ms"] is None and figures["runs"] == 0
    assert figures["classroom_rps"] == 10.0


@pytest.mark.parametrize(
    "argv",
    [
        ["--classroom-only", "--skip-classroom"],
        ["--classroom-only", "--classroom-seconds", "0"],
        ["--classroom-only", "--classroom-learners", "0"],
        ["--classroom-only", "--classroom-pace", "-1"],
    ],
)
def test_classroom_options_that_cannot_work_are_usage_errors(argv: list[str]) -> None:
    with pytest.raises(UsageError):
        _bench(argv)


def test_a_learner_walks_the_course_with_valid_events() -> None:
    course = [("a.one", "00", "One"), ("a.two", "00", "Two"), ("b.three", "01", "Three")]
    walk = Walk("ada", course, random.Random(3))
    events = [walk.next_event() for _ in range(60)]
    for event in events:
        assert validate_event(event) == event and event["learner"] == "ada"
    assert len({e["id"] for e in events}) == 60
    passes = [e for e in events if e["kind"] == "check" and e["passed"]]
    assert len(passes) >= 10 and any(e["kind"] == "hint" for e in events)
    # After a pass the learner moves on to the next exercise, in course order (wrapping round).
    ids = [exercise_id for exercise_id, _, _ in course]
    for before, after in itertools.pairwise(events):
        if before["kind"] == "check" and before["passed"]:
            assert after["exercise"] == ids[(ids.index(before["exercise"]) + 1) % len(ids)]
    assert {e["lesson"] for e in events} == {"00", "01"}


def test_the_stream_reader_counts_results_cut_anywhere() -> None:
    body = (
        b'retry: 2000\nevent: snapshot\ndata: {"learners":[],"seq":0}\n\n'
        b'event: result\ndata: {"seq":1,"event":{},"row":{}}\n\n'
        b'event: tick\ndata: {"now":1}\n\n'
        b'event: result\ndata: {"seq":2,"event":{},"row":{}}\n\n'
        b'event: result\ndata: {"seq":3'  # cut short: not counted until it ends
    )
    for size in (1, 7, len(body)):
        stream = InstructorStream(port=0, token="t")
        for start in range(0, len(body), size):
            stream.take(body[start : start + size])
        assert (stream.snapshots, stream.results, stream.seq) == (1, 2, 2)
