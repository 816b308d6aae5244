"""``labkit registry up|down|status``: the local registry mirror on 127.0.0.1:5000."""

from __future__ import annotations

import argparse

from labkit.core.commands import Subcommands, print_json
from labkit.core.errors import ExitCode
from labkit.core.i18n import _
from labkit.features.registry import mirror


def register(subcommands: Subcommands) -> None:
    """Add ``registry`` to labkit's sub-commands."""
    p = subcommands.add_parser("registry", help=_("the local registry mirror on 127.0.0.1:5000"))
    p.add_argument("action", choices=["up", "down", "status"])
    p.add_argument("--json", action="store_true")
    p.add_argument(
        "-q", "--quiet", action="store_true", help=_("no progress on stderr while pushing the course's images")
    )
    p.set_defaults(func=command)


def command(args: argparse.Namespace) -> ExitCode:
    """Run ``labkit registry ACTION``; ``up`` answers 2 when the registry is not running afterwards."""
    if args.action == "down":
        stopped = mirror.down()
        print(_("registry stopped") if stopped else _("no registry started by labkit was running"))
        return ExitCode.DONE
    status = mirror.up() if args.action == "up" else mirror.status()
    if args.json:
        print_json(status.to_dict())
    else:
        if status.running:
            line = _("registry running at {url} (pid {pid})") if status.pid else _("registry running at {url}")
        else:
            line = _("registry not running at {url} (pid {pid})") if status.pid else _("registry not running at {url}")
        print(line.format(url=status.url, pid=status.pid))
        for repo in status.repositories:
            print(f"  {repo}")
    return ExitCode.DONE if status.running or args.action == "status" else ExitCode.COULD_NOT
