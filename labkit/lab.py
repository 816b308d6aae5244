"""``make lab``: put the lessons into the learner's workspace and start JupyterLab there.

Learners get the **student versions** (``labkit release``: each exercise's
solution replaced by its prompt, outputs cleared); ``--solutions`` gives an
instructor the solution notebooks instead. The workspace lives outside the
checkout (default ``~/labkit-work``), so a learner's edits never dirty the
repository. Copies the learner already has are kept; new lessons are added.

JupyterLab then runs with settings of its own, written into labkit's state folder
(``<state>/lab``), never into the learner's ``~/.jupyter`` or ``~/.ipython``:

- its kernels load labkit as an IPython extension, so ``%docker`` works in any
  cell order (a kernel spec named ``python3`` on the lab's ``JUPYTER_PATH``);
- the server runs in the workspace, so a Terminal opens there, not in the checkout;
- it opens ``00-welcome.ipynb`` at start (the URL it prints goes there);
- the file browser leaves out its Last Modified column, so lesson names are not cut.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import sys
import tempfile
from pathlib import Path
from typing import Any

from ipykernel.kernelspec import write_kernel_spec

from labkit.cli import exits
from labkit.core.paths import RELEASE_MARKER, REPO_DIR, state_dir, workspace_dir
from labkit.course.release import copy_pictures, release

#: JupyterLab's usual port is the one the seed publishes hello-dock on; the lab uses another.
DEFAULT_PORT = 8765
AVOID_PORTS = frozenset({8080, 8081, 8888, 5000})
#: The lesson JupyterLab opens at start.
FIRST_LESSON = "00-welcome.ipynb"
#: The name notebooks ask for; the lab's own spec by this name wins over the installed one.
KERNEL_NAME = "python3"
#: Loaded into every kernel before its first cell (IPython's ``--ext``).
KERNEL_ARGUMENTS = ["--InteractiveShellApp.extra_extensions=labkit"]
#: JupyterLab setting defaults for the lab (overrides.json in its own settings folder).
SETTINGS: dict[str, dict[str, Any]] = {
    "@jupyterlab/filebrowser-extension:browser": {"showLastModifiedColumn": False},
}


def sync_workspace(source: Path, workspace: Path) -> tuple[list[str], list[str]]:
    """Copy lesson notebooks missing from ``workspace``; keep the ones already there.

    The lessons' pictures (``img/``) are always brought up to date: they are course
    material, not the learner's work.

    Returns:
        (copied, kept) file names.
    """
    workspace.mkdir(parents=True, exist_ok=True)
    copy_pictures(source, workspace)
    copied, kept = [], []
    for notebook in sorted(source.glob("*.ipynb")):
        target = workspace / notebook.name
        if target.exists():
            kept.append(notebook.name)
        else:
            shutil.copy2(notebook, target)
            copied.append(notebook.name)
    return copied, kept


def sync_student_workspace(source: Path, workspace: Path) -> tuple[list[str], list[str]]:
    """Like :func:`sync_workspace`, with the student versions of the notebooks in ``source``.

    The workspace gets the release marker too, so ``labkit solution`` refuses there (an
    instructor sets ``LABKIT_SOLUTIONS=1`` to allow it).

    Raises:
        ReleaseError: a notebook cannot be released (nothing is copied then).
    """
    with tempfile.TemporaryDirectory(prefix="labkit-student-") as tmp:
        release(Path(tmp), source)
        synced = sync_workspace(Path(tmp), workspace)
        shutil.copyfile(Path(tmp) / RELEASE_MARKER, workspace / RELEASE_MARKER)
        return synced


def sync_solution_workspace(source: Path, workspace: Path) -> tuple[list[str], list[str]]:
    """Like :func:`sync_workspace` (``--solutions``, for instructors): a student release marker goes."""
    synced = sync_workspace(source, workspace)
    (workspace / RELEASE_MARKER).unlink(missing_ok=True)
    return synced


def free_port(preferred: int) -> int:
    """``preferred`` if nothing listens there, else the next free port that no lesson uses."""
    port = preferred
    while True:
        if port not in AVOID_PORTS:
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", port))
                    return port
                except OSError:
                    pass
        port += 1


def runtime_dir() -> Path:
    """Where the lab keeps its own kernel spec and settings: ``<state>/lab``."""
    return state_dir() / "lab"


def prepare_runtime(runtime: Path) -> None:
    """Write the lab's kernel spec and JupyterLab settings under ``runtime`` (replacing earlier ones).

    Files: ``jupyter/kernels/python3/kernel.json`` (ipykernel's own spec, plus labkit as an
    extension) and ``settings/overrides.json``.
    """
    spec = runtime / "jupyter" / "kernels" / KERNEL_NAME
    shutil.rmtree(spec, ignore_errors=True)
    spec.parent.mkdir(parents=True, exist_ok=True)
    write_kernel_spec(spec, extra_arguments=KERNEL_ARGUMENTS)
    # JupyterLab reads overrides from one settings folder: start from the installation's own
    # (a distribution may put defaults there), then lay labkit's on top.
    settings = runtime / "settings"
    shutil.rmtree(settings, ignore_errors=True)
    installed = installed_settings_dir()
    if installed.is_dir():
        shutil.copytree(installed, settings)
    settings.mkdir(parents=True, exist_ok=True)
    overrides = settings / "overrides.json"
    merged: dict[str, Any] = {}
    if overrides.exists():
        try:
            loaded = json.loads(overrides.read_text())
            merged = loaded if isinstance(loaded, dict) else {}
        except (OSError, ValueError):
            merged = {}  # a broken file there would break JupyterLab's settings too: start from ours alone
    for plugin, values in SETTINGS.items():
        merged[plugin] = {**(merged.get(plugin) or {}), **values}
    overrides.write_text(json.dumps(merged, indent=2) + "\n")


def installed_settings_dir() -> Path:
    """The settings folder JupyterLab would use without labkit (``<app dir>/settings``)."""
    app_dir = os.environ.get("JUPYTERLAB_DIR") or str(Path(sys.prefix) / "share" / "jupyter" / "lab")
    return Path(app_dir) / "settings"


def lab_environment(runtime: Path, base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment JupyterLab runs in: the lab's kernel spec first on ``JUPYTER_PATH``."""
    env = dict(os.environ if base is None else base)
    env["JUPYTER_PATH"] = os.pathsep.join(p for p in (str(runtime / "jupyter"), env.get("JUPYTER_PATH")) if p)
    return env


