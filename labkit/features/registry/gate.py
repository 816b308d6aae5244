"""The gate in front of the course's registry: anyone on the machine may pull, only labkit's login may push.

``docker-registry`` listens on a unix socket in a 0700 folder, so nobody reaches it but
through this gate, which listens on ``127.0.0.1:<port>``. For each connection the gate
reads the request's head (at most :data:`MAX_HEAD` bytes, within :data:`HEAD_TIMEOUT`
seconds) with h11, decides (:func:`decide`, pure), and then either answers itself or
passes the request on with ``Connection: close`` (one request per connection; Docker's
clients open another) and pumps the bytes both ways untouched (the trace proxy's
:func:`~labkit.features.trace.proxy.pump`), so a layer upload streams through unbuffered.

**Why a token and not a plain password challenge.** The daemon asks ``GET /v2/`` first,
and whatever challenge that answer carries applies to every later request. A ``Basic``
challenge makes a daemon without a login fail every pull with *no basic auth
credentials*, and the daemon's mirror pulls never carry labkit's login; without any
challenge the daemon never sends its login, so pushes could not be told apart. Docker's
token scheme (the one Docker Hub uses) does both: ``/v2/`` answers ``401`` with a
``Bearer`` challenge whose realm is this gate's :data:`TOKEN_PATH`; a daemon without a
login fetches an anonymous *pull* token there, a daemon with labkit's login (``docker
login``, or the SDK's ``auth_config``) sends it as ``Basic`` and gets a *push* token.
Reads (``GET``, ``HEAD``) pass with any token or none; everything else needs a push
token, or labkit's login as ``Basic`` (what :mod:`.api` sends to delete).

A wrong password for labkit's user name is refused (so ``docker login`` with it fails);
a login for another user name gets a pull token: that is a daemon passing on its Docker
Hub login to the mirror, which must keep working.

Run as ``python -m labkit.features.registry.gate --port N --upstream SOCKET
--credentials FILE`` (:mod:`.process` starts it).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import hashlib
import hmac
import json
import re
import secrets
import socket
import socketserver
import sys
import threading
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import h11

from labkit.features.registry.credentials import Credentials, parse_basic, read
from labkit.features.trace import framing
from labkit.features.trace.framing import ProtocolError, Reader
from labkit.features.trace.proxy import pump

#: The largest request head the gate reads (h11 refuses a bigger one), as the trace proxy's: 64 KiB.
MAX_HEAD = framing.MAX_HEAD
#: Seconds a client has to send a request's whole head; a slower one is dropped.
HEAD_TIMEOUT = 5.0
#: Seconds a token stays good (Docker's clients fetch a new one when it runs out).
TOKEN_LIFETIME = 600
#: Connections served at once; more are closed at once (a classroom machine needs a handful).
MAX_CONNECTIONS = 256
#: Where the ``Bearer`` challenge sends clients for a token.
TOKEN_PATH = "/token"
SERVICE = "labkit-registry"
#: Seconds to connect to the registry's socket.
UPSTREAM_TIMEOUT = 5.0

Grant = Literal["push", "pull", "none"]
Action = Literal["forward", "challenge", "token"]
TokenAnswer = Literal["push", "pull", "refuse"]

_READS = frozenset({"GET", "HEAD"})
_PING_PATHS = frozenset({"/v2/", "/v2"})
_HOST = re.compile(r"^[A-Za-z0-9.\-]+(:\d{1,5})?$|^\[[0-9A-Fa-f:.]+\](:\d{1,5})?$")
#: Request headers not passed on: the gate's own business, or what it replaces.
_DROPPED = frozenset({b"connection", b"keep-alive", b"proxy-connection", b"authorization", b"te", b"upgrade"})


# --- tokens ------------------------------------------------------------------------------------


class Tokens:
    """Bearer tokens this gate issues: ``labkit.<grant>.<expiry>.<mac>``, signed with a key of its own.

    The key lives only in this process, so a token outlives neither its expiry nor the gate.

    Example:
        >>> tokens = Tokens(b"k" * 32)
        >>> tokens.grant_of(tokens.issue("push", now=100.0), now=200.0)
        'push'
        >>> tokens.grant_of(tokens.issue("push", now=100.0), now=100.0 + TOKEN_LIFETIME + 1)
        'none'
    """

    def __init__(self, key: bytes | None = None) -> None:
        self._key = key if key is not None else secrets.token_bytes(32)

    def _mac(self, body: str) -> str:
        return hmac.new(self._key, body.encode(), hashlib.sha256).hexdigest()

    def issue(self, grant: Literal["push", "pull"], now: float) -> str:
        body = f"labkit.{grant}.{int(now) + TOKEN_LIFETIME}"
        return f"{body}.{self._mac(body)}"

    def grant_of(self, token: str, now: float) -> Grant:
        """What a token allows, or ``"none"`` when it is not one of this gate's, or has run out."""
        body, _, mac = token.strip().rpartition(".")
        parts = body.split(".")
        if len(parts) != 3 or parts[0] != "labkit" or parts[1] not in ("push", "pull") or not parts[2].isdigit():
            return "none"
        if not hmac.compare_digest(mac.encode(), self._mac(body).encode()) or int(parts[2]) < now:
            return "none"
        return "push" if parts[1] == "push" else "pull"


