"""Each learner's own Docker engine on one server: a Unix user, a rootless dockerd, a netns.

A learner named ``ada`` becomes the Unix user ``lk-ada`` with a home, a subuid and subgid
range of 65536 ids (from ``useradd``, or allocated here when it gave none) and a runtime
directory ``/run/user/UID`` (0700, theirs). :func:`start` runs Debian's
``dockerd-rootless.sh`` as that user. rootlesskit puts the daemon in user, mount and
network namespaces of its own (slirp4netns gives the network namespace its way out), so:

- the daemon's socket, ``/run/user/UID/docker.sock``, is the learner's alone (another
  learner, and the host's ``/var/run/docker.sock``, answer "permission denied");
- ``--privileged -v /:/host`` gives root inside the learner's user namespace only, which
  cannot read the host's ``/etc/shadow``;
- published ports stay **inside the learner's network namespace**: rootlesskit runs with
  a port driver that forwards only the ports named in ``lab_port``, and the daemon uses
  the plain ``docker-proxy`` (not ``rootlesskit-docker-proxy``, which would ask
  rootlesskit to bind the host's port). Every learner can publish 8080 at once.

A lab process (JupyterLab, a terminal, a check) joins the learner's network namespace
with :func:`in_netns`: ``nsenter --net=/proc/CHILD/ns/net`` as root, then ``setpriv`` to
the learner's uid; there ``curl http://127.0.0.1:8080`` reaches the learner's own
container. The lab stays in the host's user and mount namespaces (files look as usual).
``lab_port`` publishes one port of that namespace on the host's 127.0.0.1, for a proxy
(JupyterHub's) to reach the lab.

**Limits.** Where the machine can enforce them, a learner's whole tree (rootlesskit,
dockerd, their containers, their lab, kernels and terminals) lives in a cgroup
``labkit/lk-NAME`` with a memory limit and a process count (``pids.max``): a fork bomb or
a memory hog stops at the learner's own limit, other learners and the host go on.
Every process is started through a tiny root wrapper (:func:`in_cgroup`) that writes its
own pid into ``cgroup.procs`` before it becomes ``nsenter``/``setpriv``, so the
children are born inside; rootless runc cannot make cgroups of its own on v1, so the
containers stay there too. cgroup v2 (unified) puts the group under the root; cgroup v1
(one hierarchy per controller) under the cgroup the calling process runs in, so whatever
limits the hub itself (a systemd service, a container) still covers its learners.
:func:`limits_enforced` says which of the two the machine has; the cgroups go when the
engine stops.

The daemon's data root is ``~/.local/share/docker``, so images survive a stop and start.
Course images come in with :func:`load_images` from one tar made once with ``docker
save`` from the machine's daemon (:func:`cache_images`, readable by everyone, writable by
root only), not pulled per learner; a daemon that has every image of the tar already
(the next start) skips the load.

The machine needs Debian's ``uidmap``, ``rootlesskit``, ``slirp4netns`` and
``fuse-overlayfs``, and ``/dev/net/tun`` mode 0666: on some machines it is 0600 and
rootlesskit fails with "open: Permission denied" on the tap device. :func:`start` sets
0666 (the usual mode elsewhere: opening it only lets a process create tap devices in
network namespaces it administers). Root only.

Example:
    >>> user = ensure_user("ada")                                   # doctest: +SKIP
    >>> engine = start(user)                                        # doctest: +SKIP
    >>> load_images(user, cache_images(["busybox"]))                # doctest: +SKIP
    >>> run_as(user, ["curl", "-s", "http://127.0.0.1:8080"])       # doctest: +SKIP
    >>> stop(engine)                                                # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import json
import os
import pwd
import shutil
import signal
import socket
import stat
import struct
import subprocess
import tarfile
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import psutil

from labkit.core import procs, wait
from labkit.core.errors import LabkitError, WaitTimeout

#: Unix user names of learners start with this; nothing else is ever removed by this module.
PREFIX = "lk-"
#: Ids per learner in /etc/subuid and /etc/subgid (what a container's root maps onto).
SUBID_COUNT = 65536
#: Where subordinate ids start when useradd left none (Debian's SUB_UID_MIN).
SUBID_MIN = 100000
#: Root's records of the daemons it started (pid, start time) and their logs: never the
#: learner's to write, since root signals and nsenters the pids they name.
STATE_DIR = Path("/run/labkit/learners")
#: Where the course images' tar lives (0644 under a 0755 directory).
IMAGE_CACHE = Path("/var/cache/labkit/learner-images.tar")
#: Root's links to learners' daemon sockets, verified (:func:`pinned_socket`): 0711, so a
#: learner reaches their own link by name and can neither list, rename nor replace one.
PINNED_SOCKETS = Path("/run/labkit-sockets")
ROOTLESS_SCRIPT = Path("/usr/share/docker.io/contrib/dockerd-rootless.sh")
DOCKER_PROXY = Path("/usr/sbin/docker-proxy")
TUN = Path("/dev/net/tun")
#: Seconds dockerd gives its containers to stop when the learner's engine stops.
SHUTDOWN_SECONDS = 3
PATH = "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin"
#: Where the machine mounts its cgroups (v2: one hierarchy; v1: one folder per controller).
CGROUP_ROOT = Path("/sys/fs/cgroup")
#: The folder, per controller, that holds every learner's cgroup ``lk-NAME``.
CGROUP_GROUP = "labkit"
#: The controllers labkit limits with: memory, and the number of processes (and threads).
CONTROLLERS = ("memory", "pids")
#: The wrapper's shell script: write its own pid into each ``cgroup.procs`` named before
#: ``--``, then become the command after it (children are born in the cgroups).
JOIN_CGROUPS = 'while [ "$1" != -- ]; do echo $$ > "$1" || exit 125; shift; done; shift; exec "$@"'

Status = Literal["running", "stopped"]
CgroupVersion = Literal["v1", "v2"]


@dataclass(frozen=True)
class Limits:
    """What one learner's whole tree may use; None is no limit.

    Attributes:
        memory: bytes of memory (swap included where the machine counts it).
        pids: processes and threads at once.
    """

    memory: int | None = None
    pids: int | None = None

    @property
    def any(self) -> bool:
        return self.memory is not None or self.pids is not None


@dataclass(frozen=True)
class LearnerUser:
    """A learner's Unix account and the paths their engine uses."""

    name: str
    unix_user: str
    uid: int
    gid: int
    home: Path

    @property
    def runtime_dir(self) -> Path:
        """``XDG_RUNTIME_DIR``: the daemon's socket and rootlesskit's state live here."""
        return Path(f"/run/user/{self.uid}")

    @property
    def socket(self) -> Path:
        return self.runtime_dir / "docker.sock"

    @property
    def docker_host(self) -> str:
        """``DOCKER_HOST`` as the learner's own processes use it."""
        return f"unix://{self.socket}"

    @property
    def data_root(self) -> Path:
        return self.home / ".local/share/docker"

    @property
    def rootlesskit_dir(self) -> Path:
        return self.runtime_dir / "rootlesskit"


