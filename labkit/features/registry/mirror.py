"""A registry on this machine only, serving the course's images under their Docker Hub names.

A daemon started with ``--registry-mirror http://127.0.0.1:5000`` asks this
registry first for every Docker Hub image, so ``docker run hello-world`` prints
*Unable to find image … / Pulling from library/hello-world / Downloaded newer
image*, offline, exactly as on a connected machine.

The registry is Debian's ``docker-registry`` run as a plain process with labkit's
own config (no auth, 127.0.0.1 only, data in the state folder), or, where that
program is missing, a ``registry:2`` container if the daemon already has the image.

Example:
    >>> from labkit import registry
    >>> registry.up().repositories  # doctest: +SKIP
    ['labkit/hello-dock', 'library/busybox', 'library/debian', 'library/hello-world']
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, TextIO

import docker.errors

from labkit.core import activity, engine, http, paths, procs, refs, wait
from labkit.core.errors import HttpUnreachable, LabkitError, NotSupported, PortInUse, WaitTimeout
from labkit.features import images
from labkit.features.streams import LayerTally

DEFAULT_PORT = 5000
#: What the daemon's ``--registry-mirror`` must name for offline pulls to reach this registry.
MIRROR_URL = f"http://127.0.0.1:{DEFAULT_PORT}"
#: Seconds the registry may take to answer after it starts.
START_TIMEOUT = 15.0
#: Seconds between SIGTERM and SIGKILL when stopping it.
STOP_TIMEOUT = 10.0
FALLBACK_IMAGE = "registry:2"
FALLBACK_CONTAINER = "labkit-registry"
#: What a registry may store under a tag: a single image (Docker or OCI) or a multi-platform index.
MANIFEST_TYPES = (
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
)
_SINGLE_IMAGE = (MANIFEST_TYPES[0], MANIFEST_TYPES[2])

#: Seconds one request to the registry may take; it is on this machine.
REQUEST_TIMEOUT = 2.0


@dataclass(frozen=True)
class RegistryStatus:
    """Whether a registry answers on the port, and whether labkit started it.

    Attributes:
        running: a Docker registry answers ``GET /v2/`` at ``url``.
        url: ``http://127.0.0.1:<port>``.
        pid: the registry process labkit started, when it is alive.
        managed: labkit started it (process or container), so ``down()`` may stop it.
        repositories: what the registry holds, e.g. ``library/hello-world``.
    """

    running: bool
    url: str
    pid: int | None = None
    managed: bool = False
    repositories: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def port() -> int:
    """The registry's port: ``LABKIT_REGISTRY_PORT``, else 5000.

    Raises:
        LabkitError: the variable is not a port number.
    """
    raw = os.environ.get("LABKIT_REGISTRY_PORT", "").strip()
    if not raw:
        return DEFAULT_PORT
    if not raw.isdigit() or not 0 < int(raw) < 65536:
        raise LabkitError(f"LABKIT_REGISTRY_PORT={raw!r} is not a port number", "unset it to use 5000")
    return int(raw)


def url() -> str:
    """The registry's base URL, always on 127.0.0.1."""
    return f"http://127.0.0.1:{port()}"


def _folder() -> Path:
    """Config, log, pid file and data (``data/``) of the registry labkit runs."""
    return paths.state_dir() / "registry"


# --- talking to a registry ------------------------------------------------------------


def _request(target: str, method: str = "GET", accept: tuple[str, ...] = ()) -> http.Response:
    """One request; HTTP errors are answers, not exceptions.

    Raises:
        HttpUnreachable: nothing that speaks HTTP answered.
    """
    return http.request(
        method, target, headers={"Accept": ", ".join(accept)} if accept else {}, timeout=REQUEST_TIMEOUT
    )


def probe(base: str) -> tuple[Literal["registry", "other", "none"], str]:
    """What answers at ``base``: a Docker registry, something else, or nothing.

    A registry says so in the ``Docker-Distribution-Api-Version`` header of ``/v2/``,
    whether or not it asks for credentials.
    """
    try:
        answer = _request(f"{base}/v2/")
    except HttpUnreachable as e:
        if e.refused:
            return "none", "connection refused"
        return "other", f"no HTTP answer on /v2/: {e.cause}"
    if answer.header("Docker-Distribution-Api-Version").startswith("registry/2"):
        return "registry", f"HTTP {answer.status}"
    return "other", f"it answered GET /v2/ with HTTP {answer.status} and no registry header"


