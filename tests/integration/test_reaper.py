"""A killed kernel leaves nothing behind (issue 12): its containers and docker clients go within 15 s.

A real ipykernel, started as Jupyter starts one, runs a detached and a foreground ``docker run``
through labkit, and is killed with SIGKILL in the middle of the foreground cell. Its watcher
(:mod:`labkit.core.reaper`) must remove both containers and end the orphaned ``docker run``
client, while a container of this test process, in the same ``labkit.session``, stays.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import subprocess
import time
from typing import Any

import psutil
import pytest

from labkit.core import engine, owner
from labkit.core.paths import REPO_DIR
from labkit.core.shell import sh

pytestmark = [pytest.mark.docker, pytest.mark.slow]

#: What the issue allows between the kill and a clean daemon.
WITHIN = 15.0


def _running(name: str) -> bool:
    state = subprocess.run(
        ["docker", "inspect", "-f", "{{.State.Running}}", name], capture_output=True, text=True, check=False
    )
    return state.stdout.strip() == "true"


def _exists(name: str) -> bool:
    return engine.find_container(name) is not None


def _owned_containers(kernel: str) -> list[str]:
    listed = subprocess.run(
        ["docker", "ps", "-aq", "--filter", f"label={engine.LABEL_OWNER}={kernel}"],
        capture_output=True,
        text=True,
        check=True,
    )
    return listed.stdout.split()


def _clients(kernel: str) -> list[int]:
    """The docker client processes the kernel started (its marker in their environment), still alive."""
    found = []
    for process in psutil.process_iter():
        with contextlib.suppress(psutil.Error):
            ours = process.name() == "docker" and process.environ().get(owner.ENV_OWNER) == kernel
            if ours and process.status() != psutil.STATUS_ZOMBIE:
                found.append(process.pid)
    return found


def test_a_killed_kernel_leaves_no_container_and_no_docker_client(docker_client: object) -> None:
    from jupyter_client.manager import KernelManager

    token = secrets.token_hex(4)
    detached, foreground, survivor = (f"reap-{kind}-{token}" for kind in ("detached", "foreground", "pytest"))
    km = KernelManager(kernel_name="python3")
    # The suite runs with LABKIT_REAPER=off (conftest.py): this kernel has it on, as a learner's has.
    km.start_kernel(env={**os.environ, "PYTHONPATH": str(REPO_DIR), "LABKIT_REAPER": "on"}, cwd=str(REPO_DIR))
    kc = km.client()
    kc.start_channels()
    said: list[str] = []

    def keep(msg: dict[str, Any]) -> None:
        if msg["msg_type"] == "stream":
            said.append(msg["content"]["text"])

    try:
        kc.wait_for_ready(timeout=60)
        reply = kc.execute_interactive(
            "import labkit\nfrom labkit.core import owner\n"
            f"labkit.sh('docker run -d --network none --name {detached} busybox sleep 600', quiet=True)\n"
            "print(owner.owner_id())",
            timeout=60,
            output_hook=keep,
        )
        assert reply["content"]["status"] == "ok", reply["content"].get("traceback")
        kernel = "".join(said).strip().splitlines()[-1]
        assert kernel.startswith(f"{km.provisioner.pid}-"), kernel  # type: ignore[union-attr]
        kc.execute(f"labkit.sh('docker run --network none --name {foreground} busybox sleep 600')")  # never returns
        deadline = time.monotonic() + 30
        while not _running(foreground):
            assert time.monotonic() < deadline, "the foreground container never started"
            time.sleep(0.1)
        # This test process shares the kernel's labkit.session (conftest sets it for both): its
        # own container must survive the kernel's death.
        sh(f"docker run -d --network none --name {survivor} busybox sleep 600", quiet=True, lesson="test")
        assert len(_owned_containers(kernel)) == 2 and _clients(kernel), "the kernel's containers and client"

        killed = time.monotonic()
        os.kill(km.provisioner.pid, signal.SIGKILL)  # type: ignore[union-attr]
        while _owned_containers(kernel) or _clients(kernel) or _exists(detached) or _exists(foreground):
            assert time.monotonic() - killed < WITHIN, (
                f"after {WITHIN:g} s: containers {_owned_containers(kernel)}, docker clients {_clients(kernel)}"
            )
            time.sleep(0.2)
        took = time.monotonic() - killed
        assert _exists(survivor), "the reaper removed a container of another process in the same session"
        print(f"\nreaper: the killed kernel's 2 containers and its docker client were gone {took:.1f} s after SIGKILL")
    finally:
        kc.stop_channels()
        with contextlib.suppress(Exception):
            km.shutdown_kernel(now=True)
        subprocess.run(["docker", "rm", "-f", detached, foreground, survivor], capture_output=True, check=False)