@dataclass(frozen=True)
class LearnerEngine:
    """A running rootless daemon: rootlesskit's pid (the root of its process tree)."""

    user: LearnerUser
    pid: int
    started: float | None
    seconds: float
    lab_port: int | None = None
    #: The learner's cgroup folders (one per v1 controller, one on v2); empty: no limits.
    cgroups: tuple[Path, ...] = ()

    @property
    def cgroup_procs(self) -> list[Path]:
        """The ``cgroup.procs`` files a process of the learner joins."""
        return [group / "cgroup.procs" for group in self.cgroups]


# --- pure parts ---------------------------------------------------------------------------


def parse_subids(text: str) -> dict[str, list[tuple[int, int]]]:
    """``/etc/subuid`` text as {owner: [(start, count), …]}; damaged lines are skipped.

    Example:
        >>> parse_subids("lk-a:100000:65536\\n# note\\nbad\\n")
        {'lk-a': [(100000, 65536)]}
    """
    ranges: dict[str, list[tuple[int, int]]] = {}
    for line in text.splitlines():
        parts = line.strip().split(":")
        if len(parts) != 3 or not parts[1].isdigit() or not parts[2].isdigit():
            continue
        ranges.setdefault(parts[0], []).append((int(parts[1]), int(parts[2])))
    return ranges


def free_subid_start(text: str, count: int = SUBID_COUNT, minimum: int = SUBID_MIN) -> int:
    """The lowest start at or above ``minimum`` whose ``count`` ids overlap no range in ``text``.

    Example:
        >>> free_subid_start("a:100000:65536\\nb:300000:65536\\n")
        165536
        >>> free_subid_start("a:100000:10\\n", count=65536, minimum=100000)
        100010
    """
    taken = sorted(r for rs in parse_subids(text).values() for r in rs)
    start = minimum
    for begin, size in taken:
        if begin + size <= start:
            continue
        if begin >= start + count:
            break
        start = max(start, begin + size)
    return start


def unix_name(name: str) -> str:
    """The Unix user of a learner: ``lk-`` and their name, lower-case ASCII.

    Raises:
        LabkitError: the name cannot be part of a Unix user name.

    Example:
        >>> unix_name("Ada_2")
        'lk-ada_2'
    """
    lower = name.lower()
    if not (lower[:1].isascii() and lower[:1].isalpha()) or not all(
        c.isascii() and (c.isalnum() or c in "-_") for c in lower
    ):
        raise LabkitError(f"learner name {name!r} cannot be a Unix user name", "use ASCII letters, digits, - or _")
    if len(PREFIX + lower) > 32:
        raise LabkitError(f"learner name {name!r} is too long for a Unix user name", "use 29 characters or fewer")
    return PREFIX + lower