# --- the decision (pure) -------------------------------------------------------------------------


def grant_of(authorization: str, login: Credentials, tokens: Tokens, now: float) -> Grant:
    """What a request's ``Authorization`` header allows: labkit's login or a push token push, a pull token pulls.

    Example:
        >>> login = Credentials("labkit-1", "pw")
        >>> grant_of(login.basic(), login, Tokens(), 0.0), grant_of("", login, Tokens(), 0.0)
        ('push', 'none')
    """
    scheme, _, value = authorization.strip().partition(" ")
    if scheme.lower() == "bearer":
        return tokens.grant_of(value, now)
    basic = parse_basic(authorization)
    if basic is not None and login.matches(*basic):
        return "push"
    return "none"


def decide(method: str, target: str, grant: Grant) -> Action:
    """Pass a request on, answer it with a token, or answer ``401`` with the challenge.

    - ``GET /token``: the gate hands out a token (:func:`token_answer` says which);
    - ``GET /v2/`` (the ping) without a valid login or token: ``401``, so that the
      client learns where tokens come from (and ``docker login`` sends its password);
    - any other ``GET`` or ``HEAD``: passed on, with or without a login (pulls are anonymous);
    - anything else (``POST``, ``PUT``, ``PATCH``, ``DELETE``, …): passed on only with a
      push token or labkit's login.

    Example:
        >>> decide("GET", "/v2/library/busybox/manifests/latest", "none"), decide("GET", "/v2/", "none")
        ('forward', 'challenge')
        >>> decide("POST", "/v2/library/busybox/blobs/uploads/", "pull"), decide("PUT", "/v2/x/manifests/1", "push")
        ('challenge', 'forward')
    """
    path = urllib.parse.urlsplit(target).path
    if method in _READS:
        if path == TOKEN_PATH:
            return "token"
        if path in _PING_PATHS and grant == "none":
            return "challenge"
        return "forward"
    return "forward" if grant == "push" else "challenge"


def token_answer(authorization: str, login: Credentials) -> TokenAnswer:
    """Which token a ``GET /token`` earns.

    labkit's login earns a push token, no login a pull token; a wrong password for
    labkit's user name is refused (``401``), and another user's login (a daemon passing
    its Docker Hub login on to the mirror) earns a pull token, as no login does.

    Example:
        >>> login = Credentials("labkit-1", "pw")
        >>> [token_answer(h, login) for h in (login.basic(), "", Credentials("labkit-1", "no").basic())]
        ['push', 'pull', 'refuse']
        >>> token_answer(Credentials("someone", "hub-password").basic(), login)
        'pull'
    """
    basic = parse_basic(authorization)
    if basic is None:
        return "pull"
    user, password = basic
    if hmac.compare_digest(user.encode(), login.username.encode()):
        return "push" if login.matches(user, password) else "refuse"
    return "pull"


def realm(host_header: str, port: int) -> str:
    """The token URL, on the address the client used (``localhost`` or ``127.0.0.1``).

    Example:
        >>> realm("localhost:5000", 5000), realm('evil"host', 5000)
        ('http://localhost:5000/token', 'http://127.0.0.1:5000/token')
    """
    host = host_header if _HOST.match(host_header) else f"127.0.0.1:{port}"
    return f"http://{host}{TOKEN_PATH}"


# --- answers the gate gives itself -------------------------------------------------------------


def _answer(status: str, headers: list[tuple[str, str]], body: bytes, *, head_only: bool) -> bytes:
    lines = [f"HTTP/1.1 {status}", *(f"{k}: {v}" for k, v in headers)]
    lines += [f"Content-Length: {len(body)}", "Connection: close", "", ""]
    return "\r\n".join(lines).encode("latin-1") + (b"" if head_only else body)


