"""JupyterHub's spawner for a classroom server: each learner's lab on their own Docker engine.

``c.JupyterHub.spawner_class = "labkit.classroom.hub_spawner.LearnerEngineSpawner"`` in a
hub that runs as root. For the learner ``ada``, :meth:`LearnerEngineSpawner.start`:

1. makes the Unix user ``lk-ada`` (:func:`learner_engine.ensure_user`) and starts their
   rootless dockerd in a network namespace of its own, publishing one port of it, the
   lab's, on the host's 127.0.0.1 (:func:`learner_engine.start`);
2. loads the course images into that daemon from the machine's cache (no pulls);
3. copies the student notebooks missing from ``~/labkit-work``, **as the learner**
   (``python -m labkit.lab --no-start``, ``make lab``'s own path: root never writes into
   a home the learner controls);
4. relays the hub's API port into the learner's namespace (:mod:`hub_relay`), and the
   ports in ``relayed_ports`` (the hub's grader, :mod:`hub_grader`): the lab cannot reach
   the host's loopback, and gets those ports of it, nothing else;
5. runs ``jupyterhub-singleuser`` as the learner in their namespace, with
   ``DOCKER_HOST`` naming their own daemon, on ``127.0.0.1:PORT``, and returns that address
   to the hub, whose proxy reaches it through the published port.

:meth:`stop` stops the lab, closes the relay and stops the learner's daemon (their
containers with it); their notebooks and images stay for the next start.

JupyterHub is the optional extra ``hub`` (``pip install 'labkit[hub]'``).
"""

from __future__ import annotations

import asyncio
import contextlib
import pwd
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import psutil
from jupyterhub.spawner import Spawner
from jupyterhub.utils import random_port
from traitlets import Float, Int, List, Unicode

from labkit.classroom import hub_relay
from labkit.classroom import learner_engine as le

#: Ports a lesson publishes inside the learner's namespace: never the lab's.
LESSON_PORTS = frozenset({5000, 8080, 8081, 8888})
#: The learner's workspace, under their home.
WORKSPACE = "labkit-work"


def lab_port() -> int:
    """A free port on the host's loopback that no lesson uses."""
    while True:
        port = int(random_port())
        if port not in LESSON_PORTS:
            return port


def lab_argv(port: int, workspace: Path) -> list[str]:
    """The single-user server's command line (from the hub's own installation)."""
    return [
        str(Path(sys.executable).parent / "jupyterhub-singleuser"),
        f"--port={port}",
        "--ip=127.0.0.1",
        f"--ServerApp.root_dir={workspace}",
    ]


class LearnerEngineSpawner(Spawner):  # type: ignore[misc]  # jupyterhub ships no types
    """Each learner's JupyterLab in their own network namespace, on their own rootless dockerd."""

    image_archive = Unicode(
        str(le.IMAGE_CACHE), help="the course images' tar (learner_engine.cache_images); skipped when missing"
    ).tag(config=True)
    engine_timeout = Float(60.0, help="seconds for a learner's daemon to answer").tag(config=True)
    relayed_ports = List(
        Int(), help="ports of the host's 127.0.0.1 relayed into each lab's namespace besides the hub's API"
    ).tag(config=True)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.proc: subprocess.Popen[bytes] | None = None
        self.pid = 0
        self.relays: list[asyncio.Server] = []

    # --- state the hub keeps across its own restarts ---------------------------------------

    def load_state(self, state: dict[str, Any]) -> None:
        super().load_state(state)
        self.pid = int(state.get("pid", 0))

    def get_state(self) -> dict[str, Any]:
        state: dict[str, Any] = super().get_state()
        if self.pid:
            state["pid"] = self.pid
        return state

    def clear_state(self) -> None:
        super().clear_state()
        self.pid = 0

    # --- the lab -----------------------------------------------------------------------------

    def _prepare(self, port: int) -> le.LearnerEngine:
        """Root's part, blocking: user, daemon, images, notebooks (run in a thread)."""
        user = le.ensure_user(self.user.name)
        engine = le.start(user, timeout=self.engine_timeout, lab_port=port)
        archive = Path(self.image_archive)
        if archive.is_file():
            le.load_images(user, archive)
        workspace = user.home / WORKSPACE
        sync = le.run_as(
            engine,
            [sys.executable, "-m", "labkit.lab", "--no-start", f"--workspace={workspace}"],
            timeout=120,
            netns=False,
        )
        if sync.returncode != 0:
            self.log.warning("copying the notebooks for %s failed: %s", user.unix_user, sync.stderr[-500:])
        return engine

    async def start(self) -> tuple[str, int]:
        port = lab_port()
        self.port = port
        engine = await asyncio.to_thread(self._prepare, port)
        api = urlparse(self.hub.api_url)
        api_host, api_port = api.hostname or "127.0.0.1", int(api.port or 80)
        for host, relayed in [(api_host, api_port), *(("127.0.0.1", p) for p in self.relayed_ports)]:
            listening = await asyncio.to_thread(le.listen_in_netns, engine, host, relayed)
            self.relays.append(await hub_relay.serve(listening, host, relayed))
        env = self.get_env()
        env.update(le.user_env(engine.user))
        env["PATH"] = f"{Path(sys.executable).parent}:{le.PATH}"
        argv = le.in_netns(engine, lab_argv(port, engine.user.home / WORKSPACE))
        self.log.info("starting %s's lab on 127.0.0.1:%d: %s", engine.user.unix_user, port, argv)
        self.proc = subprocess.Popen(
            argv, env=env, cwd=engine.user.home, stdin=subprocess.DEVNULL, start_new_session=True
        )
        self.pid = self.proc.pid
        return ("127.0.0.1", port)

    def _lab_process(self) -> psutil.Process | None:
        """The lab's process, when the recorded pid is still the learner's single-user server."""
        if not self.pid:
            return None
        try:
            proc = psutil.Process(self.pid)
            if proc.status() == psutil.STATUS_ZOMBIE:
                return None
            uid = pwd.getpwnam(le.unix_name(self.user.name)).pw_uid
            return proc if proc.uids().real == uid else None
        except (psutil.Error, KeyError):
            return None

    async def poll(self) -> int | None:
        if self.proc is not None:
            code = self.proc.poll()
            return None if code is None else code
        return None if self._lab_process() is not None else 0

    async def stop(self, now: bool = False) -> None:
        lab = self._lab_process()
        if lab is not None:
            with contextlib.suppress(psutil.Error):
                lab.send_signal(signal.SIGTERM)
                _, alive = await asyncio.to_thread(psutil.wait_procs, [lab], 0 if now else 10)
                for proc in alive:
                    proc.kill()
        if self.proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                await asyncio.to_thread(self.proc.wait, 5)
            self.proc = None
        for relay in self.relays:
            relay.close()
        self.relays = []
        user = le.ensure_user(self.user.name)
        await asyncio.to_thread(le.stop_user, user)
        self.pid = 0
