"""The registry labkit runs for the mirror: its port, folder and config, starting, stopping, status.

The registry is Debian's ``docker-registry`` run as a plain process with labkit's own
config (data in the state folder), listening on a unix socket in a 0700 folder, with
:mod:`.gate` in front of it on ``127.0.0.1:<port>``: pulls for anyone on the machine,
pushes only with the login :mod:`.credentials` keeps. Where that program is missing, a
``registry:2`` container is run instead if the daemon already has the image; that
fallback has no gate (anyone on the machine may push to it), see :func:`start_container`.
A process or container is only stopped when the records in the state folder show labkit started it.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TextIO

import docker.errors

from labkit.core import engine, http, paths, procs, wait
from labkit.core.errors import HttpUnreachable, LabkitError, NotSupported, WaitTimeout
from labkit.core.i18n import _
from labkit.features.registry import credentials
from labkit.features.registry.credentials import Credentials
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
#: Longest path a unix socket may have (``sun_path`` is 108 bytes on Linux, with its NUL).
MAX_UNIX_PATH = 107
#: The gate in front of the registry, run as ``python -m`` (its pid file names it).
GATE_MODULE = "labkit.features.registry.gate"


@dataclass(frozen=True)
class RegistryStatus:
    """Whether a registry answers on the port, and whether labkit started it.

    Attributes:
        running: a Docker registry answers ``GET /v2/`` at ``url``.
        url: ``http://127.0.0.1:<port>``.
        pid: the registry process labkit started, when it is alive.
        managed: labkit started it (process or container), so ``down()`` may stop it.
        repositories: what the registry holds, e.g. ``library/hello-world``.
        gate_pid: the gate labkit started in front of it (pushes need a login), when it is alive.
    """

    running: bool
    url: str
    pid: int | None = None
    managed: bool = False
    repositories: list[str] = field(default_factory=list)
    gate_pid: int | None = None

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
        raise LabkitError(
            _("LABKIT_REGISTRY_PORT={raw!r} is not a port number").format(raw=raw), _("unset it to use 5000")
        )
    return int(raw)


def url() -> str:
    """The registry's base URL, always on 127.0.0.1."""
    return f"http://127.0.0.1:{port()}"


def folder() -> Path:
    """Config, logs, pid files, data (``data/``), socket (``sock/``) and login (``auth/``) of the registry labkit runs."""
    return paths.state_dir() / "registry"


def socket_path() -> Path:
    """The unix socket the registry listens on; its folder is 0700, so only the gate (and root) reach it."""
    return folder() / "sock" / "registry.sock"


def credentials_file() -> Path:
    """The machine's push login (0600, in a 0700 folder)."""
    return folder() / "auth" / "credentials.json"


def hosts(listen_port: int | None = None) -> tuple[str, str]:
    """The two names of the course's registry a docker image name may start with."""
    p = port() if listen_port is None else listen_port
    return (f"127.0.0.1:{p}", f"localhost:{p}")


def push_login(host: str) -> Credentials | None:
    """The login to push to ``host`` with: labkit's own for the course's registry, else what ``docker login`` stored.

    A test run or a notebook with a state folder of its own finds the registry that
    ``labkit registry up`` started elsewhere: then the docker CLI's stored login for it is the one.
    """
    own = credentials.read(credentials_file()) if host in hosts() else None
    return own or credentials.stored_login(host)


# --- the process we start ---------------------------------------------------------------


