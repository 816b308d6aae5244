"""The Debian mirror this machine already uses, read from its apt sources.

labkit never names a mirror itself: ``debootstrap`` downloads from wherever the
machine's own ``apt-get`` does (a classroom proxy, a snapshot, a local mirror).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from labkit.core.errors import NotSupported
from labkit.core.i18n import _

#: Overrides the apt sources when set (a URL such as the classroom's own mirror).
MIRROR_ENV = "LABKIT_DEBIAN_MIRROR"


@dataclass(frozen=True)
class AptSource:
    """One source entry: binary or source packages, where, which suites and components."""

    types: tuple[str, ...]
    uri: str
    suites: tuple[str, ...]
    components: tuple[str, ...]

    def is_base_mirror(self) -> bool:
        """A ``deb`` source with ``main`` for a suite that is not a ``-security`` one."""
        return (
            "deb" in self.types
            and "main" in self.components
            and any(not s.endswith("-security") and not s.endswith("/updates") for s in self.suites)
        )


def parse_one_line(text: str) -> list[AptSource]:
    """Entries of a ``sources.list`` in the one-line format.

    Example:
        >>> parse_one_line("deb [arch=amd64 signed-by=/k.gpg] http://m/debian bookworm main")[0].uri
        'http://m/debian'
    """
    sources = []
    for raw in text.splitlines():
        words = raw.split("#", 1)[0].split()
        if len(words) < 3 or words[0] not in ("deb", "deb-src"):
            continue
        kind, rest = words[0], words[1:]
        if rest[0].startswith("["):  # options: "[arch=amd64 signed-by=...]", maybe split over words
            while rest and not rest[0].endswith("]"):
                rest = rest[1:]
            rest = rest[1:]
        if len(rest) < 2:
            continue
        sources.append(AptSource((kind,), rest[0].rstrip("/"), (rest[1],), tuple(rest[2:])))
    return sources


def parse_deb822(text: str) -> list[AptSource]:
    """Entries of a ``.sources`` file in the deb822 format (blank-line separated stanzas).

    Stanzas with ``Enabled: no`` are left out; continuation lines join their field.

    Example:
        >>> parse_deb822("Types: deb\\nURIs: http://m/debian\\nSuites: bookworm\\nComponents: main\\n")[0].suites
        ('bookworm',)
    """
    sources = []
    for stanza in _stanzas(text):
        if stanza.get("enabled", "yes").strip().lower() == "no":
            continue
        uris = stanza.get("uris", "").split()
        if not uris:
            continue
        sources.append(
            AptSource(
                tuple(stanza.get("types", "").split()),
                uris[0].rstrip("/"),
                tuple(stanza.get("suites", "").split()),
                tuple(stanza.get("components", "").split()),
            )
        )
    return sources


def _stanzas(text: str) -> list[dict[str, str]]:
    stanzas: list[dict[str, str]] = []
    fields: dict[str, str] = {}
    key = ""
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        if not line.strip():
            if fields:
                stanzas.append(fields)
            fields, key = {}, ""
        elif line[0] in " \t" and key:
            fields[key] += " " + line.strip()
        elif ":" in line:
            key, value = line.split(":", 1)
            key = key.strip().lower()
            fields[key] = value.strip()
    if fields:
        stanzas.append(fields)
    return stanzas


def read_sources(root: Path = Path("/")) -> list[AptSource]:
    """Every apt source on the machine, in the order apt reads them."""
    etc = root / "etc" / "apt"
    sources: list[AptSource] = []
    main_list = etc / "sources.list"
    if main_list.is_file():
        sources += parse_one_line(main_list.read_text(errors="replace"))
    parts = etc / "sources.list.d"
    if parts.is_dir():
        for path in sorted(parts.iterdir()):
            if path.suffix == ".list":
                sources += parse_one_line(path.read_text(errors="replace"))
            elif path.suffix == ".sources":
                sources += parse_deb822(path.read_text(errors="replace"))
    return sources


def debian_mirror(root: Path = Path("/")) -> str:
    """The first ``main`` mirror of the machine's apt sources that is not a security one.

    ``LABKIT_DEBIAN_MIRROR`` takes precedence.

    Raises:
        NotSupported: the sources name no such mirror.
    """
    explicit = os.environ.get(MIRROR_ENV, "").strip()
    if explicit:
        return explicit.rstrip("/")
    for source in read_sources(root):
        if source.is_base_mirror():
            return source.uri
    raise NotSupported(
        _("no Debian mirror with `main` in {path} or sources.list.d/").format(path=root / "etc/apt/sources.list"),
        _("set {variable} to your Debian mirror's URL, or load a bundle with `labkit images load FILE`").format(
            variable=MIRROR_ENV
        ),
    )
