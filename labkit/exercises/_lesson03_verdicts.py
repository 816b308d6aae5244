"""Lesson 03's verdicts: what ``registry.push`` and ``registry.digest`` decide, from facts alone.

The checks in :mod:`labkit.exercises.lesson03_registries` read the registry and the
daemon into a :class:`PushFacts` or a :class:`DigestFacts`; the functions here decide
from those, so every near-miss can be unit-tested from sample data without a daemon.

Example:
    >>> push_verdict(PushFacts(source_id="sha256:" + "a" * 64)).passed
    False
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

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
                    f"The registry's {REPOSITORY}:{TAG} holds labkit/hello-dock, but not the manifest your daemon pushed "
                    f"(the daemon recorded {', '.join(facts.repo_digests)}).",
                    "Something else wrote that tag after your push: push your image again.",
                    **ev,
                )
            return passed(
                f"The registry holds {REPOSITORY}:{TAG}, and it is labkit/hello-dock: the manifest names the same "
                "config as your local image, and its digest matches the daemon's record of the push.",
                **ev,
            )
        what = "a multi-platform index" if facts.remote_config == "" else facts.remote_names or "another image"
        return not_yet(
            f"The registry has {REPOSITORY}:{TAG}, but it holds {what}, not labkit/hello-dock.",
            "The name you pushed pointed at another image: make it name labkit/hello-dock, then push again "
            "(a push replaces what the registry holds under that name).",
            **ev,
        )
    if facts.local_tag_id is not None:
        if facts.local_tag_id == facts.source_id:
            return not_yet(
                f"{TARGET} exists on your daemon, but the registry does not have it: it was tagged, not pushed.",
                "A tag is only a local name on your daemon: nothing has reached the registry yet. Which command "
                "sends it there?",
                **ev,
            )
        return not_yet(
            f"{TARGET} exists on your daemon, but it names another image, and the registry does not have it yet.",
            "That name must point at labkit/hello-dock itself (compare the IMAGE ID column of `docker image ls`); "
            "then send it to the registry.",
            **ev,
        )
    if facts.other_tags:
        return not_yet(
            f"The registry has {REPOSITORY}, but under {', '.join(':' + t for t in facts.other_tags)}, not :{TAG}.",
            ("Without a tag, docker uses :latest. " if "latest" in facts.other_tags else "")
            + f"The tag is the part after the repository's colon: the exercise wants :{TAG}, in the name you give "
            "and in the name you push.",
            **ev,
        )
    if facts.elsewhere:
        return not_yet(
            f"labkit/hello-dock is in the registry as {', '.join(facts.elsewhere)}, not as {REPOSITORY}:{TAG}.",
            f"The repository is the part between the registry's address and the tag: the exercise wants {REPOSITORY}.",
            **ev,
        )
    if facts.other_local_names:
        return not_yet(
            f"labkit/hello-dock is tagged {', '.join(facts.other_local_names)}, but nothing reached {REPOSITORY}:{TAG} in the registry.",
            f"The name must be exactly {TARGET}: the registry's address, then the repository {REPOSITORY}, "
            f"then :{TAG}.",
            **ev,
        )
    return not_yet(
        f"The registry has no {REPOSITORY}:{TAG} yet.",
        "A push sends an image to the registry its name starts with. What name must labkit/hello-dock have "
        "for that, and which command gives an image a second name?",
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
        return passed(f"{given} is the digest of the manifest the registry holds as {REPOSITORY}:{TAG}.", digest=given)
    text = answer.strip().strip("'\"`").strip().lower()
    want_hex = facts.manifest.removeprefix("sha256:")
    bare = text.removeprefix("sha256:").removeprefix("@")
    is_hex = bool(bare) and all(c in "0123456789abcdef" for c in bare)
    if text == want_hex:
        return not_yet(
            "Those are the right 64 hex digits, but a digest also names its algorithm.",
            "Write it in full: sha256: followed by the 64 digits.",
        )
    if is_hex and len(bare) < 64 and want_hex.startswith(bare):
        return not_yet(
            f"That is the start of the right digest ({len(bare)} of its 64 hex digits).",
            "Tables shorten IDs to 12 characters; a digest must be complete. Copy all of it, from sha256: to the end.",
        )
    if given is None:
        return not_yet(
            "That is not a digest: a digest is sha256: followed by exactly 64 hex digits (0-9, a-f).",
            f"`docker push` printed it after `digest:`; `docker image inspect {TARGET}` shows it after `@` under RepoDigests.",
        )
    if given == facts.config:
        return not_yet(
            "That is the image ID: the digest of the image's config, not of the manifest that points to it.",
            "The registry names the manifest: take the digest `docker push` printed, or the part after `@` in RepoDigests.",
        )
    if given in facts.layers:
        return not_yet(
            "That is the digest of one of the image's layers, not of its manifest.",
            "A manifest lists a config and layers by digest; you need the digest of the manifest itself (Docker-Content-Digest).",
        )
    if facts.schema1 and given == facts.schema1:
        return not_yet(
            "That is the digest of the old schema 1 manifest the registry sends a client that accepts nothing newer.",
            f"Ask with the Accept header {registry_api.DOCKER_MANIFEST} (registry_api.manifest sends it) and take that digest.",
        )
    if facts.seeded and given == facts.seeded:
        return not_yet(
            "That is the digest of labkit/hello-dock:latest in the registry: the same image, but pushed separately, "
            "with its layers compressed again, so its manifest differs.",
            f"Ask for {REPOSITORY}:{TAG} itself.",
        )
    if given in facts.others:
        return not_yet(
            f"That is the manifest digest of another image: {facts.others[given]}.",
            f"Ask for {TARGET}: `docker image inspect` it, or fetch its manifest from the registry.",
        )
    return not_yet(
        f"That is a well-formed digest, but not the one of {REPOSITORY}:{TAG}.",
        f"Ask the registry (registry_api.manifest('{REPOSITORY}', '{TAG}').digest), or run docker push {TARGET} again and read its last line.",
    )