def config_text(socket_file: Path, data: Path) -> str:
    """labkit's registry config: on a unix socket (the gate in front checks pushes), deletes allowed.

    Debian's default config turns on htpasswd auth, which would refuse the daemon's
    mirror pulls too (they carry no login); so labkit leaves auth to its gate.
    """
    return "\n".join(
        [
            "# Written by labkit (labkit/features/registry/process.py): reached only through labkit's gate, which checks pushes.",
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
            f"  addr: {json.dumps(str(socket_file))}",
            "  net: unix",
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


def _gate_pid_file() -> Path:
    return folder() / "gate.pid"


def recorded() -> dict[str, Any] | None:
    """The pid file's record of the process labkit started, if any."""
    return procs.read_record(_pid_file())


def gate_recorded() -> dict[str, Any] | None:
    """The pid file's record of the gate labkit started, if any."""
    return procs.read_record(_gate_pid_file())


def is_ours(record: dict[str, Any]) -> bool:
    """The recorded process still runs, is the same process (start time) and is a registry."""
    return procs.is_running(
        record, lambda argv: Path(argv[0].decode(errors="replace")).name == "docker-registry" and b"serve" in argv
    )


def gate_is_ours(record: dict[str, Any]) -> bool:
    """The recorded gate still runs, is the same process (start time) and is labkit's gate."""
    return procs.is_running(record, lambda argv: GATE_MODULE.encode() in argv)


def _log_tail(log: Path, offset: int, lines: int = 3) -> str:
    try:
        with open(log, "rb") as f:
            f.seek(offset)
            text = f.read().decode(errors="replace")
    except OSError:
        return ""
    tail = [line.strip() for line in text.strip().splitlines() if line.strip()][-lines:]
    return " | ".join(tail)


def _prepare_socket(path: Path) -> None:
    """A 0700 folder for the socket, and no socket left there by a registry that was killed.

    Raises:
        LabkitError: the path is too long for a unix socket.
    """
    if len(str(path)) > MAX_UNIX_PATH:
        raise LabkitError(
            _("socket path too long for a unix socket: {path}").format(path=path),
            _("set LABKIT_STATE_DIR to a shorter folder"),
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    path.unlink(missing_ok=True)  # only a registry labkit started listens here, and it has been stopped


def _spawn(argv: list[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    with open(log, "ab") as sink:
        return subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=subprocess.STDOUT,
            cwd=folder(),
            env=env,
            start_new_session=True,  # not in the caller's process group: Ctrl-C in a shell leaves it running
        )


def _gate_env() -> dict[str, str]:
    """The environment for the gate: it runs the very labkit that starts it, wherever that is installed."""
    here = str(paths.PACKAGE_DIR.parent)
    inherited = os.environ.get("PYTHONPATH", "")
    return {**os.environ, "PYTHONPATH": here + (os.pathsep + inherited if inherited else "")}


def start_process(program: str, listen_port: int, out: TextIO) -> int:
    """Run ``docker-registry serve`` on its unix socket and the gate in front of it, and wait until both answer.

    The machine's push login is made on the first start (:func:`credentials.ensure`).

    Raises:
        LabkitError: either exited or they did not answer in time (with the logs' last lines).
    """
    home = folder()
    data = home / "data"
    data.mkdir(parents=True, exist_ok=True)
    login = credentials.ensure(credentials_file())
    sock = socket_path()
    _prepare_socket(sock)
    config = home / "config.yml"
    config.write_text(config_text(sock, data))
    log, gate_log = home / "registry.log", home / "gate.log"
    offset = log.stat().st_size if log.exists() else 0
    gate_offset = gate_log.stat().st_size if gate_log.exists() else 0
    proc = _spawn([program, "serve", str(config)], log)
    _pid_file().write_text(json.dumps({**procs.track(proc), "program": program, "config": str(config)}))
    gate_argv = [sys.executable, "-m", GATE_MODULE, "--port", str(listen_port), "--upstream", str(sock)]
    gate = _spawn([*gate_argv, "--credentials", str(credentials_file())], gate_log, _gate_env())
    _gate_pid_file().write_text(json.dumps({**procs.track(gate), "port": listen_port, "upstream": str(sock)}))
    base = f"http://127.0.0.1:{listen_port}"

    def answering() -> bool:
        if proc.poll() is not None:
            raise LabkitError(
                _("the registry exited with code {code}: {tail}").format(
                    code=proc.returncode, tail=_log_tail(log, offset) or _("no output")
                ),
                _("read {log}").format(log=log),
            )
        if gate.poll() is not None:
            raise LabkitError(
                _("the registry's gate exited with code {code}: {tail}").format(
                    code=gate.returncode, tail=_log_tail(gate_log, gate_offset) or _("no output")
                ),
                _("read {log}").format(log=gate_log),
            )
        # Through the gate, with the login: proves the gate, the socket and the registry all answer.
        try:
            answer = http.request("GET", f"{base}/v2/", headers={"Authorization": login.basic()}, timeout=2.0)
        except HttpUnreachable:
            return False
        return answer.status == 200 and answer.header("Docker-Distribution-Api-Version").startswith("registry/2")

    try:
        wait.until(
            answering,
            _("the registry at {base}").format(base=base),
            timeout=START_TIMEOUT,
            detail=lambda: f"log: {_log_tail(log, offset)} ({log}); gate: {_log_tail(gate_log, gate_offset)}",
        )
    except (LabkitError, WaitTimeout):
        _stop_process(gate.pid, "registry gate")
        _stop_process(proc.pid)
        _gate_pid_file().unlink(missing_ok=True)
        _pid_file().unlink(missing_ok=True)
        raise
    print(
        _("registry started at {base} (pid {pid}; data in {data}; log in {log})").format(
            base=base, pid=proc.pid, data=data, log=log
        ),
        file=out,
        flush=True,
    )
    return proc.pid


def _stop_process(pid: int, what: str = "registry process") -> None:
    """SIGTERM, a deadline, then SIGKILL."""
    procs.terminate(pid, what, STOP_TIMEOUT)


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

    This fallback has no gate: its port is the registry's own, so anyone on the machine
    may push to it (and so poison the mirror). It stays for machines without Debian's
    ``docker-registry``; ``labkit registry up`` says so when it uses it.

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
                _(
                    "no registry to run: the docker-registry program is not installed and the {image} image is not on this daemon"
                ).format(image=FALLBACK_IMAGE),
                _("apt-get install docker-registry (Debian, Ubuntu), or load {image} from an image bundle").format(
                    image=FALLBACK_IMAGE
                ),
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
        _("the registry container at {base}").format(base=base),
        timeout=START_TIMEOUT,
        detail=last_log,
    )
    print(
        _("registry started at {base} (container {container}, from {image})").format(
            base=base, container=FALLBACK_CONTAINER, image=FALLBACK_IMAGE
        ),
        file=out,
        flush=True,
    )
    print(
        _(
            "note: this registry container has no login gate: anyone on this machine can push to it "
            "(install docker-registry for labkit's gated one)"
        ),
        file=out,
        flush=True,
    )


# --- stopping, and what is running ----------------------------------------------------------


def down() -> bool:
    """Stop the registry labkit started, and its gate (the data and the login stay for next time).

    Only the processes recorded in the pid files are signalled, and only if they still
    are that ``docker-registry`` and that gate; a registry someone else started is left alone.

    Returns:
        True if a registry (or its gate) was stopped.

    Raises:
        WaitTimeout: a process survived SIGKILL (it should not).
    """
    stopped = False
    gate = gate_recorded()
    if gate is not None:
        if gate_is_ours(gate):
            _stop_process(int(gate["pid"]), "registry gate")
            stopped = True
        _gate_pid_file().unlink(missing_ok=True)
    record = recorded()
    if record is not None:
        if is_ours(record):
            _stop_process(int(record["pid"]))
            stopped = True
            socket_path().unlink(missing_ok=True)
        _pid_file().unlink(missing_ok=True)
    container = _our_container()
    if container is not None:
        with engine.converted():
            container.stop(timeout=5)
            container.remove(force=True)
        stopped = True
    _container_file().unlink(missing_ok=True)
    return stopped


def half_running() -> str | None:
    """Why the registry labkit started cannot serve as it is, or ``None`` when it can (or is not running).

    One of the pair died (the gate, or the registry behind it), or the registry runs
    without a gate: one started before labkit had one, which anyone could push to.
    """
    record, gate = recorded(), gate_recorded()
    registry_up = record is not None and is_ours(record)
    gate_up = gate is not None and gate_is_ours(gate)
    if registry_up and not gate_up:
        return _("the registry runs without its gate (anyone could push to it)")
    if gate_up and not registry_up:
        return _("the registry behind the gate stopped")
    return None


def status() -> RegistryStatus:
    """Whether a registry answers, whether labkit started it, and what it holds. No side effects."""
    base = url()
    running = probe(base)[0] == "registry"
    record = recorded()
    pid = int(record["pid"]) if record is not None and is_ours(record) else None
    gate = gate_recorded()
    gate_pid = int(gate["pid"]) if gate is not None and gate_is_ours(gate) else None
    managed = pid is not None or gate_pid is not None or (_container_file().exists() and _our_container() is not None)
    return RegistryStatus(running, base, pid, managed, repositories(base) if running else [], gate_pid)
