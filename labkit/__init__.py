"""labkit: the helper library behind the hands-on Docker course.

In a notebook::

    import labkit
    %docker run hello-world                  # a real CLI command; a failure fails the cell
    labkit.check("welcome.first-container")  # checked against the live daemon

Example:
    >>> import labkit
    >>> labkit.sh("echo hi", quiet=True).output
    'hi\\n'
"""

from __future__ import annotations

import importlib
from typing import Any

from labkit.classroom import client as _classroom
from labkit.classroom import hub_checks as _hub_checks
from labkit.core import __version__ as __version__
from labkit.core.errors import LabkitError
from labkit.core.interactive import interactive
from labkit.core.shell import sh
from labkit.exercises import check, hint, setup, solution, solve
from labkit.exercises.machinery.reset import begin, reset
from labkit.features.doctor import run_doctor as doctor

__all__ = [
    "LabkitError", "begin", "check", "dashboard", "doctor", "exercise", "hint", "interactive",
    "reset", "setup", "sh", "solution", "solve", "trace_view",
]  # fmt: skip


# Every check and hint the progress record keeps also goes to the classroom the learner
# joined (a no-op until they join). Here, because every notebook kernel and every `labkit`
# command imports this package first.
_classroom.install()
# In a classroom hub's lab, checks are decided and recorded by the hub's grader (a no-op elsewhere).
_hub_checks.install()

#: Widgets import ipywidgets (about 0.3 s), so they load on first use.
_WIDGETS = {
    "exercise": "labkit.notebook.widgets",
    "trace_view": "labkit.notebook.widgets",
    "dashboard": "labkit.notebook.dashboard",
}

#: The modules lessons use by a short name (``from labkit import registry``), wherever they
#: live in the layers (ARCHITECTURE.md). Loaded on first use: a notebook that never
#: touches the VM never imports it.
LESSON_MODULES = {
    "engine": "labkit.core.engine",
    "wait": "labkit.core.wait",
    "paths": "labkit.core.paths",
    "layers": "labkit.features.layers",
    "registry": "labkit.features.registry.mirror",
    "registry_api": "labkit.features.registry.api",
    "trace": "labkit.features.trace",
    "vm": "labkit.features.vm",
}


def __getattr__(name: str) -> Any:
    """Widgets (``labkit.exercise``, ``labkit.dashboard``, ``labkit.trace_view``) and the lesson modules load when first used."""
    if name in _WIDGETS:
        module = importlib.import_module(_WIDGETS[name])
        return getattr(module, name)
    if name in LESSON_MODULES:
        return importlib.import_module(LESSON_MODULES[name])
    raise AttributeError(f"module 'labkit' has no attribute {name!r}")


def _show_labkit_error(
    shell: Any, etype: type, value: BaseException, tb: Any, tb_offset: int | None = None
) -> list[str]:
    """A labkit error in a cell is one readable line, not a traceback; the cell still fails."""
    stb = [f"\x1b[31mlabkit:\x1b[0m {value}"]
    shell._showtraceback(etype, value, stb)  # IPython leaves showing a custom traceback to the handler
    return stb


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext labkit``: registers the ``%docker`` magic and shows labkit errors as one line."""
    # Loaded here: the magics pull in IPython's magic machinery, which a `labkit` command never needs.
    from labkit.notebook.magics import register

    register(ipython)
    ipython.set_custom_exc((LabkitError,), _show_labkit_error)


def _auto_register() -> None:
    """``import labkit`` in a notebook is enough for ``%docker``."""
    try:
        # Loaded here: importing IPython costs a `labkit` command start-up time, and outside a kernel it is not needed.
        from IPython import get_ipython
    except ImportError:
        return
    ipython = get_ipython()
    if ipython is not None:
        load_ipython_extension(ipython)


_auto_register()
