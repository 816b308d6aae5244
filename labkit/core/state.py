"""State files: written whole or not at all, appended a line at a time, read back with a known shape.

labkit keeps a learner's state in small files under ``state_dir()``: the exercises'
answers (``exercises.json``), the progress record (``progress.jsonl``), the
classroom's queue and configuration. Every one of them goes through this module:

- :func:`write_json` / :func:`write_bytes` / :func:`replacing`: a temporary file in
  the same folder, flushed and fsync'd, then ``os.replace``-d over the old one, so a
  reader sees the old file or the new one, never half of one; the old file's mode is
  kept.
- :func:`append_json_line`: one JSON object per line, under an ``flock``; when a
  crash left the last line cut short, the new record starts on a line of its own.
- :func:`read_json` and :func:`read_json_lines`: the file as the caller expects it,
  or, when it is damaged, the damaged part moved aside under a name that says so
  (``exercises.json.damaged-20261130T233000``).

Example:
    >>> import tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> write_json(folder / "a.json", {"answers": {}})
    >>> read_json(folder / "a.json", dict, default={})
    {'answers': {}}
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import os
import secrets
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, TypeVar

from labkit.core.errors import DamagedState, LabkitError
from labkit.core.i18n import _

T = TypeVar("T")


# --- writing whole files ---------------------------------------------------------------------


@contextlib.contextmanager
def replacing(path: Path, *, mode: int | None = None) -> Iterator[IO[bytes]]:
    """A binary file that takes ``path``'s place when the block ends, and vanishes if it raises.

    Args:
        path: the file to write.
        mode: its permissions when it is new (an existing file keeps its own); by default
            what ``open()`` would give it (0666 less the umask).

    Raises:
        OSError: the folder cannot be written.
    """
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        keep: int | None
        try:
            keep = path.stat().st_mode & 0o7777
        except FileNotFoundError:
            keep = mode
        if keep is not None:
            os.fchmod(fd, keep)
        with os.fdopen(fd, "wb") as f:
            fd = -1
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if fd >= 0:
            os.close(fd)
        tmp.unlink(missing_ok=True)
        raise
    _sync_folder(path.parent)


def _sync_folder(folder: Path) -> None:
    """Make the rename itself durable (a power cut after it keeps the new file)."""
    with contextlib.suppress(OSError):  # not every file system lets a folder be opened and fsync'd
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def write_bytes(path: Path, data: bytes, *, mode: int | None = None) -> None:
    """Replace ``path`` with ``data`` in one step (see :func:`replacing`).

    Raises:
        OSError: the folder cannot be written.
    """
    with replacing(path, mode=mode) as f:
        f.write(data)


def write_json(path: Path, data: Any, *, mode: int | None = None, indent: int | None = 2) -> None:
    """Replace ``path`` with ``data`` as JSON (sorted keys, so the same data gives the same file).

    Raises:
        OSError: the folder cannot be written.
        TypeError: ``data`` holds something JSON cannot represent.
    """
    write_bytes(path, (json.dumps(data, indent=indent, sort_keys=True, ensure_ascii=False) + "\n").encode(), mode=mode)


# --- locks and appended lines ----------------------------------------------------------------


@contextlib.contextmanager
def locked(lock_file: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``lock_file`` (created if missing) for the block.

    Use a lock file of its own for a file that is ever replaced whole: a lock on the
    old file would not exclude a writer of the new one.
    """
    with open(lock_file, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def append_json_line(
    path: Path, record: Any, *, lock: Path | None = None, fsync: bool = True, mode: int = 0o600
) -> None:
    """Append ``record`` to ``path`` as one JSON line.

    A last line left without its newline (a write cut short) stays a damaged line of its
    own: the record starts on a new line. Writers hold an ``flock`` on ``lock`` (the file
    itself when None), and the line goes out in one ``write()`` on an ``O_APPEND``
    descriptor, so two processes never interleave their lines.

    Args:
        path: the lines file (created with ``mode`` if missing).
        record: any JSON-serialisable value.
        lock: the lock file of a lines file that is also rewritten whole (:func:`locked`).
        fsync: flush to disk before returning.

    Raises:
        OSError: the file cannot be written.
        TypeError: ``record`` holds something JSON cannot represent.
    """
    line = (json.dumps(record, ensure_ascii=False, sort_keys=True, separators=(",", ":")) + "\n").encode()
    with locked(lock) if lock is not None else contextlib.nullcontext():
        fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, mode)
        try:
            if lock is None:
                fcntl.flock(fd, fcntl.LOCK_EX)
            size = os.fstat(fd).st_size
            if size and os.pread(fd, 1, size - 1) != b"\n":
                line = b"\n" + line
            os.write(fd, line)
            if fsync:
                os.fsync(fd)
        finally:
            os.close(fd)  # closing drops the flock