def repositories(base: str) -> list[str]:
    """The repositories a registry holds (its ``/v2/_catalog``), or ``[]`` if it will not say."""
    try:
        answer = _request(f"{base}/v2/_catalog?n=1000")
        return sorted(answer.json().get("repositories") or []) if answer.status == 200 else []
    except (HttpUnreachable, ValueError, AttributeError, TypeError):
        return []


def remote_config(base: str, repository: str, tag: str) -> str | None:
    """What the registry has under ``repository:tag``.

    Returns:
        ``None`` when it has nothing; the image's config digest (which is the local
        image id) for a single image; ``""`` for an index or anything unreadable.
    """
    target = f"{base}/v2/{repository}/manifests/{tag}"
    try:
        answer = _request(target, "HEAD", MANIFEST_TYPES)
        if answer.status == 404:
            return None
        if answer.status != 200 or answer.content_type not in _SINGLE_IMAGE:
            return ""
        answer = _request(target, "GET", _SINGLE_IMAGE)
        return str(answer.json()["config"]["digest"]) if answer.status == 200 else ""
    except (HttpUnreachable, ValueError, KeyError, TypeError):
        return ""


# --- the process we start ---------------------------------------------------------------


def config_text(listen_port: int, data: Path) -> str:
    """labkit's registry config: no auth, this machine only, deletes allowed.

    Debian's default config turns on htpasswd auth, which the daemon's mirror
    pulls cannot satisfy; so labkit never uses it.
    """
    return "\n".join(
        [
            "# Written by labkit (labkit/registry.py): a registry for this machine only, without auth.",
            "version: 0.1",
            "log:",
            "  level: warn  # start-up failures and errors only, not a line per request",
            "  accesslog:",
            "    disabled: true",
            "  fields:",
            "    service: labkit-registry",
            "storage:",
            "  filesystem:",
            f"    rootdirectory: {json.dumps(str(data))}",
            "  delete:",
            "    enabled: true",
            "http:",
            f'  addr: "127.0.0.1:{listen_port}"',
            f"  secret: {secrets.token_hex(16)}  # one instance: any value will do, but unset it warns",
            "  headers:",
            "    X-Content-Type-Options: [nosniff]",
            "",
        ]
    )


def registry_program() -> str | None:
    """Debian's ``docker-registry`` (package docker-registry), if installed."""
    return shutil.which("docker-registry") or (
        "/usr/bin/docker-registry" if os.access("/usr/bin/docker-registry", os.X_OK) else None
    )


def _pid_file() -> Path:
    return _folder() / "registry.pid"


def _recorded() -> dict[str, Any] | None:
    """The pid file's record of the process labkit started, if any."""
    return procs.read_record(_pid_file())


def _is_ours(record: dict[str, Any]) -> bool:
    """The recorded process still runs, is the same process (start time) and is a registry."""
    return procs.is_running(
        record, lambda argv: Path(argv[0].decode(errors="replace")).name == "docker-registry" and b"serve" in argv
    )


def _log_tail(log: Path, offset: int, lines: int = 3) -> str:
    try:
        with open(log, "rb") as f:
            f.seek(offset)
            text = f.read().decode(errors="replace")
    except OSError:
        return ""
    tail = [line.strip() for line in text.strip().splitlines() if line.strip()][-lines:]
    return " | ".join(tail)


