"""The classroom server's sqlite store: token hashes, learners, instructor sessions and every event.

One connection, one lock: sqlite allows one writer at a time anyway, and a lock
in front of it turns "database is locked" retries into a short queue. The
database runs in WAL mode with ``synchronous=NORMAL``: a committed event is in
the WAL file before the server answers the post, so killing the server (even
with ``kill -9``) loses nothing it acknowledged; only a power cut could lose the
last transactions, which the learners' queues would then resend.

Secrets at rest: the file and its ``-wal`` and ``-shm`` are 0600, and a folder the
store makes is 0700. The join and instructor tokens, the learner keys and the
instructor's session values are kept only as SHA-256 hashes (128 random bits each,
so a hash cannot be walked back), compared with ``hmac.compare_digest``: a copy of
the database lets nobody join, post as a learner or open the instructor's page. A
token is therefore shown once, when it is issued (the first ``serve``, or
``labkit classroom rotate``). ``secure_delete`` is on, so a forgotten learner or an
ended session leaves no bytes behind. A database from before (tokens in clear) is
converted when it is opened, and its old pages are overwritten.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import secrets
import sqlite3
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from labkit.core import fmt
from labkit.core.errors import StoreError
from labkit.exercises.machinery.learner_names import name_key

#: The layout this module writes (``meta.schema``); 1 kept tokens in clear.
SCHEMA_VERSION = 2

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS learners (
    name TEXT PRIMARY KEY, key_hash TEXT NOT NULL, joined_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    learner TEXT NOT NULL,
    exercise TEXT NOT NULL,
    received_at TEXT NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_learner ON events (learner, seq);
CREATE TABLE IF NOT EXISTS sessions (hash TEXT PRIMARY KEY, expires_at REAL NOT NULL);
"""


def new_token() -> str:
    """A fresh secret for a token or a learner key: 128 bits in hex.

    Hex, not URL-safe base64: a token read off a projector has no ``-``/``_``/``l``/``I``
    to confuse, and one starting with ``-`` would be taken for an option by
    ``labkit classroom join URL TOKEN``.

    Example:
        >>> token = new_token()
        >>> len(token), token.isalnum(), token.startswith("-")
        (32, True, False)
    """
    return secrets.token_hex(16)


def hash_secret(secret: str) -> str:
    """What the store keeps of a token, key or session value: its SHA-256, in hex."""
    return hashlib.sha256(secret.encode()).hexdigest()


def matches(secret: str | None, expected_hash: str) -> bool:
    """Whether ``secret`` hashes to ``expected_hash``, in constant time."""
    if not secret or not expected_hash:
        return False
    return hmac.compare_digest(hash_secret(secret), expected_hash)


#: Seconds the server's event loop may wait for the database before handing a post to a thread.
LOOP_WAIT = 0.005


@dataclass(frozen=True)
class Stored:
    """An event as the server keeps it: its order of arrival and when it arrived."""

    seq: int
    event: dict[str, Any]
    received_at: str


@dataclass(frozen=True)
class TokenHashes:
    """The hashes of the join and instructor tokens, and when those were issued."""

    join: str
    instructor: str
    issued_at: str


class ClassroomFull(StoreError):
    """The classroom has as many learners as it takes."""

    def __init__(self, limit: int) -> None:
        super().__init__(
            f"this classroom is full ({limit} learners)",
            "ask the instructor: `labkit classroom forget NAME` frees a place, `serve --max-learners N` makes more",
        )
        self.limit = limit


