"""One file with the course's images, for machines that can neither pull nor build them.

``bundle`` is ``docker save`` of the whole set in one archive (layers shared by
several images are stored once), gzip-compressed when the name ends in ``.gz``;
``load`` is ``docker load``, which reads plain and compressed archives alike.
"""

from __future__ import annotations

import gzip
import os
import sys
import time
from pathlib import Path
from typing import TextIO

import docker.errors
import requests.exceptions

from labkit.core import activity, engine, fmt
from labkit.core.errors import ImageMissing, LabkitError
from labkit.core.i18n import _, ngettext
from labkit.features.images.catalog import resolve
from labkit.features.streams import CountingReader


def bundle(path: str | os.PathLike[str], names: list[str] | None = None, *, out: TextIO = sys.stdout) -> Path:
    """Save catalog images (all, or ``names`` and what they are built from) into one file.

    The file is written next to ``path`` first and renamed when complete, so a
    failed bundle never leaves a truncated file under the final name.

    Args:
        path: the bundle to write; ``.gz`` at the end compresses it.
        names: catalog names; ``None`` for the whole catalog.
        out: where the progress lines go.

    Returns:
        The bundle's path.

    Raises:
        ImageMissing: an image of the set is not on the daemon (``labkit images ensure`` first).
        LabkitError: the file could not be written, or the daemon failed to save.

    Example:
        >>> bundle("/tmp/course-images.tar.gz", ["busybox"])  # doctest: +SKIP
        saving 1 image (busybox:latest) to /tmp/course-images.tar.gz
        bundle ready: /tmp/course-images.tar.gz, 1.1 MB (gzip) in 0.2 s
        PosixPath('/tmp/course-images.tar.gz')
    """
    target = Path(path).expanduser()
    entries = resolve(names)
    wanted = [e.name for e in entries]
    api = engine.client().api
    with engine.converted():
        listed = {tag: s for s in api.images() for tag in s.get("RepoTags") or []}
    for name in wanted:
        if name not in listed:
            raise ImageMissing(name)
    estimate = sum(int(listed[n].get("Size") or 0) for n in wanted)
    compress = target.suffix == ".gz"
    started = time.monotonic()
    print(
        ngettext(
            "saving {n} image ({names}) to {target}", "saving {n} images ({names}) to {target}", len(wanted)
        ).format(n=len(wanted), names=", ".join(wanted), target=target),
        file=out,
        flush=True,
    )
    partial = target.with_name(target.name + ".part")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with engine.converted():
            # docker-py saves one image per call; the API saves a set in one archive.
            response = api.get(api._url("/images/get"), params={"names": wanted}, stream=True, timeout=None)
            if response.status_code != 200:
                raise LabkitError(
                    _("the daemon could not save {names}: {text}").format(
                        names=", ".join(wanted), text=response.text.strip()[:200]
                    ),
                    _("run `labkit doctor`"),
                )
            # the estimate is the images' unpacked size; the archive is about that, never exactly
            with (
                activity.task(
                    _("saving to {name}").format(name=target.name), total=estimate or None, out=out
                ) as progress,
                gzip.open(partial, "wb", compresslevel=6) if compress else open(partial, "wb") as sink,
            ):
                written = 0
                for chunk in response.iter_content(chunk_size=1024 * 1024):
                    sink.write(chunk)
                    written += len(chunk)
                    progress.update(written, total=max(estimate, written) or None)
        partial.replace(target)
    except requests.exceptions.RequestException as e:  # an OSError too: catch it first
        raise LabkitError(
            _("saving the images was interrupted: {error}").format(error=e), _("run the command again")
        ) from e
    except OSError as e:
        raise LabkitError(
            _("cannot write {target}: {cause}").format(target=target, cause=e.strerror or e),
            _("choose a folder you can write to, with enough free space"),
        ) from e
    finally:
        partial.unlink(missing_ok=True)
    kind = " (gzip)" if compress else ""
    print(
        _("bundle ready: {target}, {size}{kind} in {seconds:.1f} s").format(
            target=target, size=fmt.size(target.stat().st_size, "mb"), kind=kind, seconds=time.monotonic() - started
        ),
        file=out,
        flush=True,
    )
    return target


def load(path: str | os.PathLike[str], *, out: TextIO = sys.stdout) -> list[str]:
    """Load a bundle (``docker load``) and return the tags it held.

    Raises:
        LabkitError: no such file, or a file the daemon cannot read as images
            (corrupt, truncated, or not a bundle).
    """
    source = Path(path).expanduser()
    if not source.is_file():
        raise LabkitError(
            _("no image bundle at {source}").format(source=source),
            _("check the path; `labkit images bundle FILE` makes one on a prepared machine"),
        )
    started = time.monotonic()
    print(
        _("loading {source} ({size})").format(source=source, size=fmt.size(source.stat().st_size, "mb")),
        file=out,
        flush=True,
    )
    fix = _("make it again with `labkit images bundle FILE` and copy it whole")
    tags: list[str] = []
    api = engine.client().api
    try:
        size = source.stat().st_size
        with (
            open(source, "rb") as raw,
            engine.converted(),
            activity.task(_("loading {name}").format(name=source.name), total=size, out=out) as progress,
        ):
            data = CountingReader(raw, size, progress.advance)
            try:
                for message in api.load_image(data, quiet=True):
                    if message.get("error"):
                        raise LabkitError(
                            _("{source} is not an image bundle Docker can load ({error})").format(
                                source=source, error=message["error"].strip()
                            ),
                            fix,
                        )
                    text = str(message.get("stream", "")).strip()
                    if text.startswith("Loaded image: "):
                        tags.append(text.removeprefix("Loaded image: "))
                        print(f"  {tags[-1]}", file=out, flush=True)
                    elif text.startswith("Loaded image ID: "):
                        print(
                            _("  an image without a name: {text}").format(
                                text=text.removeprefix("Loaded image ID: ")[:19]
                            ),
                            file=out,
                            flush=True,
                        )
            except docker.errors.APIError as e:
                reason = e.explanation or str(e)
                raise LabkitError(
                    _("{source} is not an image bundle Docker can load ({reason})").format(
                        source=source, reason=str(reason).strip()[:160]
                    ),
                    fix,
                ) from e
    except requests.exceptions.RequestException as e:  # an OSError too: catch it first
        raise LabkitError(
            _("loading {source} was interrupted: {error}").format(source=source, error=e), _("run the command again")
        ) from e
    except OSError as e:
        raise LabkitError(
            _("cannot read {source}: {cause}").format(source=source, cause=e.strerror or e),
            _("check the file's permissions"),
        ) from e
    if not tags:
        raise LabkitError(_("{source} held no named images").format(source=source), fix)
    print(
        ngettext("loaded {n} image in {seconds:.1f} s", "loaded {n} images in {seconds:.1f} s", len(tags)).format(
            n=len(tags), seconds=time.monotonic() - started
        ),
        file=out,
        flush=True,
    )
    return tags
