"""Running an engine's ``dockerd`` in place of the machine's, and putting the machine's back.

The engine runs as root on the host's network and devices, but in its own mount
namespace whose root is the engine's root filesystem, reached by ``pivot_root``.
A plain ``chroot`` is not enough: runc would leave the host's root on top of every
container, and ``docker exec`` would run in the host's filesystem. Inside, the host's
/proc, /sys and /dev are bound in, and so are the host folders clients name in bind
mounts (/root, /tmp, /home, /run, …), at their own paths. The data root is bound at
its host path too, so the paths the daemon reports (``GraphDriver`` folders) are the
paths the host sees.

The engine programs the firewall as it likes (newer engines add tables and chains);
the rules are saved before it starts and restored after it stops, so the machine's
engine starts again on the firewall it knew. Starting the machine's engine again is
``scripts/provision-docker``'s job; ``labkit engine down`` says so.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import shutil
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

import docker
import docker.errors
import requests

from labkit.core import fmt, procs, wait
from labkit.core.errors import LabkitError, NotSupported, WaitTimeout
from labkit.core.i18n import _
from labkit.features.engines import rootfs
from labkit.features.engines.catalog import ENGINES, Engine, data_dir, engines_dir, rootfs_dir
from labkit.features.registry.process import MIRROR_URL

#: Where the machine's engine, and the one labkit runs instead, listen.
SOCKET = "unix:///var/run/docker.sock"
#: The pid file ``scripts/provision-docker`` writes for the machine's dockerd.
MACHINE_PIDFILE = Path("/run/labkit-dockerd.pid")
#: Seconds an engine may take to answer after it starts.
START_TIMEOUT = 60.0
#: Seconds between SIGTERM and SIGKILL when stopping a dockerd (it stops its containers first).
STOP_TIMEOUT = 30.0
#: Top-level host folders that belong to the operating system: the root filesystem has its own.
SYSTEM_FOLDERS = frozenset(
    {"bin", "boot", "dev", "etc", "lib", "lib32", "lib64", "libx32", "lost+found", "proc", "sbin", "sys", "usr", "var"}
)
#: The firewall tools, per address family: (save, restore, edit).
FIREWALL_TOOLS = (
    ("iptables-save", "iptables-restore", "iptables"),
    ("ip6tables-save", "ip6tables-restore", "ip6tables"),
)


def host_binds(root: Path = Path("/")) -> list[Path]:
    """The host's top-level folders a client may name in a bind mount: all but the system's."""
    found = []
    for entry in sorted(root.iterdir()):
        if entry.name not in SYSTEM_FOLDERS and entry.is_dir() and not entry.is_symlink():
            found.append(Path("/") / entry.name)
    return found


def namespace_script(root: Path, data_root: Path, binds: Sequence[Path], dockerd: Sequence[str]) -> str:
    """The shell script that, run under ``unshare --mount``, makes ``root`` the root and execs dockerd.

    ``pivot_root`` wants the new root to be a mount point, hence the bind of ``root``
    onto itself; the old root is detached once the binds are in place.

    Example:
        >>> print(namespace_script(Path("/e/rootfs"), Path("/e/docker"), [Path("/tmp")], ["dockerd"]))
        set -e
        mount --bind /e/rootfs /e/rootfs
        cd /e/rootfs
        mount --rbind /proc proc
        mount --rbind /sys sys
        mount --rbind /dev dev
        mkdir -p ./tmp && mount --rbind /tmp ./tmp
        mkdir -p ./e/docker && mount --bind /e/docker ./e/docker
        mkdir -p .host && pivot_root . .host
        cd / && umount -l /.host
        exec dockerd
    """
    q = shlex.quote
    lines = [
        "set -e",
        f"mount --bind {q(str(root))} {q(str(root))}",
        f"cd {q(str(root))}",
        "mount --rbind /proc proc",
        "mount --rbind /sys sys",
        "mount --rbind /dev dev",
    ]
    for bind in binds:
        inside = q("." + str(bind))
        lines.append(f"mkdir -p {inside} && mount --rbind {q(str(bind))} {inside}")
    inside = q("." + str(data_root))
    lines.append(f"mkdir -p {inside} && mount --bind {q(str(data_root))} {inside}")
    lines += ["mkdir -p .host && pivot_root . .host", "cd / && umount -l /.host", "exec " + shlex.join(dockerd)]
    return "\n".join(lines)


def tables(rules: str) -> list[str]:
    """The tables an ``iptables-save`` output names.

    Example:
        >>> tables("*filter\\n:INPUT ACCEPT [0:0]\\nCOMMIT\\n*nat\\nCOMMIT\\n")
        ['filter', 'nat']
    """
    return [line[1:].strip() for line in rules.splitlines() if line.startswith("*")]


def _run(command: list[str], stdin: str | None = None) -> str:
    try:
        done = subprocess.run(command, input=stdin, capture_output=True, text=True, timeout=60, check=False)
    except subprocess.TimeoutExpired as e:
        raise WaitTimeout(f"`{' '.join(command)}`", 60) from e
    if done.returncode != 0:
        raise LabkitError(f"`{' '.join(command)}` failed: {done.stderr.strip()[:200]}", _("read the message above"))
    return done.stdout


def save_firewall(folder: Path) -> None:
    """Keep the host's firewall rules, one file per address family."""
    for save, _restore, _edit in FIREWALL_TOOLS:
        if shutil.which(save):
            (folder / f"{save}.rules").write_text(_run([save]))


