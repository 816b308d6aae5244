"""What every package's ``cli.py`` shares: the type its ``register`` takes, and JSON output.

Each package that has sub-commands of ``labkit`` keeps them in its own ``cli.py``,
which exposes ``register(subcommands)``; :mod:`labkit.cli` (the layer above them all)
builds the one parser and calls each ``register``. A command function takes the parsed
arguments and returns an :class:`~labkit.core.errors.ExitCode`; anything it cannot
do, it raises as a :class:`~labkit.core.errors.LabkitError`, which :mod:`labkit.cli`
turns into exit code 2 and one line on stderr.
"""

from __future__ import annotations

import argparse
import json
from typing import Any, TypeAlias

#: What ``register`` functions receive: the parser's sub-commands (argparse has no public name for it).
Subcommands: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


def print_json(data: Any) -> None:
    """``--json`` output: indented, keys sorted, anything else as its string."""
    print(json.dumps(data, indent=2, sort_keys=True, default=str))