def _start_process(program: str, listen_port: int, out: TextIO) -> int:
    """Run ``docker-registry serve`` in the background and wait for its ``/v2/``.

    Raises:
        LabkitError: it exited or did not answer in time (with the log's last lines).
    """
    folder = _folder()
    data = folder / "data"
    data.mkdir(parents=True, exist_ok=True)
    config = folder / "config.yml"
    config.write_text(config_text(listen_port, data))
    log = folder / "registry.log"
    offset = log.stat().st_size if log.exists() else 0
    with open(log, "ab") as sink:
        proc = subprocess.Popen(
            [program, "serve", str(config)],
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=subprocess.STDOUT,
            cwd=folder,
            start_new_session=True,
        )
    _pid_file().write_text(json.dumps({**procs.track(proc), "program": program, "config": str(config)}))
    base = f"http://127.0.0.1:{listen_port}"

    def answering() -> bool:
        if proc.poll() is not None:
            raise LabkitError(
                f"the registry exited with code {proc.returncode}: {_log_tail(log, offset) or 'no output'}",
                f"read {log}",
            )
        return probe(base)[0] == "registry"

    try:
        wait.until(
            answering,
            f"the registry at {base}",
            timeout=START_TIMEOUT,
            detail=lambda: f"log: {_log_tail(log, offset)} ({log})",
        )
    except (LabkitError, WaitTimeout):
        _stop_process(proc.pid)
        _pid_file().unlink(missing_ok=True)
        raise
    print(f"registry started at {base} (pid {proc.pid}; data in {data}; log in {log})", file=out, flush=True)
    return proc.pid


def _stop_process(pid: int) -> None:
    """SIGTERM, a deadline, then SIGKILL."""
    procs.terminate(pid, "registry process", STOP_TIMEOUT)


# --- the container fallback ---------------------------------------------------------------


def _container_file() -> Path:
    return _folder() / "registry.container"


def _our_container() -> Any | None:
    """The fallback container labkit started, if the record names one that still exists."""
    try:
        ident = _container_file().read_text().strip()
    except OSError:
        return None
    try:
        container = engine.find_container(ident) if ident else None
    except LabkitError:
        return None
    if container is None or container.labels.get(engine.LABEL_LESSON) != "registry":
        return None
    return container


def _start_container(listen_port: int, out: TextIO) -> None:
    """Run ``registry:2`` published on 127.0.0.1 only, if the daemon has that image.

    Raises:
        NotSupported: neither ``docker-registry`` nor the ``registry:2`` image is here.
        LabkitError: the container did not answer in time.
    """
    client = engine.client()
    with engine.converted():
        try:
            client.images.get(FALLBACK_IMAGE)
        except docker.errors.ImageNotFound:
            raise NotSupported(
                f"no registry to run: the docker-registry program is not installed and the {FALLBACK_IMAGE} image is not on this daemon",
                f"apt-get install docker-registry (Debian, Ubuntu), or load {FALLBACK_IMAGE} from an image bundle",
            ) from None
        old = engine.find_container(FALLBACK_CONTAINER)
        if old is not None and old.labels.get(engine.LABEL_LESSON) == "registry":
            old.remove(force=True)
        data = _folder() / "data"
        data.mkdir(parents=True, exist_ok=True)
        container = client.containers.run(
            FALLBACK_IMAGE,
            detach=True,
            name=FALLBACK_CONTAINER,
            labels=engine.labels("registry"),
            ports={"5000/tcp": ("127.0.0.1", listen_port)},
            volumes={str(data): {"bind": "/var/lib/registry", "mode": "rw"}},
            environment={"REGISTRY_STORAGE_DELETE_ENABLED": "true"},
        )
    _container_file().write_text(container.id)
    base = f"http://127.0.0.1:{listen_port}"

    def last_log() -> str:
        with contextlib.suppress(Exception):
            return "log: " + bytes(container.logs(tail=3)).decode(errors="replace").strip().replace("\n", " | ")
        return ""

    wait.until(
        lambda: probe(base)[0] == "registry",
        f"the registry container at {base}",
        timeout=START_TIMEOUT,
        detail=last_log,
    )
    print(f"registry started at {base} (container {FALLBACK_CONTAINER}, from {FALLBACK_IMAGE})", file=out, flush=True)


# --- seeding -------------------------------------------------------------------------------


def _push(name: str, remote: str, tag: str, out: TextIO | None = None) -> None:
    """Push local image ``name`` as ``remote:tag``, then drop that extra name again.

    The temporary tag, and the digest reference a push records, would otherwise
    show up in ``docker images`` as ``127.0.0.1:5000/...`` rows.

    Raises:
        LabkitError: the push failed.
    """
    api = engine.client().api
    host = refs.parse(remote).registry
    with engine.converted(name):
        api.tag(name, remote, tag)
        tally = LayerTally()
        try:
            with activity.task(f"pushing {name}", out=out) as progress:
                for message in api.push(remote, tag=tag, stream=True, decode=True):
                    if message.get("error"):
                        raise LabkitError(
                            f"pushing {name} to {host} failed: {message['error']}", f"read {_folder() / 'registry.log'}"
                        )
                    tally.feed(message)
                    progress.update(tally.done, total=tally.total, note=tally.note(), phase=tally.phase)
        finally:
            with contextlib.suppress(docker.errors.APIError):
                api.remove_image(f"{remote}:{tag}", noprune=True)
            with contextlib.suppress(docker.errors.APIError):
                for digest_ref in api.inspect_image(name).get("RepoDigests") or []:
                    if digest_ref.startswith(f"{host}/"):
                        api.remove_image(digest_ref, noprune=True)


