"""Just enough HTTP/1.1 for the Docker API: heads, how a body ends, and relaying one body.

What it understands is what the Docker API uses: keep-alive (several requests per
connection), ``Content-Length`` and chunked bodies (pull progress streams chunked),
and *hijacked* connections (``attach``, ``exec`` start), which stop being HTTP after
a ``101 Switching Protocols`` or a ``200`` with a raw-stream content type and no length.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from dataclasses import dataclass

#: A request or response head larger than this is not the Docker API.
MAX_HEAD = 64 * 1024
#: Bytes of a small JSON answer kept to read a new container's ``Id`` or an error ``message``.
CAPTURE_LIMIT = 64 * 1024
#: Content types the daemon uses for a hijacked (raw) stream.
RAW_STREAM_TYPES = ("application/vnd.docker.raw-stream", "application/vnd.docker.multiplexed-stream")


class ProtocolError(Exception):
    """The bytes on a connection are not HTTP the proxy can frame (the connection is dropped)."""


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
    return _declared_framing(head, otherwise="none")


def _declared_framing(head: Head, otherwise: str) -> Framing:
    """What the head declares (chunked, else a length), or ``otherwise`` when it declares neither.

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
    return Framing(otherwise)


def response_framing(method: str, head: Head) -> Framing:
    """A response's body, per RFC 9112: none for HEAD/1xx/204/304, else chunked, a length, or until close.

    Raises:
        ProtocolError: a ``Content-Length`` that is not a number.
    """
    status = head.status
    if method == "HEAD" or 100 <= status < 200 or status in (204, 304):
        return Framing("none")
    return _declared_framing(head, otherwise="close")


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

    def _take_until(self, separator: bytes, too_long: str) -> bytes | None:
        """Bytes up to and including ``separator``, or ``None`` when the peer closed first.

        Raises:
            ProtocolError: more than :data:`MAX_HEAD` bytes arrived without the separator.
        """
        while True:
            end = self.buf.find(separator)
            if end >= 0:
                taken = bytes(self.buf[: end + len(separator)])
                del self.buf[: end + len(separator)]
                return taken
            if len(self.buf) > MAX_HEAD:
                raise ProtocolError(too_long)
            if not self._fill():
                return None

    def read_head(self) -> bytes | None:
        """Bytes up to and including the blank line, or ``None`` on a clean end before a head.

        Raises:
            ProtocolError: the peer closed mid-head, or the head is too large.
        """
        head = self._take_until(b"\r\n\r\n", "head too large")
        if head is None and self.buf.strip():
            raise ProtocolError("connection closed in the middle of a head")
        return head

    def read_line(self) -> bytes:
        """One line including its CRLF.

        Raises:
            ProtocolError: the peer closed first.
        """
        line = self._take_until(b"\r\n", "line too long")
        if line is None:
            raise ProtocolError("connection closed in the middle of a chunk header")
        return line

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
