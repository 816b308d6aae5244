"""``labkit vm prepare``: fetch and build the VM's kernel and initramfs ahead of class."""

from __future__ import annotations

import argparse

from labkit.core.commands import Subcommands
from labkit.core.errors import ExitCode
from labkit.core.i18n import _
from labkit.features import vm


def register(subcommands: Subcommands) -> None:
    """Add ``vm`` to labkit's sub-commands."""
    p = subcommands.add_parser(
        "vm", help=_("the VM of lesson 01: fetch and build its kernel and initramfs ahead of class")
    )
    p.add_argument("action", choices=["prepare"])
    p.set_defaults(func=command)


def command(args: argparse.Namespace) -> ExitCode:
    """Run ``labkit vm prepare``."""
    print(vm.prepare())
    return ExitCode.DONE
