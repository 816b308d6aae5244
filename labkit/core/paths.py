"""Where labkit keeps its state: outside the checkout, per user."""

from __future__ import annotations

import os
from pathlib import Path

#: The repository (or installed package) root: Dockerfiles and notebooks live here.
PACKAGE_DIR = Path(__file__).resolve().parent.parent
REPO_DIR = PACKAGE_DIR.parent


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
