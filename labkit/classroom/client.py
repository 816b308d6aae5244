"""The learner's side of a classroom: join, and send each check and hint to the instructor.

It speaks HTTP through labkit's one client (:mod:`labkit.core.http`), so a learner needs nothing beyond labkit itself.

``submit(event)`` never blocks its caller on the network: it appends one line to
``state_dir()/classroom-queue.jsonl`` and wakes a daemon thread that posts queued
events in order, in batches, with a short timeout, and removes each once the server
acknowledged it (duplicates count as acknowledged: the server dedupes by id). When
the server cannot be reached the thread retries with backoff (1 s doubling to 60 s);
when it answers 429 (this learner posted more events a minute than it takes) the
thread waits as long as its ``Retry-After`` says, and the events stay queued meanwhile;
the queue is a file, so what a learner did while offline survives the kernel or the
laptop restarting and goes out with the next submit or ``labkit classroom flush``.
An event the server refuses for good (invalid, or not this learner's) moves to
``classroom-rejected.jsonl`` so it cannot block the rest; ``labkit classroom status``
counts both files.

Several processes may share one queue (the notebook's kernel and ``labkit check`` in a
terminal): appends and rewrites hold an ``flock`` on ``classroom-queue.lock``, and an
event two of them send twice is stored once.

The configuration holds the join token and the learner key, so these files are 0600
and the state folder 0700 (:func:`_private`, on join and on each process's first submit).
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import random
import threading
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

from labkit.core import http, state
from labkit.core.errors import ClassroomError, HttpUnreachable
from labkit.core.paths import state_dir
from labkit.exercises.machinery import record
from labkit.exercises.machinery.learner_names import check_name, name_key

LEARNER_KEY_HEADER = "x-labkit-learner-key"
#: Events per post, and bytes per post (below the server's 64 KiB cap).
BATCH_EVENTS = 50
BATCH_BYTES = 48 * 1024
#: Seconds a post may take before it counts as failed.
POST_TIMEOUT = 5.0
MAX_BACKOFF = 60.0
#: Longest wait a server's ``Retry-After`` may ask for.
MAX_RETRY_AFTER = 600.0
_PERMANENT = {400, 413, 415, 422}


class _Transient(Exception):
    """The server could not be reached or was busy: try again later (after ``retry_after`` s, when it said)."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class _Refused(Exception):
    """The server refused our token or key: retrying will not help until the learner rejoins."""


# -- files ------------------------------------------------------------------------------------


def config_path() -> Path:
    """``state_dir()/classroom.json``: url, join token, learner name and learner key."""
    return state_dir() / "classroom.json"


def queue_path() -> Path:
    """``state_dir()/classroom-queue.jsonl``: events not yet acknowledged by the server."""
    return state_dir() / "classroom-queue.jsonl"


def rejected_path() -> Path:
    """``state_dir()/classroom-rejected.jsonl``: events the server refused for good, with why."""
    return state_dir() / "classroom-rejected.jsonl"


