"""``labkit images ensure|list|bundle|load``: the course's images, offline."""

from __future__ import annotations

import argparse

from labkit.core.commands import Subcommands
from labkit.core.errors import ExitCode, UsageError
from labkit.core.i18n import _
from labkit.features import images


def register(subcommands: Subcommands) -> None:
    """Add ``images`` to labkit's sub-commands."""
    p = subcommands.add_parser("images", help=_("the course's images, offline"))
    p.add_argument("action", choices=["ensure", "list", "bundle", "load"])
    p.add_argument("args", nargs="*", metavar="ARG", help=_("ensure|list [NAME...]; bundle FILE [NAME...]; load FILE"))
    p.add_argument(
        "-q", "--quiet", action="store_true", help=_("no progress on stderr while building, pulling, saving or loading")
    )
    p.set_defaults(func=command)


def command(args: argparse.Namespace) -> ExitCode:
    """Run ``labkit images ACTION``; ``list`` answers 1 when an image is missing.

    Raises:
        UsageError: ``bundle`` or ``load`` without a FILE.
    """
    if args.action in ("bundle", "load"):
        if not args.args:
            raise UsageError("labkit images", _("images {action} needs a FILE").format(action=args.action))
        path, names = args.args[0], args.args[1:]
        if args.action == "bundle":
            images.bundle(path, names or None)
        else:
            images.load(path)
        return ExitCode.DONE
    wanted_names = args.args or None
    if args.action == "ensure":
        images.ensure(wanted_names)
        return ExitCode.DONE
    wanted = None if wanted_names is None else {images.find(n).name for n in wanted_names}
    states = [s for s in images.status() if wanted is None or s.name in wanted]
    for state in states:
        mark = "✔" if state.present else "✗"
        origin = _(" (built offline by labkit)") if state.offline_built else ""
        print(f"{mark} {state.name:<28} {state.source}{origin}")
    return ExitCode.DONE if all(s.present for s in states) else ExitCode.NOT_YET