def _private_file(path: Path) -> None:
    """Create ``path`` as 0600 if missing, or make it 0600 (sqlite gives its -wal and -shm the same mode)."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        os.fchmod(fd, 0o600)
    finally:
        os.close(fd)
    for suffix in ("-wal", "-shm", "-journal"):
        with contextlib.suppress(FileNotFoundError):
            os.chmod(f"{path}{suffix}", 0o600)


class Store:
    """Token hashes, learner keys, sessions and events in one sqlite file.

    Args:
        path: the database file; a missing folder is created (0700).

    Raises:
        StoreError: the file cannot be created or is not a database.
    """

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        try:
            if not self.path.parent.is_dir():
                self.path.parent.mkdir(parents=True, mode=0o700)
                os.chmod(self.path.parent, 0o700)  # mkdir's mode is cut by the umask
            _private_file(self.path)
            self._db = sqlite3.connect(self.path, check_same_thread=False, timeout=10)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA secure_delete=ON")
            self._db.executescript(_SCHEMA)
            self._migrate()
        except (OSError, sqlite3.Error) as e:
            raise StoreError(
                f"cannot open the classroom database {self.path} ({e})",
                "pass another file with --db, or move the damaged one away",
            ) from e

    def _migrate(self) -> None:
        """Bring an older database to :data:`SCHEMA_VERSION`: learner name keys, tokens hashed."""
        with self._lock, self._db:
            columns = {row[1] for row in self._db.execute("PRAGMA table_info(learners)")}
            if "name_key" not in columns:
                self._db.execute("ALTER TABLE learners ADD COLUMN name_key TEXT")
                names = [r[0] for r in self._db.execute("SELECT name FROM learners")]
                self._db.executemany(
                    "UPDATE learners SET name_key = ? WHERE name = ?", [(name_key(n), n) for n in names]
                )
            self._db.execute("CREATE INDEX IF NOT EXISTS learners_key ON learners (name_key)")
            clear = dict(
                self._db.execute("SELECT key, value FROM meta WHERE key IN ('join_token', 'instructor_token')")
            )
            for role in ("join", "instructor"):
                if f"{role}_token" in clear:
                    self._set(f"{role}_token_hash", hash_secret(clear[f"{role}_token"]))
            if clear:
                self._set("tokens_issued_at", fmt.utc_now())
                self._db.execute("DELETE FROM meta WHERE key IN ('join_token', 'instructor_token')")
            self._set("schema", str(SCHEMA_VERSION))
        if clear:
            # The deleted rows' pages are zeroed (secure_delete); fold the WAL back so no copy stays in it.
            with self._lock:
                self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def _set(self, key: str, value: str) -> None:
        self._db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

    def _get(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def close(self) -> None:
        """Close the database (a checkpoint folds the WAL back into the file)."""
        with self._lock:
            self._db.close()

    # -- tokens and sessions --------------------------------------------------------------------

    def issue_tokens(self) -> tuple[str, str] | None:
        """The (join, instructor) tokens when there were none yet (made with ``secrets``); None when kept from before.

        Only their hashes are stored: this is the one time they can be shown.
        """
        with self._lock, self._db:
            if self._get("join_token_hash") and self._get("instructor_token_hash"):
                return None
            return self._new_tokens()

    def rotate(self) -> tuple[str, str]:
        """New join and instructor tokens: the old ones, and every instructor session, stop working.

        Learner keys stay: a learner who joined joins again with the new token and keeps their name.
        """
        with self._lock, self._db:
            self._db.execute("DELETE FROM sessions")
            return self._new_tokens()

    def _new_tokens(self) -> tuple[str, str]:
        join, instructor = new_token(), new_token()
        self._set("join_token_hash", hash_secret(join))
        self._set("instructor_token_hash", hash_secret(instructor))
        self._set("tokens_issued_at", fmt.utc_now())
        return join, instructor

    def token_hashes(self) -> TokenHashes:
        """The tokens' hashes as stored now (``labkit classroom rotate`` may change them under a running server)."""
        with self._lock:
            join, instructor = self._get("join_token_hash"), self._get("instructor_token_hash")
            issued = self._get("tokens_issued_at") or ""
        return TokenHashes(join or "", instructor or "", issued)

    def new_session(self, ttl: float) -> str:
        """A fresh instructor session value, valid for ``ttl`` seconds (only its hash is kept)."""
        value = secrets.token_hex(32)
        now = time.time()
        with self._lock, self._db:
            self._db.execute("DELETE FROM sessions WHERE expires_at <= ?", (now,))
            self._db.execute("INSERT INTO sessions (hash, expires_at) VALUES (?, ?)", (hash_secret(value), now + ttl))
        return value

    def session_valid(self, value: str) -> bool:
        """Whether an instructor session value was issued here, has not expired and was not ended by a rotation."""
        with self._lock:
            row = self._db.execute(
                "SELECT hash, expires_at FROM sessions WHERE hash = ?", (hash_secret(value),)
            ).fetchone()
        return row is not None and matches(value, str(row[0])) and float(row[1]) > time.time()

    # -- learners -----------------------------------------------------------------------------

    def join(self, name: str, key: str | None, max_learners: int | None = None) -> str | None:
        """Bind a learner name to a key.

        Names with the same :func:`~labkit.exercises.machinery.learner_names.name_key` are one
        learner: the first spelling is the one kept (:meth:`learner_for_key` gives it).

        Args:
            name: the learner's name (already checked).
            key: the key this learner got earlier, when joining again.
            max_learners: refuse a new learner beyond this many.

        Returns:
            The learner's key (a new one on first join), or None when the name is
            taken by someone holding another key.

        Raises:
            ClassroomFull: a new learner, and ``max_learners`` have joined already.
        """
        with self._lock, self._db:
            row = self._db.execute("SELECT key_hash FROM learners WHERE name_key = ?", (name_key(name),)).fetchone()
            if row is not None:
                return key if key and matches(key, str(row[0])) else None
            if max_learners is not None:
                (count,) = self._db.execute("SELECT COUNT(*) FROM learners").fetchone()
                if count >= max_learners:
                    raise ClassroomFull(max_learners)
            new_key = new_token()
            self._db.execute(
                "INSERT INTO learners (name, key_hash, joined_at, name_key) VALUES (?, ?, ?, ?)",
                (name, hash_secret(new_key), fmt.utc_now(), name_key(name)),
            )
            return new_key

    def learner_for_key(self, key: str) -> str | None:
        """The learner name this key was issued to, or None."""
        with self._lock:
            row = self._db.execute("SELECT name FROM learners WHERE key_hash = ?", (hash_secret(key),)).fetchone()
        return None if row is None else str(row[0])

    def forget(self, name: str) -> bool:
        """Free a learner name (any spelling of it; their events stay); True when it was bound."""
        with self._lock, self._db:
            return self._db.execute("DELETE FROM learners WHERE name_key = ?", (name_key(name),)).rowcount > 0

    def learner_names(self) -> list[str]:
        """Everyone who joined, in order of joining."""
        with self._lock:
            return [r[0] for r in self._db.execute("SELECT name FROM learners ORDER BY joined_at, name")]

    # -- events -------------------------------------------------------------------------------

    def add(self, events: Iterable[dict[str, Any]]) -> list[Stored]:
        """Store events in one transaction; an id already stored is skipped (dedupe).

        Returns:
            The events that were new, in the order stored.

        Raises:
            StoreError: the database could not be written (disk full, say).
        """
        with self._lock:
            return self._add(events)

    def try_add(self, events: Iterable[dict[str, Any]], wait: float = LOOP_WAIT) -> list[Stored] | None:
        """:meth:`add`, when the database is free within ``wait`` seconds; None (nothing stored) when not.

        The server calls this on its event loop: an insert and a commit in WAL mode take well
        under a millisecond, while handing them to a worker thread costs more than the work
        (posts/s rose from 845 to 1,335 on two cores). Another thread's short write is waited
        for; a database busy for longer (a gradebook being read) sends the post to a worker
        thread instead, so the loop never waits more than ``wait``.

        Raises:
            StoreError: the database could not be written (disk full, say).
        """
        if not self._lock.acquire(timeout=wait):
            return None
        try:
            return self._add(events)
        finally:
            self._lock.release()

    def _add(self, events: Iterable[dict[str, Any]]) -> list[Stored]:
        received = fmt.utc_now()
        new: list[Stored] = []
        try:
            with self._db:
                for event in events:
                    cursor = self._db.execute(
                        "INSERT OR IGNORE INTO events (id, learner, exercise, received_at, body) VALUES (?, ?, ?, ?, ?)",
                        (event["id"], event["learner"], event["exercise"], received, json.dumps(event, sort_keys=True)),
                    )
                    if cursor.rowcount:
                        new.append(Stored(int(cursor.lastrowid or 0), event, received))
        except sqlite3.Error as e:
            raise StoreError(f"cannot store events in {self.path} ({e})", "check the disk the database is on") from e
        return new

    def events(self, learner: str | None = None) -> list[Stored]:
        """Every stored event (or one learner's), in order of arrival."""
        query = "SELECT seq, body, received_at FROM events"
        args: tuple[str, ...] = ()
        if learner is not None:
            query += " WHERE learner = ?"
            args = (learner,)
        with self._lock:
            rows = self._db.execute(query + " ORDER BY seq", args).fetchall()
        return [Stored(int(seq), json.loads(body), received) for seq, body, received in rows]

    def count(self) -> int:
        """How many events are stored."""
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM events").fetchone()[0])

    def last_seq(self) -> int:
        """The order number of the latest event (0 when there is none)."""
        with self._lock:
            return int(self._db.execute("SELECT COALESCE(MAX(seq), 0) FROM events").fetchone()[0])