def config() -> dict[str, str] | None:
    """The classroom this learner joined, or None (not joined, or a damaged file)."""
    try:
        data = json.loads(config_path().read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or not all(isinstance(data.get(k), str) for k in ("url", "token", "learner", "key")):
        return None
    return data


def _lock_path() -> Path:
    return state_dir() / "classroom-queue.lock"


_made_private: set[Path] = set()


def _private(force: bool = False) -> None:
    """Make the state folder 0700 and the classroom's files in it 0600 (once per process and folder).

    The configuration holds the join token and learner key; the queue, what the learner did.
    """
    folder = state_dir()
    if folder in _made_private and not force:
        return
    with contextlib.suppress(OSError):  # a folder we may not chmod (not ours): the files still get 0600
        os.chmod(folder, 0o700)
    with contextlib.suppress(OSError):
        os.close(os.open(_lock_path(), os.O_WRONLY | os.O_CREAT, 0o600))
    for path in (config_path(), queue_path(), rejected_path(), _lock_path()):
        with contextlib.suppress(OSError):
            os.chmod(path, 0o600)
    _made_private.add(folder)


def _queued_event(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict) or not isinstance(value.get("id"), str):
        raise TypeError("not a queued event")
    return value


def _read_queue() -> list[dict[str, Any]]:
    """Queued events in order; a damaged line (a write cut short) is skipped here, and set aside by :func:`repair_queue`."""
    try:
        return state.read_json_lines(queue_path(), _queued_event).records
    except OSError:
        return []


def queued() -> int:
    """How many events wait to be sent."""
    return len(_read_queue())


def rejected() -> int:
    """How many events the server refused for good."""
    try:
        return len(rejected_path().read_text().splitlines())
    except OSError:
        return 0


def _rewrite_queue(drop: set[str], refused: dict[str, str]) -> str | None:
    """Rewrite the queue without ``drop`` and ``refused`` ids (refused ones go to the rejected file).

    Damaged lines are not lost: they move to ``classroom-queue.jsonl.damaged-<time>``.
    The caller holds the queue lock. Returns one line saying where damaged lines went, if any.
    """
    lines = state.read_json_lines(queue_path(), _queued_event)
    keep = []
    for event in lines.records:
        if event["id"] in refused:
            state.append_json_line(rejected_path(), {"reason": refused[event["id"]], "event": event})
        elif event["id"] not in drop:
            keep.append(event)
    notice = None
    if lines.damaged:
        aside = state.set_aside_lines(queue_path(), lines.damaged)
        notice = f"{len(lines.damaged)} damaged line(s) of {queue_path()} moved to {aside}; {len(keep)} queued result(s) kept"
    if lines.damaged or len(keep) != len(lines.records):
        state.rewrite_json_lines(queue_path(), keep)
    return notice


def _remove(ids: set[str], refused: dict[str, str] | None = None) -> None:
    """Drop acknowledged (and refused) events from the queue file; keep what was appended meanwhile."""
    with state.locked(_lock_path()):
        _rewrite_queue(ids, refused or {})


def repair_queue() -> str | None:
    """Set aside the queue's damaged lines, keeping the good ones; one line saying so, or None when all was well.

    Raises:
        OSError: the state folder cannot be written.
    """
    with state.locked(_lock_path()):
        return _rewrite_queue(set(), {})


# -- HTTP -------------------------------------------------------------------------------------


class _Answer(NamedTuple):
    status: int
    payload: dict[str, Any]
    retry_after: float | None  # seconds, from a 429's or 503's Retry-After


def _retry_after(value: str) -> float | None:
    """A ``Retry-After`` in seconds (labkit's server sends whole seconds; an HTTP date is not used)."""
    try:
        seconds = float(value)
    except ValueError:
        return None
    return min(MAX_RETRY_AFTER, max(0.0, seconds))


def _request(
    url: str, path: str, token: str, body: Any = None, key: str | None = None, timeout: float = POST_TIMEOUT
) -> _Answer:
    """One call to the server: status, JSON body, ``Retry-After``. Network failures raise ``_Transient``."""
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
    data = None
    if body is not None:
        data = json.dumps(body, separators=(",", ":")).encode()
        headers["Content-Type"] = "application/json"
    if key:
        headers[LEARNER_KEY_HEADER] = key
    try:
        answer = http.request(
            "POST" if data else "GET", url.rstrip("/") + path, headers=headers, data=data, timeout=timeout
        )
    except HttpUnreachable as e:
        raise _Transient(f"cannot reach {url} ({e.cause})") from e
    status, raw = answer.status, answer.body
    try:
        payload = json.loads(raw or b"{}")
    except ValueError:
        payload = {}
    if not isinstance(payload, dict):
        payload = {}
    if status >= 400 and "error" not in payload:
        payload["error"] = f"HTTP {status}"
    return _Answer(status, payload, _retry_after(answer.header("Retry-After")))


def _batches(events: list[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    batch: list[dict[str, Any]] = []
    size = 0
    for event in events:
        length = len(json.dumps(event))
        if batch and (len(batch) >= BATCH_EVENTS or size + length > BATCH_BYTES):
            yield batch
            batch, size = [], 0
        batch.append(event)
        size += length
    if batch:
        yield batch


def _post(cfg: dict[str, str], batch: list[dict[str, Any]]) -> tuple[set[str], dict[str, str]]:
    """Post one batch: (acknowledged ids, refused ids with reasons).

    A batch refused as a whole is retried one event at a time, so one bad event
    does not hold back the good ones.
    """
    status, payload, retry_after = _request(cfg["url"], "/api/events", cfg["token"], batch, key=cfg["key"])
    if status == 200:
        return {e["id"] for e in batch}, {}
    if status == 429:
        wait = retry_after if retry_after is not None else MAX_BACKOFF
        raise _Transient(f"the classroom server asks to wait {wait:g} s ({payload['error']})", retry_after=wait)
    permanent = status in _PERMANENT or payload.get("code") == "learner-mismatch"
    if status in (401, 403) and not permanent:
        raise _Refused(f"the classroom server refused this learner ({payload['error']})")
    if not permanent:
        raise _Transient(f"the classroom server answered {status} ({payload['error']})")
    if len(batch) == 1:
        return set(), {batch[0]["id"]: f"{status}: {payload['error']}"}
    acked: set[str] = set()
    refused: dict[str, str] = {}
    for event in batch:
        ok, bad = _post(cfg, [event])
        acked |= ok
        refused |= bad
    return acked, refused


# -- sending ----------------------------------------------------------------------------------

_send_lock = threading.Lock()
_wake = threading.Event()
_thread: threading.Thread | None = None
_thread_pid = 0
_last_failure: str | None = None


def _send_queued() -> int:
    """Send everything queued now; returns how many were acknowledged.

    Raises:
        _Transient: the server could not be reached (what was sent stays sent).
        _Refused: the server refused the token or key.
    """
    cfg = config()
    if cfg is None:
        return 0
    sent = 0
    for batch in _batches(_read_queue()):
        acked, refused = _post(cfg, batch)
        _remove(acked, refused)
        sent += len(acked)
    return sent


def _sender() -> None:
    global _last_failure
    delay: float | None = None
    while True:
        _wake.wait(delay)
        _wake.clear()
        try:
            with _send_lock:
                _send_queued()
        except _Transient as e:
            _last_failure = str(e)
            if e.retry_after is not None:  # the server said when: wait that long (and a little more, spread out)
                delay = e.retry_after * random.uniform(1.0, 1.2)
            else:
                delay = min(MAX_BACKOFF, (delay or 0.5) * 2) * random.uniform(0.8, 1.2)
            continue
        except _Refused as e:
            _last_failure = str(e)
        except Exception as e:  # a full disk or a damaged file must not kill the thread, nor the learner's kernel
            _last_failure = f"{type(e).__name__}: {e}"
        else:
            _last_failure = None
        delay = None


def _ensure_sender() -> None:
    global _thread, _thread_pid
    if _thread is not None and _thread.is_alive() and _thread_pid == os.getpid():
        return
    _thread = threading.Thread(target=_sender, name="labkit-classroom-sender", daemon=True)
    _thread_pid = os.getpid()
    _thread.start()


#: Seconds the exit-time flush may add to a process's exit, whatever the server does.
EXIT_FLUSH_DEADLINE = 0.5


def _at_exit() -> None:
    # A short-lived `labkit check` in a terminal exits before the thread posts: give it one
    # quick try, unless the server was already unreachable (do not slow every command down).
    # The try runs in a daemon thread given EXIT_FLUSH_DEADLINE: a server that accepts and
    # never answers (or a sender holding the lock) cannot hold the exit longer; what is not
    # acknowledged stays queued for the next check or `labkit classroom flush`.
    if _last_failure is None and queued():
        trying = threading.Thread(target=_flush_quietly, name="labkit-classroom-exit-flush", daemon=True)
        trying.start()
        trying.join(EXIT_FLUSH_DEADLINE)


def _flush_quietly() -> None:
    """:func:`flush` for the exit-time thread: a failure leaves the events queued and says nothing."""
    with contextlib.suppress(Exception):
        flush(timeout=EXIT_FLUSH_DEADLINE)


_registered_exit = False


def submit(event: dict[str, Any]) -> None:
    """Queue an event for the classroom and return at once (nothing happens when not joined).

    The caller's thread only appends one line to the queue file; a daemon thread posts it.
    """
    global _registered_exit
    if config() is None:
        return
    _private()
    # No fsync: a crash of this process keeps the line (it is in the OS's cache); only a
    # power cut could lose it, and the local progress record (fsync'd) still has it.
    state.append_json_line(queue_path(), event, lock=_lock_path(), fsync=False)
    _ensure_sender()
    _wake.set()
    if not _registered_exit:
        atexit.register(_at_exit)
        _registered_exit = True


def install() -> None:
    """Queue every check and hint the progress record keeps for this classroom (a no-op until joined).

    ``import labkit`` calls this, so a notebook kernel and every ``labkit`` command queue
    alike; adding it twice changes nothing.
    """
    record.add_sink(submit)


def flush(timeout: float = 10.0) -> int:
    """Send what is queued now, in this thread.

    Args:
        timeout: seconds to wait for the background thread if it is sending already.

    Returns:
        How many events the server acknowledged.

    Raises:
        ClassroomError: not joined, the server could not be reached, or it refused this learner.
    """
    global _last_failure
    if config() is None:
        raise ClassroomError("not in a classroom", "join one: labkit classroom join URL TOKEN --name NAME")
    if not _send_lock.acquire(timeout=timeout):
        raise ClassroomError(f"the background sender is still busy after {timeout:g} s", "try again in a moment")
    try:
        sent = _send_queued()
    except (_Transient, _Refused) as e:
        _last_failure = str(e)
        left = queued()
        raise ClassroomError(
            str(e),
            f"{left} result(s) stay queued and go out with the next check or `labkit classroom flush`",
        ) from e
    finally:
        _send_lock.release()
    _last_failure = None
    return sent


# -- joining ----------------------------------------------------------------------------------


def _check_url(url: str) -> str:
    parsed = urllib.parse.urlsplit(url.strip())
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise ClassroomError(
            f"{url!r} is not a classroom URL", "copy it from the instructor, e.g. http://10.0.0.5:8787"
        )
    return f"{parsed.scheme}://{parsed.netloc}{parsed.path.rstrip('/')}"


def ping(url: str, token: str, timeout: float = POST_TIMEOUT) -> str:
    """Ask the server who this token is; returns "learner" or "instructor".

    Raises:
        ClassroomError: unreachable, not a labkit classroom, or the token is wrong.
    """
    try:
        status, payload, _ = _request(url, "/api/ping", token, timeout=timeout)
    except _Transient as e:
        raise ClassroomError(
            str(e), "check the URL with your instructor, and that you are on the classroom network"
        ) from e
    if status in (401, 403):
        raise ClassroomError(
            f"the classroom at {url} refused the token ({payload['error']})", "copy the join token again"
        )
    if status != 200 or payload.get("service") != "labkit classroom":
        raise ClassroomError(f"{url} is not a labkit classroom (HTTP {status})", "check the URL with your instructor")
    return str(payload.get("role"))


def join(url: str, token: str, name: str) -> dict[str, str]:
    """Join a classroom: check URL and token with the server, get a learner key, save them.

    Args:
        url: the server, as ``labkit classroom serve`` printed it.
        token: the join token.
        name: how the instructor sees this learner.

    Returns:
        The saved configuration (url, token, learner, key).

    Raises:
        ClassroomError: a bad URL or name, an unreachable server, a wrong token, or a name taken.
    """
    url = _check_url(url)
    try:
        name = check_name(name)
    except ValueError as e:
        raise ClassroomError(f"cannot join as {name!r}: {e}", "pick another --name") from e
    if ping(url, token) != "learner":
        raise ClassroomError("that is the instructor's token", "learners join with the join token")
    earlier = config()
    same = earlier is not None and earlier["url"] == url and name_key(earlier["learner"]) == name_key(name)
    key = earlier["key"] if earlier and same else None
    try:
        status, payload, _ = _request(url, "/api/join", token, {"name": name, "key": key})
    except _Transient as e:
        raise ClassroomError(str(e), "try again") from e
    if status != 200 or not isinstance(payload.get("key"), str):
        raise ClassroomError(
            f"could not join: {payload.get('error', f'HTTP {status}')}", "see the message, then join again"
        )
    # The server may know this learner under another spelling of the name (ADA for ada): use its own.
    learner = payload["learner"] if isinstance(payload.get("learner"), str) else name
    data = {"url": url, "token": token, "learner": learner, "key": payload["key"]}
    _private(force=True)
    state.write_json(config_path(), data, mode=0o600)  # the key lets whoever reads it post as this learner
    _private(force=True)  # an older file keeps its mode through the rewrite: make it 0600 again
    return data


def leave() -> int:
    """Stop sending to the classroom; returns how many queued results were dropped unsent.

    The local progress record keeps every result either way.
    """
    dropped = queued()
    with state.locked(_lock_path()):
        for path in (config_path(), queue_path()):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
    return dropped


def status() -> dict[str, Any]:
    """Where results go and what waits: for ``labkit classroom status``."""
    cfg = config()
    info: dict[str, Any] = {
        "joined": cfg is not None,
        "queued": queued(),
        "rejected": rejected(),
        "state_dir": str(state_dir()),
    }
    if cfg is None:
        return info
    info |= {"url": cfg["url"], "learner": cfg["learner"], "token": cfg["token"][:4] + "…"}
    try:
        ping(cfg["url"], cfg["token"], timeout=3.0)
        info["server"] = "reachable"
    except ClassroomError as e:
        info["server"] = f"not reachable: {e.message}"
    return info
