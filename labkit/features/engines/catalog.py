"""The engines labkit can run besides the machine's own, and where it keeps them."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from labkit.core.errors import LabkitError
from labkit.core.i18n import _

#: The packages each engine's root filesystem gets: the engine, the firewall tool it
#: programs, and ``ps`` (``docker top`` runs the daemon's own).
PACKAGES = ("docker.io", "ca-certificates", "iptables", "procps")


@dataclass(frozen=True)
class Engine:
    """A Docker engine from one Debian suite.

    Attributes:
        name: what ``labkit engine`` calls it (the suite's code name).
        suite: the Debian suite its packages come from.
        title: the release, as people name it.
        engine: the Engine version that suite ships (major.minor), for the listing.
    """

    name: str
    suite: str
    title: str
    engine: str


#: By name, oldest first: Debian 13's engine, then the newest Debian packages.
ENGINES: dict[str, Engine] = {
    e.name: e
    for e in (
        Engine("trixie", "trixie", "Debian 13", "26.1"),
        Engine("sid", "sid", "Debian unstable", "28.5"),
    )
}


def lookup(name: str) -> Engine:
    """The engine called ``name``.

    Raises:
        LabkitError: no such engine (the message lists the known ones).
    """
    try:
        return ENGINES[name]
    except KeyError:
        known = ", ".join(ENGINES)
        raise LabkitError(
            _("there is no engine called {name!r}").format(name=name), _("choose one of: {known}").format(known=known)
        ) from None


def engines_dir() -> Path:
    """Where root filesystems and data live (``LABKIT_ENGINES_DIR``, default ``/var/lib/labkit/engines``)."""
    return Path(os.environ.get("LABKIT_ENGINES_DIR") or "/var/lib/labkit/engines")


def rootfs_dir(engine: Engine) -> Path:
    """The engine's root filesystem."""
    return engines_dir() / engine.name / "rootfs"


def data_dir(engine: Engine) -> Path:
    """The engine's data root (its images and containers), kept apart from the machine's engine's."""
    return engines_dir() / engine.name / "docker"
