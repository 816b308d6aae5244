"""labkit.bench's pure parts: percentile math, ratios, round-robin timing, and the rendered report. No daemon."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from labkit.bench import (
    REQUIRED_KEYS,
    NotebookRun,
    Report,
    percentile,
    ratio,
    render,
    run_notebooks,
    summary,
    time_checks,
    time_runs,
)

EXTRA_KEYS = {
    "raw_median_ms",
    "sh_median_ms",
    "sdk_median_ms",
    "runs",
    "check_samples",
    "notebooks",
    "notebooks_failed",
}


def _report(notebooks: list[NotebookRun] | None = None, sh_ms: float = 105.0) -> Report:
    return Report(
        context={"daemon": "20.10 (API 1.41)", "CPUs": "2"},
        runs={"raw": [100.0, 90.0, 110.0], "sh": [sh_ms] * 3, "sdk": [99.0, 101.0, 100.0]},
        checks_ms=[float(n) for n in range(1, 21)],
        exercise_count=2,
        notebooks=notebooks,
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
    assert set(figures) == set(REQUIRED_KEYS) | EXTRA_KEYS
    assert list(figures)[: len(REQUIRED_KEYS)] == list(REQUIRED_KEYS)
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
