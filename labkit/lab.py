"""``make lab``: put the lessons into the learner's workspace and start JupyterLab there.

Learners get the **student versions** (``labkit release``: each exercise's
solution replaced by its prompt, outputs cleared); ``--solutions`` gives an
instructor the solution notebooks instead. The workspace lives outside the
checkout (default ``~/labkit-work``), so a learner's edits never dirty the
repository. Copies the learner already has are kept; new lessons are added.
"""

from __future__ import annotations

import os
import shutil
import socket
import sys
import tempfile
from pathlib import Path

from labkit.cli import exits
from labkit.core.paths import REPO_DIR, workspace_dir
from labkit.course.release import release

#: JupyterLab's usual port is the one the seed publishes hello-dock on; the lab uses another.
DEFAULT_PORT = 8765
AVOID_PORTS = frozenset({8080, 8081, 8888, 5000})


def sync_workspace(source: Path, workspace: Path) -> tuple[list[str], list[str]]:
    """Copy lesson notebooks missing from ``workspace``; keep the ones already there.

    Returns:
        (copied, kept) file names.
    """
    workspace.mkdir(parents=True, exist_ok=True)
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

    Raises:
        ReleaseError: a notebook cannot be released (nothing is copied then).
    """
    with tempfile.TemporaryDirectory(prefix="labkit-student-") as tmp:
        release(Path(tmp), source)
        return sync_workspace(Path(tmp), workspace)


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


def main(argv: list[str] | None = None) -> int:
    """Prepare the workspace and start JupyterLab there; 2 (one line) when labkit cannot."""
    return exits.run(lambda: _lab(argv))


def _lab(argv: list[str] | None) -> int:
    parser = exits.Parser(prog="python -m labkit.lab")
    parser.add_argument("--workspace", type=Path, default=workspace_dir())
    parser.add_argument("--port", type=int, default=int(os.environ.get("LABKIT_PORT", DEFAULT_PORT)))
    parser.add_argument("--no-start", action="store_true", help="prepare the workspace only")
    parser.add_argument(
        "--solutions", action="store_true", help="copy the solution notebooks (instructors), not the student versions"
    )
    args = parser.parse_args(argv)

    workspace = args.workspace.expanduser().resolve()
    source = REPO_DIR / "notebooks"
    copied, kept = sync_workspace(source, workspace) if args.solutions else sync_student_workspace(source, workspace)
    print(f"workspace: {workspace}")
    if copied:
        print(f"  copied: {', '.join(copied)}")
    if kept:
        print(f"  kept your copies of: {', '.join(kept)} (delete one to get a fresh copy)")
    if args.no_start:
        return 0
    port = free_port(args.port)
    if port != args.port:
        print(f"port {args.port} is busy or used by a lesson; using {port}")
    print(f"starting JupyterLab on http://127.0.0.1:{port}/lab (the URL with its token follows)")
    sys.stdout.flush()
    command = [
        sys.executable, "-m", "jupyter", "lab", "--no-browser",
        f"--port={port}", "--ip=127.0.0.1", f"--ServerApp.root_dir={workspace}",
    ]  # fmt: skip
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        command.append("--allow-root")
    os.execv(sys.executable, command)  # never returns


if __name__ == "__main__":
    sys.exit(main())
