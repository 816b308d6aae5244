"""The classroom server's sqlite store: tokens, learners and every event, kept across restarts.

One connection, one lock: sqlite allows one writer at a time anyway, and a lock
in front of it turns "database is locked" retries into a short queue. The
database runs in WAL mode with ``synchronous=NORMAL``: a committed event is in
the WAL file before the server answers the post, so killing the server (even
with ``kill -9``) loses nothing it acknowledged; only a power cut could lose the
last transactions, which the learners' queues would then resend.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import sqlite3
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from labkit.core import fmt
from labkit.core.errors import StoreError

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


@dataclass(frozen=True)
class Stored:
    """An event as the server keeps it: its order of arrival and when it arrived."""

    seq: int
    event: dict[str, Any]
    received_at: str


def _hash_key(key: str) -> str:
    # Only a hash of each learner key is kept: a copied database does not let anyone post as a learner.
    return hashlib.sha256(key.encode()).hexdigest()


class Store:
    """Tokens, learner keys and events in one sqlite file.

    Args:
        path: the database file; its folder is created.

    Raises:
        StoreError: the file cannot be created or is not a database.
    """

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, check_same_thread=False, timeout=10)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)
        except (OSError, sqlite3.Error) as e:
            raise StoreError(
                f"cannot open the classroom database {self.path} ({e})",
                "pass another file with --db, or move the damaged one away",
            ) from e

    def close(self) -> None:
        """Close the database (a checkpoint folds the WAL back into the file)."""
        with self._lock:
            self._db.close()

    # -- tokens -------------------------------------------------------------------------------

    def tokens(self) -> tuple[str, str]:
        """The (join, instructor) tokens: made with ``secrets`` the first time, then kept."""
        with self._lock, self._db:
            values = []
            for name in ("join_token", "instructor_token"):
                row = self._db.execute("SELECT value FROM meta WHERE key = ?", (name,)).fetchone()
                if row is None:
                    value = new_token()
                    self._db.execute("INSERT INTO meta (key, value) VALUES (?, ?)", (name, value))
                else:
                    value = row[0]
                values.append(value)
        return values[0], values[1]

    # -- learners -----------------------------------------------------------------------------

    def join(self, name: str, key: str | None) -> str | None:
        """Bind a learner name to a key.

        Args:
            name: the learner's name.
            key: the key this learner got earlier, when joining again.

        Returns:
            The learner's key (a new one on first join), or None when the name is
            taken by someone holding another key.
        """
        with self._lock, self._db:
            row = self._db.execute("SELECT key_hash FROM learners WHERE name = ?", (name,)).fetchone()
            if row is not None:
                if key and hmac.compare_digest(row[0], _hash_key(key)):
                    return key
                return None
            new_key = new_token()
            self._db.execute(
                "INSERT INTO learners (name, key_hash, joined_at) VALUES (?, ?, ?)",
                (name, _hash_key(new_key), fmt.utc_now()),
            )
            return new_key

    def learner_for_key(self, key: str) -> str | None:
        """The learner name this key was issued to, or None."""
        with self._lock:
            row = self._db.execute("SELECT name FROM learners WHERE key_hash = ?", (_hash_key(key),)).fetchone()
        return None if row is None else str(row[0])

    def forget(self, name: str) -> bool:
        """Free a learner name (their events stay); True when it was bound."""
        with self._lock, self._db:
            return self._db.execute("DELETE FROM learners WHERE name = ?", (name,)).rowcount > 0

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
        received = fmt.utc_now()
        new: list[Stored] = []
        try:
            with self._lock, self._db:
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
