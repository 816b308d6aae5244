"""Seeding: push every catalog image the daemon has into the registry, under its Docker Hub name."""

from __future__ import annotations

import contextlib
import sys
import time
from typing import TextIO

import docker.errors

from labkit.core import activity, engine, refs
from labkit.core.errors import LabkitError
from labkit.core.i18n import _
from labkit.features import images
from labkit.features.registry.credentials import Credentials
from labkit.features.registry.process import folder, push_login
from labkit.features.registry.remote import remote_config
from labkit.features.streams import LayerTally


def _push(name: str, remote: str, tag: str, out: TextIO | None = None, login: Credentials | None = None) -> None:
    """Push local image ``name`` as ``remote:tag``, then drop that extra name again.

    The temporary tag, and the digest reference a push records, would otherwise
    show up in ``docker images`` as ``127.0.0.1:5000/...`` rows. ``login`` is what the
    registry's gate asks pushes for; the daemon gets it with the push, not from ``docker login``.

    Raises:
        LabkitError: the push failed.
    """
    api = engine.client().api
    host = refs.parse(remote).registry
    with engine.converted(name):
        api.tag(name, remote, tag)
        tally = LayerTally()
        try:
            with activity.task(_("pushing {name}").format(name=name), out=out) as progress:
                auth = login.auth_config() if login is not None else None
                for message in api.push(remote, tag=tag, stream=True, decode=True, auth_config=auth):
                    if message.get("error"):
                        said = str(message["error"])
                        refused = "unauthorized" in said.lower() or "authentication required" in said.lower()
                        raise LabkitError(
                            _("pushing {name} to {host} failed: {said}").format(name=name, host=host, said=said),
                            _("pushes need the registry's login: run `labkit registry up` as the user who started it")
                            if refused
                            else _("read {log}").format(log=folder() / "registry.log"),
                        )
                    tally.feed(message)
                    progress.update(tally.done, total=tally.total, note=tally.note(), phase=tally.phase)
        finally:
            with contextlib.suppress(docker.errors.APIError):
                api.remove_image(f"{remote}:{tag}", noprune=True)
            with contextlib.suppress(docker.errors.APIError):
                for digest_ref in api.inspect_image(name).get("RepoDigests") or []:
                    if digest_ref.startswith(f"{host}/"):
                        api.remove_image(digest_ref, noprune=True)


def seed(base: str, out: TextIO = sys.stdout) -> None:
    """Push every catalog image the daemon has and the registry lacks (or holds an older build of).

    Raises:
        LabkitError: a push failed.
        DaemonUnavailable: the daemon did not answer.
    """

    host = base.removeprefix("http://")
    login = push_login(host)
    for entry, state in zip(images.CATALOG, images.status(), strict=True):
        label = f"  {entry.name:<26}"
        if not state.present:
            print(
                _("{label} not on this daemon: skipped (`labkit images ensure` makes it)").format(label=label),
                file=out,
                flush=True,
            )
            continue
        held = remote_config(base, entry.registry_path, entry.tag)
        if held is not None and held in ("", state.image_id):
            print(_("{label} already in the registry").format(label=label), file=out, flush=True)
            continue
        started = time.monotonic()
        _push(entry.name, f"{host}/{entry.registry_path}", entry.tag, out, login)
        print(
            _("{label} pushed as {registry_path}:{tag} in {seconds:.1f} s").format(
                label=label, registry_path=entry.registry_path, tag=entry.tag, seconds=time.monotonic() - started
            ),
            file=out,
            flush=True,
        )
