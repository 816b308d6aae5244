"""``make bench``'s classroom figures: simulated learners posting to a real ``labkit classroom serve``, then a kill -9.

Everything goes over real HTTP on loopback to a ``labkit classroom serve`` subprocess with
its own throwaway database, in two phases:

1. **Load.** ``learners`` learners join, the instructor's live stream (``/api/stream``, what
   the page follows) is opened and read all along, and for ``seconds`` every learner posts
   one event at a time on its own keep-alive connection: a few failed checks, sometimes a
   hint, then a pass, exercise after exercise of the course. With ``pace`` 0 a learner
   posts again as soon as it is answered (a load no class makes: the figure is the
   server's capacity), far past the 60 events a minute a learner may post, so the server
   runs with ``--events-per-minute`` raised to :data:`UNLIMITED`. With a ``pace`` of a
   second or more (a check every ``pace`` s, give or take half) the server keeps its
   default limit, and a 429 is waited out as the learner's client would.
2. **kill -9.** The learners go on posting; after :data:`KILL_AFTER` seconds the server is
   killed with SIGKILL while posts are in flight, started again on the same database and
   port, and the learners post for :data:`RESUME` seconds more. Like the real client, a
   learner resends an event until it is acknowledged (the server dedupes by id). Then the
   server is stopped, and every event that got a 2xx, in either phase, must be in the
   database.

The learners share one asyncio loop, and HTTP is framed with h11 on asyncio streams rather
than through :mod:`labkit.core.http`: a hundred threads driving ``requests`` would spend as
much CPU as the server on this 2-core kind of machine, and their waits for the GIL would
land in the latencies measured.

Example:
    >>> run(learners=10, seconds=3.0).lost  # doctest: +SKIP
    0
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h11

from labkit.classroom.client import LEARNER_KEY_HEADER
from labkit.classroom.limits import EVENTS_PER_MINUTE, MAX_LEARNERS
from labkit.classroom.store import Store
from labkit.core import http, paths, wait
from labkit.core.errors import ClassroomError, HttpUnreachable
from labkit.exercises import CheckResult, all_exercises
from labkit.exercises.machinery.record import make_event

HOST = "127.0.0.1"
_SEQ = re.compile(rb'"seq":(\d+)')
#: The server's events per minute per learner when learners post back to back (the limit, lifted).
UNLIMITED = 1_000_000
#: Seconds of posting in the kill phase before the SIGKILL, and after the restart.
KILL_AFTER = 1.5
RESUME = 1.5
#: Seconds a post may take before it counts as failed.
POST_TIMEOUT = 10.0
#: Seconds, give or take half, a learner waits before resending after a failure (the server down).
RETRY_PAUSE = 0.2
#: Seconds the instructor's stream gets to deliver the last results of the load phase.
DRAIN = 5.0


@dataclass(frozen=True)
class ClassroomRun:
    """What the classroom part measured; :func:`labkit.bench.summary` turns it into figures."""

    learners: int
    seconds: float  # how long the load phase lasted, measured
    pace: float  # seconds between one learner's posts, on average; 0: back to back
    events_per_minute: float  # the server's limit per learner
    post_ms: Sequence[float]  # each acknowledged post of the load phase (one event each)
    failed: Mapping[str, int]  # load phase: posts not acknowledged, by HTTP status or "connection"/"timeout"
    stored: int  # events the load phase stored
    stream_results: int  # results the instructor's stream delivered during the load phase
    stream_reconnects: int  # times it fell QUEUE_SIZE behind, was closed and connected again (a snapshot)
    stream_behind_s: float | None  # after the last post, until it showed the latest event; None: not within DRAIN
    acked: int  # events acknowledged with a 2xx, both phases
    lost: int  # of those, missing from the database after the kill -9 and the restart
    in_flight_at_kill: int  # posts sent and not yet answered when the SIGKILL went
    resent: int  # kill phase: posts that failed (the server down) and were sent again
    restart_s: float  # from starting the server again to its first answer


class _Connection:
    """One keep-alive HTTP/1.1 connection to the server (asyncio streams, h11 framing), reopened when closed."""

    def __init__(self, port: int) -> None:
        self.port = port
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._h11 = h11.Connection(h11.CLIENT)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        self._reader = self._writer = None

    async def _send(self, method: str, target: str, headers: Sequence[tuple[str, str]], body: bytes) -> None:
        if self._writer is None or self._h11.our_state is not h11.IDLE:
            self.close()
            self._reader, self._writer = await asyncio.open_connection(HOST, self.port)
            sock = self._writer.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._h11 = h11.Connection(h11.CLIENT)
        framing = [("Content-Length", str(len(body)))] if body else []
        out = self._h11.send(h11.Request(method=method, target=target, headers=[("Host", HOST), *headers, *framing]))
        if body:
            out = (out or b"") + (self._h11.send(h11.Data(data=body)) or b"")
        self._writer.write((out or b"") + (self._h11.send(h11.EndOfMessage()) or b""))
        await self._writer.drain()

    async def _next(self) -> Any:
        """The next h11 event of the answer, reading as needed; a closed connection raises ``ConnectionResetError``."""
        assert self._reader is not None
        while True:
            event = self._h11.next_event()
            if event is h11.NEED_DATA:
                self._h11.receive_data(await self._reader.read(65536))
            elif isinstance(event, h11.ConnectionClosed):
                raise ConnectionResetError("the server closed the connection")
            elif not isinstance(event, h11.InformationalResponse):
                return event

    async def request(
        self, method: str, target: str, headers: Sequence[tuple[str, str]], body: bytes = b""
    ) -> tuple[int, dict[str, str], bytes]:
        """Send one request and read the whole answer: (status, headers in lower case, body).

        A keep-alive connection the server closed meanwhile is reopened and the request sent once
        more (the classroom's posts are safe to resend: the server dedupes events by id).

        Raises:
            OSError: no connection (the server is down).
            h11.ProtocolError: the answer was cut short.
        """
        reused = self._writer is not None
        try:
            return await self._exchange(method, target, headers, body)
        except (OSError, h11.ProtocolError):
            self.close()
            if not reused:
                raise
        return await self._exchange(method, target, headers, body)

    async def _exchange(
        self, method: str, target: str, headers: Sequence[tuple[str, str]], body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        await self._send(method, target, headers, body)
        response = await self._next()
        chunks = []
        while not isinstance(event := await self._next(), h11.EndOfMessage):
            chunks.append(bytes(event.data))
        if self._h11.our_state is h11.DONE and self._h11.their_state is h11.DONE:
            self._h11.start_next_cycle()
        else:
            self.close()
        answer = {k.decode().lower(): v.decode() for k, v in response.headers}
        return int(response.status_code), answer, b"".join(chunks)

    async def stream(self, target: str, headers: Sequence[tuple[str, str]], sink: Callable[[bytes], None]) -> None:
        """GET a stream and hand each piece of its body to ``sink`` as it arrives, until it ends.

        Raises:
            ClassroomError: the server did not answer 200.
            OSError: no connection, or it broke.
        """
        await self._send("GET", target, headers, b"")
        response = await self._next()
        if response.status_code != 200:
            raise ClassroomError(f"GET {target} answered {response.status_code}", "see the server's log")
        while isinstance(event := await self._next(), h11.Data):
            sink(bytes(event.data))


class Walk:
    """One learner's way through the course: a few failed checks, sometimes a hint, then a pass, and on."""

    def __init__(self, name: str, exercises: Sequence[tuple[str, str, str]], rng: random.Random) -> None:
        self.name, self.exercises, self.rng = name, exercises, rng
        self.index = rng.randrange(len(exercises))
        self.fails_left = rng.randint(0, 3)
        self.hint_level = 0

    def next_event(self) -> dict[str, Any]:
        """The learner's next check or hint, as :func:`~labkit.exercises.machinery.record.make_event` makes it."""
        exercise_id, lesson, title = self.exercises[self.index]
        if self.fails_left and self.rng.random() < 0.25:
            self.hint_level = min(self.hint_level + 1, 3)
            return make_event(
                "hint", "a hint", exercise=exercise_id, lesson=lesson, hint_level=self.hint_level, learner=self.name
            )
        passed = not self.fails_left
        result = CheckResult(exercise_id, title, passed, "done" if passed else "not yet", None if passed else "a hint")
        if passed:
            self.index = (self.index + 1) % len(self.exercises)
            self.fails_left, self.hint_level = self.rng.randint(0, 3), 0
        else:
            self.fails_left -= 1
        return make_event("check", result, lesson=lesson, learner=self.name)


@dataclass
class _Tally:
    """One phase's posts."""

    post_ms: list[float] = field(default_factory=list)
    stored: int = 0
    failed: Counter[str] = field(default_factory=Counter)


class InstructorStream:
    """The instructor's page: ``/api/stream`` read as it comes; it reconnects as a browser does.

    It counts the results and the snapshots (one on each connect), and keeps the latest event's
    order number it was shown (``seq``): the page is up to date when that is the store's latest.
    """

    def __init__(self, port: int, token: str) -> None:
        self.port, self.token = port, token
        self.results = self.snapshots = self.seq = 0
        self._buffer = b""

    def take(self, chunk: bytes) -> None:
        """Read one piece of the stream's body (a message may be cut anywhere)."""
        *messages, self._buffer = (self._buffer + chunk).split(b"\n\n")
        for message in messages:
            if message.startswith(b"event: result"):
                self.results += 1
                found = _SEQ.search(message)  # {"seq":N,... leads each result: no need to parse the row
                self.seq = max(self.seq, int(found.group(1)) if found else 0)
            elif b"event: snapshot" in message:
                self.snapshots += 1
                data = message.split(b"data: ", 1)[1]
                self.seq = max(self.seq, int(json.loads(data)["seq"]))

    async def follow(self) -> None:
        """Follow the stream until cancelled."""
        while True:
            conn, self._buffer = _Connection(self.port), b""
            with contextlib.suppress(OSError, h11.ProtocolError, ClassroomError):
                await conn.stream("/api/stream", [("Authorization", f"Bearer {self.token}")], self.take)
            conn.close()
            await asyncio.sleep(RETRY_PAUSE)  # a browser waits the server's `retry:` (2 s); sooner here


class _Server:
    """One ``labkit classroom serve`` subprocess on loopback; its database outlives it."""

    def __init__(self, folder: Path, learners: int, events_per_minute: float) -> None:
        self.folder = folder
        self.db, self.log = folder / "classroom.db", folder / "serve.log"
        self.events_per_minute = events_per_minute
        self.limits = [
            "--max-learners",
            str(max(learners, MAX_LEARNERS)),
            "--events-per-minute",
            f"{events_per_minute:.10g}",
        ]
        self.port = 0  # the first start picks a free one; a restart takes the same
        self.join_token = self.instructor_token = ""
        self.proc: subprocess.Popen[bytes] | None = None
        self._log_from = 0

    def start(self) -> float:
        """Start it and wait for its first answer; returns the seconds that took.

        Raises:
            ClassroomError: it exited, or did not answer within 60 s.
        """
        started = time.perf_counter()
        self._log_from = self.log.stat().st_size if self.log.exists() else 0
        env = {**os.environ, "LABKIT_STATE_DIR": str(self.folder / "state")}
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "labkit", "classroom", "serve", "--port", str(self.port), "--db", str(self.db),
                 *self.limits],
                stdout=out, stderr=subprocess.STDOUT, env=env, cwd=paths.REPO_DIR,
            )  # fmt: skip
        wait.until(self._banner, "the classroom server's banner", timeout=60, detail=self._tail)
        wait.until(
            self._answers, "the classroom server to answer", timeout=60, retry_on=(HttpUnreachable,), detail=self._tail
        )
        return time.perf_counter() - started

    def _tail(self) -> str:
        return " | ".join(self.log.read_text(errors="replace").strip().splitlines()[-5:])

    def _banner(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise ClassroomError(
                f"labkit classroom serve exited with {self.proc.returncode}: {self._tail()}",
                "run `labkit classroom serve --port 0 --db /tmp/try.db` to see it fail",
            )
        text = self.log.read_bytes()[self._log_from :].decode(errors="replace")
        serving = re.search(r"serving on http://\S+:(\d+) ", text)
        join, instructor = re.search(r"classroom join \S+ (\S+) --name", text), re.search(r"\?token=(\S+)", text)
        if serving and join and instructor:
            self.join_token, self.instructor_token = join.group(1), instructor.group(1)
        if not serving or not (join or ("tokens kept" in text and self.join_token)):
            return False
        self.port = int(serving.group(1))
        return True

    def _answers(self) -> bool:
        ping = f"http://{HOST}:{self.port}/api/ping"
        return http.request("GET", ping, headers={"Authorization": f"Bearer {self.join_token}"}).status == 200

    def kill(self) -> None:
        """SIGKILL, and wait for it to be gone."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(30)

    def stop(self) -> None:
        """SIGTERM (a clean stop), SIGKILL after 10 s."""
        if self.proc is None or self.proc.poll() is not None:
            return
        os.kill(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.kill()


class _Class:
    """The learners, their connections and what they were told: shared by both phases."""

    def __init__(self, server: _Server, learners: int, pace: float, seed: int | None) -> None:
        self.server, self.pace = server, pace
        self.rng = random.Random(seed)
        course = [(e.id, e.lesson, e.title) for e in all_exercises()]
        self.names = [f"learner-{n:03d}" for n in range(learners)]
        self.walks = [Walk(name, course, random.Random(self.rng.random())) for name in self.names]
        self.conns = [_Connection(server.port) for _ in self.names]
        self.keys: list[str] = []
        self.acked: set[str] = set()
        self.in_flight = 0

    async def join(self) -> None:
        """Each learner joins on its own connection, one after the other (kept open for its posts)."""
        auth = ("Authorization", f"Bearer {self.server.join_token}")
        for name, conn in zip(self.names, self.conns, strict=True):
            body = json.dumps({"name": name}).encode()
            status, _, answer = await conn.request(
                "POST", "/api/join", [auth, ("Content-Type", "application/json")], body
            )
            if status != 200:
                raise ClassroomError(f"{name} could not join ({status}: {answer[:200]!r})", "see the server's log")
            self.keys.append(json.loads(answer)["key"])

    async def latest_seq(self) -> int:
        """The order number of the latest event, as the instructor's ``/api/state`` gives it."""
        conn = _Connection(self.server.port)
        try:
            auth = [("Authorization", f"Bearer {self.server.instructor_token}")]
            status, _, answer = await conn.request("GET", "/api/state", auth)
        finally:
            conn.close()
        if status != 200:
            raise ClassroomError(f"GET /api/state answered {status}", "see the server's log")
        return int(json.loads(answer)["seq"])

    async def post(self, tally: _Tally, stop: asyncio.Event) -> None:
        """Every learner posts until ``stop`` is set (each finishes the post it is in; a pause ends at once)."""
        await asyncio.gather(*(self._learner(n, tally, stop) for n in range(len(self.names))))

    async def _learner(self, n: int, tally: _Tally, stop: asyncio.Event) -> None:
        conn, walk, rng = self.conns[n], self.walks[n], random.Random(self.rng.random())
        headers = [
            ("Authorization", f"Bearer {self.server.join_token}"),
            (LEARNER_KEY_HEADER, self.keys[n]),
            ("Content-Type", "application/json"),
        ]
        pending: dict[str, Any] | None = None
        pause = rng.uniform(0, 2 * self.pace)  # learners do not all check at the same instant
        while not await _paused(stop, pause):
            event = pending or walk.next_event()
            pending, pause = event, RETRY_PAUSE * rng.uniform(0.5, 1.5)  # until it is acknowledged
            self.in_flight += 1
            started = time.perf_counter()
            try:
                async with asyncio.timeout(POST_TIMEOUT):
                    status, answer_headers, answer = await conn.request(
                        "POST", "/api/events", headers, json.dumps(event).encode()
                    )
            except TimeoutError:
                conn.close()
                tally.failed["timeout"] += 1
            except (OSError, h11.ProtocolError):
                conn.close()
                tally.failed["connection"] += 1
            else:
                if 200 <= status < 300:
                    tally.post_ms.append((time.perf_counter() - started) * 1000)
                    tally.stored += int(json.loads(answer).get("stored", 0))
                    self.acked.add(event["id"])
                    pending, pause = None, self.pace * rng.uniform(0.5, 1.5)
                else:
                    tally.failed[str(status)] += 1
                    if status == 429:
                        pause = float(answer_headers.get("retry-after", "1") or 1)
                    elif status < 500:
                        pending = None  # refused for good: the real client sets it aside
            finally:
                self.in_flight -= 1

    def close(self) -> None:
        for conn in self.conns:
            conn.close()


async def _paused(stop: asyncio.Event, seconds: float) -> bool:
    """Pause ``seconds``, or less when ``stop`` is set meanwhile; whether it is set."""
    if seconds > 0 and not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), seconds)
    return stop.is_set()


