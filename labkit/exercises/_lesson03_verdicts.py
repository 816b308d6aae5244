"""Lesson 03's verdicts: what ``registry.push``, ``registry.digest`` and ``images.pull-rmi`` decide, from facts alone.

The checks in :mod:`labkit.exercises.lesson03_registries` read the registry, the
daemon and its events into a :class:`PushFacts`, a :class:`DigestFacts` or a
:class:`PullFacts`; the functions here decide
from those, so every near-miss can be unit-tested from sample data without a daemon.

Example:
    >>> push_verdict(PushFacts(source_id="sha256:" + "a" * 64)).passed
    False
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from labkit.core.i18n import _
from labkit.exercises.machinery.model import Verdict, not_yet, passed
from labkit.features.registry import api as registry_api
from labkit.features.registry import mirror as registry

REPOSITORY = "lab/hello-dock"
TAG = "v1"
#: The name the learner pushes (the registry's default port; the solution is written for it).
TARGET = f"localhost:{registry.DEFAULT_PORT}/{REPOSITORY}:{TAG}"


# --- registry.push ---------------------------------------------------------------------------


@dataclass(frozen=True)
class PushFacts:
    """What the registry and the daemon hold, as far as ``registry.push`` cares.

    Attributes:
        source_id: the local ``labkit/hello-dock`` image ID (its config digest).
        remote_config: config digest of the registry's ``lab/hello-dock:v1``; ``None`` when
            it has no such tag, ``""`` for an index.
        remote_digest: that manifest's digest.
        repo_digests: the source image's local digest references under ``lab/hello-dock``.
        local_tag_id: image ID behind a local ``<registry>/lab/hello-dock:v1`` tag, if any.
        other_tags: other tags of ``lab/hello-dock`` in the registry.
        elsewhere: ``repository:tag`` in the registry holding the source image, outside the
            repositories ``labkit registry up`` seeds.
        other_local_names: local names of the source image that start with the registry's address.
        remote_names: what the local image behind a wrong remote config is called.
    """

    source_id: str
    remote_config: str | None = None
    remote_digest: str = ""
    repo_digests: tuple[str, ...] = ()
    local_tag_id: str | None = None
    other_tags: tuple[str, ...] = ()
    elsewhere: tuple[str, ...] = ()
    other_local_names: tuple[str, ...] = ()
    remote_names: str = ""
    evidence: dict[str, Any] = field(default_factory=dict)


def push_verdict(facts: PushFacts) -> Verdict:
    """Decide ``registry.push`` from the facts: the pure part of the check.

    Passes when the registry's ``lab/hello-dock:v1`` is the local ``labkit/hello-dock``
    (its config digest is the image ID) and, where the daemon recorded the push (a
    ``RepoDigests`` entry for that repository), that record names the registry's manifest.
    """
    ev = facts.evidence
    if facts.remote_config is not None:
        if facts.remote_config == facts.source_id:
            if facts.repo_digests and facts.remote_digest not in facts.repo_digests:
                return not_yet(
                    _(
                        "The registry's {repository}:{tag} holds labkit/hello-dock, but not the manifest your daemon "
                        "pushed (the daemon recorded {repo_digests})."
                    ).format(repository=REPOSITORY, tag=TAG, repo_digests=", ".join(facts.repo_digests)),
                    _("Something else wrote that tag after your push: push your image again."),
                    **ev,
                )
            return passed(
                _(
                    "The registry holds {repository}:{tag}, and it is labkit/hello-dock: the manifest names the same "
                    "config as your local image, and its digest matches the daemon's record of the push."
                ).format(repository=REPOSITORY, tag=TAG),
                **ev,
            )
        what = _("a multi-platform index") if facts.remote_config == "" else facts.remote_names or _("another image")
        return not_yet(
            _("The registry has {repository}:{tag}, but it holds {what}, not labkit/hello-dock.").format(
                repository=REPOSITORY, tag=TAG, what=what
            ),
            _(
                "The name you pushed pointed at another image: make it name labkit/hello-dock, then push again "
                "(a push replaces what the registry holds under that name)."
            ),
            **ev,
        )
    if facts.local_tag_id is not None:
        if facts.local_tag_id == facts.source_id:
            return not_yet(
                _(
                    "{target} exists on your daemon, but the registry does not have it: it was tagged, not pushed."
                ).format(target=TARGET),
                _(
                    "A tag is only a local name on your daemon: nothing has reached the registry yet. Which command "
                    "sends it there?"
                ),
                **ev,
            )
        return not_yet(
            _(
                "{target} exists on your daemon, but it names another image, and the registry does not have it yet."
            ).format(target=TARGET),
            _(
                "That name must point at labkit/hello-dock itself (compare the IMAGE ID column of `docker image ls`); "
                "then send it to the registry."
            ),
            **ev,
        )
    if facts.other_tags:
        return not_yet(
            _("The registry has {repository}, but under {other_tags}, not :{tag}.").format(
                repository=REPOSITORY, other_tags=", ".join(":" + t for t in facts.other_tags), tag=TAG
            ),
            (
                _(
                    "Without a tag, docker uses :latest. The tag is the part after the repository's colon: the "
                    "exercise wants :{tag}, in the name you give and in the name you push."
                )
                if "latest" in facts.other_tags
                else _(
                    "The tag is the part after the repository's colon: the exercise wants :{tag}, in the name you "
                    "give and in the name you push."
                )
            ).format(tag=TAG),
            **ev,
        )
    if facts.elsewhere:
        return not_yet(
            _("labkit/hello-dock is in the registry as {elsewhere}, not as {repository}:{tag}.").format(
                elsewhere=", ".join(facts.elsewhere), repository=REPOSITORY, tag=TAG
            ),
            _(
                "The repository is the part between the registry's address and the tag: the exercise wants "
                "{repository}."
            ).format(repository=REPOSITORY),
            **ev,
        )
    if facts.other_local_names:
        return not_yet(
            _(
                "labkit/hello-dock is tagged {other_local_names}, but nothing reached {repository}:{tag} in the "
                "registry."
            ).format(other_local_names=", ".join(facts.other_local_names), repository=REPOSITORY, tag=TAG),
            _(
                "The name must be exactly {target}: the registry's address, then the repository {repository}, "
                "then :{tag}."
            ).format(target=TARGET, repository=REPOSITORY, tag=TAG),
            **ev,
        )
    return not_yet(
        _("The registry has no {repository}:{tag} yet.").format(repository=REPOSITORY, tag=TAG),
        _(
            "A push sends an image to the registry its name starts with. What name must labkit/hello-dock have "
            "for that, and which command gives an image a second name?"
        ),
        **ev,
    )


# --- registry.digest -------------------------------------------------------------------------


@dataclass(frozen=True)
class DigestFacts:
    """Digests an answer might be confused with, all read live.

    Attributes:
        manifest: the right answer, the manifest digest of ``lab/hello-dock:v1``.
        config: the image ID (digest of the config blob).
        layers: compressed layer digests (in the manifest) and uncompressed ones (``RootFS.Layers``).
        schema1: the digest of the schema 1 manifest a request without ``Accept`` gets.
        seeded: the manifest digest of ``labkit/hello-dock:latest`` as ``labkit registry up`` pushed it.
        others: digest → image name, for the other local images' ``RepoDigests``.
    """

    manifest: str
    config: str = ""
    layers: frozenset[str] = frozenset()
    schema1: str = ""
    seeded: str = ""
    others: dict[str, str] = field(default_factory=dict)


def digest_verdict(answer: str, facts: DigestFacts) -> Verdict:
    """Decide ``registry.digest`` for one answer: the pure part of the check.

    The full form ``sha256:<64 hex>`` is required (case and surrounding spaces or quotes
    do not matter): without the algorithm or shortened, a string does not name content
    for certain. Each near-miss gets its own hint.
    """
    given = registry_api.normalize_digest(answer)
    if given == facts.manifest:
        return passed(
            _("{given} is the digest of the manifest the registry holds as {repository}:{tag}.").format(
                given=given, repository=REPOSITORY, tag=TAG
            ),
            digest=given,
        )
    text = answer.strip().strip("'\"`").strip().lower()
    want_hex = facts.manifest.removeprefix("sha256:")
    bare = text.removeprefix("sha256:").removeprefix("@")
    is_hex = bool(bare) and all(c in "0123456789abcdef" for c in bare)
    if text == want_hex:
        return not_yet(
            _("Those are the right 64 hex digits, but a digest also names its algorithm."),
            _("Write it in full: sha256: followed by the 64 digits."),
        )
    if is_hex and len(bare) < 64 and want_hex.startswith(bare):
        return not_yet(
            _("That is the start of the right digest ({n_bare} of its 64 hex digits).").format(n_bare=len(bare)),
            _(
                "Tables shorten IDs to 12 characters; a digest must be complete. Copy all of it, from sha256: to the end."
            ),
        )
    if given is None:
        return not_yet(
            _("That is not a digest: a digest is sha256: followed by exactly 64 hex digits (0-9, a-f)."),
            _(
                "`docker push` printed it after `digest:`; `docker image inspect {target}` shows it after `@` "
                "under RepoDigests."
            ).format(target=TARGET),
        )
    if given == facts.config:
        return not_yet(
            _("That is the image ID: the digest of the image's config, not of the manifest that points to it."),
            _(
                "The registry names the manifest: take the digest `docker push` printed, or the part after `@` in RepoDigests."
            ),
        )
    if given in facts.layers:
        return not_yet(
            _("That is the digest of one of the image's layers, not of its manifest."),
            _(
                "A manifest lists a config and layers by digest; you need the digest of the manifest itself (Docker-Content-Digest)."
            ),
        )
    if facts.schema1 and given == facts.schema1:
        return not_yet(
            _(
                "That is the digest of the old schema 1 manifest the registry sends a client that accepts nothing newer."
            ),
            _(
                "Ask with the Accept header {docker_manifest} (registry_api.manifest sends it) and take that digest."
            ).format(docker_manifest=registry_api.DOCKER_MANIFEST),
        )
    if facts.seeded and given == facts.seeded:
        return not_yet(
            _(
                "That is the digest of labkit/hello-dock:latest in the registry: the same image, but pushed separately, "
                "with its layers compressed again, so its manifest differs."
            ),
            _("Ask for {repository}:{tag} itself.").format(repository=REPOSITORY, tag=TAG),
        )
    if given in facts.others:
        return not_yet(
            _("That is the manifest digest of another image: {others}.").format(others=facts.others[given]),
            _("Ask for {target}: `docker image inspect` it, or fetch its manifest from the registry.").format(
                target=TARGET
            ),
        )
    return not_yet(
        _("That is a well-formed digest, but not the one of {repository}:{tag}.").format(
            repository=REPOSITORY, tag=TAG
        ),
        _(
            "Ask the registry (registry_api.manifest('{repository}', '{tag}').digest), or run docker push "
            "{target} again and read its last line."
        ).format(repository=REPOSITORY, tag=TAG, target=TARGET),
    )


# --- images.pull-rmi -------------------------------------------------------------------------

#: The daemon replays only its most recent events (256 in Docker's source): past that, old ones are gone.
EVENTS_KEPT = 256


@dataclass(frozen=True)
class PullEvents:
    """What the daemon's image events since setup say about the exercise's images.

    Attributes:
        deleted: tag → when (``timeNano``) the image setup made for that tag was deleted.
        untagged: tags whose image lost a name but was not deleted (it had another name).
        pulls: ``(tag, timeNano)`` for each pull of the exercise's repository; ``*`` for a
            pull of every tag (``docker pull -a``).
        count: how many events of any kind the daemon replayed since setup.
    """

    deleted: Mapping[str, int] = field(default_factory=dict)
    untagged: frozenset[str] = frozenset()
    pulls: tuple[tuple[str, int], ...] = ()
    count: int = 0


def read_pull_events(
    events: Iterable[Mapping[str, Any]],
    *,
    since_nano: int,
    made: Mapping[str, str],
    names: Iterable[str],
) -> PullEvents:
    """Sort the daemon's events into deletes, untags and pulls of the exercise's images.

    Args:
        events: decoded events, as ``GET /events`` sends them (``Type``, ``Action``, ``id``, ``timeNano``).
        since_nano: setup's end; earlier events are ignored.
        made: image ID → tag, for the images setup made.
        names: the repository as a pull may name it, one per spelling of the registry
            (``localhost:5000/lab03/pull-me``, ``127.0.0.1:5000/lab03/pull-me``).

    Example:
        >>> e = [{"Type": "image", "Action": "delete", "id": "sha256:b", "timeNano": 5},
        ...      {"Type": "image", "Action": "pull", "id": "localhost:5000/r:v2", "timeNano": 7}]
        >>> read_pull_events(e, since_nano=1, made={"sha256:b": "v2"}, names=["localhost:5000/r"])
        PullEvents(deleted={'v2': 5}, untagged=frozenset(), pulls=(('v2', 7),), count=2)
    """
    repositories = set(names)
    deleted: dict[str, int] = {}
    untagged: set[str] = set()
    pulls: list[tuple[str, int]] = []
    count = 0
    for event in events:
        when = int(event.get("timeNano") or 0)
        if when < since_nano:
            continue
        count += 1
        if event.get("Type") != "image":
            continue
        action, ident = str(event.get("Action") or ""), str(event.get("id") or "")
        if action == "delete" and ident in made:
            deleted.setdefault(made[ident], when)
        elif action == "untag" and ident in made:
            untagged.add(made[ident])
        elif action == "pull":
            name, tag = ident, "*"
            if ":" in ident.rsplit("/", 1)[-1]:
                name, tag = ident.rsplit(":", 1)
            if name in repositories:
                pulls.append((tag, when))
    return PullEvents(deleted, frozenset(untagged - set(deleted)), tuple(pulls), count)


@dataclass(frozen=True)
class PullFacts:
    """Where ``images.pull-rmi`` stands: the images setup made, what the names point at now, the events.

    Attributes:
        name: the image to remove and pull back, ``localhost:5000/lab03/pull-me:v2``.
        tag: its tag, ``v2``.
        made: tag → the image ID setup pushed under it.
        present: tag → the image ID behind that name now (under either spelling of the registry), if any.
        events: what the daemon's events since setup say.
        other_names: the other names the asked-for image has now (why a ``docker rmi`` only untagged it).
        registry_up: whether the course's registry answers (a pull needs it).
    """

    name: str
    tag: str
    made: Mapping[str, str]
    present: Mapping[str, str | None]
    events: PullEvents
    other_names: tuple[str, ...] = ()
    registry_up: bool = True


def pull_verdict(facts: PullFacts) -> Verdict:
    """Decide ``images.pull-rmi``: the pure part of the check.

    Passes when the image setup pushed is here under its name again, the daemon deleted
    it after setup, and a pull of that tag came after the delete. Any spelling of the
    commands counts (``rmi`` or ``image rm``, by name or by ID, ``-f``, either registry
    address); the check reads what happened, not what was typed.
    """
    tag, events = facts.tag, facts.events
    wanted, now = facts.made.get(tag, ""), facts.present.get(tag)
    deleted_at = events.deleted.get(tag)
    ours = [when for pulled, when in events.pulls if pulled in (tag, "*")]
    evidence: dict[str, Any] = {}
    if deleted_at is not None:
        evidence["deleted"] = tag
    if ours:
        evidence["pulled"] = tag
    if now is not None and now == wanted and deleted_at is not None and any(when > deleted_at for when in ours):
        return passed(
            _(
                "The daemon deleted {name} and then pulled it back from the registry: it is here again, the same "
                "image (same ID) as before."
            ).format(name=facts.name),
            **evidence,
        )
    others = sorted(
        {t for t in events.deleted if t != tag} | {t for t, _ in events.pulls if t not in (tag, "*")},
    )
    wrong_tag = ", ".join(f":{t}" for t in others)
    if now is not None and now != wanted:
        return not_yet(
            _("{name} now names another image, not the one setup pushed to the registry.").format(name=facts.name),
            _("Remove that name, then bring the registry's image back under it."),
            **evidence,
        )
    if now is not None:
        if deleted_at is not None:
            return not_yet(
                _("{name} was deleted, and is back, but not by a pull from the registry.").format(name=facts.name),
                _("Remove it again, then fetch it from the registry it came from."),
                **evidence,
            )
        if tag in events.untagged:
            if facts.other_names and ours:
                stayed = _(
                    "Removing {name} only took a name away: the image has another name ({others}), so it stayed, "
                    "and the pull had nothing to download."
                )
            elif facts.other_names:
                stayed = _(
                    "Removing {name} only took a name away: the image has another name ({others}), so it stayed."
                )
            elif ours:
                stayed = _(
                    "Removing {name} only took a name away: the image has another name, so it stayed, and the "
                    "pull had nothing to download."
                )
            else:
                stayed = _("Removing {name} only took a name away: the image has another name, so it stayed.")
            return not_yet(
                stayed.format(name=facts.name, others=", ".join(facts.other_names)),
                _(
                    "An image is deleted with its last name. Remove the other name too (or the image by its ID), "
                    "check that docker image ls no longer shows it, then pull."
                ),
                **evidence,
            )
        if ours:
            return not_yet(
                _(
                    "You pulled {name}, but it was never removed first: the daemon already had it, so the pull "
                    "downloaded nothing (`Image is up to date`)."
                ).format(name=facts.name),
                _("Remove the local copy first (docker image ls should no longer list it), then pull it again."),
                **evidence,
            )
        if others:
            return not_yet(
                _("You worked on {wrong_tag}, but {name} is untouched since setup.").format(
                    wrong_tag=wrong_tag, name=facts.name
                ),
                _(
                    "The exercise is about the tag {tag}: write the name in full, tag included, in both commands."
                ).format(tag=tag),
                **evidence,
            )
        if events.count >= EVENTS_KEPT:
            return not_yet(
                _(
                    "{name} is here, and the daemon's event log since setup is full ({count} events), so labkit "
                    "cannot see whether it was removed and pulled."
                ).format(name=facts.name, count=events.count),
                _("The daemon replays only its latest events. Run the setup again, then do both steps and check."),
                events_since_setup=events.count,
                **evidence,
            )
        return not_yet(_("{name} is still here, untouched since setup.").format(name=facts.name), None, **evidence)
    if others and any(t != tag for t, _ in events.pulls):
        return not_yet(
            _("{name} is gone from this daemon; you pulled {wrong_tag} instead.").format(
                name=facts.name, wrong_tag=wrong_tag
            ),
            _(
                "Pull the tag the exercise names, {tag}: without a tag, docker pulls :latest, which this "
                "repository does not have."
            ).format(tag=tag),
            **evidence,
        )
    if not facts.registry_up:
        return not_yet(
            _(
                "{name} is gone from this daemon, and the course's registry does not answer, so a pull would fail."
            ).format(name=facts.name),
            _("Start the registry: `labkit registry up` in a terminal (or labkit.registry.up() in a cell), then pull."),
            **evidence,
        )
    return not_yet(
        _("{name} is gone from this daemon: removed. Now bring it back.").format(name=facts.name),
        _(
            "Which command downloads an image from a registry? Give it the same full name: registry address, "
            "repository and tag."
        ),
        **evidence,
    )