@dataclass
class Lines:
    """A lines file as read: the records that parsed and passed the check, and the damaged lines."""

    records: list[Any] = field(default_factory=list)
    damaged: list[str] = field(default_factory=list)


def read_json_lines(path: Path, accept: Callable[[Any], Any] | None = None) -> Lines:
    """Every line of ``path`` that is JSON ``accept`` takes; the rest counted as damaged.

    A missing file is an empty one, and blank lines are neither records nor damage.

    Args:
        accept: returns the record to keep, or raises ``ValueError`` (or ``TypeError``)
            for a line of the wrong shape; by default any JSON value is kept.

    Raises:
        OSError: the file exists but cannot be read.
    """
    lines = Lines()
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            raw = f.read().splitlines()
    except FileNotFoundError:
        return lines
    for line in raw:
        if not line.strip():
            continue
        try:
            value = json.loads(line)
            lines.records.append(accept(value) if accept is not None else value)
        except (ValueError, TypeError):  # json.JSONDecodeError is a ValueError too
            lines.damaged.append(line)
    return lines


def rewrite_json_lines(path: Path, records: Sequence[Any], *, mode: int | None = 0o600) -> None:
    """Replace a lines file with ``records``, one JSON line each, in one step.

    Raises:
        OSError: the folder cannot be written.
    """
    text = "".join(json.dumps(r, ensure_ascii=False, separators=(",", ":")) + "\n" for r in records)
    write_bytes(path, text.encode(), mode=mode)


# --- damaged files ---------------------------------------------------------------------------


def aside_path(path: Path, when: dt.datetime | None = None) -> Path:
    """Where a damaged ``path`` goes: ``NAME.damaged-YYYYMMDDTHHMMSS`` beside it, never over another."""
    stamp = (when or dt.datetime.now(dt.UTC)).strftime("%Y%m%dT%H%M%S")
    target = path.with_name(f"{path.name}.damaged-{stamp}")
    n = 1
    while target.exists():
        n += 1
        target = path.with_name(f"{path.name}.damaged-{stamp}-{n}")
    return target


def set_aside(path: Path) -> Path | None:
    """Move a damaged file out of the way; returns where it went, or None when it could not move."""
    target = aside_path(path)
    try:
        os.replace(path, target)
    except OSError:
        return None
    return target


def set_aside_lines(path: Path, damaged: Sequence[str]) -> Path:
    """Write damaged lines of ``path`` to a file beside it (see :func:`aside_path`).

    Raises:
        OSError: the folder cannot be written.
    """
    target = aside_path(path)
    write_bytes(target, "".join(line + "\n" for line in damaged).encode(), mode=0o600)
    return target


def read_json(path: Path, check: Callable[[Any], T], *, default: T) -> T:
    """The JSON in ``path`` as ``check`` returns it; ``default`` when there is no file.

    Args:
        check: takes the parsed value and returns it (or a cleaned copy), raising
            ``ValueError`` or ``TypeError`` with one line saying what is wrong.
        default: what a missing file stands for.

    Raises:
        DamagedState: the file is not JSON or not of the expected shape; it was moved aside
            (the next read starts from ``default``).
        LabkitError: the file exists but cannot be read.
    """
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return default
    except OSError as e:
        raise LabkitError(
            _("cannot read {path} ({cause})").format(path=path, cause=e.strerror or e),
            _("check its permissions, or move it away"),
        ) from e
    try:
        data = json.loads(raw)
    except ValueError as e:  # truncated, or not JSON at all (UnicodeDecodeError is a ValueError too)
        problem = _("empty") if not raw.strip() else _("not JSON: {error}").format(error=e)
    else:
        try:
            return check(data)
        except (ValueError, TypeError) as e:
            problem = str(e)
    moved = set_aside(path)
    raise DamagedState(str(path), problem, None if moved is None else str(moved))


def describe(value: Any) -> str:
    """A JSON value's kind, for messages: ``a list``, ``null``, ``a number``."""
    if value is None:
        return "null"
    kinds = {
        dict: "an object",
        list: "a list",
        str: "a string",
        bool: "true or false",
        int: "a number",
        float: "a number",
    }
    return kinds.get(type(value), type(value).__name__)