def seed(base: str, out: TextIO = sys.stdout) -> None:
    """Push every catalog image the daemon has and the registry lacks (or holds an older build of).

    Raises:
        LabkitError: a push failed.
        DaemonUnavailable: the daemon did not answer.
    """

    host = base.removeprefix("http://")
    for entry, state in zip(images.CATALOG, images.status(), strict=True):
        label = f"  {entry.name:<26}"
        if not state.present:
            print(f"{label} not on this daemon: skipped (`labkit images ensure` makes it)", file=out, flush=True)
            continue
        held = remote_config(base, entry.registry_path, entry.tag)
        if held is not None and held in ("", state.image_id):
            print(f"{label} already in the registry", file=out, flush=True)
            continue
        started = time.monotonic()
        _push(entry.name, f"{host}/{entry.registry_path}", entry.tag, out)
        print(
            f"{label} pushed as {entry.registry_path}:{entry.tag} in {time.monotonic() - started:.1f} s",
            file=out,
            flush=True,
        )


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
        return f"note: the daemon's mirror must be {MIRROR_URL} for `docker run hello-world` to use this registry; it listens on {listen_port}"
    try:
        mirrors = daemon_mirrors()
    except LabkitError:
        return None
    if MIRROR_URL in mirrors:
        return None
    return f"note: this daemon does not use {MIRROR_URL} as its registry mirror, so `docker run` will not pull from it (`labkit doctor` says how to set it)"


# --- public API ---------------------------------------------------------------------------


def up(*, out: TextIO = sys.stdout) -> RegistryStatus:
    """Start the registry if none answers on the port, then seed it with the catalog images.

    Idempotent: a registry already answering (labkit's or anyone's) is used as it is.

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
    kind, detail = probe(base)
    if kind == "other":
        raise PortInUse(listen_port, f"a program that is not a Docker registry ({detail})")
    if kind == "registry":
        record = _recorded()
        mine = f" (pid {record['pid']})" if record and _is_ours(record) else ""
        print(f"registry already running at {base}{mine}", file=out, flush=True)
    else:
        program = registry_program()
        if program:
            _start_process(program, listen_port, out)
        else:
            _start_container(listen_port, out)
    seed(base, out)
    note = _mirror_note(listen_port)
    if note:
        print(note, file=out, flush=True)
    return status()


def down() -> bool:
    """Stop the registry labkit started (its data stays for next time).

    Only the process recorded in the pid file is signalled, and only if it still
    is that ``docker-registry`` process; a registry someone else started is left alone.

    Returns:
        True if a registry was stopped.

    Raises:
        WaitTimeout: the process survived SIGKILL (it should not).
    """
    stopped = False
    record = _recorded()
    if record is not None:
        if _is_ours(record):
            _stop_process(int(record["pid"]))
            stopped = True
        _pid_file().unlink(missing_ok=True)
    container = _our_container()
    if container is not None:
        with engine.converted():
            container.stop(timeout=5)
            container.remove(force=True)
        stopped = True
    _container_file().unlink(missing_ok=True)
    return stopped


def status() -> RegistryStatus:
    """Whether a registry answers, whether labkit started it, and what it holds. No side effects."""
    base = url()
    running = probe(base)[0] == "registry"
    record = _recorded()
    pid = int(record["pid"]) if record is not None and _is_ours(record) else None
    managed = pid is not None or (_container_file().exists() and _our_container() is not None)
    return RegistryStatus(running, base, pid, managed, repositories(base) if running else [])


# Kept for the tests that identify processes the way the registry does.
_start_time = procs.start_time
_alive = procs.alive
