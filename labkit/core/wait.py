"""Deadlines with polling: the only way labkit waits. No fixed sleeps."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from labkit.core import http
from labkit.core.errors import WaitTimeout
from labkit.core.i18n import _

T = TypeVar("T")


def until(
    condition: Callable[[], T],
    what: str,
    timeout: float = 30.0,
    interval: float = 0.05,
    retry_on: tuple[type[BaseException], ...] = (),
    detail: Callable[[], str] | None = None,
) -> T:
    """Poll ``condition`` until it returns something truthy; return that value.

    Args:
        condition: called repeatedly; a truthy result ends the wait.
        what: says what is awaited, for the timeout message.
        timeout: the deadline in seconds.
        interval: the first pause between polls; it doubles up to 0.5 s.
        retry_on: exceptions that count as "not yet" rather than failures.
        detail: called on timeout to add context (a container's last log line, say).

    Raises:
        WaitTimeout: the deadline passed first.

    Example:
        >>> until(lambda: 42, "the answer")
        42
    """
    deadline = time.monotonic() + timeout
    last_error = ""
    while True:
        try:
            value = condition()
            if value:
                return value
        except retry_on as e:
            last_error = str(e).splitlines()[0] if str(e) else type(e).__name__
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            extra = detail() if detail else last_error
            raise WaitTimeout(what, timeout, extra)
        time.sleep(min(interval, remaining))
        interval = min(interval * 2, 0.5)


def http_ok(url: str, timeout: float = 20.0) -> int:
    """Wait until ``url`` answers 2xx; return the status.

    Raises:
        WaitTimeout: it did not answer in time.
    """
    return until(
        lambda: (status := http.status(url)) is not None and 200 <= status < 300 and status,
        _("{url} to answer").format(url=url),
        timeout=timeout,
    )


def container_running(container: object, timeout: float = 20.0) -> None:
    """Wait until a docker SDK container reports ``running``.

    Raises:
        WaitTimeout: it did not, with its last log lines.
    """

    def running() -> bool:
        container.reload()  # type: ignore[attr-defined]
        return bool(container.status == "running")  # type: ignore[attr-defined]

    def last_log() -> str:
        try:
            tail = container.logs(tail=3).decode(errors="replace").strip()  # type: ignore[attr-defined]
        except Exception:  # the container may be gone: the timeout message is what matters
            tail = ""
        status = container.status  # type: ignore[attr-defined]
        if tail:
            return _("status {status}, last log: {tail}").format(status=status, tail=tail)
        return _("status {status}").format(status=status)

    what = _("container {name} to run").format(name=container.name)  # type: ignore[attr-defined]
    until(running, what, timeout=timeout, detail=last_log)


def log_line(container: object, needle: str, timeout: float = 20.0) -> None:
    """Wait until ``needle`` appears in a container's logs.

    Raises:
        WaitTimeout: it did not appear in time.
    """
    until(
        lambda: needle.encode() in container.logs(),  # type: ignore[attr-defined]
        _("{needle!r} in the logs of {name}").format(needle=needle, name=container.name),  # type: ignore[attr-defined]
        timeout=timeout,
    )
