"""An engine's root filesystem: Debian's ``docker.io`` of one suite, installed by apt in a chroot.

``debootstrap --variant=minbase`` lays down the suite (from the machine's own mirror,
as for the offline images), then ``apt-get install`` in a chroot adds the engine.
Nothing in the chroot is started: Debian's package scripts are told not to (a
``policy-rc.d`` that says no), and the engine runs later, under
:mod:`~labkit.features.engines.daemon`. A finished root filesystem carries a record
of what it holds; a half-built one never takes its place.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

from labkit.core import activity, fmt
from labkit.core.errors import CommandFailed, WaitTimeout
from labkit.core.i18n import _
from labkit.features.engines.catalog import PACKAGES, Engine, rootfs_dir
from labkit.features.images import debootstrap

#: Seconds apt-get may take to install the engine's packages.
INSTALL_TIMEOUT = 900.0
#: The record a finished root filesystem carries.
RECORD = ".labkit-engine.json"

#: apt settings inside the root filesystem: unstable's Release file may be past its
#: Valid-Until date on a mirror snapshot, and recommends would double the size.
APT_CONFIG = 'Acquire::Check-Valid-Until "false";\nAPT::Install-Recommends "false";\n'
#: Tells Debian's package scripts not to start services in the chroot.
POLICY_RC = "#!/bin/sh\n# labkit: services in this root filesystem are started by labkit, never by apt.\nexit 101\n"


def record(engine: Engine) -> dict[str, Any] | None:
    """What a finished root filesystem holds, or None when it is missing or unfinished."""
    try:
        data = json.loads((rootfs_dir(engine) / RECORD).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("engine") == engine.name else None


def _configure(target: Path) -> None:
    (target / "etc/apt/apt.conf.d/99labkit").write_text(APT_CONFIG)
    policy = target / "usr/sbin/policy-rc.d"
    policy.write_text(POLICY_RC)
    policy.chmod(0o755)


@contextlib.contextmanager
def _proc_mounted(target: Path) -> Iterator[None]:
    """/proc inside the chroot while apt runs (package scripts read it)."""
    point = target / "proc"
    subprocess.run(["mount", "--bind", "/proc", str(point)], check=True, capture_output=True, timeout=30)
    try:
        yield
    finally:
        subprocess.run(["umount", "-l", str(point)], check=False, capture_output=True, timeout=30)


def _in_chroot(target: Path, command: list[str], timeout: float) -> str:
    """Run ``command`` in the chroot; its output.

    Raises:
        CommandFailed: it exited non-zero (with its output's tail).
        WaitTimeout: it ran past ``timeout``.
    """
    full = ["chroot", str(target), *command]
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "DEBIAN_FRONTEND": "noninteractive", "LC_ALL": "C.UTF-8"}
    try:
        done = subprocess.run(full, capture_output=True, text=True, timeout=timeout, check=False, env=env)
    except subprocess.TimeoutExpired as e:
        raise WaitTimeout(
            _("`{command}` in the {name} root filesystem").format(command=" ".join(command), name=target.name), timeout
        ) from e
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-15:])
        raise CommandFailed(" ".join(command), done.returncode, tail)
    return done.stdout


def _versions(target: Path) -> dict[str, str]:
    """The installed versions of the engine's packages, by package name."""
    shown = _in_chroot(
        target, ["dpkg-query", "-W", "-f", "${Package} ${Version}\\n", "docker.io", "containerd", "runc"], 60
    )
    return dict(line.split(" ", 1) for line in shown.splitlines() if " " in line)


def prepare(engine: Engine, out: TextIO) -> dict[str, Any]:
    """Build the engine's root filesystem unless a finished one is there; returns its record.

    Raises:
        NotSupported: not root, no debootstrap, or no Debian mirror in the apt sources.
        CommandFailed: debootstrap or apt-get failed.
        WaitTimeout: one of them ran past its deadline.
    """
    done = record(engine)
    if done is not None:
        print(
            _("{name}: ready (docker.io {version})").format(
                name=engine.name, version=done["packages"].get("docker.io", "?")
            ),
            file=out,
            flush=True,
        )
        return done
    program = debootstrap.require_debootstrap(
        _("building the {name} engine").format(name=engine.name), _("or run the course on the machine's own engine")
    )
    final = rootfs_dir(engine)
    building = final.with_name("rootfs.building")
    debootstrap.remove_tree(building)
    building.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    live = activity.start(f"building the {engine.name} engine", unit="items", out=out)
    try:
        progress = debootstrap.DebootstrapProgress(out, started, live)
        debootstrap.bootstrap(program, engine.suite, building, progress)
        _configure(building)
        progress.show(f"installing {' '.join(PACKAGES)}")
        with _proc_mounted(building):
            _in_chroot(building, ["apt-get", "update", "-qq"], INSTALL_TIMEOUT)
            _in_chroot(building, ["apt-get", "install", "-y", "-qq", *PACKAGES], INSTALL_TIMEOUT)
            _in_chroot(building, ["apt-get", "clean"], 60)
        packages = _versions(building)
        made: dict[str, Any] = {
            "engine": engine.name,
            "suite": engine.suite,
            "packages": packages,
            "built": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        (building / RECORD).write_text(json.dumps(made, indent=2) + "\n")
    except BaseException:
        live.close()
        debootstrap.remove_tree(building)
        raise
    live.close()
    debootstrap.remove_tree(final)
    building.rename(final)
    took = fmt.duration(time.monotonic() - started)
    print(
        _("{name}: docker.io {version} ready in {took} ({final})").format(
            name=engine.name, version=packages.get("docker.io", "?"), took=took, final=final
        ),
        file=out,
    )
    return made