def user_env(user: LearnerUser) -> dict[str, str]:
    """The whole environment a learner's processes get (nothing inherited from root)."""
    return {
        "HOME": str(user.home),
        "USER": user.unix_user,
        "LOGNAME": user.unix_user,
        "PATH": PATH,
        "XDG_RUNTIME_DIR": str(user.runtime_dir),
        "DOCKER_HOST": user.docker_host,
        "LANG": "C.UTF-8",
    }


def as_user(user: LearnerUser, argv: Sequence[str]) -> list[str]:
    """``argv`` run as the learner: their uid, gid and groups, no capabilities left."""
    return ["setpriv", f"--reuid={user.uid}", f"--regid={user.gid}", "--init-groups", "--", *argv]


def daemon_command(user: LearnerUser, lab_port: int | None = None) -> tuple[list[str], dict[str, str]]:
    """The command line and environment of a learner's rootless daemon.

    The port driver is ``none`` unless ``lab_port`` asks for one port of the learner's
    namespace on the host's 127.0.0.1 (``builtin`` with ``-p``); either way dockerd's own
    published ports go through the plain ``docker-proxy``, inside the namespace.
    """
    flags = [f"--state-dir={user.rootlesskit_dir}"]
    if lab_port is not None:
        flags.append(f"--publish=127.0.0.1:{lab_port}:{lab_port}/tcp")
    env = user_env(user) | {
        "DOCKERD_ROOTLESS_ROOTLESSKIT_PORT_DRIVER": "builtin" if lab_port is not None else "none",
        "DOCKERD_ROOTLESS_ROOTLESSKIT_FLAGS": " ".join(flags),
    }
    del env["DOCKER_HOST"]
    argv = as_user(
        user,
        [
            str(ROOTLESS_SCRIPT),
            f"--userland-proxy-path={DOCKER_PROXY}",
            f"--data-root={user.data_root}",
            f"--shutdown-timeout={SHUTDOWN_SECONDS}",
        ],
    )
    return argv, env


def netns_command(netns_pid: int, user: LearnerUser, argv: Sequence[str]) -> list[str]:
    """``argv`` as the learner, inside the network namespace of process ``netns_pid``."""
    return ["nsenter", f"--net=/proc/{netns_pid}/ns/net", "--", *as_user(user, argv)]


@dataclass(frozen=True)
class SocketPeer:
    """Who listens on a unix socket (``SO_PEERCRED``), and what that process is."""

    pid: int
    uid: int
    parent: int | None
    #: (st_dev, st_ino) of the program it runs (``/proc/PID/exe``), None when unreadable.
    program: tuple[int, int] | None


def daemon_problem(peer: SocketPeer, netns_pid: int, uid: int, dockerd: tuple[int, int]) -> str | None:
    """Why ``peer`` is not the learner's own daemon, or None when it is.

    The daemon root started is dockerd, the direct child of rootlesskit's child (the process
    that holds the learner's namespaces), running as the learner. A learner's own listener
    (a script on a renamed socket, a dockerd in a container, even the real binary bind-mounted
    into a container) fails one of these: containers' processes descend from containerd's shims.

    Example:
        >>> daemon_problem(SocketPeer(30, 1001, 20, (1, 2)), 20, 1001, (1, 2)) is None
        True
        >>> daemon_problem(SocketPeer(31, 1001, 1, (1, 9)), 20, 1001, (1, 2))
        'pid 31 listens on it, not the dockerd root started (its parent is 1, not rootlesskit 20)'
    """
    if peer.parent != netns_pid:
        return f"pid {peer.pid} listens on it, not the dockerd root started (its parent is {peer.parent}, not rootlesskit {netns_pid})"
    if peer.program != dockerd:
        return f"pid {peer.pid} listens on it, and does not run the machine's dockerd"
    if peer.uid != uid:
        return f"pid {peer.pid} listens on it as uid {peer.uid}, not the learner's {uid}"
    return None


def in_cgroup(procs: Sequence[Path], argv: Sequence[str]) -> list[str]:
    """``argv`` started inside the cgroups whose ``cgroup.procs`` files are ``procs``.

    A root shell writes its own pid there and then execs ``argv`` (``nsenter``, ``setpriv``):
    nothing the learner runs is ever outside. Without ``procs``, ``argv`` as it is.

    Example:
        >>> in_cgroup([Path("/g/cgroup.procs")], ["id"])[3:]
        ['labkit-cgroup', '/g/cgroup.procs', '--', 'id']
        >>> in_cgroup([], ["id"])
        ['id']
    """
    if not procs:
        return list(argv)
    return ["sh", "-c", JOIN_CGROUPS, "labkit-cgroup", *(str(p) for p in procs), "--", *argv]


def own_cgroup_v1(proc_cgroup: str, controller: str) -> str:
    """The cgroup (path in its hierarchy) of ``controller`` in ``/proc/PID/cgroup``'s text; "/" if none.

    Example:
        >>> own_cgroup_v1("4:memory:/hub\\n8:pids:/\\n0::/\\n", "memory")
        '/hub'
        >>> own_cgroup_v1("3:cpu,cpuacct:/a\\n", "pids")
        '/'
    """
    for line in proc_cgroup.splitlines():
        parts = line.split(":", 2)
        if len(parts) == 3 and controller in parts[1].split(","):
            return parts[2] or "/"
    return "/"


