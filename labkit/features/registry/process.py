"""The registry labkit runs for the mirror: its port, folder and config, starting, stopping, status.

The registry is Debian's ``docker-registry`` run as a plain process with labkit's
own config (no auth, 127.0.0.1 only, data in the state folder), or, where that
program is missing, a ``registry:2`` container if the daemon already has the image.
A process or container is only stopped when the records in the state folder show labkit started it.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TextIO

import docker.errors

from labkit.core import engine, paths, procs, wait
from labkit.core.errors import LabkitError, NotSupported, WaitTimeout
from labkit.features.registry.remote import probe, repositories

DEFAULT_PORT = 5000
#: What the daemon's ``--registry-mirror`` must name for offline pulls to reach this registry.
MIRROR_URL = f"http://127.0.0.1:{DEFAULT_PORT}"
#: Seconds the registry may take to answer after it starts.
START_TIMEOUT = 15.0
#: Seconds between SIGTERM and SIGKILL when stopping it.
STOP_TIMEOUT = 10.0
FALLBACK_IMAGE = "registry:2"
FALLBACK_CONTAINER = "labkit-registry"


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


def folder() -> Path:
    """Config, log, pid file and data (``data/``) of the registry labkit runs."""
    return paths.state_dir() / "registry"


# --- the process we start ---------------------------------------------------------------


def config_text(listen_port: int, data: Path) -> str:
    """labkit's registry config: no auth, this machine only, deletes allowed.

    Debian's default config turns on htpasswd auth, which the daemon's mirror
    pulls cannot satisfy; so labkit never uses it.
    """
    return "\n".join(
        [
            "# Written by labkit (labkit/features/registry/process.py): a registry for this machine only, without auth.",
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
    return folder() / "registry.pid"


def recorded() -> dict[str, Any] | None:
    """The pid file's record of the process labkit started, if any."""
    return procs.read_record(_pid_file())


def is_ours(record: dict[str, Any]) -> bool:
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


def start_process(program: str, listen_port: int, out: TextIO) -> int:
    """Run ``docker-registry serve`` in the background and wait for its ``/v2/``.

    Raises:
        LabkitError: it exited or did not answer in time (with the log's last lines).
    """
    home = folder()
    data = home / "data"
    data.mkdir(parents=True, exist_ok=True)
    config = home / "config.yml"
    config.write_text(config_text(listen_port, data))
    log = home / "registry.log"
    offset = log.stat().st_size if log.exists() else 0
    with open(log, "ab") as sink:
        proc = subprocess.Popen(
            [program, "serve", str(config)],
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=subprocess.STDOUT,
            cwd=home,
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
    return folder() / "registry.container"


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


def start_container(listen_port: int, out: TextIO) -> None:
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
        data = folder() / "data"
        data.mkdir(parents=True, exist_ok=True)
        container = client.containers.run(
            FALLBACK_IMAGE,
            detach=True,
            name=FALLBACK_CONTAINER,
            labels=engine.labels("registry", owned=False),  # infrastructure: outlives whoever started it
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


# --- stopping, and what is running ----------------------------------------------------------


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
    record = recorded()
    if record is not None:
        if is_ours(record):
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
    record = recorded()
    pid = int(record["pid"]) if record is not None and is_ours(record) else None
    managed = pid is not None or (_container_file().exists() and _our_container() is not None)
    return RegistryStatus(running, base, pid, managed, repositories(base) if running else [])
