"""Lesson 02's image-listing and prune verdicts, decided from facts alone.

The checks in :mod:`labkit.exercises.lesson02_images_and_layers` read the daemon into a
:class:`ListFacts` or a :class:`PruneFacts`; the functions here decide, so every
near-miss is unit-tested from sample data without a daemon.

Example:
    >>> facts = ListFacts("lab/inventory:v2", "sha256:" + "ab" * 32, {})
    >>> list_verdict("abababababab", facts).passed, list_verdict("sha256:" + "ab" * 32, facts).passed
    (True, True)
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from labkit.core import refs
from labkit.core.errors import InvalidReference
from labkit.core.i18n import _, ngettext
from labkit.exercises.machinery.model import Verdict, not_yet, passed

#: How many hex digits of an image ID ``docker image ls`` shows.
SHORT_ID = 12
_HEX = re.compile(r"[0-9a-f]+")
#: A size as docker prints one (``1.98MB``) or as people write it (``1.98 MB``, ``2 mb``).
_SIZE = re.compile(r"\d+(?:\.\d+)?\s*(?:[kmgt]i?)?b", re.I)


# --- images.list -----------------------------------------------------------------------------


@dataclass(frozen=True)
class ListFacts:
    """What the daemon holds, as far as an answer to ``images.list`` may be confused with it.

    Attributes:
        name: the image asked about, ``lab/inventory:v2``.
        wanted: its full ID (``sha256:…``); ``""`` when the daemon does not have it.
        others: every other local image's full ID → a name for it (``lab/inventory:v1``, ``busybox:latest``).
    """

    name: str
    wanted: str
    others: Mapping[str, str]


def _clean(answer: str) -> str:
    return answer.strip().strip("'\"`").strip().lower()


def list_verdict(answer: str, facts: ListFacts) -> Verdict:
    """Decide ``images.list`` for one answer: the pure part of the check.

    Every spelling of the ID passes: the 12 hex digits ``docker image ls`` shows, the full
    64, any length in between, with or without ``sha256:``, in either case.
    """
    if not facts.wanted:
        return not_yet(
            _("{name} is not on this daemon, so there is no ID to read.").format(name=facts.name),
            _('Run the setup again (`labkit.setup("images.list")`): it makes the image.'),
        )
    text = _clean(answer)
    digits = text.removeprefix("sha256:")
    want = facts.wanted.removeprefix("sha256:")
    is_hex = bool(_HEX.fullmatch(digits))
    if is_hex and want.startswith(digits) and len(digits) >= SHORT_ID:
        return passed(
            _(
                "{digits} is the IMAGE ID of {name} (docker image ls shows the first {short_id} of its 64 hex digits)."
            ).format(digits=digits[:SHORT_ID], name=facts.name, short_id=SHORT_ID),
            image_id=facts.wanted,
        )
    if is_hex and want.startswith(digits):
        return not_yet(
            _("That is the start of the right ID, {n_digits} of the {short_id} hex digits the list shows.").format(
                n_digits=len(digits), short_id=SHORT_ID
            ),
            _("Copy the whole IMAGE ID column of that line."),
        )
    if is_hex and len(digits) < SHORT_ID:
        return not_yet(
            _("{n_digits} hex digits are too few to tell images apart: the list shows {short_id}.").format(
                n_digits=len(digits), short_id=SHORT_ID
            ),
            _("Copy the whole IMAGE ID column on the line of {name}.").format(name=facts.name),
        )
    if is_hex:
        matches = sorted(
            {name for ident, name in facts.others.items() if ident.removeprefix("sha256:").startswith(digits)}
        )
        if len(matches) == 1 and _repository(matches[0]) == _repository(facts.name):
            return not_yet(
                _("That is the ID of {matches}: the right repository, but another tag.").format(matches=matches[0]),
                _("Both lines say {familiar_name} under REPOSITORY; the TAG column tells them apart.").format(
                    familiar_name=refs.parse(facts.name).familiar_name
                ),
            )
        if matches:
            return not_yet(
                _("That is the ID of {matches}, not of {name}.").format(matches=", ".join(matches), name=facts.name),
                _("Find the line whose REPOSITORY and TAG together spell the name asked for."),
            )
        return not_yet(
            _("No image on this daemon has an ID starting with those digits."),
            _("Was a character lost while copying? Copy the IMAGE ID column again."),
        )
    if _SIZE.fullmatch(text):
        return not_yet(
            _("That looks like a size: the SIZE column, not the IMAGE ID."),
            _("The IMAGE ID is the column after TAG: 12 characters, digits and the letters a to f."),
        )
    if _is_name(text):
        return not_yet(
            _("That is an image name (REPOSITORY and TAG); the exercise asks for its ID."),
            _("The IMAGE ID is the column after TAG, on the same line."),
        )
    return not_yet(
        _("That is not an image ID: an ID is hex digits (0 to 9, a to f), 12 of them in the list."),
        _("Read the IMAGE ID column on the line of {name}.").format(name=facts.name),
    )


def _repository(name: str) -> str:
    """``lab/inventory`` for ``lab/inventory:v1``; a string that is no name stays as it is."""
    try:
        return refs.parse(name).familiar_name
    except InvalidReference:
        return name


def _is_name(text: str) -> bool:
    if "/" not in text and ":" not in text:
        return False
    try:
        refs.parse(text)
    except InvalidReference:
        return False
    return True


# --- images.prune ----------------------------------------------------------------------------


@dataclass(frozen=True)
class PruneFacts:
    """What became of the images setup made for ``images.prune``, and of the course's.

    Attributes:
        made: how many dangling images setup made.
        left: the short IDs of those still on the daemon.
        kept: the tagged image setup made to stay, ``lab/kept:v1``.
        kept_present: whether it is still there.
        course_missing: course images that were there at setup and are gone now.
        others_gone: dangling images that were not the exercise's, there at setup and gone now.
        label: the label setup put on every image it made, ``labkit.lesson=02``.
    """

    made: int
    left: tuple[str, ...]
    kept: str
    kept_present: bool
    course_missing: tuple[str, ...] = ()
    others_gone: int = 0
    label: str = "labkit.lesson=02"


def prune_verdict(facts: PruneFacts) -> Verdict:
    """Decide ``images.prune``: the pure part of the check.

    Passes when every dangling image setup made is gone while the tagged one and the
    course's images stay: a filtered prune, an unfiltered one, or ``docker rmi`` of each
    ID all get there. A nudge (no hint of its own, so the first tier) while nothing went.
    """
    # Which ones are left is news only when some went (the IDs change with every setup).
    evidence = {"left": ", ".join(facts.left)} if facts.left and len(facts.left) < facts.made else {}
    if facts.course_missing:
        gone = ", ".join(facts.course_missing)
        return not_yet(
            ngettext(
                "The course's {gone} is gone too: they have names, so they were never dangling.",
                "The course's {gone} are gone too: they have names, so they were never dangling.",
                len(facts.course_missing),
            ).format(gone=gone),
            _(
                "With -a, prune removes every image no container uses, not only the dangling ones. "
                "Bring them back with `labkit images ensure` in a terminal, then run the setup again."
            ),
            course_missing=gone,
            **evidence,
        )
    if not facts.kept_present:
        return not_yet(
            _("{kept} is gone too. It has a name, so it was not dangling.").format(kept=facts.kept),
            _(
                "With -a, prune removes every unused image, named or not; without -a it takes only the "
                "dangling ones. Run the setup again, then remove only the images with no name."
            ),
            **evidence,
        )
    if len(facts.left) == facts.made:
        return not_yet(
            ngettext(
                "The {n} dangling image setup made (label {label}) is all still here.",
                "The {n} dangling images setup made (label {label}) are all still here.",
                facts.made,
            ).format(n=facts.made, label=facts.label),
            None,
            **evidence,
        )
    if facts.left:
        return not_yet(
            # Some went and some are left, so setup made two or more.
            ngettext(
                "{left_count} of the {n} dangling images setup made is still here: {left}.",
                "{left_count} of the {n} dangling images setup made are still here: {left}.",
                len(facts.left),
            ).format(left_count=len(facts.left), n=facts.made, left=", ".join(facts.left)),
            _("Remove the rest the same way, or all of them at once with prune and the label filter."),
            **evidence,
        )
    gone = ngettext(
        "The {n} dangling image setup made is gone, and {kept} and the course's images are still here.",
        "The {n} dangling images setup made are gone, and {kept} and the course's images are still here.",
        facts.made,
    ).format(n=facts.made, kept=facts.kept)
    if facts.others_gone:
        also = ngettext(
            " Your prune also removed {n} other dangling image: a --filter label={label} keeps it to the lesson's.",
            " Your prune also removed {n} other dangling images: a --filter label={label} keeps it to the lesson's.",
            facts.others_gone,
        ).format(n=facts.others_gone, label=facts.label)
        gone += also
    return passed(gone, removed=facts.made)
