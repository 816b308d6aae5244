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
from typing import Any

import docker
import docker.errors

from labkit.core.errors import LabkitError, RegistryUnreachable
from labkit.core.i18n import N_, _
from labkit.core.probes import image_id
from labkit.core.shell import sh
from labkit.exercises._lesson03_pull import (
    NAMESPACE,
    PULL_EXERCISE,
    delete_lab_from_registry,
    ensure_registry,
    hosts,
)
from labkit.exercises._lesson03_verdicts import (
    REPOSITORY,
    TAG,
    TARGET,
    DigestFacts,
    PushFacts,
    digest_verdict,
    push_verdict,
)
from labkit.exercises.machinery.catalog import register
from labkit.exercises.machinery.model import Context, Exercise, Verdict, not_yet
from labkit.features import images
from labkit.features.registry import api as registry_api
from labkit.features.registry import mirror as registry

LESSON = "03"
SOURCE = "labkit/hello-dock:latest"
#: A container the lesson's demo creates by name (it commits a small image from it).
DEMO_CONTAINER = "lab03-note"


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


def _registry_down(base: str) -> Verdict | None:
    kind, detail = registry.probe(base)
    if kind == "registry":
        return None
    return not_yet(
        _("No registry answers at {base} ({detail}).").format(base=base, detail=detail),
        _(
            "Start the course's registry with `labkit registry up` in a terminal (or `labkit.registry.up()` in a cell), then try again."
        ),
    )


def _names_of(client: docker.DockerClient, ident: str) -> str:
    """The tags of a local image, for messages; its short id when it has none."""
    try:
        tags = client.images.get(ident).tags
    except docker.errors.ImageNotFound:
        return _("an image this daemon does not have ({id})").format(id=ident.removeprefix("sha256:")[:12])
    # The lesson's own names say nothing the learner does not know: name the image by its others.
    own = tuple(f"{host}/{NAMESPACE}" for host in hosts())
    named = sorted(t for t in tags if not t.startswith(own)) or sorted(tags)
    return ", ".join(named) if named else _("an untagged image ({id})").format(id=ident.removeprefix("sha256:")[:12])


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
            _("labkit/hello-dock is not on this daemon, so there is nothing to push."),
            _("Make it (offline is fine): `labkit images ensure hello-dock`."),
        )
    try:
        facts = _gather_push_facts(ctx.client, base, source_id)
    except RegistryUnreachable as e:
        return not_yet(
            _("The registry stopped answering: {message}.").format(message=e.message),
            _("Start it again: `labkit registry up`."),
        )
    return push_verdict(facts)


def _setup_push(ctx: Context) -> dict[str, Any]:
    base = ensure_registry()
    return {"image": SOURCE, "push_as": TARGET, "registry": base}


def _teardown_push(ctx: Context) -> None:
    remove_local_lab_refs(ctx.client)
    delete_lab_from_registry()


PUSH = register(
    Exercise(
        id="registry.push",
        lesson=LESSON,
        title=N_("Push an image to a registry"),
        prompt=N_("Push labkit/hello-dock to the course's registry as localhost:5000/lab/hello-dock:v1."),
        check=_check_push,
        hints=(
            N_(
                "docker push sends an image to the registry named at the start of its name; so first the image needs such a name."
            ),
            N_(
                "Two steps: `docker tag IMAGE NEW-NAME` gives an image a second name, and `docker push NAME` sends "
                "it to the registry at the start of NAME. The name here is localhost:5000/lab/hello-dock:v1."
            ),
            N_(
                "Type: docker tag labkit/hello-dock localhost:5000/lab/hello-dock:v1, then: docker push "
                "localhost:5000/lab/hello-dock:v1"
            ),
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
        return not_yet(
            _("The registry stopped answering: {message}.").format(message=e.message),
            _("Start it again: `labkit registry up`."),
        )
    if remote is None:
        return not_yet(
            _("The registry has no {repository}:{tag}, so it has no digest to find.").format(
                repository=REPOSITORY, tag=TAG
            ),
            _('Do registry.push first, or run labkit.setup("registry.digest"), which pushes it for you.'),
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
    base = ensure_registry()
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
        title=N_("Find a manifest digest"),
        prompt=N_(
            "What is the manifest digest of localhost:5000/lab/hello-dock:v1? Answer with the full sha256:… string."
        ),
        check=_check_digest,
        hints=(
            N_(
                "A digest names content, not a tag: the registry sends it with every manifest, and docker push prints it."
            ),
            N_(
                "Look for `digest:` in the push output, the part after `@` in `docker image inspect`'s RepoDigests, "
                "or the Docker-Content-Digest header of the manifest."
            ),
            N_(
                "Type: docker image inspect --format '{{range .RepoDigests}}{{println .}}{{end}}' "
                "localhost:5000/lab/hello-dock:v1, and submit the part after `@` (or "
                "registry_api.manifest('lab/hello-dock', 'v1').digest) with labkit.check('registry.digest', answer=...)."
            ),
        ),
        solution=(DIGEST_COMMAND,),
        setup=_setup_digest,
        teardown=_teardown_digest,
        reference_answer=_reference_digest,
    )
)


PULL = register(PULL_EXERCISE)
