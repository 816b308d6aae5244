"""JupyterHub's spawner for a classroom server: each learner's lab on their own Docker engine.

``c.JupyterHub.spawner_class = "labkit.classroom.hub_spawner.LearnerEngineSpawner"`` in a
hub that runs as root. For the learner ``ada``, :meth:`LearnerEngineSpawner.start`:

1. makes the Unix user ``lk-ada`` (:func:`learner_engine.ensure_user`) and starts their
   rootless dockerd in a network namespace of its own, publishing one port of it, the
   lab's, on the host's 127.0.0.1 (:func:`learner_engine.start`), in the learner's cgroup
   with JupyterHub's own ``mem_limit`` and :attr:`~LearnerEngineSpawner.pids_limit`
   where the machine enforces them (the lab, its kernels and terminals join it too);
2. loads the course images into that daemon from the machine's cache (no pulls; skipped
   when the daemon has them all, as on every start after the first);
3. copies the student notebooks missing from ``~/labkit-work`` and writes the lab's kernel
   spec (labkit loaded as an IPython extension, so ``%docker`` works) and settings, **as
   the learner** (``python -m labkit.lab --no-start``, ``make lab``'s own path: root never
   writes into a home the learner controls);
4. relays the hub's API port into the learner's namespace (:mod:`hub_relay`), and the
   ports in ``relayed_ports`` (the hub's grader, :mod:`hub_grader`): the lab cannot reach
   the host's loopback, and gets those ports of it, nothing else;
5. runs ``jupyterhub-singleuser`` as the learner in their namespace, with
   ``DOCKER_HOST`` naming their own daemon, on ``127.0.0.1:PORT``, and returns that address
   to the hub, whose proxy reaches it through the published port.

:meth:`stop` stops the lab, closes the relay and stops the learner's daemon (their
containers with it) and removes their cgroups; their notebooks and images stay for the next
start.

**A hub restart keeps the labs** (``c.JupyterHub.cleanup_servers = False``): the lab's pid
and start time are the spawner's state, so :meth:`poll` in the new hub process finds the
running lab, and re-creates the relay of the hub's API into the learner's namespace (the
old one died with the old hub process).

:func:`configure_culler` adds jupyterhub-idle-culler as a hub-managed service: a culled
server is a stopped one, daemon and containers included.

JupyterHub is the optional extra ``hub`` (``pip install 'labkit[hub]'``).
"""

from __future__ import annotations

import asyncio
import contextlib
import pwd
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import psutil
from jupyterhub.spawner import Spawner
from jupyterhub.utils import random_port
from traitlets import Float, Int, Integer, List, Unicode
from traitlets.config import Config

from labkit.classroom import hub_relay
from labkit.classroom import learner_engine as le
from labkit.core import procs
from labkit.core.errors import LabkitError, WaitTimeout

#: Ports a lesson publishes inside the learner's namespace: never the lab's.
LESSON_PORTS = frozenset({5000, 8080, 8081, 8888})
#: The learner's workspace, under their home.
WORKSPACE = "labkit-work"
#: labkit's state folder of the learner (``LABKIT_STATE_DIR``), under their home; the lab's
#: kernel spec and settings are in its ``lab`` folder (``labkit.lab.runtime_dir``).
STATE = ".local/state/labkit"
#: The lesson the lab opens first.
FIRST_LESSON = "00-welcome.ipynb"
#: The idle culler's service and role name in the hub.
CULLER = "labkit-idle-culler"


def lab_port() -> int:
    """A free port on the host's loopback that no lesson uses."""
    while True:
        port = int(random_port())
        if port not in LESSON_PORTS:
            return port


def lab_argv(port: int, workspace: Path, runtime: Path) -> list[str]:
    """The single-user server's command line (from the hub's own installation).

    ``runtime`` is the lab's own settings folder, written by ``labkit.lab --no-start``.
    """
    return [
        str(Path(sys.executable).parent / "jupyterhub-singleuser"),
        f"--port={port}",
        "--ip=127.0.0.1",
        f"--ServerApp.root_dir={workspace}",
        f"--LabApp.app_settings_dir={runtime / 'settings'}",
    ]


