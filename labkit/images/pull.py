"""One bounded attempt to pull an image, with the reason in a few words when it fails.

The pull runs as ``docker pull`` under a deadline: stopping the CLI closes its
connection, and the daemon cancels the pull, which a thread around the SDK's
pull (it reads without a timeout) could not do.
"""

from __future__ import annotations

import os
import shlex

from labkit.errors import CommandNotFound, WaitTimeout
from labkit.shell import sh

#: Seconds one pull attempt may take (``LABKIT_PULL_TIMEOUT`` overrides).
DEFAULT_PULL_TIMEOUT = 60.0

_REASONS: tuple[tuple[tuple[str, ...], str], ...] = (
    (("toomanyrequests", "rate limit"), "rate limited (toomanyrequests)"),
    (("no such host", "server misbehaving", "temporary failure in name resolution"), "no such host"),
    (("connection refused",), "connection refused"),
    (("network is unreachable", "no route to host"), "network unreachable"),
    (("i/o timeout", "timeout exceeded", "deadline exceeded", "tls handshake timeout"), "timed out"),
    (("pull access denied", "manifest unknown", "not found", "repository does not exist"), "not on the registry"),
    (("unauthorized", "authentication required"), "unauthorized"),
)


def pull_timeout() -> float:
    """The deadline of one pull attempt, from ``LABKIT_PULL_TIMEOUT`` or the default."""
    try:
        return float(os.environ.get("LABKIT_PULL_TIMEOUT") or DEFAULT_PULL_TIMEOUT)
    except ValueError:
        return DEFAULT_PULL_TIMEOUT


def offline() -> bool:
    """``LABKIT_OFFLINE=1`` (or true/yes): never try to pull."""
    return os.environ.get("LABKIT_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def short_reason(output: str) -> str:
    """Why a pull failed, in a few words, from the daemon's message.

    Example:
        >>> short_reason('Error response from daemon: Get "https://registry-1.docker.io/v2/": '
        ...              'dial tcp: lookup registry-1.docker.io: no such host')
        'no such host'
    """
    lowered = output.lower()
    for needles, reason in _REASONS:
        if any(n in lowered for n in needles):
            return reason
    lines = [line.strip() for line in output.strip().splitlines() if line.strip()]
    last = lines[-1] if lines else "no output"
    return last.removeprefix("Error response from daemon: ")[:80]


def try_pull(name: str, timeout: float | None = None) -> str | None:
    """Pull ``name`` once, within ``timeout`` seconds; ``None`` on success, else why not.

    Never raises for a pull that fails: the caller builds the image instead.
    """
    seconds = pull_timeout() if timeout is None else timeout
    try:
        done = sh(f"docker pull {shlex.quote(name)}", expect=None, quiet=True, label=False, timeout=seconds)
    except WaitTimeout:
        return f"no answer within {seconds:g} s"
    except CommandNotFound:
        return "no docker CLI to pull with"
    return None if done.ok else short_reason(done.output)
