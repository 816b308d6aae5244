"""``labkit trace``: a recording proxy between the docker CLI and the daemon.

The proxy listens on a socket of its own (``<state dir>/trace/docker.sock``, mode
0600, or ``127.0.0.1:PORT``) and forwards every byte to the daemon's socket. On
the way it reads the HTTP framing, so it can write one JSON line per API call to
``<state dir>/trace/trace.jsonl``: the method, the path with its query, the API
version prefix, the status, when it happened and on which connection. A check in
another process reads that file.

What it understands of HTTP/1.1 is what the Docker API uses: keep-alive (several
requests per connection), ``Content-Length`` and chunked bodies (pull progress
streams chunked), and *hijacked* connections (``attach``, ``exec`` start): after a
``101 Switching Protocols``, or a ``200`` with a raw-stream content type and no
length, the two sockets are joined and bytes are pumped both ways untouched.

Point the CLI at it for one command::

    DOCKER_HOST=unix://$HOME/.local/state/labkit/trace/docker.sock docker run --rm hello-world

Example:
    >>> from labkit import trace
    >>> proxy = trace.start()  # doctest: +SKIP
    >>> labkit.sh(f"DOCKER_HOST={proxy.docker_host} docker run --rm hello-world")  # doctest: +SKIP
    >>> trace.show()  # doctest: +SKIP
"""

from __future__ import annotations

import argparse
import contextlib
import html
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TextIO

from labkit import engine, paths, wait
from labkit.errors import DaemonUnavailable, LabkitError, WaitTimeout

#: Seconds the background proxy may take to accept connections.
START_TIMEOUT = 10.0
#: Seconds between SIGTERM and SIGKILL when stopping it.
STOP_TIMEOUT = 5.0
#: A request or response head larger than this is not the Docker API.
MAX_HEAD = 64 * 1024
#: Bytes of a small JSON answer kept to read a new container's ``Id`` or an error ``message``.
CAPTURE_LIMIT = 64 * 1024
#: Content types the daemon uses for a hijacked (raw) stream.
RAW_STREAM_TYPES = ("application/vnd.docker.raw-stream", "application/vnd.docker.multiplexed-stream")
#: Unix socket paths longer than this do not fit in ``sockaddr_un`` on Linux.
MAX_UNIX_PATH = 107

_VERSION = re.compile(r"^/v(\d+\.\d+)(?=/)")
_HEX_ID = re.compile(r"(?<![0-9a-f])[0-9a-f]{64}(?![0-9a-f])")


class ProtocolError(Exception):
    """The bytes on a connection are not HTTP the proxy can frame (the connection is dropped)."""


# --- HTTP framing -----------------------------------------------------------------------


@dataclass(frozen=True)
class Head:
    """A parsed request or response head.

    Attributes:
        first: the start line split in three (``POST``, ``/v1.41/...``, ``HTTP/1.1``,
            or ``HTTP/1.1``, ``201``, ``Created``).
        headers: (name, value) pairs in order, names as sent.
        raw: the head's bytes exactly as received, forwarded unchanged.
    """

    first: tuple[str, str, str]
    headers: tuple[tuple[str, str], ...]
    raw: bytes

    def get(self, name: str, default: str = "") -> str:
        """The first header called ``name`` (case-insensitive)."""
        wanted = name.lower()
        for key, value in self.headers:
            if key.lower() == wanted:
                return value
        return default

    @property
    def method(self) -> str:
        return self.first[0]

    @property
    def target(self) -> str:
        return self.first[1]

    @property
    def status(self) -> int:
        return int(self.first[1])

    @property
    def reason(self) -> str:
        return self.first[2]


def parse_head(raw: bytes, response: bool = False) -> Head:
    """Parse a request head (``response=False``) or a response head.

    Raises:
        ProtocolError: the head is not HTTP/1.x.

    Example:
        >>> parse_head(b"HTTP/1.1 204 No Content\\r\\nServer: Docker\\r\\n\\r\\n", response=True).status
        204
    """
    try:
        text = raw.decode("latin-1")
        lines = text.split("\r\n")
        parts = lines[0].split(" ", 2)
        if response:
            if len(parts) == 2:  # a status line may have no reason phrase
                parts.append("")
            if len(parts) != 3 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
                raise ProtocolError(f"not an HTTP response: {lines[0][:80]!r}")
        elif len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            raise ProtocolError(f"not an HTTP request: {lines[0][:80]!r}")
        headers = []
        for line in lines[1:]:
            if not line:
                continue
            name, sep, value = line.partition(":")
            if not sep:
                raise ProtocolError(f"bad header line {line[:80]!r}")
            headers.append((name.strip(), value.strip()))
    except UnicodeDecodeError as e:  # latin-1 decodes anything; kept for safety
        raise ProtocolError(str(e)) from e
    return Head((parts[0], parts[1], parts[2]), tuple(headers), raw)


@dataclass(frozen=True)
class Framing:
    """How a message's body ends: ``none``, ``length`` (``size`` bytes), ``chunked``, or ``close``."""

    kind: str
    size: int = 0


def request_framing(head: Head) -> Framing:
    """A request's body: chunked, a length, or none (a request is never close-delimited).

    Raises:
        ProtocolError: a ``Content-Length`` that is not a number.
    """
    if "chunked" in head.get("Transfer-Encoding").lower():
        return Framing("chunked")
    length = head.get("Content-Length")
    if length:
        if not length.strip().isdigit():
            raise ProtocolError(f"bad Content-Length {length!r}")
        return Framing("length", int(length))
    return Framing("none")


