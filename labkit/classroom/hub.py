"""The live part of the instructor's page: stored events fanned out to the open SSE streams."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import Any

from starlette.concurrency import run_in_threadpool

from labkit.classroom import view
from labkit.classroom.store import Store, Stored


@dataclass(eq=False)  # identity: each open stream is its own subscriber
class Subscriber:
    queue: asyncio.Queue[dict[str, Any]] = field(default_factory=lambda: asyncio.Queue(maxsize=2000))
    overflowed: bool = False


class Hub:
    """Fans stored events out to the open SSE streams."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.subscribers: set[Subscriber] = set()
        # Rows are computed and sent under one lock, so a stream never gets an older row after a newer one.
        self._lock = asyncio.Lock()

    async def publish(self, new: list[Stored]) -> None:
        """Send each new event, with its learner's row recomputed from the store."""
        if not new or not self.subscribers:
            return
        async with self._lock:
            now = time.time()
            rows: dict[str, dict[str, Any]] = {}
            for name in dict.fromkeys(str(s.event["learner"]) for s in new):
                stored = await run_in_threadpool(self.store.events, name)
                rows[name] = view.learner_row(name, [(s.event, s.received_at) for s in stored], now)
            for s in new:
                message = {"seq": s.seq, "event": s.event, "row": rows[str(s.event["learner"])]}
                for sub in list(self.subscribers):
                    try:
                        sub.queue.put_nowait(message)
                    except asyncio.QueueFull:
                        # A stream that stopped reading is closed; its browser reconnects and gets a snapshot.
                        sub.overflowed = True


def sse(event: str, data: Any) -> str:
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"
