"""What learners may ask of the classroom server: how many join, events per minute, JSON depth (pure, no I/O).

Learners: a classroom takes :data:`MAX_LEARNERS` by default (``serve --max-learners``);
past that a join is refused (403) until the instructor forgets someone or restarts with more.

Events: each learner has a bucket of :data:`BURST_MINUTES` minutes' worth of events
(240 at the default rate) that refills at :data:`EVENTS_PER_MINUTE`. A post takes as many as it carries, or none: past that the
server answers 429 with ``Retry-After`` (the seconds until the whole post fits), and
the learner's client keeps the events queued and sends them then. The burst is
there for a learner coming back online with a queue; a person checking by hand
never comes near the rate. Buckets live in memory: a restart refills them.

JSON: a body is parsed only up to :data:`MAX_DEPTH` levels of nesting. An event is a
flat object in a list (two levels); 60,000 nested ``[`` would otherwise end in a
``RecursionError`` and a 500.

Example:
    >>> rate = EventRate(per_minute=60, burst=2)
    >>> rate.take("ada", 2, now=0.0), rate.take("ada", 1, now=0.0), rate.take("ada", 1, now=1.0)
    (0.0, 1.0, 0.0)
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

#: Learners a classroom takes by default (``serve --max-learners``).
MAX_LEARNERS = 500
#: Events one learner may post per minute, sustained.
EVENTS_PER_MINUTE = 60
#: Minutes' worth of events one learner may post at once (a queue flushed after time offline).
BURST_MINUTES = 4
#: Deepest nesting of arrays and objects a body may have.
MAX_DEPTH = 8


class TooDeep(ValueError):
    """A JSON body nested deeper than allowed."""


@dataclass
class _Bucket:
    tokens: float
    at: float


@dataclass
class EventRate:
    """A token bucket per learner.

    Args:
        per_minute: the sustained rate.
        burst: the bucket's size: at most this many events at once (at least one post's worth).
    """

    per_minute: float = EVENTS_PER_MINUTE
    burst: int = BURST_MINUTES * EVENTS_PER_MINUTE
    _buckets: dict[str, _Bucket] = field(default_factory=dict)

    @classmethod
    def per_learner(cls, per_minute: float = EVENTS_PER_MINUTE, at_least: int = 1) -> EventRate:
        """The rate with a burst of ``BURST_MINUTES`` minutes' worth, and at least ``at_least`` (one whole post)."""
        return cls(per_minute, max(at_least, round(BURST_MINUTES * per_minute)))

    def take(self, learner: str, events: int, now: float) -> float:
        """Take ``events`` from the learner's bucket: 0.0 when they fit, else the seconds until they would.

        Nothing is taken when they do not fit (a post is stored whole or not at all).
        """
        per_second = self.per_minute / 60.0
        bucket = self._buckets.get(learner)
        if bucket is None:
            bucket = self._buckets[learner] = _Bucket(float(self.burst), now)
        bucket.tokens = min(float(self.burst), bucket.tokens + max(0.0, now - bucket.at) * per_second)
        bucket.at = now
        if events <= bucket.tokens:
            bucket.tokens -= events
            return 0.0
        if events > self.burst or per_second <= 0:
            return float("inf")
        return (events - bucket.tokens) / per_second


def depth(text: str | bytes) -> int:
    """How deeply arrays and objects nest in JSON text, brackets inside strings not counted.

    Example:
        >>> depth('[{"a": "[[["}]'), depth("1")
        (2, 0)
    """
    data = text.decode("utf-8", "replace") if isinstance(text, bytes) else text
    deepest = level = 0
    in_string = escaped = False
    for ch in data:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            level += 1
            deepest = max(deepest, level)
        elif ch in "]}":
            level -= 1
    return deepest


def parse_json(body: bytes, max_depth: int = MAX_DEPTH) -> Any:
    """Parse a request body, refusing one nested deeper than ``max_depth``.

    The parse runs first (C speed); the nesting is measured only when the parser ran out of
    stack, or when the result holds containers inside containers.

    Raises:
        TooDeep: nested deeper than ``max_depth``.
        ValueError: not JSON, or not UTF-8.
    """
    try:
        value = json.loads(body)
    except RecursionError as e:
        raise TooDeep(f"JSON nested deeper than {max_depth} levels") from e
    if _nested(value) and depth(body) > max_depth:
        raise TooDeep(f"JSON nested deeper than {max_depth} levels")
    return value


def _nested(value: Any) -> bool:
    """Whether a parsed value holds a container inside a container inside a container (an event batch does not)."""
    items = value if isinstance(value, list) else [value]
    for item in items:
        inner = item.values() if isinstance(item, dict) else item if isinstance(item, list) else ()
        if any(isinstance(v, (dict, list)) for v in inner):
            return True
    return False
