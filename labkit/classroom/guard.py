"""The server's connections, held against a hostile client: deadlines, and a cap on idle ones that evicts the oldest.

uvicorn alone gives a connection that never finishes its request head all the time in
the world, counts it against ``limit_concurrency``, and past that answers every request
503, ``/api/ping`` included: 520 connections each holding half a head took a classroom
down. :func:`guarded_protocol` wraps uvicorn's h11 protocol so that:

- **a request head arrives within** :data:`HEAD_TIMEOUT` seconds of the connection
  waiting for one (just accepted, or idle between keep-alive requests), and **its body
  within** :data:`BODY_TIMEOUT` of the head; past that the connection is closed. A
  trickle of one byte a second does not reset the clock;
- **waiting connections are capped with eviction of the oldest**: at most
  :data:`PER_ADDRESS` connections *that have never completed a request head* per client
  address, and :data:`MAX_WAITING` waiting connections of any kind in all. A new
  connection past a cap closes the oldest waiting one (of that address, or of all), and
  is itself served. So a flood, even from the address an honest client shares, cannot
  lock that client out: a real client sends its head a millisecond after connecting,
  long before 64 newer connections push it out;
- every accepted socket gets ``TCP_NODELAY``: a response's head and body go out at once
  instead of the body waiting 40 ms for a delayed ACK.

Why per address only for connections that never sent a head: a classroom behind one NAT
address (a school's, a lab's) shows hundreds of learners as one address, each posting
now and then; what they hold is finished requests, or keep-alive connections between
them, never dozens of half-sent heads at once. Counting those per address would make
the classroom's own traffic look like an attack. Keep-alive connections are cheap, and
capped in all and closed after :data:`HEAD_TIMEOUT` idle.

A request in progress (the app working, the page's event stream) is not counted here:
the app bounds its own time, and uvicorn's ``limit_concurrency`` stays as a backstop
(:func:`budget` sizes it from the process's open-file limit).
"""

from __future__ import annotations

import asyncio
import contextlib
import resource
import socket
from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

#: Seconds a connection waiting for a request gets to send its whole head.
HEAD_TIMEOUT = 5.0
#: Seconds a request's body gets after its head (the routes answer 408 after 5 s when they read it).
BODY_TIMEOUT = 6.0
#: Connections that never completed a request head, per client address.
PER_ADDRESS = 64
#: Connections waiting for a request head (new or keep-alive), in all.
MAX_WAITING = 1024
#: Open files the server asks for (its soft limit is raised up to the hard one).
WANTED_FILES = 8192

C = TypeVar("C", bound=Hashable)


@dataclass
class Waiting(Generic[C]):
    """Connections waiting for a request head, oldest first: who must go when a new one comes.

    Example:
        >>> w = Waiting[str](per_address=2, total=3)
        >>> w.add("a1", "10.0.0.1", fresh=True), w.add("a2", "10.0.0.1", fresh=True)
        ([], [])
        >>> w.add("a3", "10.0.0.1", fresh=True), w.add("b1", "10.0.0.2", fresh=True)
        (['a1'], [])
        >>> w.add("c1", "10.0.0.3", fresh=False), len(w)
        (['a2'], 3)
    """

    per_address: int = PER_ADDRESS
    total: int = MAX_WAITING
    _all: OrderedDict[C, str | None] = field(default_factory=OrderedDict)  # value: the address of a fresh one
    _fresh: dict[str, OrderedDict[C, None]] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self._all)

    def fresh(self, address: str) -> int:
        """How many connections from ``address`` wait and never completed a head."""
        return len(self._fresh.get(address, ()))

    def add(self, conn: C, address: str, fresh: bool) -> list[C]:
        """Count ``conn`` as waiting; returns the connections it pushes out (oldest first), to be closed."""
        if conn in self._all:
            return []
        evicted: list[C] = []
        self._all[conn] = address if fresh else None
        if fresh:
            mine = self._fresh.setdefault(address, OrderedDict())
            mine[conn] = None
            while len(mine) > self.per_address:
                oldest, _ = mine.popitem(last=False)
                del self._all[oldest]
                evicted.append(oldest)
        while len(self._all) > self.total:
            oldest = next(iter(self._all))
            self.remove(oldest)
            evicted.append(oldest)
        return evicted

    def remove(self, conn: C) -> None:
        """``conn`` no longer waits (its head arrived, or it closed)."""
        address = self._all.pop(conn, None)
        if address is not None:
            mine = self._fresh.get(address)
            if mine is not None:
                mine.pop(conn, None)
                if not mine:
                    del self._fresh[address]