def response_framing(method: str, head: Head) -> Framing:
    """A response's body, per RFC 9112: none for HEAD/1xx/204/304, else chunked, a length, or until close.

    Raises:
        ProtocolError: a ``Content-Length`` that is not a number.
    """
    status = head.status
    if method == "HEAD" or 100 <= status < 200 or status in (204, 304):
        return Framing("none")
    if "chunked" in head.get("Transfer-Encoding").lower():
        return Framing("chunked")
    length = head.get("Content-Length")
    if length:
        if not length.strip().isdigit():
            raise ProtocolError(f"bad Content-Length {length!r}")
        return Framing("length", int(length))
    return Framing("close")


def is_hijack(response: Head) -> bool:
    """True when the connection stops being HTTP after this response.

    ``101 Switching Protocols`` (``Upgrade: tcp``, what attach and exec start ask for),
    or the old style: ``200`` with a raw-stream content type and no body framing.

    Example:
        >>> is_hijack(parse_head(b"HTTP/1.1 101 UPGRADED\\r\\nUpgrade: tcp\\r\\n\\r\\n", response=True))
        True
    """
    if response.status == 101:
        return True
    ctype = response.get("Content-Type").split(";")[0].strip().lower()
    framed = response.get("Content-Length") or "chunked" in response.get("Transfer-Encoding").lower()
    return response.status == 200 and ctype in RAW_STREAM_TYPES and not framed


def keeps_alive(request: Head, response: Head) -> bool:
    """Whether another request may follow on this connection."""
    for head in (request, response):
        if "close" in head.get("Connection").lower():
            return False
    return not response.first[0].endswith("/1.0")