def limit_files(version: CgroupVersion, controller: str, limits: Limits) -> list[tuple[str, str]]:
    """The files to write, in order, for one controller's limits ("max"/-1: none).

    v1 counts swap in ``memory.memsw.limit_in_bytes``, which may never be below the plain
    limit: it is opened first, then both are set (missing files are skipped by the caller).

    Example:
        >>> limit_files("v2", "memory", Limits(memory=300 << 20))
        [('memory.max', '314572800'), ('memory.swap.max', '0')]
        >>> limit_files("v1", "pids", Limits())
        [('pids.max', 'max')]
    """
    if controller == "pids":
        return [("pids.max", "max" if limits.pids is None else str(limits.pids))]
    if version == "v2":
        if limits.memory is None:
            return [("memory.max", "max"), ("memory.swap.max", "max")]
        return [("memory.max", str(limits.memory)), ("memory.swap.max", "0")]
    value = "-1" if limits.memory is None else str(limits.memory)
    return [
        ("memory.memsw.limit_in_bytes", "-1"),
        ("memory.limit_in_bytes", value),
        ("memory.memsw.limit_in_bytes", value),
    ]


def archive_image_ids(archive: Path) -> set[str]:
    """The image ids (config digests) in a ``docker save`` tar, from its ``manifest.json``.

    Returns:
        ``sha256:…`` ids; empty when the tar has no readable manifest.
    """
    try:
        with tarfile.open(archive) as tar:
            member = tar.extractfile("manifest.json")
            manifest = json.load(member) if member is not None else []
    except (OSError, KeyError, ValueError, tarfile.TarError):
        return set()
    ids = set()
    for entry in manifest if isinstance(manifest, list) else []:
        config = str(entry.get("Config", "")) if isinstance(entry, dict) else ""
        digest = config.rsplit("/", 1)[-1].removesuffix(".json")
        if len(digest) == 64:
            ids.add(f"sha256:{digest}")
    return ids


# --- the machine --------------------------------------------------------------------------


def cgroup_version(root: Path = CGROUP_ROOT) -> CgroupVersion | None:
    """``v2`` on a unified hierarchy with memory and pids, ``v1`` with both v1 controllers, else None.

    A hybrid machine (v1 controllers, an empty ``unified`` v2 mount beside them) is ``v1``.
    """
    try:
        controllers = (root / "cgroup.controllers").read_text().split()
    except OSError:
        controllers = []
    if controllers:
        return "v2" if all(c in controllers for c in CONTROLLERS) else None
    if all((root / c / "cgroup.procs").exists() for c in CONTROLLERS):
        return "v1"
    return None


def limits_enforced() -> dict[str, object]:
    """What this machine can limit per learner, for ``labkit hub status`` and the README.

    Example:
        >>> limits_enforced()                                # doctest: +SKIP
        {'cgroup': 'v1', 'memory': True, 'pids': True}
    """
    version = cgroup_version()
    writable = version is not None and os.access(CGROUP_ROOT if version == "v2" else CGROUP_ROOT / "memory", os.W_OK)
    return {"cgroup": version, "memory": writable, "pids": writable}


def _cgroup_parents(version: CgroupVersion) -> list[Path]:
    """Where the ``labkit`` folder goes: the v2 root, or this process's own v1 cgroups."""
    if version == "v2":
        return [CGROUP_ROOT]
    text = Path("/proc/self/cgroup").read_text()
    return [CGROUP_ROOT / c / own_cgroup_v1(text, c).lstrip("/") for c in CONTROLLERS]


def _write_limits(version: CgroupVersion, groups: Sequence[Path], limits: Limits) -> None:
    for group in groups:
        controllers = CONTROLLERS if version == "v2" else [c for c in CONTROLLERS if c in group.parts]
        for controller in controllers:
            for name, value in limit_files(version, controller, limits):
                if (group / name).exists():
                    (group / name).write_text(value)


def make_cgroups(user: LearnerUser, limits: Limits) -> tuple[Path, ...]:
    """The learner's cgroups ``labkit/lk-NAME``, with ``limits`` written; () where none can be made.

    Raises:
        LabkitError: the cgroup files refused a write (a read-only or delegated hierarchy).
    """
    version = cgroup_version()
    if version is None or not limits.any:
        return ()
    groups = []
    try:
        for parent in _cgroup_parents(version):
            folder = parent / CGROUP_GROUP
            folder.mkdir(exist_ok=True)
            if version == "v2":
                for level in (parent, folder):  # a child has the controllers its parent hands down
                    enabled = (level / "cgroup.subtree_control").read_text().split()
                    missing = " ".join(f"+{c}" for c in CONTROLLERS if c not in enabled)
                    if missing:
                        (level / "cgroup.subtree_control").write_text(missing)
            group = folder / user.unix_user
            group.mkdir(exist_ok=True)
            groups.append(group)
        _write_limits(version, groups, limits)
    except OSError as e:
        raise LabkitError(
            f"cannot set {user.unix_user}'s limits in {CGROUP_ROOT} ({e})",
            "run the hub as root with a writable /sys/fs/cgroup, or set no limits",
        ) from e
    return tuple(groups)


