"""JupyterHub's authenticator for a classroom hub: the roster's accounts, nothing else.

``c.JupyterHub.authenticator_class = "labkit.classroom.hub_auth.RosterAuthenticator"``
with ``c.RosterAuthenticator.accounts_file`` naming :mod:`hub_accounts`' file. Only an
account in that file can log in (no sign-up); the instructor's account is the hub's admin.
The file is read at each login, so ``labkit hub up --roster`` and ``labkit hub password``
take effect without restarting the hub.

Guessing is slowed: after :data:`FAILURES` wrong passwords for one name within
:data:`WINDOW` seconds, that name is refused for the rest of the window, right password or
not (a learner who mistyped waits a minute; a script guessing gets a handful of tries a
minute). The refusals are kept in memory and reset when the hub restarts.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict, deque
from pathlib import Path
from typing import Any

from jupyterhub.auth import Authenticator
from traitlets import Unicode

from labkit.classroom import hub_accounts
from labkit.core.errors import LabkitError

#: Wrong passwords for one name that close it for the rest of :data:`WINDOW`.
FAILURES = 5
WINDOW = 60.0


class RosterAuthenticator(Authenticator):  # type: ignore[misc]  # jupyterhub ships no types
    """Log in with a roster account's issued or first-use password."""

    accounts_file = Unicode(help="the accounts' JSON file (labkit.classroom.hub_accounts)").tag(
        config=True, allow_config=True
    )

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._failures: defaultdict[str, deque[float]] = defaultdict(deque)

    def _recent_failures(self, name: str, now: float) -> deque[float]:
        times = self._failures[name]
        while times and now - times[0] > WINDOW:
            times.popleft()
        return times

    async def authenticate(self, handler: Any, data: dict[str, str]) -> dict[str, Any] | None:
        name = self.normalize_username(str(data.get("username", "")))
        password = str(data.get("password", ""))
        now = time.monotonic()
        if len(self._recent_failures(name, now)) >= FAILURES:
            self.log.warning("login for %r refused: %d wrong passwords in %.0f s", name, FAILURES, WINDOW)
            return None
        path = Path(self.accounts_file)
        account = await asyncio.to_thread(hub_accounts.login, path, name, password)
        if account is None:
            self._recent_failures(name, now).append(now)
            return None
        self._failures.pop(account.name, None)
        return {"name": account.name, "admin": account.admin}

    def check_allowed(self, username: str, authentication: dict[str, Any] | None = None) -> bool:
        """Allowed only while the account is in the file (removing it locks the learner out)."""
        return username in hub_accounts.load(Path(self.accounts_file))

    def normalize_username(self, username: str) -> str:
        try:
            return hub_accounts.normalize(username)
        except LabkitError:  # an impossible name simply matches no account
            return str(username).strip().lower()
