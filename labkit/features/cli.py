"""``labkit doctor``: is this machine ready for the lab?"""

from __future__ import annotations

import argparse

from labkit.core.commands import Subcommands, print_json
from labkit.core.errors import ExitCode
from labkit.core.i18n import _
from labkit.features.doctor import run_doctor


def register(subcommands: Subcommands) -> None:
    """Add ``doctor`` to labkit's sub-commands."""
    p = subcommands.add_parser("doctor", help=_("is this machine ready for the lab?"))
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=doctor)


def doctor(args: argparse.Namespace) -> ExitCode:
    """0 when the machine is ready, 1 when it is not (the report says what to do)."""
    report = run_doctor()
    if args.json:
        print_json(report.to_dict())
    else:
        print(report.render_text())
    return ExitCode.DONE if report.ready else ExitCode.NOT_YET