def restore_firewall(folder: Path) -> None:
    """Put back the saved rules: tables the engine added are emptied, the saved ones restored."""
    for save, restore, edit in FIREWALL_TOOLS:
        kept = folder / f"{save}.rules"
        if not kept.is_file() or not shutil.which(save):
            continue
        saved = kept.read_text()
        for table in sorted(set(tables(_run([save]))) - set(tables(saved))):
            _run([edit, "-t", table, "-F"])
            _run([edit, "-t", table, "-X"])
        _run([restore], stdin=saved)
        kept.unlink()


def server_version() -> tuple[str, str] | None:
    """The Engine and API versions of the daemon at :data:`SOCKET`, or None when nothing answers."""
    try:
        client = docker.DockerClient(base_url=SOCKET, version="auto", timeout=3)
    except (docker.errors.DockerException, requests.exceptions.RequestException, OSError):
        return None
    try:
        shown = client.version()
        return str(shown.get("Version", "?")), str(shown.get("ApiVersion", "?"))
    except (docker.errors.DockerException, requests.exceptions.RequestException, OSError):
        return None
    finally:
        client.close()


def _state_file() -> Path:
    return engines_dir() / "running.json"


def _is_dockerd(argv: list[bytes]) -> bool:
    return Path(argv[0].decode(errors="replace")).name == "dockerd"


def running() -> dict[str, Any] | None:
    """The record of the engine labkit runs now, or None (a stale record does not count)."""
    record = procs.read_record(_state_file())
    if record is None or not procs.is_running(record, _is_dockerd):
        return None
    return record


def _stop_machine_engine(out: TextIO) -> None:
    """Stop the machine's dockerd, when ``scripts/provision-docker`` started it.

    Raises:
        LabkitError: a daemon labkit did not start answers; labkit leaves it alone.
    """
    if server_version() is None:
        return
    try:
        pid = int(MACHINE_PIDFILE.read_text().strip())
    except (OSError, ValueError):
        pid = 0
    if pid <= 0 or not procs.is_running({"pid": pid, "start": procs.start_time(pid)}, _is_dockerd):
        raise LabkitError(
            _("a Docker daemon labkit did not start answers at {socket}").format(socket=SOCKET),
            _("stop it yourself, then run `labkit engine up` again"),
        )
    procs.terminate(pid, "the machine's dockerd", STOP_TIMEOUT)
    print(_("stopped the machine's dockerd (pid {pid})").format(pid=pid), file=out, flush=True)


