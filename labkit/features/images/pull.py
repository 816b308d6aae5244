"""One bounded attempt to pull an image, with the reason in a few words when it fails.

The pull streams the daemon's progress events (for :mod:`labkit.core.activity`) under
a deadline: every read has a timeout and the deadline is checked at each event.
Closing the connection when time is up makes the daemon cancel the pull, which
the SDK's own ``pull`` (it reads without a timeout) could not do.
"""

from __future__ import annotations

import os
import time
from typing import TextIO

import docker.auth
import docker.errors
import docker.utils
import requests.exceptions

from labkit.core import activity, engine
from labkit.core.errors import LabkitError
from labkit.core.i18n import _
from labkit.features.streams import LayerTally

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


def try_pull(name: str, timeout: float | None = None, *, out: TextIO | None = None) -> str | None:
    """Pull ``name`` once, within ``timeout`` seconds; ``None`` on success, else why not.

    Never raises for a pull that fails: the caller builds the image instead.

    Args:
        name: the image reference, e.g. ``busybox:latest``.
        timeout: seconds for the whole attempt (:func:`pull_timeout` when ``None``).
        out: where the caller prints its own lines (see :func:`labkit.core.activity.face_for`).
    """
    seconds = pull_timeout() if timeout is None else timeout
    late = f"no answer within {seconds:g} s"
    repository, tag = docker.utils.parse_repository_tag(name)
    tally = LayerTally()
    try:
        api = engine.client().api
        registry, _name = docker.auth.resolve_repository_name(repository)
        header = docker.auth.get_config_header(api, registry)
        deadline = time.monotonic() + seconds
        with activity.task(_("pulling {name}").format(name=name), out=out) as progress:
            response = api._post(
                api._url("/images/create"),
                params={"fromImage": repository, "tag": tag or "latest"},
                headers={"X-Registry-Auth": header} if header else {},
                stream=True,
                timeout=(min(seconds, 10.0), seconds),
            )
            try:
                api._raise_for_status(response)
                for event in api._stream_helper(response, decode=True):
                    tally.feed(event)
                    if tally.error is not None:
                        break
                    progress.update(tally.done, total=tally.total, note=tally.note(), phase=tally.phase)
                    if time.monotonic() > deadline:
                        return late
            finally:
                response.close()  # when cut short, the daemon cancels the pull
    except docker.errors.APIError as e:
        return short_reason(str(e.explanation or e))
    except requests.exceptions.Timeout:
        return late
    except requests.exceptions.RequestException as e:
        return short_reason(str(e))
    except (docker.errors.DockerException, LabkitError) as e:  # no daemon: a reason, not a crash
        return short_reason(str(e))
    return None if tally.error is None else short_reason(tally.error)
