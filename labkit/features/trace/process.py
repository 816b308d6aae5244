"""The proxy as a background process: where its files live, and start, stop and status.

The process is ``python -m labkit.trace serve``, started in a session of its own
so it outlives the caller; its pid and start time are kept in a pid file, and only
that very process is ever signalled. On TCP it gets TLS files made for that start
(:mod:`labkit.features.trace.tls`), removed when it stops.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import shutil
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TextIO

from labkit.core import engine, paths, procs, wait
from labkit.core.errors import DaemonUnavailable, LabkitError, WaitTimeout
from labkit.core.i18n import _
from labkit.features.trace.proxy import _connect, parse_address
from labkit.features.trace.tls import make_credentials

#: Seconds the background proxy may take to accept connections.
START_TIMEOUT = 10.0
#: Seconds between SIGTERM and SIGKILL when stopping it.
STOP_TIMEOUT = 5.0
#: Unix socket paths longer than this do not fit in ``sockaddr_un`` on Linux.
MAX_UNIX_PATH = 107


def folder() -> Path:
    """``<state dir>/trace``: socket, log and pid file, readable by their owner only."""
    path = paths.state_dir() / "trace"
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    with contextlib.suppress(OSError):
        path.chmod(0o700)
    return path


def socket_path() -> Path:
    """Where the proxy listens by default: ``<state dir>/trace/docker.sock``."""
    return folder() / "docker.sock"


def tls_folder() -> Path:
    """``<state dir>/trace/tls``: a TCP proxy's certificates, the value for ``DOCKER_CERT_PATH``."""
    return folder() / "tls"


def log_path() -> Path:
    """The trace log: one JSON object per API call."""
    return folder() / "trace.jsonl"


def _pid_file() -> Path:
    return folder() / "proxy.json"


def _output_file() -> Path:
    return folder() / "proxy.log"


#: Proxy processes started by this Python process, reaped when they end.


@dataclass(frozen=True)
class TraceStatus:
    """Whether labkit's trace proxy runs, and where.

    Attributes:
        running: the recorded proxy process is alive and is ours.
        docker_host: the value to give ``DOCKER_HOST`` to go through it.
        socket: the unix socket path ("" when it listens on TCP).
        upstream: the daemon it forwards to.
        log: the trace log.
        pid: the proxy's process id when running.
        cert_path: on TCP, the folder of the client's TLS files (``DOCKER_CERT_PATH``).
    """

    running: bool
    docker_host: str = ""
    socket: str = ""
    upstream: str = ""
    log: str = ""
    pid: int | None = None
    cert_path: str = ""

    @property
    def env(self) -> dict[str, str]:
        """What the docker CLI (or docker SDK) needs in its environment to go through the proxy.

        Example:
            >>> TraceStatus(True, "tcp://127.0.0.1:23750", cert_path="/s/trace/tls").env
            {'DOCKER_HOST': 'tcp://127.0.0.1:23750', 'DOCKER_TLS_VERIFY': '1', 'DOCKER_CERT_PATH': '/s/trace/tls'}
        """
        if not self.running:
            return {}
        env = {"DOCKER_HOST": self.docker_host}
        if self.cert_path:
            env.update(DOCKER_TLS_VERIFY="1", DOCKER_CERT_PATH=self.cert_path)
        return env

    @property
    def shell_env(self) -> str:
        """:attr:`env` as a shell command's prefix: ``DOCKER_HOST=… docker …``."""
        return " ".join(f"{name}={shlex.quote(value)}" for name, value in self.env.items())

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "env": self.env}

    def __str__(self) -> str:
        if not self.running:
            return "labkit trace: no proxy running"
        return f"recording proxy running: {self.shell_env} → {self.upstream}"

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(str(self))


_start_time = procs.start_time
_alive = procs.alive


def _recorded() -> dict[str, Any] | None:
    return procs.read_record(_pid_file())


def _is_ours(record: dict[str, Any]) -> bool:
    """The recorded pid is still that process (same start time) running ``labkit trace serve``."""
    return procs.is_running(record, lambda argv: argv[1:5] == [b"-m", b"labkit", b"trace", b"serve"])


def status() -> TraceStatus:
    """The proxy labkit started, if it still runs. No side effects."""
    record = _recorded()
    if record is None or not _is_ours(record):
        return TraceStatus(False, log=str(log_path()))
    listen = str(record.get("listen", ""))
    return TraceStatus(
        True,
        docker_host=listen,
        socket=listen[len("unix://") :] if listen.startswith("unix://") else "",
        upstream=str(record.get("upstream", "")),
        log=str(record.get("log", "")),
        pid=int(record["pid"]),
        cert_path=str(record.get("tls") or ""),
    )


def _check_upstream(upstream: str, listen: str) -> None:
    """Fail early, with one line, when the daemon cannot be reached or is the proxy itself.

    Raises:
        DaemonUnavailable: the daemon's socket is missing.
        LabkitError: DOCKER_HOST points at the proxy.
    """
    kind, where, _port = parse_address(upstream)
    certs = os.environ.get("DOCKER_CERT_PATH")
    if (
        upstream == listen
        or (kind == "unix" and Path(where) == socket_path())
        or (certs and Path(certs) == tls_folder())
    ):
        raise LabkitError(
            _("DOCKER_HOST ({upstream}) points at the trace proxy itself").format(upstream=upstream),
            _(
                "unset DOCKER_HOST DOCKER_TLS_VERIFY DOCKER_CERT_PATH (or point DOCKER_HOST at the daemon's socket) "
                "before `labkit trace start`"
            ),
        )
    if os.environ.get("DOCKER_TLS_VERIFY"):
        raise LabkitError(
            _("labkit trace cannot relay a TLS connection to the daemon"),
            _("unset DOCKER_TLS_VERIFY or trace a local daemon"),
        )
    if kind == "unix" and not Path(where).exists():
        raise DaemonUnavailable(upstream, "socket not found")