def challenge(realm_url: str, message: str, *, head_only: bool = False) -> bytes:
    """``401`` with the ``Bearer`` challenge and a registry-style error body."""
    body = json.dumps({"errors": [{"code": "UNAUTHORIZED", "message": message, "detail": None}]}).encode()
    headers = [
        ("Content-Type", "application/json; charset=utf-8"),
        ("Docker-Distribution-API-Version", "registry/2.0"),
        ("WWW-Authenticate", f'Bearer realm="{realm_url}",service="{SERVICE}"'),
    ]
    return _answer("401 Unauthorized", headers, body, head_only=head_only)


def token_reply(token: str, now: float, *, head_only: bool = False) -> bytes:
    """``200`` with a token, as Docker's token endpoint answers (no refresh token: nothing to store)."""
    issued = dt.datetime.fromtimestamp(now, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    body = json.dumps({"token": token, "access_token": token, "expires_in": TOKEN_LIFETIME, "issued_at": issued})
    headers = [("Content-Type", "application/json"), ("Cache-Control", "no-store")]
    return _answer("200 OK", headers, body.encode(), head_only=head_only)


#: What Go's own servers answer to what is not HTTP: a TLS hello gets it too, which tells
#: Docker's client at once to try plain HTTP (it tries TLS first, even on localhost).
BAD_REQUEST = (
    b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n400 Bad Request"
)
BAD_GATEWAY = _answer(
    "502 Bad Gateway",
    [("Content-Type", "text/plain; charset=utf-8")],
    b"the registry behind labkit's gate does not answer: labkit registry up",
    head_only=False,
)


def forwarded_head(request: h11.Request) -> bytes:
    """The head passed on to the registry: the same request, without the login, and ``Connection: close``.

    Example:
        >>> req = h11.Request(method="GET", target="/v2/", headers=[("Host", "h"), ("Authorization", "x"), ("Connection", "keep-alive")])
        >>> forwarded_head(req)
        b'GET /v2/ HTTP/1.1\\r\\nhost: h\\r\\nConnection: close\\r\\n\\r\\n'
    """
    version = request.http_version.decode("ascii")
    lines = [request.method + b" " + request.target + b" HTTP/" + version.encode("ascii")]
    lines += [name + b": " + value for name, value in request.headers if name not in _DROPPED]
    lines += [b"Connection: close", b"", b""]
    return b"\r\n".join(lines)


# --- serving -----------------------------------------------------------------------------------


class _HeadSource:
    """The client's socket for :class:`Reader`: one deadline and one size limit for the whole head.

    The reader only asks for more while the head is incomplete, so having read more
    than :data:`MAX_HEAD` bytes by then means the head is too big.
    """

    def __init__(self, sock: socket.socket, timeout: float) -> None:
        self.sock = sock
        self.deadline = time.monotonic() + timeout
        self.received = 0

    def recv(self, bufsize: int, /) -> bytes:
        if self.received > MAX_HEAD:
            raise ProtocolError(f"a request head larger than {MAX_HEAD} bytes")
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("the request head did not arrive in time")
        self.sock.settimeout(left)
        data = self.sock.recv(min(bufsize, MAX_HEAD + 1 - self.received))
        if data and not self.received and not data[:1].isupper():
            raise ProtocolError("not an HTTP request")  # a method starts every request; a TLS hello starts with 0x16
        self.received += len(data)
        return data


#: After answering itself, how long and how much the gate still reads of what the client sent.
LINGER_SECONDS = 1.0
LINGER_BYTES = 1 << 20


def _answer_and_close(sock: socket.socket, reply: bytes) -> None:
    """Send an answer the gate gives itself, then end the connection without a reset.

    Closing a socket with unread bytes in it (a request body, the rest of a TLS hello)
    sends a TCP reset, which can destroy the answer before the client reads it; so the
    gate half-closes and reads a little longer first, as Go's own servers do.
    """
    with contextlib.suppress(OSError):
        sock.sendall(reply)
        sock.shutdown(socket.SHUT_WR)
        deadline = time.monotonic() + LINGER_SECONDS
        drained = 0
        while drained < LINGER_BYTES and (left := deadline - time.monotonic()) > 0:
            sock.settimeout(left)
            chunk = sock.recv(65536)
            if not chunk:
                break
            drained += len(chunk)


@dataclass
class Settings:
    """What the gate serves with."""

    port: int
    upstream: Path
    login: Credentials
    head_timeout: float = HEAD_TIMEOUT


def _header(request: h11.Request, name: bytes) -> str:
    for key, value in request.headers:
        if key == name:
            return value.decode("latin-1")
    return ""


def serve_connection(client: socket.socket, settings: Settings, tokens: Tokens, log: list[str] | None = None) -> None:
    """One connection: read its head, decide, answer or pass it on, pump until both sides end."""
    reader = Reader(_HeadSource(client, settings.head_timeout), "requests")
    try:
        event = reader.next_event()
    except ProtocolError:
        _answer_and_close(client, BAD_REQUEST)
        return
    except OSError:  # the deadline passed, or the client went away: drop it
        return
    if not isinstance(event, h11.Request):
        return  # the client closed before sending a request
    reader.take()
    body_start = reader.take_all()
    method = event.method.decode("ascii", errors="replace")
    target = event.target.decode("ascii", errors="replace")
    now = time.time()
    authorization = _header(event, b"authorization")
    action = decide(method, target, grant_of(authorization, settings.login, tokens, now))
    head_only = method == "HEAD"
    client.settimeout(None)
    if action == "token":
        kind = token_answer(authorization, settings.login)
        if kind == "refuse":
            reply = challenge(realm(_header(event, b"host"), settings.port), "wrong password", head_only=head_only)
        else:
            reply = token_reply(tokens.issue(kind, now), now, head_only=head_only)
        _answer_and_close(client, reply)
        return
    if action == "challenge":
        if method not in _READS and log is not None:
            log.append(f"refused {method} {urllib.parse.urlsplit(target).path}: no valid login")
        message = (
            "authentication required"
            if method in _READS
            else "pushing to labkit's registry needs its login (`labkit registry up` logs the user who runs it in)"
        )
        _answer_and_close(
            client, challenge(realm(_header(event, b"host"), settings.port), message, head_only=head_only)
        )
        return
    try:
        upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        upstream.settimeout(UPSTREAM_TIMEOUT)
        upstream.connect(str(settings.upstream))
        upstream.settimeout(None)
    except OSError as e:
        if log is not None:
            log.append(f"the registry at {settings.upstream} does not answer: {e}")
        _answer_and_close(client, BAD_GATEWAY)
        return
    with upstream:
        try:
            upstream.sendall(forwarded_head(event))
        except OSError:
            return
        pump(client, upstream, a_ahead=body_start)


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.tokens = Tokens()
        self.slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        super().__init__(("127.0.0.1", settings.port), _Handler)

    def process_request(self, request: socket.socket, client_address: object) -> None:  # type: ignore[override]
        if not self.slots.acquire(blocking=False):
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self.slots.release()
            raise

    def process_request_thread(self, request: socket.socket, client_address: object) -> None:  # type: ignore[override]
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.slots.release()


class _Handler(socketserver.BaseRequestHandler):
    server: _Server

    def handle(self) -> None:
        said: list[str] = []
        try:
            serve_connection(self.request, self.server.settings, self.server.tokens, said)
        finally:
            for line in said:
                print(f"{dt.datetime.now(dt.UTC):%Y-%m-%dT%H:%M:%SZ} {line}", flush=True)


def main(argv: list[str] | None = None) -> int:
    """``python -m labkit.features.registry.gate --port N --upstream SOCKET --credentials FILE``."""
    parser = argparse.ArgumentParser(prog="python -m labkit.features.registry.gate", description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, required=True, help="listen on 127.0.0.1:PORT")
    parser.add_argument("--upstream", type=Path, required=True, help="the registry's unix socket")
    parser.add_argument("--credentials", type=Path, required=True, help="the login file pushes need")
    parser.add_argument("--head-timeout", type=float, default=HEAD_TIMEOUT, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    login = read(args.credentials)
    if login is None:
        print(f"labkit: cannot read the registry's login from {args.credentials}", file=sys.stderr)
        return 2
    try:
        server = _Server(Settings(args.port, args.upstream, login, args.head_timeout))
    except OSError as e:
        print(f"labkit: cannot listen on 127.0.0.1:{args.port}: {e}", file=sys.stderr)
        return 2
    print(
        f"gate on 127.0.0.1:{args.port} in front of {args.upstream}: pulls for anyone, pushes with labkit's login",
        flush=True,
    )
    with server:
        server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
