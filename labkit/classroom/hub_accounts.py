"""The hub's accounts: who may log in, with which password, and who is the instructor.

A classroom hub has no open sign-up. Its accounts come from a roster, a CSV file with a
``username`` column (other columns, such as full names or e-mails, are ignored), plus one
admin account for the instructor. Each account gets one of two kinds of password:

- **issued** (the default): :func:`add` makes a password of four short words and two
  digits for each new account, stores only its scrypt hash, and hands the plain
  passwords back once; ``labkit hub up`` writes them to ``passwords.csv`` (0600) for the
  instructor to give out. ``labkit hub password NAME`` issues a new one;
- **first-use**: no password until the learner's first login, which sets it (at least
  :data:`MIN_FIRST_USE` characters). Quicker in a room where everyone logs in at once; the
  risk is someone else claiming a name first, so the instructor should start the class
  with it and switch the hub to issued passwords for later sessions.

Names are what JupyterHub and the Unix account use: NFKC-normalised, lower-case, ASCII
letters, digits, ``-`` and ``_``, starting with a letter (:func:`learner_engine.unix_name`
decides). A roster line with another name is reported, not silently changed.

The accounts file is JSON, 0600 in the hub's 0700 state folder; it holds no plain password.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import hmac
import io
import secrets
import time
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from labkit.classroom import learner_engine as le
from labkit.core import state
from labkit.core.errors import LabkitError

Kind = Literal["issued", "first-use"]

#: The shortest password a first login may set.
MIN_FIRST_USE = 8
#: scrypt's cost: about 30 ms and 16 MiB per check on this machine kind; a login is rare.
SCRYPT = {"n": 2**14, "r": 8, "p": 1}
#: Short, unambiguous words for issued passwords (no homophones, nothing offensive).
_WORD_LIST = (
    "amber anchor apple arrow aspen atlas badge bamboo banjo basil beacon birch bison blaze bloom bolt "
    "brook cabin cactus canoe canyon cedar chalk cherry cider cliff clover cobalt comet coral cotton "
    "crane creek crystal dawn delta desert dolphin dune eagle echo ember falcon fern fiddle flint forest "
    "fossil galaxy garnet geyser ginger glacier granite gravel harbor hazel heron honey island ivory jade "
    "jasmine juniper kayak kettle lagoon lantern lemon lilac linen lotus magnet mango maple marble meadow "
    "meteor mint mosaic nectar nickel noodle nutmeg oasis olive onyx orbit orchid otter owl paddle panda "
    "pebble pepper piano pine planet plum polar pony prairie quartz quill radar raven reef ribbon river "
    "robin rocket saddle sage salmon sapphire shell sierra silver sketch sparrow spruce summit swan "
    "thistle thunder tiger timber topaz tulip tundra valley velvet violet walnut willow zebra"
)
WORDS = _WORD_LIST.split()


@dataclass
class Account:
    """One login: its name, whether it is the instructor's, and its password's hash (if set)."""

    name: str
    admin: bool = False
    kind: Kind = "issued"
    hash: str | None = None
    issued: float = field(default_factory=time.time)

    def to_json(self) -> dict[str, Any]:
        return {"admin": self.admin, "kind": self.kind, "hash": self.hash, "issued": self.issued}

    @classmethod
    def from_json(cls, name: str, data: dict[str, Any]) -> Account:
        kind: Kind = "first-use" if data.get("kind") == "first-use" else "issued"
        return cls(name, bool(data.get("admin")), kind, data.get("hash"), float(data.get("issued", 0)))


# --- pure parts ---------------------------------------------------------------------------


def normalize(name: str) -> str:
    """A name as the hub and Unix use it; raises on one neither can take.

    Example:
        >>> normalize(" Ada_Lovelace ")
        'ada_lovelace'
    """
    cleaned = unicodedata.normalize("NFKC", name).strip().lower()
    le.unix_name(cleaned)  # raises a LabkitError naming the rule
    return cleaned


def parse_roster(text: str) -> tuple[list[str], list[str]]:
    """The usernames of a roster CSV, in order and without repeats, and the lines refused.

    The header must have a ``username`` column (any case, surrounding spaces ignored);
    other columns are ignored. A refused line is reported as ``line N: why``.

    Raises:
        LabkitError: no ``username`` column.

    Example:
        >>> parse_roster("Name,username\\nAda,ada\\nBob,BOB\\nAda again,ada\\nX,2pac\\n")
        (['ada', 'bob'], ["line 5: learner name '2pac' cannot be a Unix user name"])
    """
    rows = list(csv.reader(io.StringIO(text.lstrip("\ufeff"))))
    if not rows:
        raise LabkitError("the roster is empty", "give a CSV file whose first line has a `username` column")
    header = [h.strip().lower() for h in rows[0]]
    if "username" not in header:
        raise LabkitError(
            f"the roster has no `username` column (its columns: {', '.join(rows[0]) or 'none'})",
            "add a header line naming a `username` column",
        )
    column = header.index("username")
    names: list[str] = []
    refused: list[str] = []
    for number, row in enumerate(rows[1:], start=2):
        raw = row[column] if column < len(row) else ""
        if not raw.strip():
            continue
        try:
            name = normalize(raw)
        except LabkitError as e:
            refused.append(f"line {number}: {e.message}")
            continue
        if name not in names:
            names.append(name)
    return names, refused


def new_password(words: int = 4) -> str:
    """A password to read out or copy: ``word-word-word-word-NN`` (about 30 bits per 4 words + digits).

    Example:
        >>> len(new_password().split("-"))
        5
    """
    return "-".join([*(secrets.choice(WORDS) for _ in range(words)), f"{secrets.randbelow(100):02d}"])


def hash_password(password: str, salt: bytes | None = None) -> str:
    """``scrypt$N$r$p$salt$hash`` (base64), the only form a password is kept in."""
    salt = salt if salt is not None else secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, **SCRYPT, dklen=32)
    b64 = base64.b64encode
    return f"scrypt${SCRYPT['n']}${SCRYPT['r']}${SCRYPT['p']}${b64(salt).decode()}${b64(digest).decode()}"


def verify_password(password: str, stored: str | None) -> bool:
    """Whether ``password`` matches a hash from :func:`hash_password` (constant time).

    Example:
        >>> verify_password("x", hash_password("x")), verify_password("y", hash_password("x"))
        (True, False)
    """
    if not stored:
        return False
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        got = hashlib.scrypt(password.encode(), salt=base64.b64decode(salt), n=int(n), r=int(r), p=int(p), dklen=32)
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got, base64.b64decode(digest))


# --- the file -------------------------------------------------------------------------------


def load(path: Path) -> dict[str, Account]:
    """The accounts in ``path`` (none when it does not exist)."""

    def check(value: Any) -> dict[str, Any]:
        if not isinstance(value, dict) or not all(isinstance(v, dict) for v in value.values()):
            raise ValueError("not an object of accounts")
        return value

    raw: dict[str, Any] = state.read_json(path, check, default={})
    return {name: Account.from_json(name, data) for name, data in raw.items()}


def save(path: Path, accounts: dict[str, Account]) -> None:
    state.write_json(path, {name: a.to_json() for name, a in sorted(accounts.items())}, mode=0o600)


def add(path: Path, names: Iterable[str], *, admin: bool = False, kind: Kind = "issued") -> dict[str, str]:
    """Add the accounts not there yet; the plain passwords of those issued one (name → password).

    An existing account is left as it is (its password too), so adding a roster again only
    adds its new names.
    """
    wanted = [normalize(raw) for raw in names]
    issued: dict[str, str] = {}
    with state.locked(path.with_suffix(".lock")):
        accounts = load(path)
        for name in wanted:
            if name in accounts:
                continue
            account = Account(name, admin=admin, kind=kind)
            if kind == "issued":
                issued[name] = new_password()
                account.hash = hash_password(issued[name])
            accounts[name] = account
        save(path, accounts)
    return issued


def reissue(path: Path, name: str) -> str:
    """A new issued password for ``name`` (the old one stops working); returns it.

    Raises:
        LabkitError: no such account.
    """
    name = normalize(name)
    password = new_password()
    with state.locked(path.with_suffix(".lock")):
        accounts = load(path)
        if name not in accounts:
            raise LabkitError(f"the hub has no account {name!r}", "add them with `labkit hub up --roster FILE`")
        accounts[name] = Account(name, accounts[name].admin, "issued", hash_password(password))
        save(path, accounts)
    return password


def login(path: Path, name: str, password: str) -> Account | None:
    """The account ``name`` logs into with ``password``, or ``None``.

    A first-use account without a password takes this one (if long enough) and keeps it.
    """
    try:
        name = normalize(name)
    except LabkitError:
        return None
    account = load(path).get(name)
    if account is None:
        return None
    if account.kind == "first-use" and account.hash is None:
        if len(password) < MIN_FIRST_USE:
            return None
        with state.locked(path.with_suffix(".lock")):
            accounts = load(path)  # again, under the lock: two first logins at once set one password
            current = accounts.get(name)
            if current is None:
                return None
            if current.hash is None:
                current.hash = hash_password(password)
                save(path, accounts)
                return current
            account = current
    return account if verify_password(password, account.hash) else None


def write_passwords(path: Path, issued: dict[str, str]) -> None:
    """Append issued passwords to the instructor's CSV (``username,password``), 0600."""
    if not issued:
        return
    exists = path.exists()
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    if not exists:
        writer.writerow(["username", "password"])
    for name, password in issued.items():
        writer.writerow([name, password])
    data = (path.read_text() if exists else "") + buffer.getvalue()
    state.write_bytes(path, data.encode(), mode=0o600)
