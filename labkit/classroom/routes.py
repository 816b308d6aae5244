"""The classroom's HTTP routes: a small Starlette app over the store (:mod:`.server` serves it).

Routes (learner = the join token in ``Authorization: Bearer``; instructor = the
instructor token as a bearer token or ``?token=``, or the ``labkit_instructor`` session
cookie that opening the page with ``?token=`` sets):

- ``GET /api/ping`` (either token): is this a labkit classroom, and is my token right?
- ``POST /api/join`` (learner) ``{"name": ..., "key": <optional earlier key>}`` →
  ``{"learner", "key"}``: binds the name to a learner key; 409 when someone else holds it
  (or a name that is the same learner: ``ADA`` for ``ada``, see
  :mod:`labkit.exercises.machinery.learner_names`), 403 when the classroom is full
  (``max_learners``), 422 for a name mixing scripts.
- ``POST /api/events`` (learner + ``X-Labkit-Learner-Key``): one event or a list of up to
  ``MAX_BATCH``; each is checked with ``labkit.exercises.machinery.events.validate_event`` (the schema) and must name the
  learner the key was issued to (stored under that learner's name as it joined); duplicates
  (same ``id``) are acknowledged, not stored twice; 429 with ``Retry-After`` past the
  learner's events per minute (:mod:`.limits`).
- ``GET /`` (instructor): the page; ``GET /api/stream`` (SSE: a snapshot on connect, then
  every stored event with the learner's updated row, and a ``tick`` heartbeat);
  ``GET /api/state`` (the snapshot as JSON); ``GET /api/gradebook.csv``.

Errors are JSON ``{"error": "<one line>"}``: 401 no token, 403 wrong token or a learner
key that does not match the event, 400 malformed JSON or nested too deep, 408 body too
slow, 413 body or batch too big, 415 not JSON, 422 an invalid event, 429 too many events.

Tokens are checked against the store's hashes (:mod:`.store`), re-read every
``TOKEN_REFRESH`` seconds so that ``labkit classroom rotate`` takes effect in a running
server. The instructor's cookie holds a random session value (the store keeps its hash
and when it expires, ``SESSION_TTL``), never the token.

What the tokens prove, honestly: the join token is shared by the whole class, so it
only proves "someone who was given the join token". The learner key issued at join
proves "the same client that first joined under this name", which stops one learner
posting results under another's name. Nothing here proves that a check really ran:
a learner can read their own key from their state folder and post ``"passed": true``
by hand. The live view is for seeing who needs help, not an exam proctor; grade from
what a check run on the learner's machine under supervision says if it matters.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from importlib import resources
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from labkit.classroom.client import LEARNER_KEY_HEADER
from labkit.classroom.hub import Hub, sse
from labkit.classroom.limits import EVENTS_PER_MINUTE, MAX_LEARNERS, EventRate, TooDeep, parse_json
from labkit.classroom.store import ClassroomFull, Store, matches
from labkit.classroom.view import page_html
from labkit.core import __version__
from labkit.core.errors import LabkitError, StoreError
from labkit.core.i18n import _
from labkit.course.grade import grade_events
from labkit.exercises.machinery.catalog import all_exercises
from labkit.exercises.machinery.events import prepare as prepare_validator
from labkit.exercises.machinery.events import validate_event
from labkit.exercises.machinery.learner_names import check_name, name_key

#: Largest request body accepted (413 beyond).
MAX_BODY = 64 * 1024
#: Most events in one post (the offline queue sends in batches of this size or less).
MAX_BATCH = 100
#: Seconds a client gets to send its whole body (408 beyond).
BODY_TIMEOUT = 5.0
#: Seconds between SSE heartbeats (they also refresh the page's "stuck" marks).
HEARTBEAT = 15.0
#: Seconds between two readings of the token hashes (a rotation takes effect within this).
TOKEN_REFRESH = 1.0
#: At most this many learner keys are remembered between two token refreshes.
KEY_CACHE = 10_000
#: Seconds an instructor session lasts (a teaching day).
SESSION_TTL = 12 * 3600
COOKIE = "labkit_instructor"

_PAGE_FILES = {"index.html": "text/html", "app.js": "text/javascript", "style.css": "text/css"}


def _error(status: int, message: str, code: str | None = None, **headers: str) -> JSONResponse:
    body = {"error": message} if code is None else {"error": message, "code": code}
    return JSONResponse(body, status_code=status, headers=headers or None)


def _course_exercises() -> list[dict[str, str]]:
    try:
        return [{"id": e.id, "lesson": e.lesson, "title": e.title} for e in all_exercises()]
    except Exception as e:  # a broken lesson module must not take the classroom down
        print(
            f"labkit classroom: could not list the course's exercises ({e}); columns come from events", file=sys.stderr
        )
        return []


class Classroom:
    """The app's state: the store, its token hashes, the course's exercises, the live room and the limits.

    Args:
        store: the database.
        heartbeat: seconds between SSE heartbeats.
        max_learners: learners the classroom takes.
        events_per_minute: events one learner may post per minute (the burst is four minutes' worth,
            and at least one batch).
    """

    def __init__(
        self,
        store: Store,
        heartbeat: float = HEARTBEAT,
        max_learners: int = MAX_LEARNERS,
        events_per_minute: float = EVENTS_PER_MINUTE,
    ) -> None:
        self.store = store
        #: The (join, instructor) tokens when this start issued them (a new database), else None.
        self.issued = store.issue_tokens()
        self.hashes = store.token_hashes()
        self.exercises = _course_exercises()
        prepare_validator()  # now, not on the event loop during the first post
        self.hub = Hub(self.exercises)
        self.hub.load(store.events(), store.learner_names())
        self.heartbeat = heartbeat
        self.max_learners = max_learners
        self.rate = EventRate.per_learner(events_per_minute, at_least=MAX_BATCH)
        #: Learner keys already looked up, and whose they are: a post then needs no database read. Emptied
        #: with every token refresh, so a learner `labkit classroom forget` removed is refused within a second.
        self.keys: dict[str, str] = {}

    async def watch_tokens(self) -> None:
        """Re-read the token hashes every ``TOKEN_REFRESH`` seconds (``labkit classroom rotate`` changes them)."""
        while True:
            await asyncio.sleep(TOKEN_REFRESH)
            self.keys.clear()
            with contextlib.suppress(Exception):  # a busy or closing database: keep the last hashes, try again
                self.hashes = await run_in_threadpool(self.store.token_hashes)

    # -- auth ---------------------------------------------------------------------------------

    @staticmethod
    def _bearer(request: Request) -> str | None:
        header = request.headers.get("authorization", "")
        scheme, _sep, value = header.partition(" ")
        return value.strip() or None if scheme.lower() == "bearer" else None

    def _learner(self, request: Request) -> Response | None:
        token = self._bearer(request)
        if token is None:
            return _error(
                401,
                _("missing join token: send `Authorization: Bearer <join token>`"),
                **{"WWW-Authenticate": "Bearer"},
            )
        if not matches(token, self.hashes.join):
            return _error(403, _("wrong join token: ask your instructor for the current one"))
        return None

    def _instructor_token(self, request: Request) -> str | None:
        """The instructor token the request carries (bearer or ``?token=``), when it is the right one."""
        token = self._bearer(request) or request.query_params.get("token")
        return token if matches(token, self.hashes.instructor) else None

    async def _instructor(self, request: Request) -> Response | None:
        if self._instructor_token(request):
            return None
        token = self._bearer(request) or request.query_params.get("token")
        session = request.cookies.get(COOKIE)
        if not token and not session:
            return _error(
                401, _("missing instructor token: open the instructor URL printed by `labkit classroom serve`")
            )
        if not token and session and await run_in_threadpool(self.store.session_valid, session):
            return None
        return _error(403, _("wrong instructor token: use the instructor URL printed by `labkit classroom serve`"))

    # -- learners -----------------------------------------------------------------------------

    async def ping(self, request: Request) -> Response:
        token = self._bearer(request)
        if token is None:
            return _error(401, _("missing token"), **{"WWW-Authenticate": "Bearer"})
        for role, expected in (("learner", self.hashes.join), ("instructor", self.hashes.instructor)):
            if matches(token, expected):
                return JSONResponse({"ok": True, "role": role, "service": "labkit classroom", "labkit": __version__})
        return _error(403, _("wrong token: ask your instructor for the join token"))

    async def _json_body(self, request: Request) -> Any | Response:
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype != "application/json":
            return _error(
                415,
                _("send JSON (Content-Type: application/json), not {content_type}").format(
                    content_type=ctype or _("no content type")
                ),
            )
        declared = request.headers.get("content-length")
        if declared is not None:
            if not declared.isdigit():
                return _error(400, _("bad Content-Length"))
            if int(declared) > MAX_BODY:
                return _error(
                    413,
                    _("body of {declared} bytes is over the limit of {max_body}").format(
                        declared=declared, max_body=MAX_BODY
                    ),
                )
        chunks: list[bytes] = []
        size = 0
        try:
            async with asyncio.timeout(BODY_TIMEOUT):
                async for chunk in request.stream():
                    size += len(chunk)
                    if size > MAX_BODY:
                        return _error(413, _("body is over the limit of {max_body} bytes").format(max_body=MAX_BODY))
                    chunks.append(chunk)
        except TimeoutError:
            return _error(408, _("the body did not arrive within {body_timeout:g} s").format(body_timeout=BODY_TIMEOUT))
        except ClientDisconnect:
            return _error(400, _("the client left before sending its whole body"))
        try:
            return parse_json(b"".join(chunks))
        except TooDeep as e:
            return _error(400, _("malformed JSON: {error}").format(error=e))
        except ValueError as e:  # json.JSONDecodeError and UnicodeDecodeError are ValueErrors
            return _error(400, _("malformed JSON: {error}").format(error=e))

    async def join(self, request: Request) -> Response:
        denied = self._learner(request)
        if denied:
            return denied
        body = await self._json_body(request)
        if isinstance(body, Response):
            return body
        if not isinstance(body, dict):
            return _error(422, _('send {"name": "<your name>"}'))
        try:
            name = check_name(body.get("name"))
        except ValueError as e:
            return _error(422, str(e))
        earlier = body.get("key") if isinstance(body.get("key"), str) else None

        def bind() -> tuple[str | None, str]:
            key = self.store.join(name, earlier, self.max_learners)
            return key, (self.store.learner_for_key(key) or name) if key else name

        try:
            key, learner = await run_in_threadpool(bind)
        except ClassroomFull as e:
            return _error(403, f"{e.message}: {e.fix}", code="classroom-full")
        if key is None:
            return _error(
                409,
                _(
                    "the name {name!r} is already taken in this classroom (names that differ only in case, accents "
                    "written another way or look-alike letters count as one): join with another --name (if it is "
                    "you on another machine, ask the instructor to run `labkit classroom forget NAME`)"
                ).format(name=name),
            )
        self.hub.joined(learner)
        return JSONResponse({"learner": learner, "key": key})

    async def post_events(self, request: Request) -> Response:
        denied = self._learner(request)
        if denied:
            return denied
        key = request.headers.get(LEARNER_KEY_HEADER)
        if not key:
            return _error(401, _("missing learner key: run `labkit classroom join URL TOKEN --name NAME` first"))
        learner = self.keys.get(key)
        if learner is None:
            learner = await run_in_threadpool(self.store.learner_for_key, key)
            if learner is None:
                return _error(403, _("unknown learner key: run `labkit classroom join` again"))
            if len(self.keys) < KEY_CACHE:
                self.keys[key] = learner
        body = await self._json_body(request)
        if isinstance(body, Response):
            return body
        items = body if isinstance(body, list) else [body]
        if not items:
            return _error(422, _("empty batch: send at least one event"))
        if len(items) > MAX_BATCH:
            return _error(
                413,
                _("batch of {items} events is over the limit of {max_batch}").format(
                    items=len(items), max_batch=MAX_BATCH
                ),
            )
        wait = self.rate.take(learner, len(items), time.monotonic())
        if wait:
            seconds = 60 if math.isinf(wait) else max(1, math.ceil(wait))
            return _error(
                429,
                _("too many events: {per_minute:g} a minute for each learner; send these in {seconds} s").format(
                    per_minute=self.rate.per_minute, seconds=seconds
                ),
                **{"Retry-After": str(seconds)},
            )
        events = []
        key_of_learner = name_key(learner)
        for n, item in enumerate(items):
            try:
                event = validate_event(item)
            except ValueError as e:
                where = _("event {n}: ").format(n=n) if isinstance(body, list) else ""
                return _error(422, _("invalid event: {where}{error}").format(where=where, error=e))
            if event["learner"] != learner:
                if name_key(event["learner"]) != key_of_learner:
                    return _error(
                        403,
                        _("your learner key belongs to {learner!r}, not {claimed!r}").format(
                            learner=learner, claimed=event["learner"]
                        ),
                        code="learner-mismatch",
                    )
                event = {**event, "learner": learner}  # one learner, one spelling: the one they joined with
            events.append(event)
        try:
            new = self.store.try_add(events)
            if new is None:  # another thread holds the database: wait for it off the loop
                new = await run_in_threadpool(self.store.add, events)
        except StoreError as e:
            return _error(503, str(e))
        self.hub.publish(new)
        return JSONResponse({"stored": len(new), "duplicates": len(events) - len(new)})

    # -- instructor ---------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """The room as the page shows it now (from memory: no database read)."""
        return self.hub.room.snapshot(time.time())

    async def page(self, request: Request) -> Response:
        denied = await self._instructor(request)
        if denied:
            return denied
        response = self._asset("index.html")
        if self._instructor_token(request) and request.query_params.get("token"):
            # The page drops ?token= from the address bar; the cookie keeps the session (reloads included).
            # It holds a random session value, never the token: the store keeps its hash and its expiry.
            session = await run_in_threadpool(self.store.new_session, SESSION_TTL)
            response.set_cookie(COOKIE, session, max_age=int(SESSION_TTL), httponly=True, samesite="strict", path="/")
        return response

    async def static(self, request: Request) -> Response:
        name = request.path_params["name"]
        if name not in _PAGE_FILES or name == "index.html":
            return _error(404, _("no such file"))
        return self._asset(name)

    @staticmethod
    def _asset(name: str) -> Response:
        """A file of the page; index.html with its sentences in the server's language (:func:`page_html`)."""
        body = resources.files("labkit.classroom").joinpath("static", name).read_bytes()
        if name == "index.html":
            body = page_html(body)
        return Response(
            body,
            media_type=_PAGE_FILES[name],
            headers={
                "Cache-Control": "no-store",
                "Content-Security-Policy": "default-src 'self'; img-src 'self' data:",
                "X-Content-Type-Options": "nosniff",
                "Referrer-Policy": "no-referrer",
            },
        )

    async def state(self, request: Request) -> Response:
        denied = await self._instructor(request)
        if denied:
            return denied
        # Taken on the loop (a consistent room), turned into text off it (5 MB for 500 learners x 60 exercises).
        body = await run_in_threadpool(json.dumps, self.snapshot())
        return Response(body, media_type="application/json")

    async def gradebook(self, request: Request) -> Response:
        denied = await self._instructor(request)
        if denied:
            return denied
        stored = await run_in_threadpool(self.store.events)
        csv_text = await run_in_threadpool(lambda: grade_events([s.event for s in stored]).to_csv())
        return Response(
            csv_text,
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": 'attachment; filename="gradebook.csv"', "Cache-Control": "no-store"},
        )

    async def stream(self, request: Request) -> Response:
        denied = await self._instructor(request)
        if denied:
            return denied
        return StreamingResponse(
            self._events(),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    async def _events(self) -> AsyncIterator[str]:
        if self.hub.closed:
            return
        # Subscribed and snapshotted in one step: every later event is in the queue, none twice.
        sub, snap = self.hub.subscribe()
        try:
            yield "retry: 2000\n" + await run_in_threadpool(sse, "snapshot", snap)
            while not sub.overflowed:
                try:
                    message = await asyncio.wait_for(sub.queue.get(), self.heartbeat)
                except TimeoutError:
                    yield sse("tick", {"now": time.time()})
                    continue
                if message is None:  # the server is stopping
                    return
                # Whatever else is already queued goes in the same send: one write per loop turn
                # would let a busy class outrun the page (it fell 2,000 messages behind at 750 posts/s).
                batch = [message]
                while len(batch) < STREAM_BATCH and not sub.queue.empty():
                    more = sub.queue.get_nowait()
                    if more is None:
                        yield "".join(batch)
                        return
                    batch.append(more)
                yield "".join(batch)
        finally:
            self.hub.subscribers.discard(sub)


#: At most this many queued messages go to the page in one send.
STREAM_BATCH = 500


def create_app(
    store: Store,
    heartbeat: float = HEARTBEAT,
    max_learners: int = MAX_LEARNERS,
    events_per_minute: float = EVENTS_PER_MINUTE,
) -> Starlette:
    """The Starlette app over a store (tests may call it in-process); ``app.state.room`` is its :class:`Classroom`."""
    room = Classroom(store, heartbeat, max_learners, events_per_minute)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        watcher = asyncio.create_task(room.watch_tokens())
        try:
            yield
        finally:
            watcher.cancel()

    def guarded(handler: Callable[[Request], Awaitable[Response]]) -> Callable[[Request], Awaitable[Response]]:
        async def wrapper(request: Request) -> Response:
            try:
                return await handler(request)
            except LabkitError as e:
                return _error(503, str(e))

        return wrapper

    routes = [
        Route("/", guarded(room.page)),
        Route("/static/{name}", guarded(room.static)),
        Route("/api/ping", guarded(room.ping)),
        Route("/api/join", guarded(room.join), methods=["POST"]),
        Route("/api/events", guarded(room.post_events), methods=["POST"]),
        Route("/api/state", guarded(room.state)),
        Route("/api/stream", guarded(room.stream)),
        Route("/api/gradebook.csv", guarded(room.gradebook)),
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.room = room
    return app
