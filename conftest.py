"""Every pytest run, tests and notebooks alike: throwaway state, one session label, a leak check.

At the repository root so that ``pytest notebooks`` (nbval alone) gets it too; the fixtures
live in ``tests/conftest.py``.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess

import pytest

# Tests never touch the learner's own state: answers, registry pid files and setup
# records go to a throwaway folder for the whole run (subprocesses inherit it).
_OWN_STATE = "LABKIT_STATE_DIR" not in os.environ
os.environ.setdefault(
    "LABKIT_STATE_DIR", os.path.join(os.environ.get("TMPDIR", "/tmp"), f"labkit-test-state-{os.getpid()}")
)
# Exercise folders and archives a lesson makes for the learner (bind-mount folders, saved
# tars) go to a throwaway workspace too, never into the learner's ~/labkit-work.
_OWN_WORKSPACE = "LABKIT_WORKSPACE" not in os.environ
os.environ.setdefault("LABKIT_WORKSPACE", os.environ["LABKIT_STATE_DIR"] + "-workspace")
# One labkit.session for the whole run, notebook kernels included (they inherit the
# environment), so the leak check below looks at this run's resources only.
os.environ.setdefault("LABKIT_SESSION", f"test-{os.getpid()}-{secrets.token_hex(3)}")
# No reaper (labkit.core.owner): nbval ends each notebook's kernel with SIGKILL, and a watcher
# would then remove what the notebook left before the leak check below could see it. The
# reaper's own tests turn it on for the processes they kill.
os.environ.setdefault("LABKIT_REAPER", "off")

_before: set[str] = set()


def _labelled_containers() -> set[str]:
    from labkit.core import engine

    try:
        label = f"{engine.LABEL_SESSION}={engine.session_id()}"
        return {c.id for c in engine.client().containers.list(all=True, filters={"label": label})}
    except Exception:  # no daemon: the docker fixture reports that as a failure
        return set()


def _labelled_others() -> set[str]:
    """This run's labelled networks, volumes and images, as ``kind name`` strings."""
    from labkit.core import engine

    try:
        client = engine.client()
        label = {"label": f"{engine.LABEL_SESSION}={engine.session_id()}"}
        found = {f"network {n.name}" for n in client.networks.list(filters=label)}
        found |= {f"volume {v.name}" for v in client.volumes.list(filters=label)}
        found |= {f"image {(i.tags or [i.short_id])[0]}" for i in client.images.list(filters=label)}
        return found
    except Exception:
        return set()


def _engine_line() -> str:
    """The engine this run tests, as the CLI sees it: the engine matrix's logs show it per run."""

    def shown(*command: str) -> str:
        try:
            done = subprocess.run(["docker", *command], capture_output=True, text=True, timeout=10, check=False)
        except (OSError, subprocess.TimeoutExpired):
            return ""
        return done.stdout.strip() if done.returncode == 0 else ""

    try:
        version = json.loads(shown("version", "--format", "{{json .}}") or "{}")
        info = json.loads(shown("info", "--format", "{{json .}}") or "{}")
    except ValueError:
        version, info = {}, {}
    server = version.get("Server") or {}
    if not server:
        return "docker engine: no daemon answers"
    client = version.get("Client") or {}
    buildx = shown("buildx", "version").split()
    return (
        f"docker engine: Engine {server.get('Version')} (API {server.get('ApiVersion')}), "
        f"client {client.get('Version')}, buildx {buildx[1] if len(buildx) > 1 else 'none (legacy builder)'}, "
        f"storage {info.get('Driver')}, cgroup v{info.get('CgroupVersion')}"
    )


def pytest_report_header() -> str:
    return _engine_line()


def pytest_sessionstart(session: pytest.Session) -> None:
    _before.update(_labelled_containers())
    _before.update(_labelled_others())


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Fail the run when it leaves containers labelled with its session behind."""
    leaked = _labelled_containers() - _before
    if leaked:
        from labkit.core import engine

        names = []
        for container_id in sorted(leaked):
            try:
                c = engine.client().containers.get(container_id)
                names.append(f"{c.name} (lesson {c.labels.get(engine.LABEL_LESSON)})")
                c.remove(force=True)
            except Exception:
                names.append(container_id[:12])
        print(f"\nLEAK: the run left {len(leaked)} labkit-labelled container(s): {', '.join(names)}")
        session.exitstatus = 1
    others = _labelled_others() - _before
    if others:
        print(f"\nLEAK: the run left labkit-labelled {', '.join(sorted(others))}")
        session.exitstatus = 1
    if _OWN_WORKSPACE:
        shutil.rmtree(os.environ["LABKIT_WORKSPACE"], ignore_errors=True)
    if _OWN_STATE:
        shutil.rmtree(os.environ["LABKIT_STATE_DIR"], ignore_errors=True)
