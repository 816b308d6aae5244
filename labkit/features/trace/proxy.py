"""The recording proxy: relays each connection to the daemon and logs one JSON line per API call.

Bytes are forwarded exactly as received (:mod:`labkit.features.trace.framing` reads
along with h11 to find where each message ends); a hijacked connection is joined to
the daemon's with :func:`pump`. Each call
is written to the log before the client sees its answer, so a check in another
process never misses one.

Whoever reaches the proxy reaches the daemon, which is as good as root on the machine,
so it lets in only the learner. The unix socket is 0600 in a 0700 folder. On TCP
(``127.0.0.1``, which every local user and every web page can reach) a client must
hold the certificate :mod:`labkit.features.trace.tls` made for this start. And a
request that carries ``Origin`` or ``Sec-Fetch-*`` headers (a browser's: the docker CLI
never sends them) or, on TCP, names another ``Host`` than the proxy's own address (DNS
rebinding) is answered ``403`` and never reaches the daemon (:func:`refusal`).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import ssl
import threading
import time
from pathlib import Path
from typing import Any, Protocol

import h11

from labkit.core.errors import LabkitError
from labkit.core.i18n import _
from labkit.features.trace.framing import (
    Gate,
    ProtocolError,
    Reader,
    header,
    is_hijack,
    relay_body,
)
from labkit.features.trace.tls import TlsChannel, server_context

_VERSION = re.compile(r"^/v(\d+\.\d+)(?=/)")


class Stream(Protocol):
    """What the proxy uses of a connection: a socket, or a :class:`~labkit.features.trace.tls.TlsChannel`."""

    def recv(self, bufsize: int, /) -> bytes: ...

    def sendall(self, data: bytes, /) -> None: ...

    def shutdown(self, how: int, /) -> None: ...

    def close(self) -> None: ...


def pump(a: Stream, b: Stream, a_ahead: bytes = b"", b_ahead: bytes = b"") -> None:
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

    def copy(src: Stream, dst: Stream, ahead: bytes) -> None:
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
            raise LabkitError(_("{url} names no port").format(url=url), _("write DOCKER_HOST as tcp://HOST:PORT"))
        return "tcp", host.strip("[]") or "127.0.0.1", int(port)
    raise LabkitError(
        _("labkit trace cannot reach a daemon at {url}").format(url=url),
        _("it works with unix:// and tcp:// daemon addresses"),
    )


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


#: Headers only browsers send (``Sec-Fetch-*`` on every request, ``Origin`` on every cross-site POST).
BROWSER_HEADERS = ("origin", "sec-fetch-site", "sec-fetch-mode", "sec-fetch-dest")


def refusal(request: h11.Request, hosts: frozenset[str] | None) -> str | None:
    """Why the proxy refuses a request, or None when it may go to the daemon.

    Args:
        request: the request's head.
        hosts: the ``Host`` values allowed, lower case (the proxy's own TCP address);
            None allows any (a unix socket, which no browser can reach).

    Example:
        >>> start = h11.Request(method="POST", target="/containers/web/start", headers=[("Host", "127.0.0.1:2375")])
        >>> refusal(start, frozenset({"127.0.0.1:2375"})) is None
        True
        >>> refusal(start, frozenset({"127.0.0.1:2376"}))
        "Host 127.0.0.1:2375 is not the proxy's address"
    """
    sent = {name for name, _value in request.headers}  # h11 gives names lower-cased
    for name in BROWSER_HEADERS:
        if name.encode() in sent:
            return f"a web browser's request (it carries {name.title()})"
    host = header(request, "host").lower()
    if hosts is not None and host not in hosts:
        return f"Host {host or '(none)'} is not the proxy's address"
    return None


def _forbidden(why: str) -> bytes:
    """A ``403`` in the daemon's error format, so the docker CLI shows the reason."""
    body = json.dumps({"message": f"labkit trace refused this request: {why}"}).encode()
    head = f"HTTP/1.1 403 Forbidden\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n"
    return (head + "Connection: close\r\n\r\n").encode() + body


class Proxy:
    """Accepts connections on ``listen`` and relays each to its own connection to ``upstream``.

    Args:
        listen: ``unix:///path`` or ``tcp://127.0.0.1:PORT``.
        upstream: the daemon's address.
        log: the trace log.
        tls: on TCP, the folder of :func:`~labkit.features.trace.tls.make_credentials`
            (required there: only a client with its certificate gets in).
    """

    def __init__(self, listen: str, upstream: str, log: Path, tls: Path | None = None) -> None:
        self.listen = listen
        self.upstream = upstream
        self.recorder = Recorder(log)
        self.tls = tls
        self._context: ssl.SSLContext | None = None
        self._hosts: frozenset[str] | None = None  # the Host values a TCP request may name
        self._server: socket.socket | None = None
        self._count = 0
        self._lock = threading.Lock()
        self._closed = threading.Event()

    def bind(self) -> None:
        """Open the listening socket: a unix socket of mode 0600, or 127.0.0.1 only, with TLS.

        Raises:
            LabkitError: the address is taken or cannot be used, or TCP without TLS files.
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
                    raise LabkitError(
                        _("labkit trace listens on 127.0.0.1 only, not {where}").format(where=where),
                        _("use --tcp PORT"),
                    )
                if self.tls is None:
                    raise LabkitError(
                        _("labkit trace listens on TCP only with TLS and a client certificate"),
                        _("use labkit trace start --tcp PORT, which makes them"),
                    )
                self._context = server_context(self.tls)
                server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                server.bind(("127.0.0.1", port))
        except OSError as e:
            raise LabkitError(
                _("cannot listen on {listen}: {cause}").format(listen=self.listen, cause=e.strerror or e),
                _("stop what uses it, or choose another socket or port"),
            ) from e
        server.listen(64)
        self._server = server
        if server.family == socket.AF_INET:
            port = server.getsockname()[1]
            self._hosts = frozenset({f"127.0.0.1:{port}", f"localhost:{port}"})

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
                client, _address = self._server.accept()
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
        kind, where, _port = parse_address(self.listen)
        if kind == "unix":
            with contextlib.suppress(FileNotFoundError):
                os.unlink(where)

    def _number(self) -> int:
        """The next connection number, given at a connection's first request (a probe that only connects gets none)."""
        with self._lock:
            self._count += 1
            return self._count

    def _handle(self, client: socket.socket) -> None:
        stream: Stream = client
        try:
            if self._context is not None:  # before the daemon is even connected to
                channel = TlsChannel(client, self._context)
                channel.handshake()  # no certificate of this start: refused here
                stream = channel
            upstream = _connect(self.upstream, timeout=5.0)
        except OSError:
            client.close()  # the CLI reports the refused connection itself
            return
        try:
            self._relay(stream, upstream)
        except (OSError, ProtocolError):
            pass  # a broken connection ends it; the calls before it are already recorded
        finally:
            for sock in (stream, upstream):
                with contextlib.suppress(OSError):
                    sock.close()

    def _relay(self, client: Stream, upstream: socket.socket) -> None:
        """Relay request after request on one connection, until it closes or is hijacked.

        Requests are answered one at a time: a request the client sent early (pipelined)
        waits, read but not forwarded, until the answer before it has been relayed.
        """
        requests, responses = Reader(client, "requests"), Reader(upstream, "responses")
        seq = 0
        number = 0
        while not isinstance(request := requests.next_event(), h11.ConnectionClosed):
            if not isinstance(request, h11.Request):
                raise ProtocolError(f"expected a request, got {type(request).__name__}")
            number = number or self._number()
            seq += 1
            call = _Exchange(self.recorder, number, seq, request)
            if (why := refusal(request, self._hosts)) is not None:
                call.refuse(client, why)
                return
            try:
                if not call.relay(client, upstream, requests, responses):
                    return
            finally:
                call.write()  # a call cut short (the CLI hung up on a wait) is still a call


class _Exchange:
    """One request and its response on a connection, and the log line that records them."""

    def __init__(self, recorder: Recorder, conn: int, seq: int, request: h11.Request) -> None:
        self.recorder = recorder
        self.request = request
        self.method = request.method.decode("ascii")
        self.target = request.target.decode("latin-1")
        self.written = False
        self.record: dict[str, Any] = {
            "conn": conn,
            "seq": seq,
            "t": round(recorder.elapsed(), 4),
            "method": self.method,
            "path": self.target,
            "api": (m.group(1) if (m := _VERSION.match(self.target)) else None),
            "status": None,
        }

    def write(self) -> None:
        """Log the call, once."""
        if not self.written:
            self.written = True
            self.recorder.write(self.record)

    def refuse(self, client: Stream, why: str) -> None:
        """Answer ``403`` without a byte going to the daemon, and log the attempt."""
        self.record.update(status=403, reason="Forbidden", message=why, refused=True)
        self.write()
        client.sendall(_forbidden(why))

    def relay(self, client: Stream, upstream: socket.socket, requests: Reader, responses: Reader) -> bool:
        """Forward the request, then the response; True when the connection may carry another.

        Args:
            client: the client's socket, read by ``requests``.
            upstream: the daemon's socket, read by ``responses``.
            requests: the reader of the client's side, its request's head just read.
            responses: the reader of the daemon's side.

        Raises:
            ProtocolError: either side broke HTTP framing.
            OSError: a socket failed.
        """
        responses.mirror(self.request)
        upstream.sendall(requests.take())  # the request's head
        relay_body(requests, upstream.sendall, responses)
        while True:
            response = responses.next_event()
            if not isinstance(response, h11.Response | h11.InformationalResponse):
                raise ProtocolError("the daemon closed the connection without answering")
            if isinstance(response, h11.Response) or is_hijack(response):
                break
            requests.mirror(response)
            client.sendall(responses.take())  # 100 Continue: the real answer follows
        self.record.update(
            status=response.status_code,
            reason=response.reason.decode("latin-1"),
            ms=round((self.recorder.elapsed() - self.record["t"]) * 1000, 1),
        )
        if is_hijack(response):
            self.record["hijacked"] = True
            self.write()
            # From here on the bytes are not HTTP: what each reader read ahead goes first.
            pump(client, upstream, requests.take_all(), responses.take_all())
            return False
        requests.mirror(response)
        hold = wants_body(self.method, self.target, response.status_code)
        if not hold:
            self.write()  # in the log before the client has the answer
        body = bytearray()

        def finish() -> None:
            self.record.update(body_fields(response.status_code, bytes(body), self.target))
            self.write()

        # The head goes at once even when the body is held: the CLI waits for a wait's head before it starts the container.
        client.sendall(responses.take())
        gate = Gate(client.sendall, hold=hold, on_release=finish)
        relay_body(responses, gate, requests, capture=body if hold else None)
        gate.release()
        return requests.next_cycle() and responses.next_cycle()
