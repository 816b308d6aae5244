"""Lesson 03: registries, repositories, tags and digests.

Both checks read the course's registry through its HTTP API and compare what it
holds with the daemon's images. ``localhost:5000`` and ``127.0.0.1:5000`` name the
same registry here (the registry listens on 127.0.0.1 only), so a push under
either name counts: the check looks at the registry, not at the name typed.

Everything ``registry.push`` and ``registry.digest`` make lives under
``<registry>/lab/…``, locally and in the registry; their teardown removes exactly that,
never the catalog images or the repositories ``labkit registry up`` seeded.
``images.pull-rmi`` keeps its images under ``<registry>/lab03/…`` so that emptying
``lab/`` leaves it alone, and its teardown removes only those.
"""

from __future__ import annotations

import contextlib
import io
import time
from typing import Any

import docker
import docker.errors

from labkit.core import fmt
from labkit.core.cleanup import remove_images, remove_name
from labkit.core.errors import LabkitError, RegistryUnreachable
from labkit.core.probes import image_id
from labkit.core.shell import sh
from labkit.exercises._lesson03_verdicts import (
    REPOSITORY,
    TAG,
    TARGET,
    DigestFacts,
    PullFacts,
    PushFacts,
    digest_verdict,
    pull_verdict,
    push_verdict,
    read_pull_events,
)
from labkit.exercises.machinery.catalog import register
from labkit.exercises.machinery.model import Context, Exercise, Verdict, not_yet
from labkit.exercises.machinery.runner import exercise_labels
from labkit.features import images
from labkit.features.images import builders
from labkit.features.registry import api as registry_api
from labkit.features.registry import mirror as registry

LESSON = "03"
SOURCE = "labkit/hello-dock:latest"
#: The lesson's namespace in the registry: every repository under it is the lesson's own.
NAMESPACE = "lab/"
#: A container the lesson's demo creates by name (it commits a small image from it).
DEMO_CONTAINER = "lab03-note"


def hosts() -> tuple[str, ...]:
    """The names of the course's registry as a docker image name may start: both reach it."""
    port = registry.port()
    return (f"localhost:{port}", f"127.0.0.1:{port}")


def _lab_refs(client: docker.DockerClient) -> list[str]:
    """Every local tag and digest reference under ``<registry>/lab/``."""
    prefixes = tuple(f"{host}/{NAMESPACE}" for host in hosts())
    refs: list[str] = []
    for image in client.images.list():
        for ref in list(image.attrs.get("RepoTags") or []) + list(image.attrs.get("RepoDigests") or []):
            if ref.startswith(prefixes):
                refs.append(ref)
    return refs


def remove_local_lab_refs(client: docker.DockerClient) -> list[str]:
    """Untag every local ``<registry>/lab/…`` name; an image left with no name is deleted.

    Only names under ``lab/`` are touched, so a catalog image that carried one keeps its
    own name and stays; an image the lesson committed goes with its last name.
    """
    removed = []
    for ref in _lab_refs(client):
        with contextlib.suppress(docker.errors.NotFound):
            # force: untag even when a stopped container still uses the image.
            client.api.remove_image(ref, force=True)
            removed.append(ref)
    return removed


def delete_lab_from_registry(base: str | None = None, repositories: tuple[str, ...] | None = None) -> list[str]:
    """Delete every manifest under ``lab/`` (or in ``repositories``) from the registry, best effort.

    A registry that is not running has nothing to delete: that is not an error here.
    """
    deleted: list[str] = []
    try:
        names = (
            repositories
            if repositories is not None
            else tuple(r for r in registry_api.catalog(base=base) if r.startswith(NAMESPACE))
        )
        for repository in names:
            for tag in registry_api.tags(repository, base=base):
                digest = registry_api.manifest_digest(repository, tag, base=base)
                if digest and registry_api.delete_manifest(repository, digest, base=base):
                    deleted.append(f"{repository}:{tag}")
    except LabkitError:
        pass
    return deleted


def _registry_down(base: str) -> Verdict | None:
    kind, detail = registry.probe(base)
    if kind == "registry":
        return None
    return not_yet(
        f"No registry answers at {base} ({detail}).",
        "Start the course's registry with `labkit registry up` in a terminal (or `labkit.registry.up()` in a cell), then try again.",
    )


def _names_of(client: docker.DockerClient, ident: str) -> str:
    """The tags of a local image, for messages; its short id when it has none."""
    try:
        tags = client.images.get(ident).tags
    except docker.errors.ImageNotFound:
        return f"an image this daemon does not have ({ident.removeprefix('sha256:')[:12]})"
    # The lesson's own names say nothing the learner does not know: name the image by its others.
    own = tuple(f"{host}/{NAMESPACE}" for host in hosts())
    named = sorted(t for t in tags if not t.startswith(own)) or sorted(tags)
    return ", ".join(named) if named else f"an untagged image ({ident.removeprefix('sha256:')[:12]})"


