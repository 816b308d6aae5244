"""The ``labkit`` command: one parser, whose sub-commands each package registers.

Each package keeps its commands in its own ``cli.py`` with a ``register(subcommands)``
function; this module, the layer above them all, builds the parser from them in the
order ``labkit --help`` lists them, and runs the chosen command through
:func:`labkit.cli.exits.run`, the one place that turns errors into exit codes:
0 done or passed, 1 not yet (``check``) or not ready (``doctor``), 2 could not do
the job (one line on stderr says why).

Example:
    >>> from labkit.cli import main
    >>> main(["hint", "welcome.first-container"])  # doctest: +SKIP
    Hint 1/3: ...
    0
"""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Callable, Sequence

from labkit.classroom import cli as classroom_cli
from labkit.classroom import hub_cli
from labkit.cli.exits import Parser, exit_status, run
from labkit.core import activity
from labkit.core.commands import Subcommands
from labkit.core.i18n import _
from labkit.course import cli as course_cli
from labkit.exercises import cli as exercises_cli
from labkit.features import cli as features_cli
from labkit.features.engines import cli as engines_cli
from labkit.features.images import cli as images_cli
from labkit.features.registry import cli as registry_cli
from labkit.features.trace import cli as trace_cli
from labkit.features.vm import cli as vm_cli

#: Each package's sub-commands, in the order ``labkit --help`` lists them.
GROUPS: tuple[Callable[[Subcommands], None], ...] = (
    features_cli.register,  # doctor
    exercises_cli.register_reset,  # reset
    images_cli.register,
    registry_cli.register,
    vm_cli.register,
    engines_cli.register,
    trace_cli.register,
    exercises_cli.register,  # exercise, check, hint, solution
    course_cli.register,  # release, progress, grade
    classroom_cli.register,
    hub_cli.register,
)


def build_parser() -> argparse.ArgumentParser:
    """The ``labkit`` parser, with every package's sub-commands."""
    parser: argparse.ArgumentParser = Parser(prog="labkit", description=_("Hands-on Docker course helper."))
    subcommands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for register in GROUPS:
        register(subcommands)
    return parser


def _dispatch(argv: Sequence[str] | None) -> int:
    args = build_parser().parse_args(argv)
    quiet = activity.quiet() if getattr(args, "quiet", False) else contextlib.nullcontext()
    with quiet:
        return int(args.func(args))


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``labkit ARGS`` (``sys.argv[1:]`` by default) and return its exit code."""
    return run(lambda: _dispatch(argv))


__all__ = ["GROUPS", "Parser", "build_parser", "exit_status", "main", "run"]
