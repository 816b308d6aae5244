"""The live part of the instructor's page: the room as it is now, and its changes fanned out to the open streams.

The hub keeps a :class:`~labkit.classroom.view.Room` in memory, filled once from the
store when the server starts, then added to as each post is stored: a post updates its
learner's row and the message for the page is made from that row, whatever the length
of the learner's history. Adding and fanning out happen on the event loop without
awaiting, so a stream that subscribes and takes its snapshot in one step never misses
an event nor sees one twice.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from labkit.classroom import view
from labkit.classroom.store import Stored

#: Messages a stream may fall behind by before it is closed (its browser reconnects and gets a snapshot).
QUEUE_SIZE = 2000


@dataclass(eq=False)  # identity: each open stream is its own subscriber
class Subscriber:
    """One open stream: SSE text to send, then ``None`` when the server closes it."""

    queue: asyncio.Queue[str | None] = field(default_factory=lambda: asyncio.Queue(maxsize=QUEUE_SIZE))
    overflowed: bool = False


class Hub:
    """The room, and the streams that follow it.

    Args:
        exercises: the course's exercises in order (the page's columns).
    """

    def __init__(self, exercises: Sequence[dict[str, str]]) -> None:
        self.room = view.Room(exercises)
        self.subscribers: set[Subscriber] = set()
        self.closed = False

    def load(self, stored: Iterable[Stored], learners: Iterable[str]) -> None:
        """Fill the room from the store (once, at start-up)."""
        for name in learners:
            self.room.join(name)
        for s in stored:
            self.room.add(s.event, s.received_at, s.seq)

    def joined(self, name: str) -> None:
        """A learner joined: they get a row before their first post."""
        self.room.join(name)

    def publish(self, new: list[Stored]) -> None:
        """Add newly stored events to the room and send each, with its learner's row, to every stream."""
        touched: dict[str, view.Learner] = {}
        for s in new:
            learner = self.room.add(s.event, s.received_at, s.seq)
            touched[learner.name] = learner
        if not new or not self.subscribers:
            return
        now = time.time()
        rows = {name: learner.row(now) for name, learner in touched.items()}
        for s in new:
            text = sse("result", {"seq": s.seq, "event": s.event, "row": rows[str(s.event["learner"])]})
            for sub in list(self.subscribers):
                try:
                    sub.queue.put_nowait(text)
                except asyncio.QueueFull:
                    # A stream that stopped reading is closed; its browser reconnects and gets a snapshot.
                    sub.overflowed = True

    def subscribe(self) -> tuple[Subscriber, dict[str, Any]]:
        """A new stream and the snapshot it starts from, taken together (nothing in between)."""
        sub = Subscriber()
        self.subscribers.add(sub)
        return sub, self.room.snapshot(time.time())

    def close(self) -> None:
        """End every stream (the server is stopping): each gets ``None`` after what it has queued."""
        self.closed = True
        for sub in list(self.subscribers):
            try:
                sub.queue.put_nowait(None)
            except asyncio.QueueFull:
                sub.overflowed = True


def sse(event: str, data: Any) -> str:
    """One server-sent event."""
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"