def up(engine: Engine, out: TextIO) -> dict[str, Any]:
    """Run ``engine``'s dockerd in place of the machine's; returns its record.

    Raises:
        NotSupported: not root, or ``unshare`` is missing.
        LabkitError: the engine is not prepared, another engine runs, or a daemon
            labkit did not start answers.
        WaitTimeout: the engine did not answer in time (its log's tail says why).
    """
    if os.geteuid() != 0 or not shutil.which("unshare"):
        raise NotSupported(_("running another Docker engine needs root and unshare"), _("run it with sudo, on Linux"))
    current = running()
    if current is not None:
        if current.get("engine") == engine.name:
            print(_("{name}: already running (pid {pid})").format(name=engine.name, pid=current["pid"]), file=out)
            return current
        raise LabkitError(
            _("the {engine} engine runs now").format(engine=current.get("engine")), _("run `labkit engine down` first")
        )
    prepared = rootfs.record(engine)
    if prepared is None:
        raise LabkitError(
            _("the {name} engine is not built yet").format(name=engine.name),
            _("run `labkit engine prepare {name}`").format(name=engine.name),
        )
    _stop_machine_engine(out)
    home = engines_dir()
    home.mkdir(parents=True, exist_ok=True)
    save_firewall(home)
    data = data_dir(engine)
    data.mkdir(parents=True, exist_ok=True)
    dockerd = ["dockerd", "--data-root", str(data), "--registry-mirror", MIRROR_URL, "-H", SOCKET]
    script = namespace_script(rootfs_dir(engine), data, host_binds(), dockerd)
    log = home / engine.name / "dockerd.log"
    offset = log.stat().st_size if log.exists() else 0
    started = time.monotonic()
    with open(log, "ab") as sink:
        proc = subprocess.Popen(
            ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", script],
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    record = {**procs.track(proc), "engine": engine.name, "log": str(log)}
    _state_file().write_text(json.dumps(record))

    def tail() -> str:
        with contextlib.suppress(OSError), open(log, "rb") as f:
            f.seek(offset)
            return " | ".join(f.read().decode(errors="replace").strip().splitlines()[-3:])
        return ""

    def answering() -> tuple[str, str] | None:
        if proc.poll() is not None:
            raise LabkitError(
                _("the {name} engine exited with code {code}: {tail}").format(
                    name=engine.name, code=proc.returncode, tail=tail()
                ),
                _("read {log}").format(log=log),
            )
        return server_version()

    try:
        version, api = wait.until(
            answering, _("the {name} engine").format(name=engine.name), timeout=START_TIMEOUT, detail=tail
        ) or (
            "?",
            "?",
        )
    except (LabkitError, WaitTimeout):
        down(out)
        raise
    took = fmt.duration(time.monotonic() - started)
    print(
        _("{name}: Engine {version} (API {api}) answers at {socket} after {took} (log: {log})").format(
            name=engine.name, version=version, api=api, socket=SOCKET, took=took, log=log
        ),
        file=out,
    )
    return {**record, "version": version, "api": api}


def down(out: TextIO) -> bool:
    """Stop the engine labkit runs and restore the firewall; False when none ran."""
    record = procs.read_record(_state_file())
    if record is None:
        print(_("no engine started by labkit is running"), file=out)
        return False
    if procs.is_running(record, _is_dockerd):
        procs.terminate(int(record["pid"]), f"the {record.get('engine')} engine's dockerd", STOP_TIMEOUT)
    restore_firewall(engines_dir())
    _state_file().unlink(missing_ok=True)
    print(
        _("{engine}: stopped, firewall restored; `scripts/provision-docker` starts the machine's engine").format(
            engine=record.get("engine")
        ),
        file=out,
    )
    return True


def listing() -> list[dict[str, Any]]:
    """Each engine: whether it is built (and with what), and whether it runs now."""
    now = running()
    rows = []
    for engine in ENGINES.values():
        built = rootfs.record(engine)
        rows.append(
            {
                "engine": engine.name,
                "release": engine.title,
                "expected": engine.engine,
                "docker.io": (built or {}).get("packages", {}).get("docker.io"),
                "running": bool(now and now.get("engine") == engine.name),
            }
        )
    return rows
