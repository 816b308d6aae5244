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
from labkit.core.i18n import _
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
        f"saving {len(wanted)} image{'s' if len(wanted) != 1 else ''} ({', '.join(wanted)}) to {target}",
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
                    f"the daemon could not save {', '.join(wanted)}: {response.text.strip()[:200]}",
                    "run `labkit doctor`",
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
        raise LabkitError(f"saving the images was interrupted: {e}", "run the command again") from e
    except OSError as e:
        raise LabkitError(
            f"cannot write {target}: {e.strerror or e}", "choose a folder you can write to, with enough free space"
        ) from e
    finally:
        partial.unlink(missing_ok=True)
    kind = " (gzip)" if compress else ""
    print(
        f"bundle ready: {target}, {fmt.size(target.stat().st_size, 'mb')}{kind} in {time.monotonic() - started:.1f} s",
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
            f"no image bundle at {source}",
            "check the path; `labkit images bundle FILE` makes one on a prepared machine",
        )
    started = time.monotonic()
    print(f"loading {source} ({fmt.size(source.stat().st_size, 'mb')})", file=out, flush=True)
    fix = "make it again with `labkit images bundle FILE` and copy it whole"
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
                            f"{source} is not an image bundle Docker can load ({message['error'].strip()})", fix
                        )
                    text = str(message.get("stream", "")).strip()
                    if text.startswith("Loaded image: "):
                        tags.append(text.removeprefix("Loaded image: "))
                        print(f"  {tags[-1]}", file=out, flush=True)
                    elif text.startswith("Loaded image ID: "):
                        print(
                            f"  an image without a name: {text.removeprefix('Loaded image ID: ')[:19]}",
                            file=out,
                            flush=True,
                        )
            except docker.errors.APIError as e:
                reason = e.explanation or str(e)
                raise LabkitError(
                    f"{source} is not an image bundle Docker can load ({str(reason).strip()[:160]})", fix
                ) from e
    except requests.exceptions.RequestException as e:  # an OSError too: catch it first
        raise LabkitError(f"loading {source} was interrupted: {e}", "run the command again") from e
    except OSError as e:
        raise LabkitError(f"cannot read {source}: {e.strerror or e}", "check the file's permissions") from e
    if not tags:
        raise LabkitError(f"{source} held no named images", fix)
    print(
        f"loaded {len(tags)} image{'s' if len(tags) != 1 else ''} in {time.monotonic() - started:.1f} s",
        file=out,
        flush=True,
    )
    return tags
