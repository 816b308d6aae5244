"""Where each HTTP/1.1 message on a Docker API connection starts and ends, found by h11.

The proxy forwards bytes exactly as they arrive; :mod:`h11` only reads along to say
where a head ends, where a body ends, and whether another request may follow. Each
direction of a connection has a :class:`Reader`: the client's bytes are read by an h11
connection in the server's role, the daemon's by one in the client's role, and each
is told what the other side sent (:meth:`Reader.mirror`), so the daemon's reader knows
a ``HEAD`` answer has no body and both agree when the connection must close.

A *hijacked* connection (``attach``, ``exec`` start) stops being HTTP after a
``101 Switching Protocols``, or a ``200`` with a raw-stream content type and no
length (:func:`is_hijack`): then parsing stops and each reader hands over what it
read ahead (:meth:`Reader.take_all`), to be pumped on raw.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal, Protocol

import h11

#: A request or response head larger than this is not the Docker API.
MAX_HEAD = 64 * 1024
#: Bytes of a small JSON answer kept to read a new container's ``Id`` or an error ``message``.
CAPTURE_LIMIT = 64 * 1024
#: Content types the daemon uses for a hijacked (raw) stream.
RAW_STREAM_TYPES = ("application/vnd.docker.raw-stream", "application/vnd.docker.multiplexed-stream")

#: What a reader yields: a head, a piece of body, the end of a message, or the end of the connection.
Event = h11.Request | h11.InformationalResponse | h11.Response | h11.Data | h11.EndOfMessage | h11.ConnectionClosed
_EVENTS = (h11.Request, h11.InformationalResponse, h11.Response, h11.Data, h11.EndOfMessage, h11.ConnectionClosed)
#: Where forwarded bytes go (``socket.sendall``, or a :class:`Gate`).
Send = Callable[[bytes], object]


class ProtocolError(Exception):
    """The bytes on a connection are not HTTP the proxy can frame (the connection is dropped)."""


class Source(Protocol):
    """What a reader reads from: a socket, or in tests anything with ``recv``."""

    def recv(self, bufsize: int, /) -> bytes: ...


def header(event: h11.Request | h11.InformationalResponse | h11.Response, name: str) -> str:
    """The first header called ``name`` (case-insensitive), or ``""``.

    Example:
        >>> header(h11.Response(status_code=200, headers=[("Content-Type", "text/plain")]), "content-type")
        'text/plain'
    """
    wanted = name.lower().encode("latin-1")
    for key, value in event.headers:  # h11 gives names lower-cased
        if key == wanted:
            return value.decode("latin-1")
    return ""


def is_hijack(response: h11.InformationalResponse | h11.Response) -> bool:
    """True when the connection stops being HTTP after this response.

    ``101 Switching Protocols`` (``Upgrade: tcp``, what attach and exec start ask for),
    or the old style: ``200`` with a raw-stream content type and no body framing.

    Example:
        >>> is_hijack(h11.InformationalResponse(status_code=101, headers=[("Upgrade", "tcp")], reason="UPGRADED"))
        True
    """
    if response.status_code == 101:
        return True
    ctype = header(response, "content-type").split(";")[0].strip().lower()
    framed = header(response, "content-length") or "chunked" in header(response, "transfer-encoding").lower()
    return response.status_code == 200 and ctype in RAW_STREAM_TYPES and not framed


class Reader:
    """One direction of a connection: its socket, and an h11 parser that reads along.

    Bytes received are kept until taken (:meth:`take`), so what is forwarded is exactly
    what arrived; h11 only says how far the messages seen so far reach.

    Args:
        sock: where the bytes come from.
        reads: ``"requests"`` (the client's side) or ``"responses"`` (the daemon's side).
    """

    def __init__(self, sock: Source, reads: Literal["requests", "responses"]) -> None:
        if reads not in ("requests", "responses"):
            raise ValueError(f"a reader reads requests or responses, not {reads!r}")
        self.sock = sock
        self.reads = reads
        # The role h11 plays is the one that *receives* these messages.
        role = h11.SERVER if reads == "requests" else h11.CLIENT
        self.h11 = h11.Connection(role, max_incomplete_event_size=MAX_HEAD)
        self._unsent = bytearray()
        self.closed = False  # the peer has closed (its writing side at least)

    def next_event(self, flush: Send | None = None) -> Event:
        """The next event, receiving from the socket as needed.

        Args:
            flush: given the bytes parsed so far and not yet taken, before the socket is
                waited on (a streamed body moves on as it arrives, not when it ends).

        Raises:
            ProtocolError: the peer broke HTTP (h11's reason), or closed mid-message.
            OSError: the socket failed.
        """
        while True:
            try:
                event = self.h11.next_event()
            except h11.RemoteProtocolError as e:
                raise ProtocolError(
                    f"the {self.reads} on this connection are not HTTP/1.1 the proxy can frame: {e}"
                ) from e
            if event is h11.NEED_DATA:
                if flush is not None and (parsed := self.take()):
                    flush(parsed)
                data = self.sock.recv(65536)
                self.closed = not data
                self._unsent += data
                self.h11.receive_data(data)  # b"" tells h11 the peer closed
                continue
            if isinstance(event, _EVENTS):
                return event
            raise ProtocolError("read past the end of a message")  # PAUSED: a bug in the caller, not the peer

    def take(self) -> bytes:
        """The bytes received and not yet taken, up to where h11 has read (what follows is not yet framed)."""
        ahead = len(self.h11.trailing_data[0])
        end = len(self._unsent) - ahead
        taken = bytes(self._unsent[:end])
        del self._unsent[:end]
        return taken

    def take_all(self) -> bytes:
        """Everything received and not yet taken (at a hijack: the head and the start of the raw stream)."""
        taken = bytes(self._unsent)
        self._unsent.clear()
        return taken

    def mirror(self, event: Event) -> None:
        """Tell this side's parser what the other side sent, so both agree on the exchange.

        The daemon's reader is told the request (its method, an upgrade proposal, whether it
        asks to close); the client's reader is told the response. What h11 would write is dropped.

        Raises:
            ProtocolError: the event does not fit the exchange (h11's reason).
        """
        try:
            self.h11.send_with_data_passthrough(event)
        except h11.LocalProtocolError as e:
            raise ProtocolError(f"the exchange cannot be framed: {e}") from e

    def next_cycle(self) -> bool:
        """Get ready for the next request on this connection; False when it must close instead.

        It must when either side asked to (``Connection: close``, HTTP/1.0), or when this
        side's message ended with the connection (a response without a length).
        """
        if not self.closed and self.h11.our_state is h11.DONE and self.h11.their_state is h11.DONE:
            self.h11.start_next_cycle()
            return True
        return False


def relay_body(src: Reader, send: Send, other: Reader, capture: bytearray | None = None) -> None:
    """Forward the rest of the message ``src`` is reading, bytes unchanged, up to its end.

    Each piece is passed on as soon as it is received; the bytes after the message's end
    stay in ``src`` for the next message.

    Args:
        src: the reader whose message is being relayed (its head already taken).
        send: where the bytes go.
        other: the reader of the other direction, told each event (see :meth:`Reader.mirror`).
        capture: collects the decoded body, up to :data:`CAPTURE_LIMIT` bytes.

    Raises:
        ProtocolError: the body ended early or its framing is broken.
        OSError: a socket failed.
    """
    while True:
        event = src.next_event(send)
        if not isinstance(event, h11.Data | h11.EndOfMessage):
            raise ProtocolError(f"expected a body, got {type(event).__name__}")
        other.mirror(event)
        if isinstance(event, h11.EndOfMessage):
            if last := src.take():
                send(last)
            return
        if capture is not None and len(capture) < CAPTURE_LIMIT:
            capture.extend(event.data[: CAPTURE_LIMIT - len(capture)])


class Gate:
    """Forwards bytes, or holds a small body back until it is complete and recorded.

    A client may act on the first JSON object without waiting for the end of the body
    (the CLI exits as soon as it has a wait's exit code), so a body that must be recorded
    is held; past ``limit`` bytes it is recorded as far as it got and streams after all.

    Args:
        send: where the bytes go.
        hold: hold them back (else they pass at once).
        on_release: called once, before any held byte is sent.
        limit: the most bytes held.
    """

    def __init__(
        self, send: Send, hold: bool, on_release: Callable[[], None] | None = None, limit: int = CAPTURE_LIMIT
    ) -> None:
        self.send = send
        self.hold = hold
        self.on_release = on_release
        self.limit = limit
        self._held: list[bytes] = []
        self._size = 0

    def __call__(self, data: bytes) -> None:
        if self.hold:
            self._held.append(data)
            self._size += len(data)
            if self._size <= self.limit:
                return
            self.release()  # too large to be a small answer: record now, stream the rest
            return
        self.send(data)

    def release(self) -> None:
        """Run ``on_release`` (once), then send what was held; later bytes pass at once."""
        self.hold = False
        if self.on_release is not None:
            on_release, self.on_release = self.on_release, None
            on_release()
        if self._held:
            data = b"".join(self._held)
            self._held.clear()
            self.send(data)
