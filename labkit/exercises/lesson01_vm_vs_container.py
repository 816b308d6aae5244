"""Lesson 01: a virtual machine next to a container.

``vm.kernel`` asks which kernel release a container sees. The check compares the
answer with the kernel the daemon itself runs on (``docker info``'s KernelVersion):
every container on that daemon shares it. Near-misses get their own hint: the VM's
kernel (the lesson boots one), a whole ``uname -a`` line, Docker's version number,
and, under Docker Desktop, the learner's own computer's kernel.
"""

from __future__ import annotations

import platform
import re
import subprocess

import docker

from labkit.core.i18n import N_, _
from labkit.exercises.machinery.catalog import register
from labkit.exercises.machinery.model import Context, Exercise, Verdict, not_yet, passed
from labkit.features import vm

LESSON = "01"
#: What a Linux kernel release looks like: 6.1.0-56-amd64, 5.15.153.1-microsoft-standard-WSL2, 6.8.0.
_RELEASE = re.compile(r"^\d+\.\d+(\.\d+)*([-+~][\w.+~-]*)?$")


def daemon_kernel(client: docker.DockerClient) -> str:
    """The kernel release the daemon runs on: the one every container sees."""
    return str(client.info().get("KernelVersion", "")).strip()


def _docker_versions(client: docker.DockerClient) -> set[str]:
    """Docker's own version numbers: the engine's and, when the CLI is here, the client's."""
    versions = {str(client.version().get("Version", "")).strip()}
    try:
        cli = subprocess.run(
            ["docker", "version", "--format", "{{.Client.Version}}"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
        versions.add(cli.stdout.strip())
    except (OSError, subprocess.TimeoutExpired):  # no CLI: the engine's version is enough to compare
        pass
    return {v for v in versions if v}


def _vm_kernels() -> list[str]:

    return vm.cached_kernel_releases()


def kernel_verdict(answer: str, daemon: str, vm_kernels: list[str], docker_versions: set[str], host: str) -> Verdict:
    """Decide ``vm.kernel`` from the facts: the pure part of the check.

    Example:
        >>> kernel_verdict("6.1.0-9-amd64", "6.1.0-9-amd64", [], set(), "6.1.0-9-amd64").passed
        True
    """
    answer = answer.strip()
    if answer == daemon:
        return passed(
            _("Right: containers on this daemon see kernel {daemon}, the same kernel the daemon runs on.").format(
                daemon=daemon
            ),
            answer=answer,
        )
    words = answer.split()
    if daemon in words:
        return not_yet(
            _("Your answer contains the right kernel release, and more: it looks like a whole `uname -a` line."),
            _("The question asks for the release only: `uname -r` prints that one word, `uname -a` the whole line."),
            answer=answer,
        )
    if answer in vm_kernels:
        return not_yet(
            _("{answer} is the kernel the virtual machine booted, not the one a container sees.").format(answer=answer),
            _(
                "The VM brings its own kernel; a container does not. Ask a container on your daemon which kernel it sees."
            ),
            answer=answer,
        )
    if answer in docker_versions:
        return not_yet(
            _("{answer} is Docker's own version number, not a kernel release.").format(answer=answer),
            _("`docker version` describes Docker; the kernel is what `uname -r` prints inside a container."),
            answer=answer,
        )
    if answer == host and host != daemon:
        return not_yet(
            _(
                "{answer} is the kernel of the computer this notebook runs on, but the daemon runs on another "
                "one (Docker Desktop keeps it in a small Linux VM)."
            ).format(answer=answer),
            _("Containers share the kernel of the machine the daemon runs on: ask a container with `uname -r`."),
            answer=answer,
        )
    if not answer:
        return not_yet(_("The answer is empty."), _("Submit the one word `uname -r` prints inside a container."))
    if _RELEASE.match(answer):
        return not_yet(
            _("{answer} looks like a kernel release, but not the one containers on this daemon see.").format(
                answer=answer
            ),
            _(
                "Don't type it from memory or from another machine: run `uname -r` inside a container here and submit its output."
            ),
            answer=answer,
        )
    return not_yet(
        _("{answer!r} does not look like a kernel release (something like 6.1.0-18-amd64).").format(answer=answer),
        _("`uname -r`, run inside a container, prints one word like that: submit exactly that word."),
        answer=answer,
    )


def _check_kernel(ctx: Context) -> Verdict:
    daemon = daemon_kernel(ctx.client)
    answer = (ctx.answer or "").strip()
    # Docker's version numbers cost a CLI call: only look them up for a wrong answer.
    versions = set() if answer == daemon else _docker_versions(ctx.client)
    return kernel_verdict(answer, daemon, _vm_kernels(), versions, platform.release())


KERNEL = register(
    Exercise(
        id="vm.kernel",
        lesson=LESSON,
        title=N_("The kernel a container sees"),
        prompt=N_(
            "Find the kernel release (what `uname -r` prints) that a container on your daemon sees, and submit it."
        ),
        check=_check_kernel,
        hints=(
            N_("A container is a group of isolated processes: ask one of them which kernel it runs on."),
            N_("`uname -r` prints the kernel release; run it inside a busybox container."),
            N_(
                'kernel = labkit.sh("docker run --rm busybox uname -r").output.strip(), then labkit.check("vm.kernel", answer=kernel)'
            ),
        ),
        solution=("docker run --rm busybox uname -r",),
        reference_answer=lambda ctx: daemon_kernel(ctx.client),
    )
)