def _prepare_unix(path: Path) -> None:
    """Clear a stale socket file; refuse one something still answers on.

    Raises:
        LabkitError: the path is too long, or a live program listens there.
    """
    if len(str(path)) > MAX_UNIX_PATH:
        raise LabkitError(
            _("socket path too long for a unix socket: {path}").format(path=path),
            _("set LABKIT_STATE_DIR to a shorter folder, or use --tcp PORT"),
        )
    if not path.exists() and not path.is_symlink():
        return
    try:
        _connect(f"unix://{path}", timeout=1.0).close()
    except OSError:
        path.unlink(missing_ok=True)  # nobody listens: a leftover from a killed proxy
        return
    raise LabkitError(
        _("socket path {path} is in use by another program").format(path=path),
        _("stop it, or give labkit trace another --socket path"),
    )


def start(socket_file: str | Path | None = None, tcp: int | None = None, *, out: TextIO | None = None) -> TraceStatus:
    """Start the recording proxy in the background, with a new, empty trace log.

    A proxy labkit started earlier is stopped first, so every start is a fresh
    recording. The process outlives the caller (a notebook kernel, ``labkit
    exercise setup``); :func:`stop` ends it.

    Args:
        socket_file: where to listen; ``<state dir>/trace/docker.sock`` by default.
        tcp: listen on ``127.0.0.1:tcp`` instead of a unix socket, with TLS: only a
            client holding the certificate made now (``DOCKER_CERT_PATH``) gets in.
        out: where to print one line about it (nothing by default).

    Returns:
        Its status, including the environment to give the CLI (``env``, ``shell_env``).

    Raises:
        DaemonUnavailable: the daemon's socket is missing.
        LabkitError: the socket path or port is in use, ``openssl`` is missing, or the
            proxy did not start.
    """
    stop()
    listen = f"tcp://127.0.0.1:{tcp}" if tcp is not None else f"unix://{Path(socket_file or socket_path()).absolute()}"
    upstream = engine.docker_host()
    _check_upstream(upstream, listen)
    if tcp is None:
        _prepare_unix(Path(listen[len("unix://") :]))
    tls = make_credentials(tls_folder()) if tcp is not None else None
    log = log_path()
    log.unlink(missing_ok=True)
    output = _output_file()
    with open(output, "wb") as sink:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "labkit",
                "trace",
                "serve",
                "--listen",
                listen,
                "--upstream",
                upstream,
                "--log",
                str(log),
                *(["--tls", str(tls)] if tls is not None else []),
            ],
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=subprocess.STDOUT,
            cwd=folder(),
            start_new_session=True,  # not in the caller's process group: Ctrl-C in a shell leaves it running
        )
    record = {**procs.track(proc), "listen": listen, "upstream": upstream, "log": str(log), "tls": str(tls or "")}
    _pid_file().write_text(json.dumps(record))

    def listening() -> bool:
        if proc.poll() is not None:
            said = output.read_text(errors="replace").strip().splitlines()
            _pid_file().unlink(missing_ok=True)
            shutil.rmtree(tls_folder(), ignore_errors=True)
            raise LabkitError(
                (said[-1] if said else f"the trace proxy exited with code {proc.returncode}").removeprefix("labkit: ")
            )
        try:
            _connect(listen, timeout=0.5).close()
            return True
        except OSError:
            return False

    try:
        wait.until(listening, _("the trace proxy on {listen}").format(listen=listen), timeout=START_TIMEOUT)
    except WaitTimeout:
        stop()
        raise
    result = status()
    if out is not None:
        print(_("{result} (pid {pid}; log {log})").format(result=result, pid=proc.pid, log=log), file=out, flush=True)
    return result


def stop(remove_log: bool = False) -> bool:
    """Stop the proxy labkit started and remove its socket and TLS files.

    Only the process in the pid file is signalled, and only if it is still that
    ``labkit.trace serve`` process.

    Args:
        remove_log: delete the trace log as well (exercise teardown does).

    Returns:
        True if a proxy was running and is now stopped.
    """
    stopped = False
    record = _recorded()
    if record is not None:
        pid = int(record["pid"])
        if _is_ours(record):
            procs.terminate(pid, "trace proxy", STOP_TIMEOUT)
            stopped = True
        listen = str(record.get("listen", ""))
        if listen.startswith("unix://"):
            stale = Path(listen[len("unix://") :])
            with contextlib.suppress(OSError):
                if stale.is_socket():
                    stale.unlink()
        _pid_file().unlink(missing_ok=True)
    shutil.rmtree(tls_folder(), ignore_errors=True)  # a stopped proxy's certificates open nothing
    if remove_log:
        log_path().unlink(missing_ok=True)
        _output_file().unlink(missing_ok=True)
    return stopped
