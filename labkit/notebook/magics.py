"""The ``%docker`` line magic: ``%docker run hello-world`` is ``labkit.sh("docker run hello-world")``.

Unlike ``!docker ...``, a failing command fails the cell, so nbval notices.
A lesson that shows an error on purpose writes ``%docker --expect=125 run nosuch``.
The line goes to the shell untouched: Go templates such as ``--format "{{.Names}}"``
and ``$(pwd)`` work as in a terminal (IPython's ``{var}`` expansion is off).
"""

from __future__ import annotations

import re
from typing import Any

from IPython.core.magic import no_var_expand

from labkit.core.shell import Completed, sh

_EXPECT = re.compile(r"^\s*--expect[= ](\d+|any)\s+")


def docker_magic(line: str) -> Completed:
    """Run ``docker <line>`` through :func:`labkit.sh`."""
    expect: int | None = 0
    match = _EXPECT.match(line)
    if match:
        expect = None if match.group(1) == "any" else int(match.group(1))
        line = line[match.end() :]
    return sh(f"docker {line}", expect=expect)


def register(ipython: Any) -> None:
    """Register ``%docker`` in an IPython shell (idempotent)."""
    ipython.register_magic_function(no_var_expand(docker_magic), magic_kind="line", magic_name="docker")