def lab_env(user: le.LearnerUser, language: str = "") -> dict[str, str]:
    """What the lab adds to the hub's environment: the learner's own, the lab's kernel spec first.

    The kernels are the hub's Python (``PATH``), with labkit loaded (the ``python3`` kernel
    spec on ``JUPYTER_PATH``); a terminal is bash, in the workspace, with ``DOCKER_HOST``.
    With a ``language`` (``zh_CN``) the notebooks, labkit's messages and JupyterLab's menus
    are in it (``LABKIT_LANG``).
    """
    state = user.home / STATE
    return (
        le.user_env(user)
        | {
            "PATH": f"{Path(sys.executable).parent}:{le.PATH}",
            "SHELL": "/bin/bash",
            "LABKIT_STATE_DIR": str(state),
            "JUPYTER_PATH": str(state / "lab" / "jupyter"),
        }
        | ({"LABKIT_LANG": language} if language else {})
    )


def configure_culler(c: Config, timeout: int, every: int) -> None:
    """Stop learners' servers idle for ``timeout`` seconds, looking every ``every`` seconds.

    jupyterhub-idle-culler runs as a service the hub starts and stops, with a role holding
    only the scopes its README asks for: list the users, read their activity and servers,
    stop servers. A culled server stops like any other (:meth:`LearnerEngineSpawner.stop`):
    the learner's daemon and containers go with it, their notebooks and images stay.
    """
    c.JupyterHub.services.append(
        {
            "name": CULLER,
            "command": [
                sys.executable, "-m", "jupyterhub_idle_culler", f"--timeout={timeout}", f"--cull-every={every}",
            ],
        }
    )  # fmt: skip
    c.JupyterHub.load_roles.append(
        {
            "name": CULLER,
            "scopes": ["list:users", "read:users:activity", "read:servers", "delete:servers"],
            "services": [CULLER],
        }
    )


