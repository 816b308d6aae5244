"""The instructor's live view: a small Starlette app on uvicorn, events kept in sqlite.

The routes, their tokens and their limits are :mod:`.routes`; the fan-out of new
events to the page's live streams is :mod:`.hub`; the connection-level defences
(deadlines on a request's head and body, a cap on idle connections per client address
and in all, ``TCP_NODELAY``) are :mod:`.guard`; this module binds the address and runs
uvicorn with them.

Robustness: bodies are read with a size cap and a deadline, sqlite writes go through
one lock, off the event loop; a connection that never finishes its request head is
closed after a few seconds, and a flood of them pushes out the oldest rather than
locking anyone out. ``limit_concurrency`` stays as a backstop sized from the open-file
limit (which ``serve`` raises toward 8192).

Stopping: SIGTERM or Ctrl-C ends the page's streams, closes the connections, waits at
most ``STOP_GRACE`` seconds for requests in progress, closes the database and exits 0
(uvicorn by itself would wait 3 s for the streams and then die of the signal it caught).
"""

from __future__ import annotations

import contextlib
import ipaddress
import signal
import socket
import sys
from pathlib import Path
from types import FrameType

import uvicorn

from labkit.classroom import guard
from labkit.classroom.limits import EVENTS_PER_MINUTE, MAX_LEARNERS
from labkit.classroom.routes import Classroom, create_app
from labkit.classroom.store import Store
from labkit.core.errors import LabkitError, PortInUse

DEFAULT_PORT = 8787
#: Seconds a stop waits for requests in progress before cancelling them.
STOP_GRACE = 0.5


# -- serving ----------------------------------------------------------------------------------


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and ``localhost``."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def listen_host(host: str | None, public: bool) -> str:
    """The address to bind: loopback unless ``--public`` says otherwise.

    Raises:
        LabkitError: a non-loopback ``--host`` without ``--public``.
    """
    if host is None:
        return "0.0.0.0" if public else "127.0.0.1"
    if not is_loopback(host) and not public:
        raise LabkitError(
            f"refusing to listen on {host} without --public",
            "add --public to open the classroom to your network (learners need it), or leave --host out for loopback only",
        )
    return host


def bind(host: str, port: int) -> socket.socket:
    """A listening socket, bound before uvicorn starts so a taken port is one clear line.

    Raises:
        PortInUse: the port is taken.
        LabkitError: the address cannot be used on this machine.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(2048)
    except OSError as e:
        sock.close()
        if e.errno == 98:  # EADDRINUSE
            raise PortInUse(port, "another program") from e
        raise LabkitError(f"cannot listen on {host}:{port} ({e.strerror})", "pick another --host or --port") from e
    sock.set_inheritable(True)
    return sock


def _lan_addresses() -> list[str]:
    with contextlib.suppress(OSError):
        infos = socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET)
        return sorted({str(info[4][0]) for info in infos if not str(info[4][0]).startswith("127.")})
    return []


def banner(host: str, port: int, tokens: tuple[str, str] | None, db: Path, issued_at: str = "") -> str:
    """What ``serve`` prints: the join command for learners and the instructor's URL.

    Args:
        tokens: the (join, instructor) tokens when this start issued them; None when they were
            issued before (the store keeps only their hashes, so they cannot be shown again).
    """
    shown = host
    if host in ("0.0.0.0", "::"):
        shown = next(iter(_lan_addresses()), socket.gethostname())
    if ":" in shown:
        shown = f"[{shown}]"
    url = f"http://{shown}:{port}"
    scope = (
        "loopback only: learners on other machines cannot reach it; add --public for a classroom"
        if is_loopback(host)
        else "open to the network"
    )
    if tokens is not None:
        join_token, instructor_token = tokens
        access = [
            f"  learners run:    labkit classroom join {url} {join_token} --name NAME",
            f"  instructor page: {url}/?token={instructor_token}",
            "                   (keep this URL to yourself: its token shows everyone's results;",
            "                   both tokens are shown only now: the database keeps only their hashes)",
        ]
    else:
        since = f" issued {issued_at}" if issued_at else ""
        access = [
            f"  tokens kept:     the join command and instructor URL printed when the tokens were{since}",
            f"                   still work ({url}, the database keeps only their hashes);",
            "                   lost them? `labkit classroom rotate` issues new ones (learners then join again)",
        ]
    return "\n".join(
        [
            f"labkit classroom: serving on {url} ({scope})",
            *access,
            f"  database:        {db}",
            "  stop with Ctrl-C; a restart keeps the tokens and every result",
        ]
    )


class _Server(uvicorn.Server):
    """uvicorn's server, stopping fast and cleanly: streams ended first, exit 0 on SIGTERM or Ctrl-C."""

    def __init__(self, config: uvicorn.Config, room: Classroom) -> None:
        super().__init__(config)
        self.room = room

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        # A stop that was asked for is a clean exit: uvicorn's own handler notes the signal and
        # raises it again once stopped (exit status 143 for SIGTERM, a KeyboardInterrupt for Ctrl-C).
        if self.should_exit and sig == signal.SIGINT:
            self.force_exit = True  # a second Ctrl-C: stop waiting for anything
        else:
            self.should_exit = True

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        self.room.hub.close()  # the page's streams end now instead of holding the stop for STOP_GRACE
        await super().shutdown(sockets)


def serve(
    db: Path,
    host: str | None = None,
    port: int = DEFAULT_PORT,
    public: bool = False,
    max_learners: int = MAX_LEARNERS,
    events_per_minute: float = EVENTS_PER_MINUTE,
) -> None:
    """Run the classroom server until interrupted (SIGTERM or Ctrl-C: a clean stop, the database closed).

    Raises:
        LabkitError: a refused host, a taken port (``PortInUse``), or an unusable database.
    """
    bind_host = listen_host(host, public)
    store = Store(db)
    try:
        sock = bind(bind_host, port)
        app = create_app(store, max_learners=max_learners, events_per_minute=events_per_minute)
        room: Classroom = app.state.room
        actual_port = sock.getsockname()[1]
        issued_at = "" if room.issued else room.hashes.issued_at
        print(banner(bind_host, actual_port, room.issued, store.path, issued_at), flush=True)
        concurrency, waiting = guard.budget(guard.raise_file_limit())
        protocol = guard.guarded_protocol(guard.Guard(guard.Waiting(total=waiting)))
        config = uvicorn.Config(
            app,
            log_level="warning",
            access_log=False,
            lifespan="on",
            http=protocol,
            timeout_keep_alive=int(guard.HEAD_TIMEOUT),
            limit_concurrency=concurrency,
            timeout_graceful_shutdown=STOP_GRACE,  # type: ignore[arg-type]
        )
        _Server(config, room).run(sockets=[sock])
    finally:
        store.close()
    print(f"labkit classroom: stopped; {db} closed", file=sys.stderr, flush=True)