async def _poll(condition: Callable[[], bool], timeout: float) -> bool:
    """Whether ``condition()`` came true within ``timeout`` seconds (looked at every 10 ms, on the loop)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(0.01)
    return True


async def _measure(server: _Server, learners: int, seconds: float, pace: float, seed: int | None) -> ClassroomRun:
    room = _Class(server, learners, pace, seed)
    stream = InstructorStream(server.port, server.instructor_token)
    follower = asyncio.create_task(stream.follow())
    try:
        await room.join()
        if not await _poll(lambda: stream.snapshots > 0, 10):
            raise ClassroomError("the instructor's stream sent no snapshot within 10 s", "see the server's log")

        load, end = _Tally(), asyncio.Event()
        asyncio.get_running_loop().call_later(seconds, end.set)
        started = time.perf_counter()
        await room.post(load, end)
        elapsed = time.perf_counter() - started
        latest = await room.latest_seq()
        caught_up = await _poll(lambda: stream.seq >= latest, DRAIN)
        behind = time.perf_counter() - started - elapsed if caught_up else None
        stream_results, reconnects = stream.results, stream.snapshots - 1

        stop = asyncio.Event()
        across = _Tally()
        posting = asyncio.create_task(room.post(across, stop))
        await asyncio.sleep(KILL_AFTER)  # how long they post first: a length of the test, not a wait for something
        in_flight = room.in_flight
        await asyncio.to_thread(server.kill)
        restart_s = await asyncio.to_thread(server.start)  # the learners keep trying meanwhile
        await asyncio.sleep(RESUME)
        stop.set()
        await posting
    finally:
        follower.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await follower
        room.close()
    await asyncio.to_thread(server.stop)
    store = Store(server.db)
    try:
        kept = {s.event["id"] for s in store.events()}
    finally:
        store.close()
    return ClassroomRun(
        learners=learners,
        seconds=elapsed,
        pace=pace,
        events_per_minute=server.events_per_minute,
        post_ms=load.post_ms,
        failed=dict(load.failed),
        stored=load.stored,
        stream_results=stream_results,
        stream_reconnects=reconnects,
        stream_behind_s=behind,
        acked=len(room.acked),
        lost=len(room.acked - kept),
        in_flight_at_kill=in_flight,
        resent=sum(across.failed.values()),
        restart_s=restart_s,
    )


def run(learners: int = 100, seconds: float = 60.0, pace: float = 0.0, seed: int | None = None) -> ClassroomRun:
    """Run both phases against a fresh server in a throwaway folder, removed afterwards with the server stopped.

    Args:
        learners: simulated learners.
        seconds: length of the load phase.
        pace: seconds between one learner's posts, on average; 0 posts back to back, with the
            server's limit per learner lifted (below one second too: the default is 60 a minute).
        seed: for the learners' choices.

    Raises:
        ClassroomError: the server did not start, or a learner could not join.
    """
    events_per_minute = float(UNLIMITED if pace < 60 / EVENTS_PER_MINUTE else EVENTS_PER_MINUTE)
    with tempfile.TemporaryDirectory(prefix="labkit-bench-classroom-") as folder:
        server = _Server(Path(folder), learners, events_per_minute)
        try:
            server.start()
            return asyncio.run(_measure(server, learners, seconds, pace, seed))
        finally:
            server.stop()