# --- registry.push ---------------------------------------------------------------------------


def _seeded() -> set[str]:
    """The repositories ``labkit registry up`` fills: the learner did not put those there."""

    return {entry.registry_path for entry in images.CATALOG}


def _gather_push_facts(client: docker.DockerClient, base: str, source_id: str) -> PushFacts:
    remote = registry_api.find_manifest(REPOSITORY, TAG, base=base)
    remote_config: str | None = None
    remote_names = ""
    if remote is not None:
        remote_config = remote.config.digest if remote.config is not None else ""
        if remote_config and remote_config != source_id:
            remote_names = _names_of(client, remote_config)
    source = client.images.get(source_id)
    wanted = tuple(f"{host}/{REPOSITORY}@" for host in hosts())
    repo_digests = tuple(d.split("@", 1)[1] for d in source.attrs.get("RepoDigests") or [] if d.startswith(wanted))
    local_tag_id = None
    for host in hosts():
        local_tag_id = local_tag_id or image_id(client, f"{host}/{REPOSITORY}:{TAG}")
    other_tags: tuple[str, ...] = ()
    elsewhere: list[str] = []
    other_local: tuple[str, ...] = ()
    if remote is None and local_tag_id is None:
        other_tags = tuple(registry_api.tags(REPOSITORY, base=base))
        if not other_tags:
            seeded = _seeded()
            for repository in registry_api.catalog(base=base):
                if repository in seeded or repository == REPOSITORY:
                    continue
                for tag in registry_api.tags(repository, base=base):
                    found = registry_api.find_manifest(repository, tag, base=base)
                    if found is not None and found.config is not None and found.config.digest == source_id:
                        elsewhere.append(f"{repository}:{tag}")
            prefixes = tuple(f"{host}/" for host in hosts())
            other_local = tuple(sorted(t for t in source.tags if t.startswith(prefixes)))
    evidence: dict[str, Any] = {"registry": base}
    if remote is not None:
        evidence["manifest_digest"] = remote.digest
    if repo_digests:
        evidence["repo_digests"] = ", ".join(repo_digests)
    return PushFacts(
        source_id,
        remote_config,
        remote.digest if remote else "",
        repo_digests,
        local_tag_id,
        other_tags,
        tuple(elsewhere),
        other_local,
        remote_names,
        evidence,
    )


def _check_push(ctx: Context) -> Verdict:
    base = registry.url()
    down = _registry_down(base)
    if down is not None:
        return down
    source_id = image_id(ctx.client, SOURCE)
    if source_id is None:
        return not_yet(
            "labkit/hello-dock is not on this daemon, so there is nothing to push.",
            "Make it (offline is fine): `labkit images ensure hello-dock`.",
        )
    try:
        facts = _gather_push_facts(ctx.client, base, source_id)
    except RegistryUnreachable as e:
        return not_yet(f"The registry stopped answering: {e.message}.", "Start it again: `labkit registry up`.")
    return push_verdict(facts)


def _ensure_registry() -> str:
    """Start the course's registry if needed (quietly: setup shows its own summary).

    Raises:
        LabkitError: it could not start.
    """
    registry.up(out=io.StringIO())
    return registry.url()


def _setup_push(ctx: Context) -> dict[str, Any]:
    base = _ensure_registry()
    return {"image": SOURCE, "push_as": TARGET, "registry": base}


def _teardown_push(ctx: Context) -> None:
    remove_local_lab_refs(ctx.client)
    delete_lab_from_registry()


PUSH = register(
    Exercise(
        id="registry.push",
        lesson=LESSON,
        title="Push an image to a registry",
        prompt=f"Push labkit/hello-dock to the course's registry as {TARGET}.",
        check=_check_push,
        hints=(
            "docker push sends an image to the registry named at the start of its name; so first the image needs such a name.",
            (
                "Two steps: `docker tag IMAGE NEW-NAME` gives an image a second name, and `docker push NAME` sends "
                f"it to the registry at the start of NAME. The name here is {TARGET}."
            ),
            f"Type: docker tag labkit/hello-dock {TARGET}, then: docker push {TARGET}",
        ),
        solution=(f"docker tag labkit/hello-dock {TARGET}", f"docker push {TARGET}"),
        setup=_setup_push,
        teardown=_teardown_push,
        # The lesson's demo commits an image from this container; reset removes it if a run stopped half-way.
        names=(DEMO_CONTAINER,),
    )
)


# --- registry.digest -------------------------------------------------------------------------

#: The reference command: every digest reference of the pushed image, one a line.
DIGEST_COMMAND = f"docker image inspect --format '{{{{range .RepoDigests}}}}{{{{println .}}}}{{{{end}}}}' {TARGET}"


