"""A registry on this machine only, serving the course's images under their Docker Hub names.

A daemon started with ``--registry-mirror http://127.0.0.1:5000`` asks this
registry first for every Docker Hub image, so ``docker run hello-world`` prints
*Unable to find image … / Pulling from library/hello-world / Downloaded newer
image*, offline, exactly as on a connected machine.

This module starts it all (:func:`up`) and says whether the daemon uses it as its
mirror; the parts live beside it and are re-exported here for ``from labkit import registry``:
the registry process or container itself (port, config, start, stop, status) in
:mod:`.process`, the gate in front of it that lets anyone pull and only labkit's login
push in :mod:`.gate`, that login in :mod:`.credentials`, pushing the catalog images into
it in :mod:`.seeding`, and asking a registry over HTTP what it is and holds in :mod:`.remote`.

Example:
    >>> from labkit import registry
    >>> registry.up().repositories  # doctest: +SKIP
    ['labkit/hello-dock', 'library/busybox', 'library/debian', 'library/hello-world']
"""

from __future__ import annotations

import sys
from typing import Any, TextIO

from labkit.core import engine, procs
from labkit.core.errors import LabkitError, PortInUse
from labkit.core.i18n import _
from labkit.features.registry import credentials
from labkit.features.registry.process import (
    DEFAULT_PORT,
    FALLBACK_CONTAINER,
    FALLBACK_IMAGE,
    MIRROR_URL,
    START_TIMEOUT,
    STOP_TIMEOUT,
    RegistryStatus,
    config_text,
    credentials_file,
    down,
    gate_is_ours,
    gate_recorded,
    half_running,
    hosts,
    is_ours,
    port,
    push_login,
    recorded,
    registry_program,
    start_container,
    start_process,
    status,
    url,
)
from labkit.features.registry.remote import MANIFEST_TYPES, REQUEST_TIMEOUT, probe, remote_config, repositories
from labkit.features.registry.seeding import seed

__all__ = [
    "DEFAULT_PORT",
    "FALLBACK_CONTAINER",
    "FALLBACK_IMAGE",
    "MANIFEST_TYPES",
    "MIRROR_URL",
    "REQUEST_TIMEOUT",
    "START_TIMEOUT",
    "STOP_TIMEOUT",
    "RegistryStatus",
    "config_text",
    "daemon_mirrors",
    "down",
    "half_running",
    "hosts",
    "port",
    "probe",
    "push_login",
    "registry_program",
    "remote_config",
    "repositories",
    "seed",
    "serves_daemon",
    "status",
    "up",
    "url",
]


# --- the daemon's mirror -------------------------------------------------------------------


def daemon_mirrors(info: dict[str, Any] | None = None) -> list[str]:
    """The registry mirrors the daemon is configured with (from ``docker info``).

    Raises:
        DaemonUnavailable: the daemon did not answer.
    """
    if info is None:
        with engine.converted():
            info = engine.client().info()
    return [m.rstrip("/") for m in (info.get("RegistryConfig") or {}).get("Mirrors") or []]


def serves_daemon() -> bool:
    """True when a ``docker pull`` of a Docker Hub image on this daemon is answered by this registry.

    Lessons use it before removing an image to show a pull: without the mirror,
    an offline machine could not get the image back.
    """
    try:
        return port() == DEFAULT_PORT and MIRROR_URL in daemon_mirrors() and status().running
    except LabkitError:
        return False


def _mirror_note(listen_port: int) -> str | None:
    """A warning when the daemon will not ask this registry for Docker Hub images."""
    if listen_port != DEFAULT_PORT:
        return _(
            "note: the daemon's mirror must be {url} for `docker run hello-world` to use this registry; it listens on {port}"
        ).format(url=MIRROR_URL, port=listen_port)
    try:
        mirrors = daemon_mirrors()
    except LabkitError:
        return None
    if MIRROR_URL in mirrors:
        return None
    return _(
        "note: this daemon does not use {url} as its registry mirror, so `docker run` will not pull from it "
        "(`labkit doctor` says how to set it)"
    ).format(url=MIRROR_URL)


def _gated() -> bool:
    """The registry on the port is the one labkit started here, behind its gate."""
    gate = gate_recorded()
    return gate is not None and gate_is_ours(gate)


def log_in(listen_port: int, out: TextIO) -> None:
    """``docker login`` to both names of the registry with the machine's login, where docker lacks it.

    So the learner's ``docker push localhost:5000/…`` is let through the gate. Says one
    line when it logged in, and a note when docker refused; never raises (seeding pushes
    with the login itself, so the course's images get there regardless).
    """
    login = credentials.read(credentials_file())
    if login is None:
        return
    done, failed = [], []
    for host in hosts(listen_port):
        if credentials.stored_login(host) == login:
            continue
        problem = credentials.docker_login(host, login)
        if problem is None:
            done.append(host)
        else:
            failed.append(f"{host}: {problem}")
    if done:
        print(
            _("docker logged in to {names} as {username} (pushes need it)").format(
                names=" and ".join(done), username=login.username
            ),
            file=out,
            flush=True,
        )
    if failed:
        print(
            _("note: docker login failed ({names}), so `docker push` to this registry will be refused").format(
                names="; ".join(failed)
            ),
            file=out,
            flush=True,
        )


# --- public API ---------------------------------------------------------------------------


def up(*, out: TextIO = sys.stdout) -> RegistryStatus:
    """Start the registry (and its gate) if none answers on the port, log docker in, then seed it.

    Idempotent: a registry already answering (labkit's or anyone's) is used as it is,
    except one labkit started that lacks its other half (the gate, or the registry behind
    it): that one is stopped and started afresh, behind a gate.

    Raises:
        PortInUse: something that is not a registry holds the port.
        NotSupported: no docker-registry program and no registry:2 image.
        LabkitError: the registry did not start, or a push failed.
        DaemonUnavailable: the daemon did not answer while seeding.

    Example:
        >>> up().running  # doctest: +SKIP
        True
    """
    listen_port = port()
    base = url()
    broken = half_running()
    if broken:
        print(_("restarting the registry: {broken}").format(broken=broken), file=out, flush=True)
        down()
    kind, detail = probe(base)
    if kind == "other":
        raise PortInUse(listen_port, _("a program that is not a Docker registry ({detail})").format(detail=detail))
    if kind == "registry":
        record = recorded()
        mine = f" (pid {record['pid']})" if record and is_ours(record) else ""
        print(_("registry already running at {base}{mine}").format(base=base, mine=mine), file=out, flush=True)
    else:
        program = registry_program()
        if program:
            start_process(program, listen_port, out)
        else:
            start_container(listen_port, out)
    if _gated():
        log_in(listen_port, out)
    seed(base, out)
    note = _mirror_note(listen_port)
    if note:
        print(note, file=out, flush=True)
    return status()


# Kept for the tests that identify processes the way the registry does.
_start_time = procs.start_time
_alive = procs.alive
