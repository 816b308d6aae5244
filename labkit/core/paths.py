"""Where labkit keeps its state: outside the checkout, per user."""

from __future__ import annotations

import json
import os
from pathlib import Path

#: The repository (or installed package) root: Dockerfiles and notebooks live here.
PACKAGE_DIR = Path(__file__).resolve().parent.parent
REPO_DIR = PACKAGE_DIR.parent
#: The file ``labkit release`` (and ``make lab``) writes beside student notebooks: a folder
#: holding it is a student workspace, where ``labkit solution`` stays quiet unless enabled.
RELEASE_MARKER = ".labkit-release.json"
#: ``LABKIT_SOLUTIONS=1`` in the environment shows solutions even in a student workspace.
SOLUTIONS_ENV = "LABKIT_SOLUTIONS"


def state_dir() -> Path:
    """labkit's own state: answers, registry data, pid files.

    ``LABKIT_STATE_DIR`` overrides; otherwise ``$XDG_STATE_HOME/labkit`` or
    ``~/.local/state/labkit``.
    """
    explicit = os.environ.get("LABKIT_STATE_DIR")
    if explicit:
        path = Path(explicit)
    else:
        base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
        path = Path(base) / "labkit"
    path.mkdir(parents=True, exist_ok=True)
    return path


def workspace_dir() -> Path:
    """The learner's workspace (``LABKIT_WORKSPACE``, default ``~/labkit-work``)."""
    return Path(os.environ.get("LABKIT_WORKSPACE") or Path.home() / "labkit-work")


def release_marker(allow_solutions: bool = False) -> str:
    """The text of :data:`RELEASE_MARKER`: a student release, and whether it shows solutions.

    Example:
        >>> release_marker()
        '{"solutions": false, "student": true}\\n'
    """
    return json.dumps({"solutions": allow_solutions, "student": True}, sort_keys=True) + "\n"


def solutions_hidden(cwd: Path | None = None) -> Path | None:
    """The student release that hides reference solutions here, or ``None`` when they may be shown.

    A release marker in the workspace, or in the current folder or one above it (a notebook's
    kernel and a JupyterLab terminal start in the workspace), hides them, unless it says
    ``"solutions": true`` or ``LABKIT_SOLUTIONS=1`` is set. A marker that cannot be read
    still marks a student workspace.
    """
    if os.environ.get(SOLUTIONS_ENV) == "1":
        return None
    here = (cwd or Path.cwd()).resolve()
    for folder in (workspace_dir(), here, *here.parents):
        marker = folder / RELEASE_MARKER
        try:
            data = json.loads(marker.read_text())
        except FileNotFoundError:
            continue
        except (OSError, ValueError):
            return marker
        if not (isinstance(data, dict) and data.get("solutions") is True):
            return marker
    return None