def _gather_digest_facts(client: docker.DockerClient, remote: registry_api.Manifest, base: str) -> DigestFacts:
    layers = {layer.digest for layer in remote.layers}
    config = remote.config.digest if remote.config is not None else ""
    with contextlib.suppress(docker.errors.ImageNotFound):
        if config:
            layers.update(client.images.get(config).attrs.get("RootFS", {}).get("Layers") or [])
    schema1 = ""
    with contextlib.suppress(LabkitError):
        old = registry_api.request(f"/v2/{REPOSITORY}/manifests/{TAG}", base=base, method="HEAD")
        if old.content_type == registry_api.SCHEMA1:
            schema1 = old.header("Docker-Content-Digest")
    seeded = ""
    with contextlib.suppress(LabkitError):
        seeded = registry_api.manifest_digest("labkit/hello-dock", "latest", base=base) or ""
    others: dict[str, str] = {}
    for image in client.images.list():
        for ref in image.attrs.get("RepoDigests") or []:
            name, _, digest = ref.partition("@")
            others.setdefault(digest, name)
    return DigestFacts(remote.digest, config, frozenset(layers), schema1, seeded, others)


def _current(base: str) -> registry_api.Manifest | Verdict:
    down = _registry_down(base)
    if down is not None:
        return down
    try:
        remote = registry_api.find_manifest(REPOSITORY, TAG, base=base)
    except RegistryUnreachable as e:
        return not_yet(f"The registry stopped answering: {e.message}.", "Start it again: `labkit registry up`.")
    if remote is None:
        return not_yet(
            f"The registry has no {REPOSITORY}:{TAG}, so it has no digest to find.",
            'Do registry.push first, or run labkit.setup("registry.digest"), which pushes it for you.',
        )
    return remote


def _check_digest(ctx: Context) -> Verdict:
    base = registry.url()
    remote = _current(base)
    if isinstance(remote, Verdict):
        return remote
    return digest_verdict(ctx.answer or "", _gather_digest_facts(ctx.client, remote, base))


def _reference_digest(ctx: Context) -> str:
    """The right answer, read live from the registry.

    Raises:
        LabkitError: the registry has no such tag.
    """
    remote = _current(registry.url())
    if isinstance(remote, Verdict):
        raise LabkitError(remote.message, remote.hint or "")
    return remote.digest


def _setup_digest(ctx: Context) -> dict[str, Any]:
    """Make sure there is a ``lab/hello-dock:v1`` to ask about; push it only if it is missing."""
    base = _ensure_registry()
    remote = registry_api.find_manifest(REPOSITORY, TAG, base=base)
    source_id = image_id(ctx.client, SOURCE)
    pushed = False
    if remote is None or remote.config is None or remote.config.digest != source_id:
        sh(f"docker tag labkit/hello-dock {TARGET}", quiet=True, lesson=LESSON)
        sh(f"docker push {TARGET}", quiet=True, lesson=LESSON)
        pushed = True
    return {"image": TARGET, "pushed_by_setup": pushed}


def _teardown_digest(ctx: Context) -> None:
    # Only what this setup pushed: the learner's own push belongs to registry.push.
    if ctx.setup and ctx.setup.get("pushed_by_setup"):
        remove_local_lab_refs(ctx.client)
        delete_lab_from_registry(repositories=(REPOSITORY,))


DIGEST = register(
    Exercise(
        id="registry.digest",
        lesson=LESSON,
        title="Find a manifest digest",
        prompt=f"What is the manifest digest of {TARGET}? Answer with the full sha256:… string.",
        check=_check_digest,
        hints=(
            "A digest names content, not a tag: the registry sends it with every manifest, and docker push prints it.",
            (
                "Look for `digest:` in the push output, the part after `@` in `docker image inspect`'s RepoDigests, "
                "or the Docker-Content-Digest header of the manifest."
            ),
            (
                f"Type: {DIGEST_COMMAND}, and submit the part after `@` (or registry_api.manifest('{REPOSITORY}', "
                f"'{TAG}').digest) with labkit.check('registry.digest', answer=...)."
            ),
        ),
        solution=(DIGEST_COMMAND,),
        setup=_setup_digest,
        teardown=_teardown_digest,
        reference_answer=_reference_digest,
    )
)


# --- images.pull-rmi -------------------------------------------------------------------------

PULL_ID = "images.pull-rmi"
#: Outside ``lab/``: registry.push's teardown empties ``lab/``, and this exercise must survive it.
PULL_REPOSITORY = "lab03/pull-me"
PULL_TAGS = ("v1", "v2")
#: The tag the learner removes and pulls back; v1 is its likely slip.
PULL_TAG = "v2"
#: The name the prompt and hints use (the registry's default port, as for registry.push).
PULL_TARGET = f"localhost:{registry.DEFAULT_PORT}/{PULL_REPOSITORY}:{PULL_TAG}"