def _cgroup_pids(group: Path) -> list[int]:
    try:
        return [int(line) for line in (group / "cgroup.procs").read_text().split()]
    except (OSError, ValueError):
        return []


def remove_cgroups(groups: Sequence[Path]) -> None:
    """Kill what is left in the learner's cgroups (only ever the learner's), then remove them."""
    for group in groups:
        if group.parent.name != CGROUP_GROUP or not group.name.startswith(PREFIX):
            continue  # a damaged record: labkit removes only its own labkit/lk-* groups
        with contextlib.suppress(WaitTimeout):
            wait.until(functools.partial(_emptied, group), f"{group} to empty", timeout=10)
        with contextlib.suppress(WaitTimeout):  # the kernel may hold an emptied group for a moment (EBUSY)
            wait.until(functools.partial(_removed, group), f"{group} to be removed", timeout=5)


def _removed(group: Path) -> bool:
    try:
        group.rmdir()
    except FileNotFoundError:
        return True
    except OSError:
        return False
    return True


def _emptied(group: Path) -> bool:
    left = _cgroup_pids(group)
    for pid in left:
        with contextlib.suppress(psutil.Error):
            psutil.Process(pid).kill()
    return not left


def learner_cgroups(user: LearnerUser) -> list[Path]:
    """The learner's cgroup folders that exist now (under this process's parents)."""
    version = cgroup_version()
    if version is None:
        return []
    return [g for p in _cgroup_parents(version) if (g := p / CGROUP_GROUP / user.unix_user).is_dir()]


def _require_root() -> None:
    if os.geteuid() != 0:
        raise LabkitError("learners' engines need root", "run this as root on the classroom server")


def _lookup(unix: str) -> LearnerUser | None:
    try:
        entry = pwd.getpwnam(unix)
    except KeyError:
        return None
    return LearnerUser(unix[len(PREFIX) :], unix, entry.pw_uid, entry.pw_gid, Path(entry.pw_dir))


