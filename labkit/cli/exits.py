"""The one place where an error becomes an exit code and one line on stderr.

Every labkit program (``labkit``, ``python -m labkit.lab``, ``python -m labkit.bench``)
runs its work through :func:`run`:

- 0: done, or (``check``) passed;
- 1: not yet (``check``), not ready (``doctor``), an image missing (``images list``):
  a command returns these itself;
- 2: could not check or do it: a :class:`~labkit.core.errors.LabkitError`, including a
  usage error (:class:`Parser` turns argparse's into :class:`~labkit.core.errors.UsageError`);
- 130: interrupted (Ctrl-C).

Any other exception is a bug in labkit, and its traceback is what a bug report needs.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from typing import NoReturn

from labkit.core.errors import ExitCode, LabkitError, UsageError
from labkit.core.i18n import _

INTERRUPTED = 130


class Parser(argparse.ArgumentParser):
    """An argparse parser whose usage errors are :class:`UsageError` (exit 2, one line), not usage text and an exit.

    Its sub-command parsers are of this class too (argparse makes them like their parent).
    """

    def error(self, message: str) -> NoReturn:
        raise UsageError(self.prog, message)


def exit_status(error: BaseException, program: str = "labkit") -> tuple[int, str | None]:
    """The exit code for an exception that ended a command, and the one line to print on stderr (None: nothing).

    Raises:
        BaseException: ``error`` itself when it is not labkit's to explain (a bug, or ``SystemExit``).
    """
    if isinstance(error, LabkitError):
        return int(error.exit_code), f"{program}: {error}"
    if isinstance(error, KeyboardInterrupt):
        return INTERRUPTED, _("{program}: interrupted").format(program=program)
    if isinstance(error, BrokenPipeError):
        # `labkit ... | head`: the reader left; say nothing more, like other Unix tools.
        return ExitCode.DONE, None
    raise error


def run(work: Callable[[], int], program: str = "labkit") -> int:
    """Run ``work`` and return its exit code, or the one :func:`exit_status` gives for what it raised."""
    try:
        return int(work())
    except (LabkitError, KeyboardInterrupt, BrokenPipeError) as e:
        code, line = exit_status(e, program)
        if isinstance(e, BrokenPipeError):
            # Python would report the pipe again while flushing stdout at exit: point stdout at nothing.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        if line is not None:
            print(line, file=sys.stderr)
        return code