def _pull_name(tag: str = PULL_TAG) -> str:
    return f"{hosts()[0]}/{PULL_REPOSITORY}:{tag}"


def _daemon_nano(client: docker.DockerClient) -> int:
    """The daemon's clock, in nanoseconds (its events carry its own times, not this machine's)."""
    return round((fmt.timestamp(client.info().get("SystemTime")) or time.time()) * 1e6) * 1000


def _stamp(nano: int) -> str:
    """``seconds.nanoseconds``, as ``GET /events`` reads ``since`` and ``until``."""
    return f"{nano // 10**9}.{nano % 10**9:09d}"


def _setup_pull(ctx: Context) -> dict[str, Any]:
    """Two tags of one repository, pushed to the course's registry; the events that follow are the learner's."""
    _ensure_registry()
    made: dict[str, str] = {}
    for tag in PULL_TAGS:
        name = _pull_name(tag)
        built = builders.build_relabelled("busybox", {**exercise_labels(ctx.exercise), "labkit.version": tag}, tag=name)
        sh(f"docker push {name}", quiet=True, lesson=LESSON)
        made[built] = tag
    return {"image": _pull_name(), "_made": made, "_since": _daemon_nano(ctx.client)}


def _teardown_pull(ctx: Context) -> int:
    """Every image setup made (by label), the names under either registry address, and the registry's copies."""
    removed = remove_images(f"labkit.exercise={PULL_ID}")
    for host in hosts():
        for tag in PULL_TAGS:
            removed += remove_name(f"{host}/{PULL_REPOSITORY}:{tag}")  # a name the learner pointed elsewhere
    return removed + len(delete_lab_from_registry(repositories=(PULL_REPOSITORY,)))


def _pull_facts(client: docker.DockerClient, setup: dict[str, Any]) -> PullFacts:
    made = {str(ident): str(tag) for ident, tag in (setup.get("_made") or {}).items()}
    since = int(setup.get("_since") or 0)
    present: dict[str, str | None] = {}
    for tag in PULL_TAGS:
        present[tag] = next(
            (found for host in hosts() if (found := image_id(client, f"{host}/{PULL_REPOSITORY}:{tag}"))), None
        )
    events = read_pull_events(
        client.events(since=_stamp(since), until=_stamp(_daemon_nano(client)), decode=True),
        since_nano=since,
        made=made,
        names=[f"{host}/{PULL_REPOSITORY}" for host in hosts()],
    )
    wanted = next((ident for ident, tag in made.items() if tag == PULL_TAG), "")
    other_names: tuple[str, ...] = ()
    if wanted:
        with contextlib.suppress(docker.errors.ImageNotFound):
            other_names = tuple(
                sorted(t for t in client.images.get(wanted).tags if not t.endswith(f"/{PULL_REPOSITORY}:{PULL_TAG}"))
            )
    return PullFacts(
        name=str(setup.get("image") or _pull_name()),
        tag=PULL_TAG,
        made={tag: ident for ident, tag in made.items()},
        present=present,
        events=events,
        other_names=other_names,
        registry_up=registry.probe(registry.url())[0] == "registry",
    )


def _check_pull(ctx: Context) -> Verdict:
    if not ctx.setup or not ctx.setup.get("_made"):
        return not_yet(
            f"The setup has not run, so there is no {PULL_REPOSITORY} to remove and pull back yet.",
            f'Run `labkit.setup("{PULL_ID}")` first: it pushes the image to the course\'s registry.',
        )
    return pull_verdict(_pull_facts(ctx.client, ctx.setup))


PULL = register(
    Exercise(
        id=PULL_ID,
        lesson=LESSON,
        title="Remove an image, then pull it back",
        prompt=(
            f"Setup pushed {PULL_TARGET} to the course's registry (and kept a copy here). Delete the local copy, "
            "then download it again from the registry."
        ),
        check=_check_pull,
        hints=(
            "Two steps: one command deletes an image from this daemon, another downloads it from a registry. "
            "After the first, the image list should no longer show it.",
            "`docker rmi NAME` (or `docker image rm NAME`) deletes it; `docker pull NAME` downloads it. Use the full "
            "name both times: registry address, repository and tag.",
            f"Type: docker rmi {PULL_TARGET}, then: docker pull {PULL_TARGET}",
        ),
        solution=("docker rmi {image}", "docker pull {image}"),
        setup=_setup_pull,
        teardown=_teardown_pull,
        images=tuple(f"localhost:{registry.DEFAULT_PORT}/{PULL_REPOSITORY}:{tag}" for tag in PULL_TAGS),
    )
)