def _run(argv: list[str], what: str, timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise LabkitError(f"{what}: `{argv[0]}` could not run ({e})", "install it, or read the message") from e
    if done.returncode != 0:
        raise LabkitError(
            f"{what}: `{' '.join(argv)}` exited {done.returncode}: {(done.stderr or done.stdout).strip()[-300:]}",
            "read the message above",
        )
    return done


def _ensure_subids(unix: str) -> None:
    """A range in /etc/subuid and /etc/subgid for ``unix``, unless it has one already."""
    for path in (Path("/etc/subuid"), Path("/etc/subgid")):
        text = path.read_text() if path.exists() else ""
        if unix in parse_subids(text):
            continue
        start = free_subid_start(text)
        with path.open("a") as f:
            f.write(("" if not text or text.endswith("\n") else "\n") + f"{unix}:{start}:{SUBID_COUNT}\n")


def ensure_user(name: str) -> LearnerUser:
    """The learner's Unix user ``lk-NAME``, with a home, subordinate ids and a runtime dir.

    Raises:
        LabkitError: not root, a bad name, or ``useradd`` failed.
    """
    _require_root()
    unix = unix_name(name)
    user = _lookup(unix)
    if user is None:
        _run(["useradd", "--create-home", "--shell", "/bin/bash", "--user-group", unix], f"creating {unix}")
        user = _lookup(unix)
        if user is None:
            raise LabkitError(f"useradd made no user {unix}", "read /var/log/auth.log")
    _ensure_subids(unix)
    runtime = user.runtime_dir
    runtime.parent.mkdir(mode=0o755, exist_ok=True)
    runtime.mkdir(mode=0o700, exist_ok=True)
    os.chown(runtime, user.uid, user.gid)
    runtime.chmod(0o700)
    return user


def find_user(name: str) -> LearnerUser | None:
    """The learner's Unix user if it exists (never makes one).

    Raises:
        LabkitError: the name cannot be part of a Unix user name.
    """
    return _lookup(unix_name(name))


def remove_user(user: LearnerUser) -> None:
    """Stop the learner's daemon, then delete their user, home, runtime dir and ids."""
    _require_root()
    if not user.unix_user.startswith(PREFIX):
        raise LabkitError(f"{user.unix_user} is not a learner's user", "labkit removes only lk-* users")
    stop_user(user)
    _kill_user_processes(user)
    remove_cgroups(learner_cgroups(user))
    if _lookup(user.unix_user) is not None:
        # userdel removes the user's /etc/subuid and /etc/subgid lines too (shadow 4.13)
        _run(["userdel", "--remove", user.unix_user], f"removing {user.unix_user}")
    shutil.rmtree(user.runtime_dir, ignore_errors=True)
    for suffix in (".json", ".log"):
        (STATE_DIR / f"{user.unix_user}{suffix}").unlink(missing_ok=True)
    (PINNED_SOCKETS / f"{user.unix_user}.sock").unlink(missing_ok=True)


def _kill_user_processes(user: LearnerUser) -> None:
    """SIGKILL whatever still runs as the learner's uid (only ever a learner's: ``lk-*``)."""
    for proc in psutil.process_iter(["uids"]):
        uids = proc.info["uids"]
        if uids is not None and user.uid in (uids.real, uids.effective):
            with contextlib.suppress(psutil.NoSuchProcess):
                proc.kill()


def ensure_tun() -> None:
    """``/dev/net/tun`` mode 0666 (see the module's docstring for why)."""
    mode = stat.S_IMODE(TUN.stat().st_mode)
    if mode & 0o666 != 0o666:
        TUN.chmod(mode | 0o666)


def _record_path(user: LearnerUser) -> Path:
    return STATE_DIR / f"{user.unix_user}.json"


def _log_path(user: LearnerUser) -> Path:
    return STATE_DIR / f"{user.unix_user}.log"


def _is_rootlesskit(argv: list[bytes]) -> bool:
    return bool(argv) and os.path.basename(argv[0]) == b"rootlesskit"


def running(user: LearnerUser) -> LearnerEngine | None:
    """The learner's daemon as root recorded it, if that very process still runs."""
    record = procs.read_record(_record_path(user))
    if record is None or not procs.is_running(record, _is_rootlesskit):
        return None
    port = record.get("lab_port")
    groups = tuple(Path(g) for g in record.get("cgroups") or () if str(g).startswith(f"{CGROUP_ROOT}/"))
    return LearnerEngine(
        user, int(record["pid"]), record.get("start"), 0.0, port if isinstance(port, int) else None, groups
    )


def status(user: LearnerUser) -> Status:
    """``running`` when root's recorded rootlesskit for the learner runs, else ``stopped``."""
    return "running" if running(user) is not None else "stopped"


def _log_tail(user: LearnerUser, lines: int = 5) -> str:
    try:
        text = _log_path(user).read_text(errors="replace")
    except OSError:
        return ""
    return " | ".join(line.strip()[:200] for line in text.splitlines()[-lines:])


def _answers(user: LearnerUser) -> bool:
    done = subprocess.run(
        as_user(user, ["docker", "version", "--format", "{{.Server.Version}}"]),
        env=user_env(user),
        capture_output=True,
        timeout=10,
        check=False,
    )
    return done.returncode == 0


def start(
    user: LearnerUser, timeout: float = 30.0, lab_port: int | None = None, limits: Limits | None = None
) -> LearnerEngine:
    """Start the learner's rootless daemon, or return the one already running.

    Args:
        user: from :func:`ensure_user`.
        timeout: seconds for its socket to answer.
        lab_port: a port of the learner's namespace to publish on the host's 127.0.0.1
            (the lab's, for a proxy); docker's own published ports never are.
        limits: memory and processes for the learner's whole tree, where the machine can
            enforce them (:func:`limits_enforced`); a running engine gets the new values.

    Raises:
        LabkitError: a package is missing, the cgroups refused the limits, or the daemon
            exited; the message holds its log tail.
        WaitTimeout: it did not answer in time (it is stopped again).
    """
    _require_root()
    limits = limits or Limits()
    current = running(user)
    if current is not None:
        version = cgroup_version()
        if current.cgroups and version is not None:
            _write_limits(version, current.cgroups, limits)
        return current
    for tool in (ROOTLESS_SCRIPT, DOCKER_PROXY):
        if not tool.exists():
            raise LabkitError(f"{tool} is missing", "apt-get install docker.io")
    for tool_name in ("rootlesskit", "slirp4netns", "newuidmap"):
        if shutil.which(tool_name, path=PATH) is None:
            raise LabkitError(f"{tool_name} is missing", "apt-get install rootlesskit slirp4netns uidmap")
    ensure_tun()
    STATE_DIR.mkdir(mode=0o700, parents=True, exist_ok=True)
    argv, env = daemon_command(user, lab_port)
    groups = make_cgroups(user, limits)
    argv = in_cgroup([g / "cgroup.procs" for g in groups], argv)
    began = time.monotonic()
    with _log_path(user).open("wb") as log:
        proc = subprocess.Popen(
            argv,
            env=env,
            cwd=user.home,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    record = procs.track(proc) | {"lab_port": lab_port, "cgroups": [str(g) for g in groups]}
    tmp = _record_path(user).with_suffix(".tmp")
    tmp.write_text(json.dumps(record))
    tmp.replace(_record_path(user))
    engine = LearnerEngine(user, proc.pid, record["start"], 0.0, lab_port, groups)

    def answers() -> bool:
        if proc.poll() is not None:
            raise LabkitError(
                f"{user.unix_user}'s rootless dockerd exited with code {proc.returncode}: {_log_tail(user)}",
                f"read {_log_path(user)}",
            )
        return _answers(user)

    try:
        wait.until(answers, f"{user.unix_user}'s rootless dockerd", timeout=timeout, detail=lambda: _log_tail(user))
    except (LabkitError, WaitTimeout):
        stop(engine)
        raise
    return LearnerEngine(user, proc.pid, record["start"], time.monotonic() - began, lab_port, groups)


def stop(engine: LearnerEngine, timeout: float = 20.0) -> None:
    """Stop a learner's daemon and everything under it (containers included), and their cgroups.

    rootlesskit passes SIGTERM on to dockerd, which stops its containers (up to its
    shutdown timeout); what is left after ``timeout`` is killed, and so is whatever still
    runs in the learner's cgroups (a lab left behind) before they are removed.
    """
    try:
        root = psutil.Process(engine.pid)
        tree = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        tree = []
    if tree:
        with contextlib.suppress(WaitTimeout):
            procs.terminate(engine.pid, f"{engine.user.unix_user}'s rootlesskit", timeout)
        for proc in tree:
            with contextlib.suppress(psutil.NoSuchProcess):
                if proc.is_running():
                    proc.send_signal(signal.SIGKILL)
        psutil.wait_procs(tree, timeout=5)
    remove_cgroups(engine.cgroups)
    _record_path(engine.user).unlink(missing_ok=True)


def stop_user(user: LearnerUser, timeout: float = 20.0) -> None:
    """Stop the learner's daemon if root's record names one that runs; remove their cgroups either way."""
    engine = running(user)
    if engine is not None:
        stop(engine, timeout)
    remove_cgroups(learner_cgroups(user))


def netns_pid(engine: LearnerEngine) -> int:
    """The pid whose network namespace is the learner's: rootlesskit's child.

    Read from rootlesskit's state, which the learner could rewrite, so it must be a direct
    child of root's recorded rootlesskit, running as the learner.

    Raises:
        LabkitError: rootlesskit has no such child (the daemon is not running).
    """
    try:
        pid = int((engine.user.rootlesskit_dir / "child_pid").read_text().strip())
        child = psutil.Process(pid)
        ours = child.ppid() == engine.pid and child.uids().real == engine.user.uid
    except (OSError, ValueError, psutil.NoSuchProcess) as e:
        raise LabkitError(f"{engine.user.unix_user}'s network namespace is gone ({e})", "start the engine") from e
    if not ours:
        raise LabkitError(
            f"{engine.user.unix_user}'s rootlesskit state names pid {pid}, not its own child", "restart the engine"
        )
    return pid


def in_netns(engine: LearnerEngine, argv: Sequence[str]) -> list[str]:
    """The command line that runs ``argv`` as the learner in their network namespace and cgroups."""
    return in_cgroup(engine.cgroup_procs, netns_command(netns_pid(engine), engine.user, argv))


#: setns(2)'s flag for a network namespace (<sched.h>).
CLONE_NEWNET = 0x40000000


def listen_in_netns(engine: LearnerEngine, host: str, port: int) -> socket.socket:
    """A TCP socket listening on ``host:port`` **inside** the learner's network namespace.

    A socket keeps the namespace it was made in, so root's process can accept there while its
    other sockets stay on the host: a relay to one host service (the hub's API) without
    opening the host's loopback to the learner. The socket is made by a short-lived thread
    that joins the namespace (setns(2) moves only the calling thread) and then ends.

    Raises:
        LabkitError: the namespace is gone, or the port is taken there.
    """
    path = f"/proc/{netns_pid(engine)}/ns/net"
    made: list[socket.socket] = []
    failed: list[BaseException] = []

    def make() -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        try:
            fd = os.open(path, os.O_RDONLY)
            try:
                if libc.setns(fd, CLONE_NEWNET) != 0:
                    raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))
            finally:
                os.close(fd)
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((host, port))
                sock.listen(64)
            except OSError:
                sock.close()
                raise
            made.append(sock)
        except OSError as e:
            failed.append(e)

    thread = threading.Thread(target=make, name=f"netns-{engine.user.unix_user}")
    thread.start()
    thread.join()
    if failed or not made:
        raise LabkitError(
            f"cannot listen on {host}:{port} in {engine.user.unix_user}'s network namespace ({failed[:1]})",
            "is the engine running, and the port free there?",
        ) from (failed[0] if failed else None)
    return made[0]


