"""How labkit writes sizes, durations and times, and reads times: one function for each.

Notebooks show these strings and nbval compares them with the stored outputs, so
where two parts of labkit wrote the same thing differently, both ways are kept
as named styles of one function rather than changing what a learner sees.

Example:
    >>> size(1984241), size(512, "progress"), size(3 * 2**20, "mib")
    ('1.98 MB', '1 kB', '3.0 MiB')
    >>> duration(4.25), duration(3700, "age")
    ('4.2 s', '1 h')
"""

from __future__ import annotations

import html
import re
import unicodedata
from datetime import UTC, datetime
from typing import Literal

SizeStyle = Literal["docker", "progress", "mb", "mib"]
DurationStyle = Literal["took", "age"]

#: The units of an age, largest first, with their length in seconds.
_AGE_UNITS = (("d", 86400), ("h", 3600), ("min", 60))
_FRACTION = re.compile(r"(\.\d{6})\d+")


def size(n: float, style: SizeStyle = "docker") -> str:
    """A byte count for people, in one of the styles labkit shows.

    Styles:
        ``docker``: as ``docker`` prints sizes (powers of 1000): ``0 B``, ``5 B``, ``1.98 MB``, ``117 MB``.
        ``progress``: progress lines: at least ``1 kB``, then ``2.3 MB``, ``46 MB``, ``3.2 GB``.
        ``mb``: always megabytes, for files: ``1.1 MB``, ``46 MB``, ``1200 MB``.
        ``mib``: powers of 1024, one decimal, for memory: ``183.5 MiB``.

    Example:
        >>> [size(n) for n in (0, 21, 1984241, 116668517, 4_000_000_000)]
        ['0 B', '21 B', '1.98 MB', '117 MB', '4.00 GB']
        >>> [size(n, "progress") for n in (512, 2_345_678, 45_600_000, 3_210_000_000)]
        ['1 kB', '2.3 MB', '46 MB', '3.2 GB']
        >>> size(1_100_000, "mb"), size(12_345_678, "mb")
        ('1.1 MB', '12 MB')
    """
    if style == "mib":
        return f"{n / 2**20:.1f} MiB"
    if style == "mb":
        return f"{n / 1e6:.1f} MB" if n < 10e6 else f"{n / 1e6:.0f} MB"
    if style == "progress":
        if n < 1e6:
            return f"{max(n / 1e3, 1 if n else 0):.0f} kB"
        if n < 10e6:
            return f"{n / 1e6:.1f} MB"
        if n < 1e9:
            return f"{n / 1e6:.0f} MB"
        return f"{n / 1e9:.1f} GB"
    value = float(n)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            if unit == "B":
                return f"{int(value)} B"
            decimals = 2 if value < 10 else 1 if value < 100 else 0
            return f"{value:.{decimals}f} {unit}"
        value /= 1000
    raise AssertionError("unreachable")


def duration(seconds: float, style: DurationStyle = "took") -> str:
    """A span of time for people.

    Styles:
        ``took``: how long something took: ``4.2 s`` below ten seconds, else ``37 s``.
        ``age``: the largest whole unit, as a status column shows it: ``42 s``, ``3 min``, ``2 h``, ``5 d``.

    Example:
        >>> duration(37.4), [duration(s, "age") for s in (42.9, 185, 7300, 5 * 86400)]
        ('37 s', ['42 s', '3 min', '2 h', '5 d'])
    """
    if style == "age":
        whole = max(0, int(seconds))
        unit, length = next(((u, n) for u, n in _AGE_UNITS if whole >= n), ("s", 1))
        return f"{whole // length} {unit}"
    return f"{seconds:.1f} s" if seconds < 10 else f"{seconds:.0f} s"


def utc_now() -> str:
    """Now, as the progress events and the classroom write times: UTC ISO-8601, milliseconds, ``Z``.

    Example:
        >>> len(utc_now()), utc_now().endswith("Z")
        (24, True)
    """
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_time(text: object) -> datetime | None:
    """An RFC 3339 time (the daemon's, with nanoseconds; or an event's) as an aware UTC datetime.

    ``None`` for Docker's zero time (``0001-01-01T00:00:00Z``, "never") and for
    anything that is not a time. A time without an offset is taken as UTC.

    Example:
        >>> parse_time("2024-05-01T10:00:03.123456789Z").isoformat()
        '2024-05-01T10:00:03.123456+00:00'
        >>> parse_time("2024-05-01T12:00:03+02:00").isoformat()
        '2024-05-01T10:00:03+00:00'
        >>> parse_time("0001-01-01T00:00:00Z") is None, parse_time("soon") is None
        (True, True)
    """
    if not isinstance(text, str) or not text.strip() or text.startswith("0001-"):
        return None
    # Python reads at most microseconds; the daemon writes nanoseconds.
    cleaned = _FRACTION.sub(r"\1", text.strip()).replace("z", "Z")
    try:
        parsed = datetime.fromisoformat(cleaned.removesuffix("Z") + ("+00:00" if cleaned.endswith("Z") else ""))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def timestamp(text: object) -> float | None:
    """:func:`parse_time` as seconds since the epoch.

    Example:
        >>> timestamp("1970-01-01T00:01:40.5Z")
        100.5
        >>> timestamp("0001-01-01T00:00:00Z") is None
        True
    """
    parsed = parse_time(text)
    return None if parsed is None else parsed.timestamp()


def in_kernel() -> bool:
    """Whether we run in a Jupyter kernel, where a widget has a front end to talk to."""
    try:
        # reason: IPython is only imported where it is already loaded or wanted (start-up time)
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


# --- text as HTML -----------------------------------------------------------------------------

_BACKTICKS = re.compile(r"`([^`<>\n]+)`")


def code_spans(escaped: str) -> str:
    """Markdown's inline code in already-escaped HTML: `` `docker ps` `` becomes ``<code>docker ps</code>``.

    Only text between backticks changes (it holds no tags: everything was escaped first).

    Example:
        >>> code_spans(html.escape("run `docker ps -a` <now>"))
        'run <code>docker ps -a</code> &lt;now&gt;'
    """
    return _BACKTICKS.sub(r"<code>\1</code>", escaped)


def text_html(text: str) -> str:
    """Plain text as HTML: everything escaped, backtick spans as code."""
    return code_spans(html.escape(text))


def columns(text: str) -> int:
    """Terminal columns ``text`` takes: a Chinese (wide) character takes two, so Chinese tables line up.

    Example:
        >>> columns("Disk space"), columns("磁盘空间")
        (10, 8)
    """
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def ljust(text: str, width: int) -> str:
    """``text`` padded with spaces to ``width`` terminal columns (``f"{text:<{width}}"`` counts characters).

    Example:
        >>> ljust("通过", 6) + "|", ljust("passed", 8) + "|"
        ('通过  |', 'passed  |')
    """
    return text + " " * max(0, width - columns(text))