class LearnerEngineSpawner(Spawner):  # type: ignore[misc]  # jupyterhub ships no types
    """Each learner's JupyterLab in their own network namespace, on their own rootless dockerd."""

    image_archive = Unicode(
        str(le.IMAGE_CACHE), help="the course images' tar (learner_engine.cache_images); skipped when missing"
    ).tag(config=True)
    engine_timeout = Float(60.0, help="seconds for a learner's daemon to answer").tag(config=True)
    language = Unicode(
        "", help="the course's language in every lab (LABKIT_LANG: zh_CN or en); empty: labkit's default"
    ).tag(config=True)
    relayed_ports = List(
        Int(), help="ports of the host's 127.0.0.1 relayed into each lab's namespace besides the hub's API"
    ).tag(config=True)
    pids_limit = Integer(
        1024,
        help="processes and threads a learner's whole tree may have at once (daemon, containers, lab); 0: no limit. "
        "Memory is JupyterHub's own mem_limit. Both apply where learner_engine.limits_enforced() says so.",
    ).tag(config=True)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.proc: subprocess.Popen[bytes] | None = None
        self.pid = 0
        self.relays: list[asyncio.Server] = []
        self.started: float | None = None
        #: Seconds the last start spent loading images (0.0: the daemon had them all).
        self.load_seconds = 0.0

    @property
    def limits(self) -> le.Limits:
        """The learner's limits from the traits (``mem_limit`` in bytes; 0 or None: none)."""
        return le.Limits(memory=int(self.mem_limit) if self.mem_limit else None, pids=self.pids_limit or None)

    # --- state the hub keeps across its own restarts ---------------------------------------

    def load_state(self, state: dict[str, Any]) -> None:
        super().load_state(state)
        self.pid = int(state.get("pid", 0))
        started = state.get("started")
        self.started = float(started) if isinstance(started, int | float) else None

    def get_state(self) -> dict[str, Any]:
        state: dict[str, Any] = super().get_state()
        if self.pid:
            state["pid"] = self.pid
            state["started"] = self.started
        return state

    def clear_state(self) -> None:
        super().clear_state()
        self.pid = 0
        self.started = None

    # --- the lab -----------------------------------------------------------------------------

    def _prepare(self, port: int) -> le.LearnerEngine:
        """Root's part, blocking: user, daemon, images, notebooks (run in a thread)."""
        user = le.ensure_user(self.user.name)
        engine = le.start(user, timeout=self.engine_timeout, lab_port=port, limits=self.limits)
        if self.limits.any and not engine.cgroups:
            self.log.warning("%s runs without limits: this machine enforces %s", user.unix_user, le.limits_enforced())
        archive = Path(self.image_archive)
        if archive.is_file():
            began = time.monotonic()
            loaded = le.load_images(user, archive)
            self.load_seconds = time.monotonic() - began
            self.log.info(
                "%s's course images: %s in %.2f s", user.unix_user, "loaded" if loaded else "present", self.load_seconds
            )
        workspace = user.home / WORKSPACE
        # through a shell, as the lab starts its kernels: a process of the learner runs this
        # Python only if every folder up to it is theirs to search (not one under /root)
        command = [sys.executable, "-m", "labkit.lab", "--no-start", f"--workspace={workspace}"]
        sync = subprocess.run(
            le.in_cgroup(engine.cgroup_procs, le.as_user(user, ["sh", "-c", 'exec "$@"', "sh", *command])),
            env=lab_env(user, self.language),
            cwd=user.home,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if sync.returncode != 0:
            le.stop(engine)
            raise LabkitError(
                f"{user.unix_user} cannot run labkit with the hub's Python {sys.executable}: {sync.stderr.strip()[-300:]}",
                "install labkit and JupyterHub in a venv every user can read and run (e.g. /opt/labkit, "
                "made from /usr/bin/python3, not a Python under /root), and run the hub from it",
            )
        return engine

    async def _relay_hub_api(self, engine: le.LearnerEngine) -> None:
        """The hub's API port and ``relayed_ports`` inside the learner's namespace (:mod:`hub_relay`), if not there yet."""
        if self.relays:
            return
        api = urlparse(self.hub.api_url)
        api_host, api_port = api.hostname or "127.0.0.1", int(api.port or 80)
        for host, port in [(api_host, api_port), *(("127.0.0.1", p) for p in self.relayed_ports)]:
            listening = await asyncio.to_thread(le.listen_in_netns, engine, host, port)
            self.relays.append(await hub_relay.serve(listening, host, port))

    async def start(self) -> tuple[str, int]:
        port = lab_port()
        self.port = port
        engine = await asyncio.to_thread(self._prepare, port)
        await self._relay_hub_api(engine)
        env = self.get_env() | lab_env(engine.user, self.language)
        workspace = engine.user.home / WORKSPACE
        argv = le.in_netns(engine, lab_argv(port, workspace, engine.user.home / STATE / "lab"))
        self.log.info("starting %s's lab on 127.0.0.1:%d: %s", engine.user.unix_user, port, argv)
        self.proc = subprocess.Popen(argv, env=env, cwd=workspace, stdin=subprocess.DEVNULL, start_new_session=True)
        self.pid = self.proc.pid
        self.started = procs.start_time(self.pid)
        return ("127.0.0.1", port)

    def _lab_process(self) -> psutil.Process | None:
        """The lab's process, when the recorded pid is still the learner's single-user server.

        Its uid and start time must match: after a hub restart the pid comes from the hub's
        database, and a pid reused by another process is not the lab.
        """
        if not self.pid:
            return None
        try:
            proc = psutil.Process(self.pid)
            if proc.status() == psutil.STATUS_ZOMBIE:
                return None
            uid = pwd.getpwnam(le.unix_name(self.user.name)).pw_uid
        except (psutil.Error, KeyError):
            return None
        if self.started is not None and not procs.same_start(self.started, procs.start_time(self.pid)):
            return None
        return proc if proc.uids().real == uid else None

    async def poll(self) -> int | None:
        if self.proc is not None:
            code = self.proc.poll()
            return None if code is None else code
        # a lab this hub process did not start: one that ran before the hub restarted
        if self._lab_process() is None:
            return 0
        if not self.relays:
            user = le.find_user(self.user.name)
            engine = le.running(user) if user is not None else None
            if engine is None:
                self.log.warning("%s's lab runs without its engine", self.user.name)
                return None
            try:
                await self._relay_hub_api(engine)
                self.log.info("relaying the hub's API into %s's namespace again", engine.user.unix_user)
            except LabkitError as e:
                self.log.warning("the hub's API cannot reach %s's lab: %s", engine.user.unix_user, e)
        return None

    async def stop(self, now: bool = False) -> None:
        lab = self._lab_process()
        if lab is not None:
            # procs.terminate counts a zombie as gone: after a hub restart the lab is no child
            # of this process, and psutil.wait_procs would wait out its timeout on one
            with contextlib.suppress(WaitTimeout):
                await asyncio.to_thread(procs.terminate, lab.pid, f"{self.user.name}'s lab", 0.5 if now else 10)
        if self.proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                await asyncio.to_thread(self.proc.wait, 5)
            self.proc = None
        for relay in self.relays:
            relay.close()
        self.relays = []
        user = le.find_user(self.user.name)
        if user is not None:
            await asyncio.to_thread(le.stop_user, user)
        self.pid = 0
        self.started = None