@dataclass
class Guard:
    """The limits one server applies to its connections, and who waits now."""

    waiting: Waiting[H11Protocol] = field(default_factory=Waiting)
    head_timeout: float = HEAD_TIMEOUT
    body_timeout: float = BODY_TIMEOUT
    #: Connections closed so far, by reason ("evicted", "head", "body"): for tests and the curious.
    closed: dict[str, int] = field(default_factory=dict)


def guarded_protocol(guard: Guard) -> type[H11Protocol]:
    """uvicorn's h11 protocol with ``guard``'s deadlines, caps and ``TCP_NODELAY`` (pass it as ``Config(http=...)``)."""

    class GuardedH11Protocol(H11Protocol):
        _phase: str | None = None  # "head": waiting for a request head; "body": for its body; None: neither
        _deadline: asyncio.TimerHandle | None = None
        _fresh = True  # no request head completed yet
        _address = "?"

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            sock = transport.get_extra_info("socket")
            if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._address = self.client[0] if self.client else "?"
            self._follow()

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            self._follow()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self._follow()

        def connection_lost(self, exc: Exception | None) -> None:
            self._set_phase(None)
            super().connection_lost(exc)

        def _follow(self) -> None:
            """Put the connection in the phase h11 says it is in, starting that phase's clock when it changes."""
            if self.transport.is_closing():
                self._set_phase(None)
                return
            state = self.conn.their_state
            phase = "head" if state is h11.IDLE else "body" if state is h11.SEND_BODY else None
            if phase != "head":
                self._fresh = False
            if phase != self._phase:
                self._set_phase(phase)

        def _set_phase(self, phase: str | None) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None
            if self._phase == "head":
                guard.waiting.remove(self)
            self._phase = phase
            if phase == "head":
                for victim in guard.waiting.add(self, self._address, self._fresh):
                    victim._close("evicted")  # type: ignore[attr-defined]
                self._deadline = self.loop.call_later(guard.head_timeout, self._close, "head")
            elif phase == "body":
                self._deadline = self.loop.call_later(guard.body_timeout, self._close, "body")

        def _close(self, reason: str) -> None:
            """Close for ``reason``: "evicted" resets at once (a hostile client gets no grace), a deadline closes."""
            self._phase = None  # its waiting entry is gone already (evicted) or dropped just below
            guard.waiting.remove(self)
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None
            guard.closed[reason] = guard.closed.get(reason, 0) + 1
            if reason == "evicted":
                self.transport.abort()
            else:
                self.transport.close()

    return GuardedH11Protocol


def raise_file_limit(wanted: int = WANTED_FILES) -> int:
    """Raise this process's soft limit on open files toward ``wanted`` (never above the hard limit); returns it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
    return soft if soft != resource.RLIM_INFINITY else wanted


def budget(files: int) -> tuple[int, int]:
    """(uvicorn's ``limit_concurrency``, :data:`MAX_WAITING`) for a process that may open ``files`` files.

    Waiting connections stay well under the backstop, so a flood of them never makes uvicorn answer 503.

    Example:
        >>> budget(8192), budget(1024)
        ((4096, 1024), (896, 448))
    """
    concurrency = max(64, min(4096, files - 128))
    return concurrency, min(MAX_WAITING, concurrency // 2)
