"""The registry's push login: one user name and password per machine, made once, readable by its owner only.

Pulls from the course's registry need no login (the daemon's mirror pulls carry none);
pushes do (:mod:`.gate` checks them), so that nobody else on the machine can put an
image under ``library/…`` that every ``docker run`` would then trust. labkit makes the
login the first time it starts the registry, keeps it in a 0600 file in a 0700 folder of
its state folder, and hands it to ``docker login`` (so a learner's ``docker push
localhost:5000/…`` just works) and to the SDK's pushes when seeding.

Example:
    >>> login = Credentials("labkit-0a1b2c3d", "s3cret")
    >>> login.matches("labkit-0a1b2c3d", "s3cret"), login.matches("labkit-0a1b2c3d", "guess")
    (True, False)
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import os
import secrets
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker.auth
import docker.errors

from labkit.core import state

#: Seconds ``docker login`` may take (the daemon asks the registry, which is on this machine).
LOGIN_TIMEOUT = 30.0


@dataclass(frozen=True)
class Credentials:
    """A user name and password for pushing to the course's registry."""

    username: str
    password: str

    def __repr__(self) -> str:  # never print the password by accident (a notebook shows reprs)
        return f"Credentials(username={self.username!r}, password='…')"

    def matches(self, username: str, password: str) -> bool:
        """True when both are right; compared in constant time."""
        user_ok = hmac.compare_digest(username.encode(), self.username.encode())
        password_ok = hmac.compare_digest(password.encode(), self.password.encode())
        return user_ok and password_ok

    def basic(self) -> str:
        """The ``Authorization`` header value: ``Basic <base64 of user:password>``."""
        return "Basic " + base64.b64encode(f"{self.username}:{self.password}".encode()).decode()

    def auth_config(self) -> dict[str, str]:
        """What the docker SDK's ``push(auth_config=…)`` takes."""
        return {"username": self.username, "password": self.password}


def parse_basic(header: str) -> tuple[str, str] | None:
    """``(user, password)`` from an ``Authorization: Basic …`` value, or ``None`` when it is not one.

    Example:
        >>> parse_basic("Basic dTE6cDE="), parse_basic("Bearer abc"), parse_basic("Basic !!")
        (('u1', 'p1'), None, None)
    """
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        user, sep, password = base64.b64decode(value.strip(), validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return (user, password) if sep else None


def generate() -> Credentials:
    """A fresh login: a user name that says whose it is, and 32 random bytes as the password."""
    return Credentials(f"labkit-{secrets.token_hex(4)}", secrets.token_urlsafe(32))


def read(path: Path) -> Credentials | None:
    """The login stored at ``path``, or ``None`` when there is none (or it is damaged, or not ours to read)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict):
        return None
    username, password = data.get("username"), data.get("password")
    if not isinstance(username, str) or not isinstance(password, str) or not username or not password:
        return None
    return Credentials(username, password)


def ensure(path: Path) -> Credentials:
    """The machine's login, made and stored at ``path`` the first time.

    The folder is made 0700 and the file 0600 (again, if someone loosened them), so only
    the user running labkit (and root) can read the password.

    Raises:
        OSError: the state folder cannot be written.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    found = read(path)
    if found is not None:
        os.chmod(path, 0o600)
        return found
    made = generate()
    state.write_json(path, {"username": made.username, "password": made.password}, mode=0o600)
    os.chmod(path, 0o600)  # an old, damaged file kept its own mode through the replace
    return made


# --- the docker CLI's side ---------------------------------------------------------------------


def _entry_login(entry: Any) -> Credentials | None:
    if not isinstance(entry, dict):
        return None
    username = entry.get("username") or entry.get("Username")
    password = entry.get("password") or entry.get("Password")
    if isinstance(username, str) and isinstance(password, str) and username and password:
        return Credentials(username, password)
    return None


def stored_login(host: str) -> Credentials | None:
    """The login the docker CLI stored for ``host`` (``docker login host``), if any.

    Read the way docker itself reads it (``DOCKER_CONFIG``, ``~/.docker/config.json``,
    credential helpers), through the docker SDK.
    """
    folder = os.environ.get("DOCKER_CONFIG")
    # The CLI reads only DOCKER_CONFIG's file when the variable is set; docker-py would fall back to ~/.docker.
    path = os.path.join(folder, "config.json") if folder else None
    if path is not None and not os.path.isfile(path):
        return None
    try:
        return _entry_login(docker.auth.load_config(config_path=path).resolve_authconfig(host))
    except (docker.errors.DockerException, OSError, ValueError, KeyError):
        return None


def docker_login(host: str, login: Credentials) -> str | None:
    """``docker login host`` with ``login`` (password on stdin), for the user running labkit.

    Returns:
        ``None`` when it worked, else what docker said (one line).
    """
    try:
        done = subprocess.run(
            ["docker", "login", "--username", login.username, "--password-stdin", host],
            input=login.password,
            capture_output=True,
            text=True,
            timeout=LOGIN_TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        return str(e)
    if done.returncode == 0:
        return None
    said = [line.strip() for line in (done.stderr + done.stdout).splitlines() if line.strip()]
    return said[-1] if said else f"docker login exited with {done.returncode}"
