"""Reading a trace log back: one :class:`Call` per JSON line the proxy wrote."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from labkit.features.trace.process import log_path
from labkit.features.trace.proxy import _VERSION

_HEX_ID = re.compile(r"(?<![0-9a-f])[0-9a-f]{64}(?![0-9a-f])")


@dataclass(frozen=True)
class Call:
    """One API call as the proxy recorded it."""

    conn: int
    seq: int
    t: float
    method: str
    path: str
    api: str | None = None
    status: int | None = None
    reason: str = ""
    hijacked: bool = False
    id: str | None = None
    message: str | None = None
    exit: int | None = None
    ms: float | None = None
    refused: bool = False  # answered 403 by the proxy itself (a browser's request, a wrong Host)

    @property
    def route(self) -> str:
        """The path without version prefix and query, ids as ``{id}``: ``/containers/{id}/start``."""
        return normalize_path(self.path).split("?", 1)[0]

    @property
    def query(self) -> str:
        return self.path.split("?", 1)[1] if "?" in self.path else ""


def normalize_path(path: str) -> str:
    """Drop the ``/v1.NN`` prefix and write 64-hex ids as ``{id}``.

    Example:
        >>> normalize_path("/v1.41/containers/" + "ab" * 32 + "/wait?condition=removed")
        '/containers/{id}/wait?condition=removed'
    """
    return _HEX_ID.sub("{id}", _VERSION.sub("", path, count=1))


def load(path: str | Path | None = None) -> list[Call]:
    """Every call in a trace log, in the order the requests arrived (lines that do not parse are skipped)."""
    source = Path(path) if path is not None else log_path()
    calls = []
    try:
        lines = source.read_text().splitlines()
    except FileNotFoundError:
        return []
    known = set(Call.__dataclass_fields__)
    for line in lines:
        try:
            data = json.loads(line)
            calls.append(Call(**{k: v for k, v in data.items() if k in known}))
        except (ValueError, TypeError):
            continue
    return sorted(calls, key=lambda c: (c.t, c.conn, c.seq))