def _peer(sock_path: Path) -> SocketPeer:
    """Who listens on ``sock_path``: ``SO_PEERCRED`` names the process that called listen()."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(5)
        sock.connect(str(sock_path))
        pid, uid, _ = struct.unpack("3i", sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i")))
    try:
        proc = psutil.Process(pid)
        parent: int | None = proc.ppid()
        exe = os.stat(f"/proc/{pid}/exe")  # the file it runs, whatever its path in its own mounts
        program: tuple[int, int] | None = (exe.st_dev, exe.st_ino)
    except (psutil.Error, OSError):
        parent, program = None, None
    return SocketPeer(pid, uid, parent, program)


def pinned_socket(engine: LearnerEngine) -> Path:
    """A path to the learner's daemon that the learner cannot change, served by the dockerd root started.

    The learner owns ``/run/user/UID`` and can put anything at ``docker.sock`` (a fake daemon that
    answers a grader's check). A hard link made by root in :data:`PINNED_SOCKETS` names one socket
    inode for good; it is kept only when the process listening on it is the learner's real dockerd
    (:func:`daemon_problem`). A program told ``DOCKER_HOST=unix://`` that path then reaches that
    daemon and no other, whatever the learner does to their runtime directory afterwards.

    Raises:
        LabkitError: the socket is missing, not a socket, or not served by the learner's dockerd.
    """
    _require_root()
    user = engine.user
    dockerd = shutil.which("dockerd", path=PATH)
    if dockerd is None:
        raise LabkitError("dockerd is missing", "apt-get install docker.io")
    PINNED_SOCKETS.mkdir(mode=0o711, exist_ok=True)
    PINNED_SOCKETS.chmod(0o711)
    tmp = PINNED_SOCKETS / f".{user.unix_user}.{uuid.uuid4().hex}"
    link = PINNED_SOCKETS / f"{user.unix_user}.sock"
    what = f"{user.unix_user}'s daemon socket {user.socket}"
    try:
        os.link(user.socket, tmp, follow_symlinks=False)  # whatever is there now; a symlink stays a symlink
        if not stat.S_ISSOCK(os.lstat(tmp).st_mode):
            raise LabkitError(f"{what} is not a socket", "restart the learner's server")
        problem = daemon_problem(_peer(tmp), netns_pid(engine), user.uid, _file_id(Path(dockerd)))
        if problem is not None:
            raise LabkitError(f"{what} is not their engine's: {problem}", "restart the learner's server")
        os.replace(tmp, link)
    except OSError as e:
        raise LabkitError(f"cannot reach {what} ({e.strerror or e})", "restart the learner's server") from e
    finally:
        tmp.unlink(missing_ok=True)
    return link


def _file_id(path: Path) -> tuple[int, int]:
    found = path.stat()
    return found.st_dev, found.st_ino


def run_as(
    engine: LearnerEngine,
    argv: Sequence[str],
    timeout: float = 60.0,
    netns: bool = True,
    env: Mapping[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` as the learner (in their namespace unless ``netns`` is false); never raises on exit codes.

    ``env`` is added to (or replaces parts of) the learner's environment (:func:`user_env`).
    """
    command = in_netns(engine, argv) if netns else in_cgroup(engine.cgroup_procs, as_user(engine.user, argv))
    return subprocess.run(
        command,
        env=user_env(engine.user) | dict(env or {}),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def cache_images(refs: Sequence[str], path: Path = IMAGE_CACHE) -> Path:
    """One ``docker save`` of ``refs`` from the machine's daemon, readable by every learner.

    Made again only when the images' ids changed since the last one.

    Raises:
        LabkitError: an image is missing from the machine's daemon.
    """
    ids = _run(["docker", "image", "inspect", "--format", "{{.Id}}", *refs], "reading the course images").stdout
    stamp = path.with_suffix(".ids")
    wanted = json.dumps({"refs": list(refs), "ids": ids.split()})
    if path.exists() and stamp.exists() and stamp.read_text() == wanted:
        return path
    path.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")  # two hubs starting at once never write one file
    try:
        _run(["docker", "save", "--output", str(tmp), *refs], "saving the course images", timeout=300)
    except LabkitError:
        tmp.unlink(missing_ok=True)
        raise
    tmp.chmod(0o644)
    tmp.replace(path)
    stamp.write_text(wanted)
    return path


def _as_learner(user: LearnerUser, argv: Sequence[str]) -> list[str]:
    return ["env", "-i", *(f"{k}={v}" for k, v in user_env(user).items()), *as_user(user, argv)]


def has_images(user: LearnerUser, ids: set[str]) -> bool:
    """True when the learner's daemon has an image of each id (``docker image inspect``)."""
    if not ids:
        return False
    done = subprocess.run(
        _as_learner(user, ["docker", "image", "inspect", "--format", "{{.Id}}", *sorted(ids)]),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    return done.returncode == 0 and set(done.stdout.split()) >= ids


def load_images(user: LearnerUser, archive: Path = IMAGE_CACHE) -> bool:
    """``docker load`` the course images' tar into the learner's daemon, unless it has them all.

    The images stay in the learner's data root across stops, so from the second start on
    the load is one ``docker image inspect`` (a tar of many images takes seconds to load).

    Returns:
        True when it loaded, False when the daemon had every image already.

    Raises:
        LabkitError: the load failed.
    """
    if has_images(user, archive_image_ids(archive)):
        return False
    _run(
        _as_learner(user, ["docker", "load", "-i", str(archive)]),
        f"loading the course images into {user.unix_user}'s daemon",
        timeout=300,
    )
    return True
