"""The one HTTP client of labkit: the course's registry, a classroom server, a page a container publishes.

Every request goes through :func:`request`, on ``requests``:

- proxies, ``.netrc`` and CA settings from the environment are ignored
  (``trust_env=False``): every server labkit talks to is this machine or the
  classroom's LAN, which a corporate ``http_proxy`` cannot reach;
- every call has an explicit timeout, and no retries;
- an HTTP error status (404, 500) is an answer, returned like any other;
- a connection that fails (refused, timed out, or answered by something that
  does not speak HTTP) raises :class:`~labkit.core.errors.HttpUnreachable`, once,
  here, with a short cause such as ``[Errno 111] Connection refused``.

Example:
    >>> from labkit.core import http
    >>> http.request("GET", "http://127.0.0.1:5000/v2/").status  # doctest: +SKIP
    200
"""

from __future__ import annotations

import json as jsonlib
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import requests
import requests.exceptions

from labkit.core.errors import HttpUnreachable

#: Seconds a request may take when the caller names no timeout.
TIMEOUT = 5.0

# requests does not promise that one Session is safe across threads (the classroom
# sender posts from its own thread), so each thread gets its own.
_local = threading.local()


def session() -> requests.Session:
    """This thread's session: no proxies or other settings from the environment."""
    current: requests.Session | None = getattr(_local, "session", None)
    if current is None:
        current = requests.Session()
        current.trust_env = False
        # No "Accept: */*" unless a caller asks: a registry answers a request without
        # Accept with the old schema 1 format, which lesson 03 shows on purpose.
        del current.headers["Accept"]
        _local.session = current
    return current


@dataclass(frozen=True)
class Response:
    """One HTTP answer: status, headers (case-insensitive), body."""

    status: int
    headers: Mapping[str, str]
    body: bytes

    def header(self, name: str) -> str:
        """A header's value, ``""`` when absent."""
        return str(self.headers.get(name, "") or "")

    @property
    def content_type(self) -> str:
        """The media type, without parameters such as ``charset``."""
        return self.header("Content-Type").split(";", 1)[0].strip()

    def json(self) -> Any:
        """The body, parsed.

        Raises:
            ValueError: the body is not JSON.
        """
        return jsonlib.loads(self.body)


def _chain(error: BaseException) -> list[BaseException]:
    """The error and what it wraps, outermost first: requests wraps urllib3's error, which wraps the socket's."""
    seen: list[BaseException] = []
    current: BaseException | None = error
    while current is not None and not any(current is s for s in seen):
        seen.append(current)
        reason = getattr(current, "reason", None)
        inner = current.args[-1] if current.args and isinstance(current.args[-1], BaseException) else None
        current = (
            current.__cause__ or (reason if isinstance(reason, BaseException) else None) or inner or current.__context__
        )
    return seen


def _cause(error: BaseException) -> str:
    """The innermost reason of a failed connection, e.g. ``[Errno 111] Connection refused``."""
    last = _chain(error)[-1]
    return str(last) or type(last).__name__


def _read_at_most(answer: requests.Response, limit: int) -> bytes:
    body = b""
    if limit > 0:
        for chunk in answer.iter_content(chunk_size=min(limit, 65536)):
            body += chunk
            if len(body) >= limit:
                break
    return body[:limit]


def request(
    method: str,
    url: str,
    *,
    headers: Mapping[str, str] | None = None,
    data: bytes | None = None,
    timeout: float = TIMEOUT,
    limit: int | None = None,
    verify: bool = True,
) -> Response:
    """Send one request and read the whole answer (at most ``limit`` bytes of body, when given).

    The connection is closed afterwards, as urllib did: nothing stays open to a
    container or server that a lesson is about to stop.

    Args:
        method: ``GET``, ``HEAD``, ``POST``, ``DELETE``...
        url: the full URL.
        headers: request headers.
        data: the body to send.
        timeout: seconds to connect, and seconds between bytes of the answer.
        limit: read at most this many bytes of the body (a page, not a stream).
        verify: check an HTTPS server's certificate (off only to see whether this machine's
            own server answers, never to send it anything secret).

    Raises:
        HttpUnreachable: nothing answered, it timed out, or what answered is not HTTP.
    """
    sent = {"Connection": "close", **(headers or {})}
    try:
        with session().request(
            method, url, headers=sent, data=data, timeout=timeout, stream=True, allow_redirects=True, verify=verify
        ) as answer:
            body = answer.content if limit is None else _read_at_most(answer, limit)
            return Response(int(answer.status_code), answer.headers, body)
    except (requests.exceptions.RequestException, OSError) as e:
        raise HttpUnreachable(
            url, _cause(e), refused=any(isinstance(c, ConnectionRefusedError) for c in _chain(e))
        ) from e


def status(url: str, timeout: float = 2.0, verify: bool = True) -> int | None:
    """The HTTP status ``url`` answers a GET with, or ``None`` when nothing answers."""
    try:
        return request("GET", url, timeout=timeout, limit=0, verify=verify).status
    except HttpUnreachable:
        return None
