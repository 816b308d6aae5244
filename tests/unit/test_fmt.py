"""labkit.core.fmt: the one place sizes, durations and times are written and read."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest

from labkit.core import fmt


def test_sizes_read_like_docker() -> None:
    assert [fmt.size(n) for n in (0, 21, 1984241, 116668517, 4_000_000_000)] == [
        "0 B",
        "21 B",
        "1.98 MB",
        "117 MB",
        "4.00 GB",
    ]


@pytest.mark.parametrize(
    ("n", "progress", "mb"),
    [
        (0, "0 kB", "0.0 MB"),
        (512, "1 kB", "0.0 MB"),
        (2_345_678, "2.3 MB", "2.3 MB"),
        (45_600_000, "46 MB", "46 MB"),
        (3_210_000_000, "3.2 GB", "3210 MB"),
    ],
)
def test_the_progress_and_file_styles_differ_only_below_a_megabyte_and_from_a_gigabyte(
    n: int, progress: str, mb: str
) -> None:
    assert (fmt.size(n, "progress"), fmt.size(n, "mb")) == (progress, mb)


def test_memory_in_mebibytes() -> None:
    assert fmt.size(183456 * 1024, "mib") == "179.2 MiB"


@pytest.mark.parametrize(
    ("seconds", "took", "age"),
    [
        (0.04, "0.0 s", "0 s"),
        (9.94, "9.9 s", "9 s"),
        (42.6, "43 s", "42 s"),
        (185, "185 s", "3 min"),
        (7300, "7300 s", "2 h"),
        (-3, "-3.0 s", "0 s"),
    ],
)
def test_durations(seconds: float, took: str, age: str) -> None:
    assert (fmt.duration(seconds), fmt.duration(seconds, "age")) == (took, age)


def test_utc_now_is_the_contract_format() -> None:
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", fmt.utc_now())


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "2024-05-01T10:00:03.123456789Z",
            datetime(2024, 5, 1, 10, 0, 3, 123456, tzinfo=UTC),
        ),  # the daemon's nanoseconds
        ("2026-11-27T21:30:00.123Z", datetime(2026, 11, 27, 21, 30, 0, 123000, tzinfo=UTC)),  # an event's milliseconds
        ("2024-05-01T12:00:03.5+02:00", datetime(2024, 5, 1, 10, 0, 3, 500000, tzinfo=UTC)),
        ("2024-05-01T10:00:03", datetime(2024, 5, 1, 10, 0, 3, tzinfo=UTC)),
        ("0001-01-01T00:00:00Z", None),  # Docker's "never"
        ("", None),
        ("soon", None),
        (None, None),
        (12, None),
    ],
)
def test_parse_time(text: object, expected: datetime | None) -> None:
    assert fmt.parse_time(text) == expected


def test_timestamp() -> None:
    assert fmt.timestamp("1970-01-01T00:01:40.5Z") == 100.5 and fmt.timestamp("0001-01-01T00:00:00Z") is None
    assert fmt.parse_time(fmt.utc_now()) is not None


def test_not_in_a_kernel_here() -> None:
    assert fmt.in_kernel() is False
