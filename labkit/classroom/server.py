"""The instructor's live view: a small Starlette app on uvicorn, events kept in sqlite.

The routes, their tokens and their limits are :mod:`.routes`; the fan-out of new
events to the page's live streams is :mod:`.hub`; this module binds the address and runs uvicorn.

Robustness: bodies are read with a size cap and a deadline, uvicorn closes idle
keep-alive connections after a few seconds and answers 503 past ``limit_concurrency``,
sqlite writes go through one lock, off the event loop. A client that opens a
connection and never finishes its headers holds only an idle socket (asyncio does not
block on it); it does not stall other requests.
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
from pathlib import Path

import uvicorn

from labkit.classroom.routes import Classroom, create_app
from labkit.classroom.store import Store
from labkit.core.errors import LabkitError, PortInUse

DEFAULT_PORT = 8787


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


def banner(host: str, port: int, join_token: str, instructor_token: str, db: Path) -> str:
    """What ``serve`` prints: the join command for learners and the instructor's URL."""
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
    return "\n".join(
        [
            f"labkit classroom: serving on {url} ({scope})",
            f"  learners run:    labkit classroom join {url} {join_token} --name NAME",
            f"  instructor page: {url}/?token={instructor_token}",
            "                   (keep this URL to yourself: its token shows everyone's results)",
            f"  database:        {db}",
            "  stop with Ctrl-C; a restart keeps the tokens and every result",
        ]
    )


def serve(db: Path, host: str | None = None, port: int = DEFAULT_PORT, public: bool = False) -> None:
    """Run the classroom server until interrupted.

    Raises:
        LabkitError: a refused host, a taken port (``PortInUse``), or an unusable database.
    """
    bind_host = listen_host(host, public)
    store = Store(db)
    try:
        sock = bind(bind_host, port)
        app = create_app(store)
        room: Classroom = app.state.room
        actual_port = sock.getsockname()[1]
        print(banner(bind_host, actual_port, room.join_token, room.instructor_token, store.path), flush=True)
        config = uvicorn.Config(
            app,
            log_level="warning",
            access_log=False,
            lifespan="off",
            http="h11",
            timeout_keep_alive=5,
            limit_concurrency=512,
            timeout_graceful_shutdown=3,
        )
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        store.close()
