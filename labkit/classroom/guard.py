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
  address, and :data:`MAX_WAITING` waiting connections of any kind in all. Past a cap the
  oldest waiting ones (of that address, or of all) are closed, once they have had
  :data:`GRACE` seconds to send a head; newcomers are always accepted. So a flood, even
  a sustained one from the address an honest client shares, cannot lock that client
  out: a real client's head arrives a millisecond after it connects and it is served,
  while the flood's half-open connections are the oldest and go first;
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
from typing import Any, Generic, Protocol, TypeVar

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
#: Seconds a new connection has to send its head before a cap may push it out.
GRACE = 0.1
#: Open files the server asks for (its soft limit is raised up to the hard one).
WANTED_FILES = 8192

C = TypeVar("C", bound=Hashable)


@dataclass
class Waiting(Generic[C]):
    """Connections waiting for a request head, oldest first: who must go when there are too many.

    The caps are soft for :data:`GRACE` seconds: a connection that has just arrived is not
    pushed out before it had time to send its head (in a burst, a real client's head is read
    a loop turn or two after it was accepted, while the newer half-open connections pile up).
    Past ``2 * total`` the oldest goes at once, whatever its age, so files never run out.

    Example:
        >>> w = Waiting[str](per_address=2, total=3, grace=1.0)
        >>> w.add("a1", "10.0.0.1", True, 0.0), w.add("a2", "10.0.0.1", True, 0.0), w.add("a3", "10.0.0.1", True, 0.5)
        ([], [], [])
        >>> w.trim(now=0.5), w.trim(now=1.2), len(w)
        ([], ['a1'], 2)
        >>> w.add("b1", "10.0.0.2", True, 1.2), w.add("c1", "10.0.0.3", False, 1.2), w.trim(now=2.0)
        ([], [], ['a2'])
    """

    per_address: int = PER_ADDRESS
    total: int = MAX_WAITING
    grace: float = GRACE
    # value: (since when it waits, the address of a fresh one or None)
    _all: OrderedDict[C, tuple[float, str | None]] = field(default_factory=OrderedDict)
    _fresh: dict[str, OrderedDict[C, None]] = field(default_factory=dict)
    _crowded: set[str] = field(default_factory=set)  # addresses with more fresh connections than per_address

    def __len__(self) -> int:
        return len(self._all)

    def fresh(self, address: str) -> int:
        """How many connections from ``address`` wait and never completed a head."""
        return len(self._fresh.get(address, ()))

    def over(self) -> bool:
        """Whether a cap is exceeded (a :meth:`trim` is due)."""
        return bool(self._crowded) or len(self._all) > self.total

    def add(self, conn: C, address: str, fresh: bool, now: float) -> list[C]:
        """Count ``conn`` as waiting; returns the oldest connections past ``2 * total``, to be closed now."""
        if conn in self._all:
            return []
        self._all[conn] = (now, address if fresh else None)
        if fresh:
            mine = self._fresh.setdefault(address, OrderedDict())
            mine[conn] = None
            if len(mine) > self.per_address:
                self._crowded.add(address)
        evicted: list[C] = []
        while len(self._all) > 2 * self.total:
            oldest = next(iter(self._all))
            self.remove(oldest)
            evicted.append(oldest)
        return evicted

    def trim(self, now: float) -> list[C]:
        """The oldest connections past the caps that have waited at least ``grace``, to be closed; they no longer count."""
        evicted: list[C] = []
        for address in list(self._crowded):
            mine = self._fresh[address]
            while len(mine) > self.per_address:
                oldest = next(iter(mine))
                if now - self._all[oldest][0] < self.grace:
                    break
                self.remove(oldest)
                evicted.append(oldest)
        while len(self._all) > self.total:
            oldest = next(iter(self._all))
            if now - self._all[oldest][0] < self.grace:
                break
            self.remove(oldest)
            evicted.append(oldest)
        return evicted

    def remove(self, conn: C) -> None:
        """``conn`` no longer waits (its head arrived, it was pushed out, or it closed)."""
        _, address = self._all.pop(conn, (0.0, None))
        if address is not None:
            mine = self._fresh.get(address)
            if mine is not None:
                mine.pop(conn, None)
                if len(mine) <= self.per_address:
                    self._crowded.discard(address)
                if not mine:
                    del self._fresh[address]


class _Closable(Protocol):
    def _close(self, reason: str) -> None: ...


@dataclass
class Guard:
    """The limits one server applies to its connections, and who waits now."""

    waiting: Waiting[Any] = field(default_factory=Waiting)
    head_timeout: float = HEAD_TIMEOUT
    body_timeout: float = BODY_TIMEOUT
    #: Connections closed so far, by reason ("evicted", "head", "body"): for tests and the curious.
    closed: dict[str, int] = field(default_factory=dict)
    _trim: asyncio.TimerHandle | None = None

    def wait(self, conn: _Closable, address: str, fresh: bool, loop: asyncio.AbstractEventLoop) -> None:
        """``conn`` waits for a request head: count it, and push out the oldest when the caps say so."""
        for victim in self.waiting.add(conn, address, fresh, loop.time()):
            victim._close("evicted")
        if self.waiting.over() and self._trim is None:
            self._trim = loop.call_later(self.waiting.grace / 2, self._trim_now, loop)

    def _trim_now(self, loop: asyncio.AbstractEventLoop) -> None:
        self._trim = None
        for victim in self.waiting.trim(loop.time()):
            victim._close("evicted")
        if self.waiting.over():  # the rest are still in their grace: look again soon
            self._trim = loop.call_later(self.waiting.grace / 2, self._trim_now, loop)


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
                guard.wait(self, self._address, self._fresh, self.loop)
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
