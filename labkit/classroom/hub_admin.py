"""``labkit hub``'s actions: start a classroom hub, see it, warm and stop learners' labs, take it down.

The hub is JupyterHub with labkit's parts (:mod:`hub_config` says which), started by
:func:`up` as a process of its own that outlives the command; root's record of it
(``hub.json``: pid and start time) is how :func:`down` and :func:`status` find it again,
and a pid is only signalled when it is surely that process (:mod:`labkit.core.procs`).
Learners' labs are started and stopped through the hub's REST API with the admin token
``up`` made, so JupyterHub's own records stay true.

Nothing here imports JupyterHub: ``labkit hub status`` works where the extra is missing,
and says so.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import os
import shutil
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import quote

import psutil

from labkit.classroom import hub_accounts
from labkit.classroom import learner_engine as le
from labkit.classroom.hub_config import Settings, secret, write
from labkit.core import http, procs, wait
from labkit.core import state as files
from labkit.core.errors import HttpUnreachable, LabkitError, WaitTimeout

#: Where the project's own setup installs JupyterHub's proxy (`make hub`, `make test`).
REPO = Path(__file__).resolve().parents[2]
NPM_BIN = REPO / ".npm-hub" / "node_modules" / ".bin"


@dataclass
class UpReport:
    """What :func:`up` did."""

    url: str
    already_running: bool
    added: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    passwords: Path | None = None
    seconds: float = 0.0


# --- checks before starting ------------------------------------------------------------------


def _require_root() -> None:
    if os.geteuid() != 0:
        raise LabkitError("a classroom hub runs as root", "run `sudo labkit hub …` on the classroom server")


def proxy_bin() -> Path:
    """The folder holding ``configurable-http-proxy``.

    Raises:
        LabkitError: it is not installed.
    """
    found = shutil.which("configurable-http-proxy")
    if found:
        return Path(found).parent
    if (NPM_BIN / "configurable-http-proxy").exists():
        return NPM_BIN
    raise LabkitError(
        "JupyterHub's proxy (configurable-http-proxy) is not installed", "run `make hub`, which installs it with npm"
    )


def _require_hub() -> None:
    if importlib.util.find_spec("jupyterhub") is None:
        raise LabkitError("JupyterHub is not installed", "run `make hub` (or `pip install -e '.[hub]'`)")
    for tool in (le.ROOTLESS_SCRIPT, le.DOCKER_PROXY):
        if not tool.exists():
            raise LabkitError(f"{tool} is missing: learners' engines need it", "run scripts/provision-docker")
    for name in ("rootlesskit", "slirp4netns", "newuidmap"):
        if shutil.which(name, path=le.PATH) is None:
            raise LabkitError(f"{name} is missing: learners' engines need it", "run scripts/provision-docker")


def _port_free(port: int, ip: str) -> None:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((ip if ip != "0.0.0.0" else "", port))
        except OSError as e:
            holder = ""
            with contextlib.suppress(psutil.Error):
                for conn in psutil.net_connections("tcp"):
                    if conn.laddr and conn.laddr.port == port and conn.status == psutil.CONN_LISTEN and conn.pid:
                        holder = f" by {psutil.Process(conn.pid).name()} (pid {conn.pid})"
                        break
            raise LabkitError(
                f"port {port} is already in use{holder} ({e.strerror})", "stop it, or give `--port` another port"
            ) from e


def free_port(avoid: Sequence[int] = ()) -> int:
    """A free port on loopback that no lesson uses."""
    while True:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = int(probe.getsockname()[1])
        if port not in avoid and port not in (5000, 8080, 8081, 8888):
            return port


# --- a Python every learner can run --------------------------------------------------------------

#: Where :func:`learner_python` builds a venv the learners' processes can run (0755 all the way).
SHARED_PYTHONS = Path("/opt/labkit")
SYSTEM_PYTHON = Path("/usr/bin/python3")


def runnable_by_anyone(python: Path) -> bool:
    """Whether an unprivileged process (``nobody``) can start ``python`` from a shell, as a kernel is started."""
    done = subprocess.run(
        ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--",
         "sh", "-c", 'exec "$0" -c "import labkit, jupyterhub"', str(python)],
        capture_output=True, timeout=60, check=False, cwd="/",
    )  # fmt: skip
    return done.returncode == 0


def learner_python(python: Path = Path(sys.executable)) -> Path:
    """A Python that the hub, its labs and every learner's kernels and terminals can run.

    ``python`` itself when it is; otherwise (a venv of a Python under /root, pyenv's say) a
    venv of the system's Python in :data:`SHARED_PYTHONS`, made once per venv, that sees
    ``python``'s packages through a ``.pth`` file and carries its console scripts and Jupyter's
    data (the same minor version, so the same compiled extensions load). Root only.

    Raises:
        LabkitError: neither can be used (the system's Python is another minor version).
    """
    if runnable_by_anyone(python):
        return python
    version = f"{sys.version_info[0]}.{sys.version_info[1]}"
    prefix = Path(sys.prefix)
    target = SHARED_PYTHONS / f"python-{hashlib.sha256(str(prefix).encode()).hexdigest()[:12]}"
    built = target / "bin" / "python"
    if built.exists() and runnable_by_anyone(built):
        return built
    fix = "install labkit with `pip install -e '.[hub]'` into a venv made from /usr/bin/python3"
    if not SYSTEM_PYTHON.exists():
        raise LabkitError(f"learners cannot run {python}, and there is no {SYSTEM_PYTHON}", fix)
    SHARED_PYTHONS.mkdir(mode=0o755, parents=True, exist_ok=True)
    building = Path(tempfile.mkdtemp(prefix=".building-", dir=SHARED_PYTHONS))
    try:
        building.chmod(0o755)
        subprocess.run([str(SYSTEM_PYTHON), "-m", "venv", "--without-pip", str(building)], check=True, timeout=120)
        new = building / "bin" / "python"
        probe = subprocess.run(
            [str(new), "-c", "import sys, sysconfig; print(f'{sys.version_info[0]}.{sys.version_info[1]}'); "
             "print(sysconfig.get_paths()['purelib'])"],
            capture_output=True, text=True, check=True, timeout=60,
        ).stdout.split("\n")  # fmt: skip
        if probe[0] != version:
            raise LabkitError(f"learners cannot run {python}, and {SYSTEM_PYTHON} is {probe[0]}, not {version}", fix)
        site = Path(probe[1].replace(str(building), str(target)))
        purelib = sysconfig.get_paths()["purelib"]
        (building / site.relative_to(target) / "labkit-shared.pth").write_text(
            f"import site; site.addsitedir({purelib!r})\n"
        )
        for top in ("etc", "share"):  # Jupyter's server extensions, kernels, lab assets; the hub's templates
            for shared in (prefix / top).iterdir() if (prefix / top).is_dir() else ():
                (building / top).mkdir(parents=True, exist_ok=True)
                if not (building / top / shared.name).exists():
                    (building / top / shared.name).symlink_to(shared)
        for script in (prefix / "bin").iterdir():  # console scripts: jupyterhub-singleuser, labkit, jupyter…
            target_script = building / "bin" / script.name
            if target_script.exists() or not script.is_file():
                continue
            with contextlib.suppress(OSError, UnicodeDecodeError):
                lines = script.read_text().split("\n", 1)
                if len(lines) == 2 and lines[0].startswith("#!") and lines[0].endswith("/python"):
                    target_script.write_text(f"#!{target / 'bin' / 'python'}\n{lines[1]}")
                    target_script.chmod(0o755)
        shutil.rmtree(target, ignore_errors=True)
        building.rename(target)
    finally:
        shutil.rmtree(building, ignore_errors=True)
    if not runnable_by_anyone(built):
        raise LabkitError(f"learners cannot run {built} either", fix)
    return built


# --- the hub's process ------------------------------------------------------------------------


def _record(folder: Path) -> Path:
    return folder / "hub.json"


def _is_hub(argv: list[bytes]) -> bool:
    return b"jupyterhub" in argv[:3] or any(os.path.basename(a) == b"jupyterhub" for a in argv[:2])


def hub_pid(folder: Path) -> int | None:
    """The running hub's pid, when root's record names a hub that still runs."""
    record = procs.read_record(_record(folder))
    if record is None or not procs.is_running(record, _is_hub):
        return None
    return int(record["pid"])


def _log_tail(folder: Path, lines: int = 6) -> str:
    try:
        text = (folder / "hub.log").read_text(errors="replace")
    except OSError:
        return ""
    return " | ".join(line.strip()[:240] for line in text.splitlines()[-lines:])


def up(
    folder: Path,
    settings: Settings,
    roster: Path | None = None,
    kind: hub_accounts.Kind = "issued",
    out: TextIO = sys.stdout,
    images: Callable[[], Sequence[str]] | None = None,
) -> UpReport:
    """Start the hub (or add a roster to the running one).

    Args:
        folder: the hub's state folder.
        settings: ports, address, limits; ``hub_port``, ``proxy_api_port`` and
            ``grader_port`` of 0 are picked here (free loopback ports) and kept.
        roster: a CSV with a ``username`` column; its new names get accounts.
        kind: the new accounts' passwords: issued, or set at first use.
        images: the course images to give every learner (refs on the machine's daemon);
            ``None`` skips making the archive (the spawner loads what ``image_archive`` holds).

    Raises:
        LabkitError: not root, JupyterHub or the proxy missing, a port taken, a bad roster,
            or the hub did not come up (with its log's last lines).
    """
    _require_root()
    began = time.monotonic()
    names: list[str] = []
    refused: list[str] = []
    if roster is not None:
        try:
            text = roster.read_text(encoding="utf-8")
        except OSError as e:
            raise LabkitError(f"cannot read the roster {roster} ({e.strerror or e})", "give a readable CSV file") from e
        names, refused = hub_accounts.parse_roster(text)
    running = hub_pid(folder) is not None
    if running:
        settings = Settings.load(folder)
    else:
        _require_hub()
        if not settings.proxy_bin:
            settings.proxy_bin = str(proxy_bin())
        settings.python = str(learner_python())
        _port_free(settings.port, settings.ip)
        taken = [settings.port]
        for attr in ("hub_port", "proxy_api_port", "grader_port"):
            if not getattr(settings, attr):
                setattr(settings, attr, free_port(taken))
            taken.append(getattr(settings, attr))
        write(folder, settings)
    accounts_file = folder / "accounts.json"
    issued = hub_accounts.add(accounts_file, [settings.admin], admin=True)
    issued |= hub_accounts.add(accounts_file, names, kind=kind)
    passwords = folder / "passwords.csv"
    hub_accounts.write_passwords(passwords, issued)
    for name in names:
        le.ensure_user(name)
    report = UpReport(settings.url, running, [n for n in names if n in issued or kind == "first-use"], refused)
    report.passwords = passwords if issued else None
    if running:
        report.seconds = time.monotonic() - began
        return report
    if images is not None:
        refs = list(images())
        out.write(f"hub: the course images for every learner ({len(refs)}) -> {settings.image_archive}\n")
        le.cache_images(refs, Path(settings.image_archive))
    _start_process(folder, settings)
    report.seconds = time.monotonic() - began
    return report


def _start_process(folder: Path, settings: Settings) -> None:
    bin_dir = Path(settings.python).parent
    env = dict(os.environ)
    env["PATH"] = f"{settings.proxy_bin}:{bin_dir}:{env.get('PATH', le.PATH)}"
    for name in ("DOCKER_HOST", "LABKIT_HUB_GRADER", "JUPYTERHUB_API_TOKEN"):
        env.pop(name, None)
    with (folder / "hub.log").open("ab") as log:
        proc = subprocess.Popen(
            [settings.python, "-m", "jupyterhub", "-f", str(folder / "jupyterhub_config.py")],
            cwd=folder,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    files.write_json(_record(folder), procs.track(proc), mode=0o600)

    def login_page() -> bool:
        if proc.poll() is not None:
            raise LabkitError(
                f"JupyterHub exited with code {proc.returncode}: {_log_tail(folder)}", f"read {folder / 'hub.log'}"
            )
        # through the proxy, on loopback: its certificate names the classroom's address, not 127.0.0.1
        local = f"{settings.scheme}://127.0.0.1:{settings.port}/hub/login"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # urllib3's InsecureRequestWarning: nothing secret is sent
            return http.status(local, timeout=2, verify=False) == 200

    try:
        wait.until(login_page, "the hub's login page", timeout=90, detail=lambda: _log_tail(folder))
    except (LabkitError, WaitTimeout):
        with contextlib.suppress(WaitTimeout):
            procs.terminate(proc.pid, "JupyterHub", 10)
        _stop_proxy(folder)
        raise


# --- the hub's API -----------------------------------------------------------------------------


def api(folder: Path, method: str, path: str, timeout: float = 30.0) -> http.Response:
    """One request to the running hub's REST API, as ``labkit hub``'s admin service.

    Raises:
        LabkitError: the hub is not running or does not answer.
    """
    settings = Settings.load(folder)
    token = secret(folder, "admin-token")
    try:
        return http.request(
            method, f"{settings.api}{path}", headers={"Authorization": f"token {token}"}, timeout=timeout
        )
    except HttpUnreachable as e:
        raise LabkitError(f"the hub's API does not answer ({e.cause})", "is it up? `labkit hub status`") from e


def _users(folder: Path) -> dict[str, dict[str, Any]]:
    answer = api(folder, "GET", "/users?include_stopped_servers=1&limit=10000")
    if answer.status != 200:
        raise LabkitError(f"the hub's API answered {answer.status} to a list of users", f"read {folder / 'hub.log'}")
    return {str(u["name"]): u for u in answer.json()}


def _server_state(user: dict[str, Any] | None) -> str:
    server = ((user or {}).get("servers") or {}).get("")
    if not server:
        return "stopped"
    if server.get("ready"):
        return "running"
    return "starting" if server.get("pending") == "spawn" else "stopping" if server.get("pending") else "stopped"


def status(folder: Path) -> dict[str, Any]:
    """The hub and every learner, as ``labkit hub status --json`` prints them."""
    settings = Settings.load(folder)
    pid = hub_pid(folder)
    accounts = hub_accounts.load(folder / "accounts.json")
    users: dict[str, dict[str, Any]] = {}
    if pid is not None:
        with contextlib.suppress(LabkitError):
            users = _users(folder)
    learners = []
    for name, account in sorted(accounts.items()):
        if account.admin:
            continue
        unix = le.unix_name(name)
        found = le._lookup(unix)
        learners.append(
            {
                "name": name,
                "unix_user": unix,
                "docker_host": found.docker_host if found else None,
                "server": "running" if _server_state(users.get(name)) == "running" else "stopped",
                "engine": le.status(found) if found else "stopped",
                "url": f"{settings.url}user/{quote(name)}/",
                "password": account.kind if account.hash or account.kind == "issued" else "first-use (not set yet)",
            }
        )
    return {
        "running": pid is not None,
        "pid": pid,
        "url": settings.url,
        "state": str(folder),
        "admin": settings.admin,
        "lang": settings.lang,
        "limits": {
            "memory": settings.memory,
            "pids": settings.pids,
            "idle_timeout": settings.idle_timeout,
            "enforced": le.limits_enforced(),
        },
        "learners": learners,
    }


def _names(folder: Path, names: Sequence[str], every: bool) -> list[str]:
    accounts = hub_accounts.load(folder / "accounts.json")
    if every:
        return sorted(n for n, a in accounts.items() if not a.admin)
    wanted = [hub_accounts.normalize(n) for n in names]
    unknown = [n for n in wanted if n not in accounts]
    if unknown:
        raise LabkitError(f"the hub has no learner {', '.join(unknown)}", "`labkit hub status` lists them")
    if not wanted:
        raise LabkitError("name a learner, or give --all", "labkit hub start NAME | --all")
    return wanted


def _ensure_hub_user(folder: Path, name: str) -> None:
    answer = api(folder, "GET", f"/users/{quote(name)}")
    if answer.status == 404:
        made = api(folder, "POST", f"/users/{quote(name)}")
        if made.status not in (200, 201, 409):
            raise LabkitError(f"the hub refused to add {name} ({made.status})", f"read {folder / 'hub.log'}")


def start(folder: Path, names: Sequence[str], every: bool = False, timeout: float = 300.0) -> dict[str, float]:
    """Start learners' labs (all of them with ``every``) and wait until each is ready.

    Returns:
        Seconds each lab took, by name.

    Raises:
        LabkitError: an unknown name, or a lab that failed or was not ready within ``timeout``.
    """
    wanted = _names(folder, names, every)
    began = time.monotonic()

    def one(name: str) -> float:
        _ensure_hub_user(folder, name)
        answer = api(folder, "POST", f"/users/{quote(name)}/server", timeout=timeout)
        if answer.status not in (201, 202, 400):  # 400: already running
            raise LabkitError(
                f"the hub could not start {name}'s lab ({answer.status}: {answer.body[:200].decode(errors='replace')})",
                f"read {folder / 'hub.log'}",
            )
        wait.until(
            lambda: _server_state(api(folder, "GET", f"/users/{quote(name)}").json()) == "running",
            f"{name}'s lab",
            timeout=timeout,
            detail=lambda: _log_tail(folder),
        )
        return time.monotonic() - began

    with ThreadPoolExecutor(max_workers=min(16, max(1, len(wanted)))) as pool:
        return dict(zip(wanted, pool.map(one, wanted), strict=True))


def stop(folder: Path, names: Sequence[str], every: bool = False, timeout: float = 120.0) -> list[str]:
    """Stop learners' labs (and with them their daemons); returns the names stopped."""
    wanted = _names(folder, names, every)
    users = _users(folder)
    running = [n for n in wanted if _server_state(users.get(n)) != "stopped"]

    def one(name: str) -> None:
        api(folder, "DELETE", f"/users/{quote(name)}/server", timeout=timeout)
        wait.until(
            lambda: _server_state(api(folder, "GET", f"/users/{quote(name)}").json()) == "stopped",
            f"{name}'s lab to stop",
            timeout=timeout,
        )

    with ThreadPoolExecutor(max_workers=min(16, max(1, len(running)))) as pool:
        list(pool.map(one, running))
    return running


def _stop_proxy(folder: Path) -> None:
    pid_file = folder / "proxy.pid"
    with contextlib.suppress(OSError, ValueError, psutil.Error):
        proc = psutil.Process(int(pid_file.read_text().strip()))
        if "configurable-http-proxy" in " ".join(proc.cmdline()):
            proc.terminate()
            _, alive = psutil.wait_procs([proc], timeout=5)
            for p in alive:
                p.kill()
    pid_file.unlink(missing_ok=True)


def down(folder: Path, purge: bool = False) -> dict[str, Any]:
    """Stop every lab, the hub and its proxy, then any learner process or daemon still running.

    With ``purge`` the learners' Unix users, homes and images go too, and the state folder.
    """
    _require_root()
    stopped: list[str] = []
    pid = hub_pid(folder)
    if pid is not None:
        with contextlib.suppress(LabkitError, WaitTimeout):
            stopped = stop(folder, [], every=True)
        try:  # its services (grader, culler) and proxy: they must not outlive it
            helpers = psutil.Process(pid).children(recursive=True)
        except psutil.Error:
            helpers = []
        with contextlib.suppress(WaitTimeout):
            procs.terminate(pid, "JupyterHub", 30)
        for proc in helpers:
            with contextlib.suppress(psutil.Error):
                proc.terminate()
        _, alive = psutil.wait_procs(helpers, timeout=5)
        for proc in alive:
            with contextlib.suppress(psutil.Error):
                proc.kill()
    _record(folder).unlink(missing_ok=True)
    _stop_proxy(folder)
    swept = 0
    accounts = hub_accounts.load(folder / "accounts.json") if folder.exists() else {}
    for name in accounts:
        user = le._lookup(le.unix_name(name))
        if user is None:
            continue
        if le.running(user) is not None:
            swept += 1
        le.stop_user(user)
        le._kill_user_processes(user)
        if purge:
            le.remove_user(user)
    if purge:
        shutil.rmtree(folder, ignore_errors=True)
    return {"hub": pid, "labs_stopped": stopped, "engines_swept": swept, "purged": purge}


def password(folder: Path, name: str) -> str:
    """A new issued password for a learner (or the instructor)."""
    _require_root()
    return hub_accounts.reissue(folder / "accounts.json", name)
