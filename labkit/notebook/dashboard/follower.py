"""The dashboard's two threads: one follows the daemon's container events, one re-reads details.

A :class:`Follower` keeps the rows (id → :class:`~labkit.notebook.dashboard.model.Row`)
in step with the daemon, whoever changed a container, and calls back whoever draws
them. It knows nothing of widgets, so it runs the same under a test as in a kernel.
"""

from __future__ import annotations

import collections
import contextlib
import itertools
import queue
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import docker
import docker.errors
import requests.exceptions

from labkit.core import engine
from labkit.core.errors import LabkitError
from labkit.core.i18n import _
from labkit.notebook.dashboard.model import UPTIME_TICK, WATCHED, Row, apply_event, row_from_inspect

#: What a lost or restarting daemon raises while the dashboard reads it.
_LOST = (LabkitError, docker.errors.DockerException, requests.exceptions.RequestException, OSError, ValueError)
_counter = itertools.count(1)


class Follower:
    """Follows the daemon for one dashboard: ``rows`` is a snapshot, ``render`` is called on every change.

    Args:
        client: the daemon connection for reading containers (the event stream opens its own).
        render: called (from either thread) whenever the rows changed; it may take :attr:`lock`.
        say: shows a line to the learner (a lost daemon, a reconnect).
    """

    def __init__(self, client: docker.DockerClient, render: Callable[[], None], say: Callable[[str], None]) -> None:
        self.client = client
        self._render = render
        self._say = say
        self.lock = threading.RLock()
        #: The live rows (id → row): read or change them only with :attr:`lock` held.
        self.live: dict[str, Row] = {}
        self._stop = threading.Event()
        self.ready = threading.Event()  # set once the event stream is open (tests wait on it)
        self._stream: Any = None
        self._details: queue.Queue[str | None] = queue.Queue()
        self._number = next(_counter)
        #: Seconds from the daemon's event to the table showing it, for the last events.
        self.lags: collections.deque[float] = collections.deque(maxlen=100)
        self._threads = [
            threading.Thread(target=self._follow, name=f"labkit-dashboard-events-{self._number}", daemon=True),
            threading.Thread(target=self._fill_details, name=f"labkit-dashboard-details-{self._number}", daemon=True),
        ]

    def start(self) -> None:
        """Read every container once, then start both threads.

        Raises:
            DaemonUnavailable: the daemon did not answer.
        """
        self.resync()
        for thread in self._threads:
            thread.start()

    @property
    def rows(self) -> dict[str, Row]:
        with self.lock:
            return dict(self.live)

    @property
    def running(self) -> bool:
        """Whether the event thread is still following the daemon."""
        return any(t.is_alive() for t in self._threads)

    def resync(self) -> None:
        """Read every container afresh (at start, and after the event stream was lost)."""
        rows: dict[str, Row] = {}
        with engine.converted():
            for summary in self.client.api.containers(all=True):
                attrs = self._inspect(summary["Id"])
                if attrs is not None:
                    rows[attrs["Id"]] = row_from_inspect(attrs)
        with self.lock:
            self.live = rows
        self._render()

    def _inspect(self, ident: str) -> dict[str, Any] | None:
        try:
            return dict(self.client.api.inspect_container(ident))
        except docker.errors.NotFound:
            return None  # gone between the event and the read: the destroy event follows

    def _events_client(self) -> docker.DockerClient:
        # Its own connection with no read timeout: the shared client's 300 s timeout would end
        # an idle stream, and closing this stream must not touch the shared connection pool.
        return docker.from_env(version=self.client.api.api_version, timeout=None)

    def _follow(self) -> None:
        """The event thread: apply events as they come; on a lost stream, resync and reopen."""
        backoff = 0.5
        events_client = None
        stream: Any = None
        try:
            while not self._stop.is_set():
                try:
                    if stream is not None:  # the last one ended by itself (daemon restart): free it first
                        with contextlib.suppress(Exception):
                            stream.close()
                    events_client = events_client or self._events_client()
                    stream = events_client.api.events(
                        decode=True, filters={"type": "container", "event": [*WATCHED, "destroy"]}
                    )
                    self._stream = stream  # close() may clear self._stream at any moment: iterate the local
                    if self._stop.is_set():  # close() ran while the stream was opening
                        break
                    self.resync()  # after opening: nothing can fall between the list and the stream
                    self.ready.set()
                    backoff = 0.5
                    for event in stream:
                        if self._stop.is_set():
                            break
                        self._on_event(event)
                except _LOST as e:  # the daemon went away or restarted: say so, retry, never die
                    if self._stop.is_set():
                        break
                    self._say(_("lost contact with the daemon ({error}); reconnecting…").format(error=type(e).__name__))
                    events_client = None
                # a stream that ended by itself (daemon restart) is reopened after a short pause
                if self._stop.wait(backoff):
                    break
                backoff = min(backoff * 2, 5.0)
        finally:
            self._close_stream()
            if stream is not None:
                with contextlib.suppress(Exception):  # already closed by close(): nothing left to free
                    stream.close()
            if events_client is not None:
                with contextlib.suppress(Exception):
                    events_client.close()

    def _on_event(self, event: Mapping[str, Any]) -> None:
        with self.lock:
            refresh = apply_event(self.live, event)
        self._render()  # the state from the event shows at once; the details thread adds the rest
        if event.get("timeNano"):
            self.lags.append(time.time() - int(event["timeNano"]) / 1e9)
        if refresh is not None:
            self._details.put(refresh)

    def _fill_details(self) -> None:
        """The details thread: re-read containers the events named (ports, start time), and tick uptimes.

        Reading happens here, not in the event thread, because inspecting a container that
        is being started waits for the start to finish, and the events behind it would wait too.
        """
        while not self._stop.is_set():
            try:
                wanted = {self._details.get(timeout=UPTIME_TICK)}
            except queue.Empty:
                if any(r.state == "running" for r in self.rows.values()):
                    self._render()  # only "up 12 s" changed
                continue
            while not self._details.empty():  # a burst of events for one container: read it once
                wanted.add(self._details.get_nowait())
            # None is the wake-up close() sends
            for ident in [i for i in wanted if i is not None]:
                if self._stop.is_set():
                    return
                try:
                    attrs = self._inspect(ident)
                except _LOST:  # the daemon is going away: the event thread reports it and resyncs
                    attrs = None
                with self.lock:
                    if attrs is not None and ident in self.live:
                        self.live[ident] = row_from_inspect(attrs)
            if wanted:
                self._render()

    def _close_stream(self) -> None:
        stream, self._stream = self._stream, None
        if stream is not None:
            with contextlib.suppress(Exception):  # already closed, or a transport that cannot cancel
                stream.close()

    def stop(self, timeout: float = 5.0) -> bool:
        """End both threads; return whether they ended in time."""
        self._stop.set()
        self._close_stream()  # unblocks the event thread's read at once
        self._details.put(None)  # and the details thread's wait
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join(timeout)
        return not self.running
