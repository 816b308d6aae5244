"""``labkit engine``: build, start and stop the newer Docker engines of the engine matrix."""

from __future__ import annotations

import argparse
import sys

from labkit.core.commands import Subcommands, print_json
from labkit.core.errors import ExitCode, UsageError
from labkit.core.i18n import _
from labkit.features.engines import daemon, rootfs
from labkit.features.engines.catalog import ENGINES, lookup


def register(subcommands: Subcommands) -> None:
    """Add ``engine`` to labkit's sub-commands."""
    p = subcommands.add_parser(
        "engine",
        help=_("run the course on a newer Docker engine (Debian 13's, or unstable's) in place of this machine's"),
        description=_(
            "list: the engines and which one runs. prepare NAME: build its root filesystem from Debian's archive "
            "(root, about a minute). up NAME: stop the machine's dockerd and run NAME's instead. "
            "down: stop it and restore the firewall (then scripts/provision-docker starts the machine's engine)."
        ),
    )
    p.add_argument("action", choices=["list", "prepare", "up", "down"])
    p.add_argument("name", nargs="?", choices=list(ENGINES), help=_("the engine (prepare and up)"))
    p.add_argument("--json", action="store_true", help=_("list as JSON"))
    p.set_defaults(func=command)


def command(args: argparse.Namespace) -> ExitCode:
    """Run ``labkit engine ACTION [NAME]``."""
    if args.action == "list":
        rows = daemon.listing()
        if args.json:
            print_json(rows)
        else:
            for row in rows:
                built = f"docker.io {row['docker.io']}" if row["docker.io"] else _("not built")
                running = _(", running") if row["running"] else ""
                print(f"{row['engine']:<8} {row['release']} (Engine {row['expected']}): {built}{running}")
        return ExitCode.DONE
    if args.action == "down":
        daemon.down(sys.stdout)
        return ExitCode.DONE
    if args.name is None:
        raise UsageError(
            "labkit engine",
            _("engine {action} needs an engine name: {names}").format(action=args.action, names=", ".join(ENGINES)),
        )
    engine = lookup(args.name)
    if args.action == "prepare" or rootfs.record(engine) is None:  # up builds what is missing first
        rootfs.prepare(engine, sys.stdout)
    if args.action == "up":
        daemon.up(engine, sys.stdout)
    return ExitCode.DONE
