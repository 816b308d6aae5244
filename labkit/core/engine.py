"""The connection to the Docker daemon, and the labels on what labkit creates.

The client is built from the environment (``DOCKER_HOST``, ``DOCKER_TLS_VERIFY``,
``DOCKER_CERT_PATH``), like the docker CLI. A daemon that is down answers with
:class:`~labkit.errors.DaemonUnavailable` within :data:`PING_TIMEOUT` seconds,
instead of docker-py's 60 s default.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
from collections.abc import Iterator
from typing import Any

import docker
import docker.constants
import docker.errors
import requests.exceptions

from labkit.core import owner
from labkit.core.errors import DaemonUnavailable, ImageMissing, LabkitError
from labkit.core.i18n import N_, _

#: Seconds a first ping may take before the daemon counts as unavailable.
PING_TIMEOUT = 4.0
#: Seconds any later API call may take (pulls and builds stream, so this is per read).
CALL_TIMEOUT = 300

LABEL_SESSION = "labkit.session"
LABEL_LESSON = "labkit.lesson"
#: Which process created a container (``PID-START``): the reaper removes it if that process dies.
LABEL_OWNER = owner.LABEL_OWNER
#: Set on images labkit built offline under a Docker Hub name.
LABEL_OFFLINE = "labkit.offline-build"

_SESSION = os.environ.get("LABKIT_SESSION") or f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"
_client: docker.DockerClient | None = None
_client_host: str | None = None


_lesson = "notebook"


def current_lesson() -> str:
    """The lesson this process is in: the ``labkit.lesson`` label of what it creates."""
    return _lesson


def set_lesson(lesson: str) -> None:
    """Label what this process creates from now on with ``labkit.lesson=<lesson>``."""
    global _lesson
    _lesson = str(lesson)


def session_id() -> str:
    """The value of the ``labkit.session`` label on everything this process creates."""
    return _SESSION


def labels(lesson: str = "cli", *, owned: bool = True, **extra: str) -> dict[str, str]:
    """Labels for a resource labkit creates, so ``labkit reset`` can find it.

    ``labkit.owner`` names this process (:mod:`labkit.core.owner`): if it dies without
    exiting normally, its watcher removes the containers carrying it. Infrastructure that
    outlives any one process (the registry's container) passes ``owned=False``; images never
    keep it (:func:`unowned`).

    Example:
        >>> sorted(labels("05"))
        ['labkit.lesson', 'labkit.owner', 'labkit.session']
    """
    found = {LABEL_SESSION: _SESSION, LABEL_LESSON: lesson}
    me = owner.owner_id() if owned else None
    if me is not None:
        found[LABEL_OWNER] = me
    return {**found, **extra}


def unowned(labels: dict[str, str]) -> dict[str, str]:
    """``labels`` without ``labkit.owner``: for an image, which outlives the process that made it, and whose
    labels every container made from it inherits.

    Example:
        >>> unowned({"labkit.session": "s", "labkit.owner": "42-1.00"})
        {'labkit.session': 's'}
    """
    return {key: value for key, value in labels.items() if key != LABEL_OWNER}


def docker_host() -> str:
    """Where the daemon is expected, as the CLI would resolve it."""
    return os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"


def _describe(exc: BaseException) -> str:
    """A short cause for a connection failure, without the library's noise."""
    text = str(exc)
    for needle, short in (
        ("No such file or directory", N_("socket not found")),
        ("Connection refused", N_("connection refused")),
        ("Permission denied", N_("permission denied: add yourself to the docker group or use sudo")),
        ("timed out", N_("no answer")),
        ("Read timed out", N_("no answer")),
    ):
        if needle in text:
            return _(short)
    return text.splitlines()[0][:120] if text else type(exc).__name__


def client() -> docker.DockerClient:
    """The shared docker SDK client, connected and version-negotiated.

    Raises:
        DaemonUnavailable: nothing answered at ``DOCKER_HOST`` within a few seconds.
    """
    global _client, _client_host
    host = docker_host()
    if _client is not None and _client_host == host:
        return _client
    try:
        # docker-py hands DOCKER_CERT_PATH's CA to requests, which REQUESTS_CA_BUNDLE or CURL_CA_BUNDLE in
        # the environment would replace: a TLS DOCKER_HOST (labkit trace --tcp) must use docker's own. So no
        # client reads the environment, the probe included (version="auto" would ask before we could say so).
        probe = docker.from_env(version=docker.constants.DEFAULT_DOCKER_API_VERSION, timeout=PING_TIMEOUT)
        probe.api.trust_env = False
        version = str(probe.api.version(api_version=False)["ApiVersion"])
        probe.close()
        _client = docker.from_env(version=version, timeout=CALL_TIMEOUT)
        _client.api.trust_env = False
    except docker.errors.DockerException as e:
        raise DaemonUnavailable(host, _describe(e)) from e
    except (requests.exceptions.RequestException, OSError) as e:
        raise DaemonUnavailable(host, _describe(e)) from e
    _client_host = host
    return _client


def reset_client() -> None:
    """Forget the cached client (after ``DOCKER_HOST`` changes, or in tests)."""
    global _client, _client_host
    if _client is not None:
        with contextlib.suppress(Exception):
            _client.close()
    _client, _client_host = None, None


@contextlib.contextmanager
def converted(image: str | None = None) -> Iterator[None]:
    """Turn docker SDK and connection errors into labkit errors at the boundary.

    Raises:
        DaemonUnavailable: the connection failed mid-way.
        ImageMissing: ``image`` was given and the daemon does not have it.
        LabkitError: any other API error, as one line.
    """
    try:
        yield
    except docker.errors.ImageNotFound as e:
        raise ImageMissing(image or "the requested image") from e
    except docker.errors.APIError as e:
        reason = e.explanation or str(e)
        if isinstance(reason, bytes):
            reason = reason.decode(errors="replace")
        raise LabkitError(
            _("the Docker daemon refused: {reason}").format(reason=reason),
            _("read the message; `labkit doctor` checks the setup"),
        ) from e
    except (requests.exceptions.ConnectionError, ConnectionError) as e:
        raise DaemonUnavailable(docker_host(), _describe(e)) from e


def find_container(name: str) -> Any | None:
    """The container with exactly this name (or id), or ``None``."""
    with converted():
        try:
            return client().containers.get(name)
        except docker.errors.NotFound:
            return None