class Stream:
    """A socket with a read buffer: heads, lines and exact byte counts."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = bytearray()

    def _fill(self) -> bool:
        data = self.sock.recv(65536)
        if not data:
            return False
        self.buf += data
        return True

    def read_head(self) -> bytes | None:
        """Bytes up to and including the blank line, or ``None`` on a clean end before a head.

        Raises:
            ProtocolError: the peer closed mid-head, or the head is too large.
        """
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end >= 0:
                head = bytes(self.buf[: end + 4])
                del self.buf[: end + 4]
                return head
            if len(self.buf) > MAX_HEAD:
                raise ProtocolError("head too large")
            if not self._fill():
                if self.buf.strip():
                    raise ProtocolError("connection closed in the middle of a head")
                return None

    def read_line(self) -> bytes:
        """One line including its CRLF.

        Raises:
            ProtocolError: the peer closed first.
        """
        while True:
            end = self.buf.find(b"\r\n")
            if end >= 0:
                line = bytes(self.buf[: end + 2])
                del self.buf[: end + 2]
                return line
            if len(self.buf) > MAX_HEAD:
                raise ProtocolError("line too long")
            if not self._fill():
                raise ProtocolError("connection closed in the middle of a chunk header")

    def read_some(self, limit: int) -> bytes:
        """Up to ``limit`` bytes: what is buffered, else one ``recv``; ``b""`` at the end."""
        if not self.buf and not self._fill():
            return b""
        piece = bytes(self.buf[:limit])
        del self.buf[:limit]
        return piece

    def take_buffer(self) -> bytes:
        """Whatever was read ahead and not consumed (the start of a hijacked stream)."""
        data = bytes(self.buf)
        self.buf.clear()
        return data


def relay_body(
    src: Stream,
    dst: socket.socket,
    framing: Framing,
    capture: bytearray | None = None,
    before_end: Callable[[], None] | None = None,
    hold: bool = False,
) -> None:
    """Forward one body from ``src`` to ``dst``, chunk framing included, bytes unchanged.

    Args:
        src: where the body comes from.
        dst: where it goes.
        framing: how it ends.
        capture: collects the decoded body (up to :data:`CAPTURE_LIMIT` bytes).
        before_end: called just before the last bytes are forwarded (with ``hold``:
            before any are), so what it records is in place before the receiver can act.
        hold: keep a small body back until it is complete. A client may act on the
            first JSON object without waiting for the end of the body (the CLI exits
            as soon as it has a wait's exit code), so a body that must be recorded is
            held; past :data:`CAPTURE_LIMIT` bytes it streams after all.

    Raises:
        ProtocolError: the body ended early or its chunk framing is broken.
        OSError: a socket failed.
    """
    ended = False
    held: list[bytes] = []
    size_held = 0

    def done() -> None:
        nonlocal ended
        if not ended:
            ended = True
            if before_end is not None:
                before_end()

    def emit(data: bytes) -> None:
        nonlocal hold, size_held
        if hold:
            held.append(data)
            size_held += len(data)
            if size_held <= CAPTURE_LIMIT:
                return
            hold = False  # too large to be a small answer: record now, stream the rest
            done()
            data = b"".join(held)
            held.clear()
        dst.sendall(data)

    def finish(last: bytes = b"") -> None:
        done()
        data = b"".join(held) + last
        held.clear()
        if data:
            dst.sendall(data)

    def keep(data: bytes) -> None:
        if capture is not None and len(capture) < CAPTURE_LIMIT:
            capture.extend(data[: CAPTURE_LIMIT - len(capture)])

    if framing.kind == "none":
        finish()
        return
    if framing.kind == "length":
        remaining = framing.size
        while remaining:
            piece = src.read_some(min(remaining, 65536))
            if not piece:
                raise ProtocolError(f"body ended {remaining} bytes early")
            remaining -= len(piece)
            keep(piece)
            if not remaining:
                finish(piece)
                return
            emit(piece)
        finish()
        return
    if framing.kind == "close":
        while piece := src.read_some(65536):
            keep(piece)
            emit(piece)
        finish()
        return
    while True:  # chunked
        line = src.read_line()
        try:
            size = int(line.split(b";", 1)[0].strip(), 16)
        except ValueError as e:
            raise ProtocolError(f"bad chunk size line {line[:40]!r}") from e
        if size == 0:
            trailer = line
            while (extra := src.read_line()) != b"\r\n":
                trailer += extra
            finish(trailer + b"\r\n")
            return
        emit(line)
        remaining = size + 2  # the chunk and its CRLF
        while remaining:
            piece = src.read_some(remaining)
            if not piece:
                raise ProtocolError("connection closed in the middle of a chunk")
            keep(piece[: max(0, remaining - 2)])
            remaining -= len(piece)
            emit(piece)


def pump(a: socket.socket, b: socket.socket, a_ahead: bytes = b"", b_ahead: bytes = b"") -> None:
    """Join two sockets: copy bytes both ways until both directions have ended.

    An end in one direction is passed on as a half-close (``shutdown(SHUT_WR)``),
    because the CLI closes its writing side when stdin ends and still reads the
    container's output after that.

    Args:
        a: one side (the client).
        b: the other side (the daemon).
        a_ahead: bytes already read from ``a`` and not yet forwarded.
        b_ahead: bytes already read from ``b`` and not yet forwarded.
    """

    def copy(src: socket.socket, dst: socket.socket, ahead: bytes) -> None:
        try:
            if ahead:
                dst.sendall(ahead)
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass  # a reset on either side ends this direction, like a close
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)

    other = threading.Thread(target=copy, args=(a, b, a_ahead), daemon=True)
    other.start()
    copy(b, a, b_ahead)
    other.join()


# --- addresses --------------------------------------------------------------------------


def parse_address(url: str) -> tuple[str, str, int]:
    """``unix:///path`` → ``("unix", "/path", 0)``; ``tcp://host:port`` → ``("tcp", host, port)``.

    Raises:
        LabkitError: another scheme (``ssh://``, ``npipe://``), or no port.
    """
    if url.startswith("unix://"):
        return "unix", url[len("unix://") :], 0
    if url.startswith(("tcp://", "http://")):
        rest = url.split("://", 1)[1].rstrip("/")
        host, sep, port = rest.rpartition(":")
        if not sep or not port.isdigit():
            raise LabkitError(f"{url} names no port", "write DOCKER_HOST as tcp://HOST:PORT")
        return "tcp", host.strip("[]") or "127.0.0.1", int(port)
    raise LabkitError(f"labkit trace cannot reach a daemon at {url}", "it works with unix:// and tcp:// daemon addresses")


def _connect(url: str, timeout: float | None = None) -> socket.socket:
    kind, where, port = parse_address(url)
    if kind == "unix":
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        try:
            sock.connect(where)
        except OSError:
            sock.close()
            raise
    else:
        sock = socket.create_connection((where, port), timeout=timeout)
    sock.settimeout(None)
    return sock


# --- the proxy --------------------------------------------------------------------------


class Recorder:
    """Appends one JSON line per call to the trace log; safe across threads."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._started = time.monotonic()

    def elapsed(self) -> float:
        """Seconds since the proxy started."""
        return time.monotonic() - self._started

    def write(self, record: dict[str, Any]) -> None:
        line = (json.dumps(record, sort_keys=True) + "\n").encode()
        with self._lock:
            # One write() of a whole line on an O_APPEND file: a reader never sees half a line.
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, line)
            finally:
                os.close(fd)


_HOLD_ROUTES = re.compile(r"^(?:/v\d+\.\d+)?/(?:containers/create|containers/[^/]+/(?:exec|wait))$")


def wants_body(method: str, path: str, status: int) -> bool:
    """Whether a response's body is worth recording: a new id, a wait's exit code, an error message.

    Example:
        >>> wants_body("POST", "/v1.41/containers/create?name=web", 201), wants_body("POST", "/v1.41/images/create", 200)
        (True, False)
    """
    return status >= 400 or (method == "POST" and bool(_HOLD_ROUTES.match(path.split("?", 1)[0])))


def body_fields(status: int, body: bytes, path: str) -> dict[str, Any]:
    """What to keep from a small JSON answer: a created ``id``, a wait's ``exit`` code, an error ``message``."""
    if not body:
        return {}
    try:
        data = json.loads(body)
    except ValueError:
        return {}
    if not isinstance(data, dict):
        return {}
    found: dict[str, Any] = {}
    route = path.split("?", 1)[0]
    if status < 300 and isinstance(data.get("Id"), str) and route.endswith(("/create", "/exec")):
        found["id"] = data["Id"]
    if status < 300 and route.endswith("/wait") and isinstance(data.get("StatusCode"), int):
        found["exit"] = data["StatusCode"]
    if status >= 400 and isinstance(data.get("message"), str):
        found["message"] = data["message"][:300]
    return found


class Proxy:
    """Accepts connections on ``listen`` and relays each to its own connection to ``upstream``."""

    def __init__(self, listen: str, upstream: str, log: Path) -> None:
        self.listen = listen
        self.upstream = upstream
        self.recorder = Recorder(log)
        self._server: socket.socket | None = None
        self._count = 0
        self._lock = threading.Lock()
        self._closed = threading.Event()

    def bind(self) -> None:
        """Open the listening socket: a unix socket of mode 0600, or 127.0.0.1 only.

        Raises:
            LabkitError: the address is taken or cannot be used.
        """
        kind, where, port = parse_address(self.listen)
        try:
            if kind == "unix":
                server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                old = os.umask(0o177)  # born 0600: no moment where others could connect
                try:
                    server.bind(where)
                finally:
                    os.umask(old)
                os.chmod(where, 0o600)
            else:
                if where not in ("127.0.0.1", "localhost"):
                    raise LabkitError(f"labkit trace listens on 127.0.0.1 only, not {where}", "use --tcp PORT")
                server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                server.bind(("127.0.0.1", port))
        except OSError as e:
            raise LabkitError(f"cannot listen on {self.listen}: {e.strerror or e}", "stop what uses it, or choose another socket or port") from e
        server.listen(64)
        self._server = server

    @property
    def address(self) -> str:
        """The address it listens on, with the real port when 0 was asked for."""
        if self._server is not None and self._server.family == socket.AF_INET:
            return f"tcp://127.0.0.1:{self._server.getsockname()[1]}"
        return self.listen

    def serve_forever(self) -> None:
        """Accept until :meth:`close`; each connection gets a thread."""
        assert self._server is not None, "bind() first"
        while not self._closed.is_set():
            try:
                client, _ = self._server.accept()
            except OSError:
                if self._closed.is_set():
                    return
                raise
            threading.Thread(target=self._handle, args=(client,), daemon=True).start()

    def close(self) -> None:
        """Stop accepting and remove the unix socket file."""
        self._closed.set()
        if self._server is not None:
            with contextlib.suppress(OSError):
                self._server.shutdown(socket.SHUT_RDWR)
            self._server.close()
        kind, where, _ = parse_address(self.listen)
        if kind == "unix":
            with contextlib.suppress(FileNotFoundError):
                os.unlink(where)

    def _number(self) -> int:
        """The next connection number, given at a connection's first request (a probe that only connects gets none)."""
        with self._lock:
            self._count += 1
            return self._count

    def _handle(self, client: socket.socket) -> None:
        try:
            upstream = _connect(self.upstream, timeout=5.0)
        except OSError:
            client.close()  # the CLI reports the refused connection itself
            return
        try:
            self._relay(Stream(client), Stream(upstream))
        except (OSError, ProtocolError):
            pass  # a broken connection ends it; the calls before it are already recorded
        finally:
            for sock in (client, upstream):
                with contextlib.suppress(OSError):
                    sock.close()

    def _relay(self, client: Stream, upstream: Stream) -> None:
        """Relay request after request on one connection, until it closes or is hijacked."""
        seq = 0
        number = 0
        while (raw := client.read_head()) is not None:
            request = parse_head(raw)
            number = number or self._number()
            seq += 1
            call = _Exchange(self.recorder, number, seq, request)
            try:
                if not call.relay(client, upstream):
                    return
            finally:
                call.write()  # a call cut short (the CLI hung up on a wait) is still a call


class _Exchange:
    """One request and its response on a connection, and the log line that records them."""

    def __init__(self, recorder: Recorder, conn: int, seq: int, request: Head) -> None:
        self.recorder = recorder
        self.request = request
        self.written = False
        self.record: dict[str, Any] = {
            "conn": conn,
            "seq": seq,
            "t": round(recorder.elapsed(), 4),
            "method": request.method,
            "path": request.target,
            "api": (m.group(1) if (m := _VERSION.match(request.target)) else None),
            "status": None,
        }

    def write(self) -> None:
        """Log the call, once."""
        if not self.written:
            self.written = True
            self.recorder.write(self.record)

    def relay(self, client: Stream, upstream: Stream) -> bool:
        """Forward the request, then the response; True when the connection may carry another.

        Raises:
            ProtocolError: either side broke HTTP framing.
            OSError: a socket failed.
        """
        request = self.request
        upstream.sock.sendall(request.raw)
        relay_body(client, upstream.sock, request_framing(request))
        while True:
            raw = upstream.read_head()
            if raw is None:
                raise ProtocolError("the daemon closed the connection without answering")
            response = parse_head(raw, response=True)
            if response.status == 101 or not 100 <= response.status < 200:
                break
            client.sock.sendall(raw)  # 100 Continue: the real answer follows
        self.record.update(
            status=response.status, reason=response.reason, ms=round((self.recorder.elapsed() - self.record["t"]) * 1000, 1)
        )
        if is_hijack(response):
            self.record["hijacked"] = True
            self.write()
            client.sock.sendall(raw)
            pump(client.sock, upstream.sock, client.take_buffer(), upstream.take_buffer())
            return False
        framing = response_framing(request.method, response)
        hold = framing.kind != "none" and wants_body(request.method, request.target, response.status)
        if not hold:
            self.write()  # in the log before the client has the answer
        client.sock.sendall(raw)
        body = bytearray()

        def finish() -> None:
            self.record.update(body_fields(response.status, bytes(body), request.target))
            self.write()

        relay_body(upstream, client.sock, framing, capture=body if hold else None, before_end=finish if hold else None, hold=hold)
        return framing.kind != "close" and keeps_alive(request, response)


# --- the background process -------------------------------------------------------------


def folder() -> Path:
    """``<state dir>/trace``: socket, log and pid file, readable by their owner only."""
    path = paths.state_dir() / "trace"
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    with contextlib.suppress(OSError):
        path.chmod(0o700)
    return path


def socket_path() -> Path:
    """Where the proxy listens by default: ``<state dir>/trace/docker.sock``."""
    return folder() / "docker.sock"


def log_path() -> Path:
    """The trace log: one JSON object per API call."""
    return folder() / "trace.jsonl"


def _pid_file() -> Path:
    return folder() / "proxy.json"


def _output_file() -> Path:
    return folder() / "proxy.log"


#: Proxy processes started by this Python process, reaped when they end.
_children: dict[int, subprocess.Popen[bytes]] = {}


@dataclass(frozen=True)
class TraceStatus:
    """Whether labkit's trace proxy runs, and where.

    Attributes:
        running: the recorded proxy process is alive and is ours.
        docker_host: the value to give ``DOCKER_HOST`` to go through it.
        socket: the unix socket path ("" when it listens on TCP).
        upstream: the daemon it forwards to.
        log: the trace log.
        pid: the proxy's process id when running.
    """

    running: bool
    docker_host: str = ""
    socket: str = ""
    upstream: str = ""
    log: str = ""
    pid: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def __str__(self) -> str:
        if not self.running:
            return "labkit trace: no proxy running"
        return f"recording proxy running: DOCKER_HOST={self.docker_host} → {self.upstream}"

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(str(self))


def _start_time(pid: int) -> str | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()
    except OSError:
        return None
    return fields[19] if len(fields) > 19 else None


def _alive(pid: int) -> bool:
    child = _children.get(pid)
    if child is not None:
        if child.poll() is None:
            return True
        del _children[pid]
        return False
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _recorded() -> dict[str, Any] | None:
    try:
        record = json.loads(_pid_file().read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and isinstance(record.get("pid"), int) else None


def _is_ours(record: dict[str, Any]) -> bool:
    """The recorded pid is still that process (same start time) running ``labkit.trace serve``."""
    pid = int(record["pid"])
    if not _alive(pid) or _start_time(pid) != record.get("start"):
        return False
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return b"labkit.trace" in argv and b"serve" in argv


def status() -> TraceStatus:
    """The proxy labkit started, if it still runs. No side effects."""
    record = _recorded()
    if record is None or not _is_ours(record):
        return TraceStatus(False, log=str(log_path()))
    listen = str(record.get("listen", ""))
    return TraceStatus(
        True,
        docker_host=listen,
        socket=listen[len("unix://") :] if listen.startswith("unix://") else "",
        upstream=str(record.get("upstream", "")),
        log=str(record.get("log", "")),
        pid=int(record["pid"]),
    )


def _check_upstream(upstream: str, listen: str) -> None:
    """Fail early, with one line, when the daemon cannot be reached or is the proxy itself.

    Raises:
        DaemonUnavailable: the daemon's socket is missing.
        LabkitError: DOCKER_HOST points at the proxy.
    """
    kind, where, _ = parse_address(upstream)
    if upstream == listen or (kind == "unix" and Path(where) == socket_path()):
        raise LabkitError(
            f"DOCKER_HOST ({upstream}) points at the trace proxy itself",
            "unset DOCKER_HOST (or set it to the daemon's socket) before `labkit trace start`",
        )
    if os.environ.get("DOCKER_TLS_VERIFY"):
        raise LabkitError("labkit trace cannot relay a TLS connection to the daemon", "unset DOCKER_TLS_VERIFY or trace a local daemon")
    if kind == "unix" and not Path(where).exists():
        raise DaemonUnavailable(upstream, "socket not found")


def _prepare_unix(path: Path) -> None:
    """Clear a stale socket file; refuse one something still answers on.

    Raises:
        LabkitError: the path is too long, or a live program listens there.
    """
    if len(str(path)) > MAX_UNIX_PATH:
        raise LabkitError(f"socket path too long for a unix socket: {path}", "set LABKIT_STATE_DIR to a shorter folder, or use --tcp PORT")
    if not path.exists() and not path.is_symlink():
        return
    try:
        _connect(f"unix://{path}", timeout=1.0).close()
    except OSError:
        path.unlink(missing_ok=True)  # nobody listens: a leftover from a killed proxy
        return
    raise LabkitError(f"socket path {path} is in use by another program", "stop it, or give labkit trace another --socket path")


def start(socket_file: str | Path | None = None, tcp: int | None = None, *, out: TextIO | None = None) -> TraceStatus:
    """Start the recording proxy in the background, with a new, empty trace log.

    A proxy labkit started earlier is stopped first, so every start is a fresh
    recording. The process outlives the caller (a notebook kernel, ``labkit
    exercise setup``); :func:`stop` ends it.

    Args:
        socket_file: where to listen; ``<state dir>/trace/docker.sock`` by default.
        tcp: listen on ``127.0.0.1:tcp`` instead of a unix socket.
        out: where to print one line about it (nothing by default).

    Returns:
        Its status, including the ``DOCKER_HOST`` value to use.

    Raises:
        DaemonUnavailable: the daemon's socket is missing.
        LabkitError: the socket path or port is in use, or the proxy did not start.
    """
    stop()
    listen = f"tcp://127.0.0.1:{tcp}" if tcp is not None else f"unix://{Path(socket_file or socket_path()).absolute()}"
    upstream = engine.docker_host()
    _check_upstream(upstream, listen)
    if tcp is None:
        _prepare_unix(Path(listen[len("unix://") :]))
    log = log_path()
    log.unlink(missing_ok=True)
    output = _output_file()
    with open(output, "wb") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-m", "labkit.trace", "serve", "--listen", listen, "--upstream", upstream, "--log", str(log)],
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=subprocess.STDOUT,
            cwd=folder(),
            start_new_session=True,  # not in the caller's process group: Ctrl-C in a shell leaves it running
        )
    _children[proc.pid] = proc
    _pid_file().write_text(json.dumps({"pid": proc.pid, "start": _start_time(proc.pid), "listen": listen, "upstream": upstream, "log": str(log)}))

    def listening() -> bool:
        if proc.poll() is not None:
            said = output.read_text(errors="replace").strip().splitlines()
            _pid_file().unlink(missing_ok=True)
            raise LabkitError((said[-1] if said else f"the trace proxy exited with code {proc.returncode}").removeprefix("labkit: "))
        try:
            _connect(listen, timeout=0.5).close()
            return True
        except OSError:
            return False

    try:
        wait.until(listening, f"the trace proxy on {listen}", timeout=START_TIMEOUT)
    except WaitTimeout:
        stop()
        raise
    result = status()
    if out is not None:
        print(f"{result} (pid {proc.pid}; log {log})", file=out, flush=True)
    return result


def stop(remove_log: bool = False) -> bool:
    """Stop the proxy labkit started and remove its socket.

    Only the process in the pid file is signalled, and only if it is still that
    ``labkit.trace serve`` process.

    Args:
        remove_log: delete the trace log as well (exercise teardown does).

    Returns:
        True if a proxy was running and is now stopped.
    """
    stopped = False
    record = _recorded()
    if record is not None:
        pid = int(record["pid"])
        if _is_ours(record):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
            try:
                wait.until(lambda: not _alive(pid), f"trace proxy {pid} to stop", timeout=STOP_TIMEOUT)
            except WaitTimeout:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                wait.until(lambda: not _alive(pid), f"trace proxy {pid} to stop after SIGKILL", timeout=5.0)
            stopped = True
        listen = str(record.get("listen", ""))
        if listen.startswith("unix://"):
            stale = Path(listen[len("unix://") :])
            with contextlib.suppress(OSError):
                if stale.is_socket():
                    stale.unlink()
        _pid_file().unlink(missing_ok=True)
    if remove_log:
        log_path().unlink(missing_ok=True)
        _output_file().unlink(missing_ok=True)
    return stopped


# --- reading a trace --------------------------------------------------------------------


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


#: The six steps of ``docker run hello-world`` (lesson 00), by number.
STEPS = {
    1: "you type the command",
    2: "the client reaches the daemon's API",
    3: "the image is not found locally",
    4: "the daemon pulls the image",
    5: "the daemon creates the container",
    6: "the daemon starts it; output streams back",
}

_STEP_RULES: tuple[tuple[str, str, Callable[[int | None], bool], int, str], ...] = (
    ("HEAD", "/_ping", lambda s: True, 2, "ping: is a daemon there, which API version?"),
    ("GET", "/_ping", lambda s: True, 2, "ping: is a daemon there, which API version?"),
    ("GET", "/version", lambda s: True, 2, "version details"),
    ("POST", "/containers/create", lambda s: s == 404, 3, "create fails: no such image"),
    ("POST", "/images/create", lambda s: True, 4, "pull the image (progress streams back)"),
    ("POST", "/containers/create", lambda s: s is not None and 200 <= s < 300, 5, "create the container"),
    ("POST", "/containers/{id}/attach", lambda s: True, 6, "attach to its output (hijacked stream)"),
    ("POST", "/containers/{id}/wait", lambda s: True, 6, "wait for it to exit"),
    ("POST", "/containers/{id}/start", lambda s: True, 6, "start it"),
)


def step_of(call: Call) -> tuple[int | None, str]:
    """Which of the six steps a call belongs to, and what it does; ``(None, "other")`` otherwise.

    Example:
        >>> step_of(Call(1, 1, 0.0, "POST", "/v1.41/images/create?fromImage=hello-world&tag=latest", status=200))
        (4, 'pull the image (progress streams back)')
    """
    route = call.route
    for method, pattern, status_ok, step, what in _STEP_RULES:
        if call.method == method and route == pattern and status_ok(call.status):
            return step, what
    return None, "other"


def _short(value: str) -> str:
    return _HEX_ID.sub(lambda m: m.group(0)[:12], value)


@dataclass(frozen=True)
class Row:
    """A call as the views show it."""

    step: int | None
    what: str
    method: str
    path: str
    status: str
    conn: int = 0
    t: float = 0.0


#: Within step 6 the CLI attaches, then asks to wait, then starts; wait and start leave on
#: two connections at nearly the same moment, so their arrival order can swap.
_RUN_ORDER = {"/containers/{id}/attach": 0, "/containers/{id}/wait": 1, "/containers/{id}/start": 2}


def stable_order(calls: Sequence[Call]) -> list[Call]:
    """Calls in arrival order, except that each unbroken run of attach/wait/start is put in that order.

    Example:
        >>> calls = [Call(1, 1, 0.1, "POST", "/containers/" + "a" * 64 + "/start"), Call(2, 1, 0.0, "POST", "/containers/" + "a" * 64 + "/wait")]
        >>> [c.route for c in stable_order(calls)]
        ['/containers/{id}/wait', '/containers/{id}/start']
    """
    ordered = sorted(calls, key=lambda c: (c.t, c.conn, c.seq))
    result: list[Call] = []
    run: list[Call] = []
    for call in ordered + [None]:  # type: ignore[list-item]
        if call is not None and call.method == "POST" and call.route in _RUN_ORDER:
            run.append(call)
            continue
        result.extend(sorted(run, key=lambda c: _RUN_ORDER[c.route]))
        run = []
        if call is not None:
            result.append(call)
    return result


class Trace:
    """A recorded trace, shown as a table (text and HTML) and as a sequence diagram.

    In ``stable`` mode (the default) what changes from run to run is left out, so a
    notebook can compare it: ids become ``{id}``, the ``/v1.NN`` prefix is dropped
    (the version is named once, above the table), times and connection numbers are
    not shown, and a run of attach/wait/start is listed in the order the CLI issues
    them (two of them race on separate connections). ``stable=False`` shows the
    calls as they arrived, with times, connection numbers and real paths.
    """

    def __init__(self, calls: Sequence[Call], stable: bool = True) -> None:
        self.stable = stable
        self.calls = stable_order(calls) if stable else sorted(calls, key=lambda c: (c.t, c.conn, c.seq))

    @property
    def api_versions(self) -> list[str]:
        return sorted({c.api for c in self.calls if c.api})

    def rows(self) -> list[Row]:
        rows = []
        for call in self.calls:
            step, what = step_of(call)
            path = normalize_path(call.path) if self.stable else _short(call.path)
            status = "—" if call.status is None else f"{call.status} {call.reason}".strip()
            if call.hijacked:
                status += " ⇄ raw stream"
            if call.exit is not None:
                status += f" (exit {call.exit})"
            if call.message and step is None:
                what = f"other: {call.message}"
            rows.append(Row(step, what, call.method, path, status, call.conn, call.t))
        return rows

    def __len__(self) -> int:
        return len(self.calls)

    def _columns(self, row: Row) -> list[str]:
        cells = [str(row.step) if row.step else "–", f"{row.method} {row.path}", row.status, row.what]
        return cells if self.stable else [f"{row.t:.3f}", str(row.conn), *cells]

    def _header(self) -> list[str]:
        cells = ["step", "request", "status", "what it does"]
        return cells if self.stable else ["t (s)", "conn", *cells]

    def _title(self) -> str:
        versions = f" (API version {', '.join(self.api_versions)})" if self.api_versions else ""
        return f"{len(self.calls)} API call{'s' if len(self.calls) != 1 else ''}{versions}"

    def __str__(self) -> str:
        if not self.calls:
            return "no API calls recorded yet"
        table = [self._header()] + [self._columns(r) for r in self.rows()]
        widths = [max(len(line[i]) for line in table) for i in range(len(table[0]) - 1)]
        lines = [self._title()]
        for line in table:
            lines.append("  ".join([*(cell.ljust(w) for cell, w in zip(line, widths, strict=False)), line[-1]]).rstrip())
        return "\n".join(lines)

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(str(self))

    def _repr_html_(self) -> str:
        if not self.calls:
            return "<p><i>no API calls recorded yet</i></p>"
        esc = html.escape
        cell = "padding:2px 8px;text-align:left"
        head = "".join(f"<th style='{cell}'>{esc(h)}</th>" for h in self._header())
        body = []
        for row in self.rows():
            cells = self._columns(row)
            request = len(cells) - 3
            tds = "".join(
                f"<td style='{cell}'>" + (f"<code>{esc(c)}</code>" if i == request else esc(c)) + "</td>" for i, c in enumerate(cells)
            )
            body.append(f"<tr>{tds}</tr>")
        return (
            f"<div class='labkit-trace'><b>{esc(self._title())}</b>"
            f"<table style='border-collapse:collapse;font-size:90%'><tr>{head}</tr>{''.join(body)}</table></div>"
        )

    def diagram(self) -> Diagram:
        """The same calls as a sequence diagram: client and daemon lifelines, one arrow pair per call."""
        return Diagram(self.rows())


@dataclass(frozen=True)
class Diagram:
    """A sequence diagram as inline SVG; its structure depends only on the rows."""

    rows: list[Row] = field(default_factory=list)

    ROW = 44
    LEFT = 100
    RIGHT = 640
    WIDTH = 700

    def __str__(self) -> str:
        lines = ["docker CLI  →  dockerd"]
        for row in self.rows:
            step = f"[{row.step}]" if row.step else "[–]"
            lines.append(f"{step} → {row.method} {row.path}")
            lines.append(f"    ← {row.status}   — {row.what}")
        return "\n".join(lines)

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(str(self))

    def _repr_html_(self) -> str:
        esc = html.escape
        height = 56 + self.ROW * len(self.rows)
        parts = [
            (
                f'<svg class="labkit-sequence" xmlns="http://www.w3.org/2000/svg" width="{self.WIDTH}" height="{height}" '
                'font-family="monospace" font-size="12">'
            ),
            (
                '<defs><marker id="lk-arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" '
                'orient="auto"><path d="M 0 0 L 10 5 L 0 10 z" fill="#444"/></marker></defs>'
            ),
        ]
        for x, name in ((self.LEFT, "docker CLI"), (self.RIGHT, "dockerd")):
            parts.append(f'<rect x="{x - 50}" y="6" width="100" height="24" rx="4" fill="#eef3fb" stroke="#4a6fa5"/>')
            parts.append(f'<text x="{x}" y="22" text-anchor="middle" font-weight="bold">{name}</text>')
            parts.append(f'<line x1="{x}" y1="30" x2="{x}" y2="{height - 4}" stroke="#aaa" stroke-dasharray="4 3"/>')
        for n, row in enumerate(self.rows):
            y = 56 + self.ROW * n
            color = "#1e6b34" if row.step else "#777"
            label = f"{row.method} {row.path}"
            if len(label) > 74:
                label = label[:73] + "…"
            parts.append(f'<text x="12" y="{y + 8}" fill="{color}" font-weight="bold">{row.step or "–"}</text>')
            parts.append(f'<text x="{self.LEFT + 6}" y="{y - 4}" fill="{color}">{esc(label)}</text>')
            parts.append(f'<line x1="{self.LEFT}" y1="{y}" x2="{self.RIGHT}" y2="{y}" stroke="{color}" marker-end="url(#lk-arrow)"/>')
            parts.append(f'<text x="{self.LEFT + 6}" y="{y + 13}" fill="#666" font-style="italic">{esc(row.what)}</text>')
            parts.append(f'<text x="{self.RIGHT - 6}" y="{y + 13}" text-anchor="end" fill="#444">{esc(row.status)}</text>')
            parts.append(
                f'<line x1="{self.RIGHT}" y1="{y + 18}" x2="{self.LEFT}" y2="{y + 18}" stroke="#444" '
                'stroke-dasharray="5 3" marker-end="url(#lk-arrow)"/>'
            )
        parts.append("</svg>")
        return "".join(parts)


def show(path: str | Path | None = None, stable: bool = True) -> Trace:
    """The trace recorded so far (by default labkit's own log), ready to display.

    Args:
        path: a trace log; the proxy's by default.
        stable: hide ids, versions and times, so the view is the same from run to run.
    """
    return Trace(load(path), stable=stable)


# --- command line -----------------------------------------------------------------------


def _serve(listen: str, upstream: str, log: str) -> int:
    """The background process: bind, then relay until SIGTERM."""
    proxy = Proxy(listen, upstream, Path(log))
    proxy.bind()

    def on_term(signum: int, frame: Any) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)  # a closed terminal is no reason to stop recording
    try:
        proxy.serve_forever()
    finally:
        proxy.close()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m labkit.trace start|stop|show|host|serve``: the same as ``labkit trace``."""
    parser = argparse.ArgumentParser(prog="labkit trace", description="a recording proxy in front of the Docker daemon")
    sub = parser.add_subparsers(dest="action", required=True)
    p = sub.add_parser("start", help="start the proxy in the background (a new, empty trace)")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--socket", help="unix socket to listen on (default: <state dir>/trace/docker.sock)")
    where.add_argument("--tcp", type=int, metavar="PORT", help="listen on 127.0.0.1:PORT instead")
    p.add_argument("--json", action="store_true")
    sub.add_parser("stop", help="stop the proxy and remove its socket (the trace stays)")
    p = sub.add_parser("show", help="the calls recorded so far")
    p.add_argument("--json", action="store_true")
    p.add_argument("--raw", action="store_true", help="real ids, versions and connection numbers")
    sub.add_parser("host", help="print the DOCKER_HOST value of the running proxy")
    p = sub.add_parser("serve", help=argparse.SUPPRESS)
    p.add_argument("--listen", required=True)
    p.add_argument("--upstream", required=True)
    p.add_argument("--log", required=True)
    args = parser.parse_args(argv)
    try:
        return command(args)
    except LabkitError as e:
        print(f"labkit: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        return 130


def command(args: argparse.Namespace) -> int:
    """Run ``labkit trace ACTION`` from parsed arguments (``action``, and ``socket``, ``tcp``, ``json``, ``raw`` when given).

    Raises:
        LabkitError: the proxy could not start, or none runs for ``host``.
    """
    args.socket, args.tcp = getattr(args, "socket", None), getattr(args, "tcp", None)
    args.json, args.raw = getattr(args, "json", False), getattr(args, "raw", False)
    if args.action == "serve":
        return _serve(args.listen, args.upstream, args.log)
    if args.action == "start":
        result = start(args.socket, args.tcp)
        if args.json:
            print(json.dumps(result.to_dict(), indent=2, sort_keys=True))
        else:
            print(result)
            print(f"  try: DOCKER_HOST={result.docker_host} docker run --rm hello-world")
        return 0
    if args.action == "stop":
        print("trace proxy stopped" if stop() else "no trace proxy started by labkit was running")
        return 0
    if args.action == "host":
        current = status()
        if not current.running:
            raise LabkitError("no trace proxy is running", "start one: labkit trace start")
        print(current.docker_host)
        return 0
    calls = load()
    if args.json:
        print(json.dumps([asdict(c) for c in calls], indent=2, sort_keys=True))
    else:
        print(Trace(calls, stable=not args.raw))
    return 0


if __name__ == "__main__":
    sys.exit(main())