def lab_command(port: int, workspace: Path, runtime: Path) -> list[str]:
    """The ``jupyter lab`` command line: the workspace as its root, the first lesson at start."""
    command = [
        sys.executable, "-m", "jupyter", "lab", "--no-browser",
        f"--port={port}", "--ip=127.0.0.1",
        f"--ServerApp.root_dir={workspace}",
        f"--LabApp.default_url=/lab/tree/{FIRST_LESSON}",
        f"--LabApp.app_settings_dir={runtime / 'settings'}",
    ]  # fmt: skip
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        command.append("--allow-root")
    return command


def main(argv: list[str] | None = None) -> int:
    """Prepare the workspace and start JupyterLab there; 2 (one line) when labkit cannot."""
    return exits.run(lambda: _lab(argv))


def _lab(argv: list[str] | None) -> int:
    parser = exits.Parser(prog="python -m labkit.lab")
    parser.add_argument("--workspace", type=Path, default=workspace_dir())
    parser.add_argument("--port", type=int, default=int(os.environ.get("LABKIT_PORT", DEFAULT_PORT)))
    parser.add_argument(
        "--no-start", action="store_true", help="prepare the workspace and the lab's kernel spec and settings only"
    )
    parser.add_argument(
        "--solutions", action="store_true", help="copy the solution notebooks (instructors), not the student versions"
    )
    args = parser.parse_args(argv)

    workspace = args.workspace.expanduser().resolve()
    source = REPO_DIR / "notebooks"
    sync = sync_solution_workspace if args.solutions else sync_student_workspace
    copied, kept = sync(source, workspace)
    print(f"workspace: {workspace}")
    if copied:
        print(f"  copied: {', '.join(copied)}")
    if kept:
        print(f"  kept your copies of: {', '.join(kept)} (delete one to get a fresh copy)")
    if args.no_start:
        # the kernel spec and settings too: a lab started by other means (JupyterHub's
        # spawner) puts <state>/lab/jupyter on JUPYTER_PATH, as lab_environment does
        prepare_runtime(runtime_dir())
        print(f"lab settings: {runtime_dir()}")
        return 0
    port = free_port(args.port)
    if port != args.port:
        print(f"port {args.port} is busy or used by a lesson; using {port}")
    runtime = runtime_dir()
    prepare_runtime(runtime)
    print(
        f"starting JupyterLab on http://127.0.0.1:{port}/lab/tree/{FIRST_LESSON} "
        "(open the URL with its token, printed below)"
    )
    sys.stdout.flush()
    # A Terminal opens in the server's working directory: the workspace, not the checkout.
    os.chdir(workspace)
    os.execve(sys.executable, lab_command(port, workspace, runtime), lab_environment(runtime))  # never returns


if __name__ == "__main__":
    sys.exit(main())
