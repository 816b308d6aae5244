"""A classroom hub's settings, and the JupyterHub configuration made from them.

``labkit hub up`` keeps everything of one hub in its state folder (0700, root's;
``/var/lib/labkit/hub`` unless ``LABKIT_HUB_STATE`` or ``--state`` say otherwise):

=====================  ==========================================================
``settings.json``      :class:`Settings`: ports, address, limits, the instructor
``jupyterhub_config.py``  two lines: this module's :func:`apply` on the folder
``accounts.json``      the accounts and their password hashes (:mod:`hub_accounts`)
``passwords.csv``      issued passwords, for the instructor to give out (0600)
``admin-token``        the token ``labkit hub`` uses on the hub's API (0600)
``proxy-token``        the hub's token on its proxy, kept so a restarted hub finds it
``jupyterhub.sqlite``  the hub's database; ``cookie_secret``; ``hub.log``
``grader/``            the grading service's records (:mod:`hub_grader`)
=====================  ==========================================================

:func:`apply` runs inside JupyterHub (the config file calls it), so it may import
JupyterHub-side modules; nothing else here does.
"""

from __future__ import annotations

import dataclasses
import os
import secrets
import socket
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from labkit.classroom import learner_engine as le
from labkit.core import state as files
from labkit.core.i18n import _

#: The default state folder of a machine's hub.
DEFAULT_STATE = Path("/var/lib/labkit/hub")
#: The API token's service name, and its role (what ``labkit hub`` may do through the API).
ADMIN_SERVICE = "labkit-admin"
ADMIN_SCOPES = ["list:users", "read:users", "read:servers", "admin:servers", "admin:users", "read:hub"]
CONFIG_FILE = """\
# Made by `labkit hub up`; settings.json holds the settings, labkit.classroom.hub_config applies them.
from labkit.classroom import hub_config

hub_config.apply(c, {state!r})  # noqa: F821 - `c` is JupyterHub's config object
"""


def network_address() -> str | None:
    """This machine's first IPv4 address that is not loopback (what a classroom's learners type)."""
    for addresses in psutil.net_if_addrs().values():
        for address in addresses:
            if address.family == socket.AF_INET and not address.address.startswith("127."):
                return str(address.address)
    return None


def state_folder(given: str | os.PathLike[str] | None = None) -> Path:
    """``given``, else ``$LABKIT_HUB_STATE``, else :data:`DEFAULT_STATE`."""
    return Path(given or os.environ.get("LABKIT_HUB_STATE") or DEFAULT_STATE)


@dataclass
class Settings:
    """What ``labkit hub up`` was asked for, kept for the hub's restarts."""

    port: int = 8000
    ip: str = "127.0.0.1"
    hub_port: int = 0
    proxy_api_port: int = 0
    grader_port: int = 0
    admin: str = "instructor"
    ssl_cert: str | None = None
    ssl_key: str | None = None
    idle_timeout: int = 3600
    cull_every: int = 60
    memory: str | None = "2G"
    pids: int | None = 2048
    image_archive: str = str(le.IMAGE_CACHE)
    lang: str = "en"
    proxy_bin: str = ""
    python: str = sys.executable

    @property
    def scheme(self) -> str:
        return "https" if self.ssl_cert else "http"

    @property
    def url(self) -> str:
        """Where learners open the hub: loopback, or this machine's first address on the classroom network."""
        host = "127.0.0.1" if self.ip in ("127.0.0.1", "") else self.ip
        if host == "0.0.0.0":
            host = network_address() or host
        return f"{self.scheme}://{host}:{self.port}/"

    @property
    def api(self) -> str:
        """The hub's own REST API, on loopback (not through the proxy)."""
        return f"http://127.0.0.1:{self.hub_port}/hub/api"

    @classmethod
    def load(cls, folder: Path) -> Settings:
        def check(value: Any) -> dict[str, Any]:
            if not isinstance(value, dict):
                raise ValueError("not an object")
            return value

        raw: dict[str, Any] = files.read_json(folder / "settings.json", check, default={})
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in raw.items() if k in known})

    def save(self, folder: Path) -> None:
        files.write_json(folder / "settings.json", dataclasses.asdict(self), mode=0o600)


def secret(folder: Path, name: str) -> str:
    """A token kept in ``folder/name`` (0600), made the first time it is asked for."""
    path = folder / name
    if path.exists():
        return path.read_text().strip()
    value = secrets.token_hex(32)
    files.write_bytes(path, value.encode(), mode=0o600)
    return value


def write(folder: Path, settings: Settings) -> Path:
    """The state folder (0700), its settings and the config file JupyterHub is started with."""
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    folder.chmod(0o700)
    settings.save(folder)
    secret(folder, "admin-token")
    secret(folder, "proxy-token")
    config = folder / "jupyterhub_config.py"
    files.write_bytes(config, CONFIG_FILE.format(state=str(folder)).encode(), mode=0o600)
    return config


def apply(c: Any, folder: str | os.PathLike[str]) -> None:
    """Configure JupyterHub (its config object ``c``) for the hub kept in ``folder``."""
    # reason: these import JupyterHub, which only the hub's own process has
    from labkit.classroom import hub_grader, hub_spawner

    state = Path(folder)
    s = Settings.load(state)
    c.JupyterHub.ip = s.ip
    c.JupyterHub.port = s.port
    c.JupyterHub.hub_ip = "127.0.0.1"
    c.JupyterHub.hub_port = s.hub_port
    c.JupyterHub.db_url = f"sqlite:///{state / 'jupyterhub.sqlite'}"
    c.JupyterHub.cookie_secret_file = str(state / "cookie_secret")
    c.JupyterHub.pid_file = str(state / "jupyterhub.pid")
    if s.ssl_cert and s.ssl_key:
        c.JupyterHub.ssl_cert = s.ssl_cert
        c.JupyterHub.ssl_key = s.ssl_key
    # A restarted hub finds its labs and its proxy still running: `labkit hub down` stops them itself.
    c.JupyterHub.cleanup_servers = False
    c.JupyterHub.cleanup_proxy = False
    c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{s.proxy_api_port}"
    c.ConfigurableHTTPProxy.auth_token = secret(state, "proxy-token")
    c.ConfigurableHTTPProxy.pid_file = str(state / "proxy.pid")
    if s.proxy_bin:
        c.ConfigurableHTTPProxy.command = [str(Path(s.proxy_bin) / "configurable-http-proxy")]

    c.JupyterHub.authenticator_class = "labkit.classroom.hub_auth.RosterAuthenticator"
    c.RosterAuthenticator.accounts_file = str(state / "accounts.json")
    c.Authenticator.admin_users = {s.admin}
    c.Authenticator.allow_all = False
    c.Authenticator.any_allow_config = True
    c.JupyterHub.template_vars = {
        "announcement_login": _("labkit: log in with the name and password your instructor gave you.")
    }

    c.JupyterHub.spawner_class = "labkit.classroom.hub_spawner.LearnerEngineSpawner"
    c.LearnerEngineSpawner.image_archive = s.image_archive
    if s.memory:
        c.Spawner.mem_limit = s.memory
    if s.pids:
        c.LearnerEngineSpawner.pids_limit = s.pids
    c.Spawner.start_timeout = 180
    c.Spawner.http_timeout = 90
    c.Spawner.default_url = "/lab/tree/00-welcome.ipynb"

    c.JupyterHub.services = [{"name": ADMIN_SERVICE, "api_token": secret(state, "admin-token")}]
    c.JupyterHub.load_roles = [{"name": ADMIN_SERVICE, "scopes": ADMIN_SCOPES, "services": [ADMIN_SERVICE]}]
    if s.idle_timeout > 0:
        hub_spawner.configure_culler(c, s.idle_timeout, s.cull_every)
    grader = state / "grader"
    grader.mkdir(mode=0o700, exist_ok=True)
    hub_grader.configure(c, grader, s.grader_port)
    # the course's language: the labs (notebooks, labkit, JupyterLab's menus) and the grader's verdicts
    c.LearnerEngineSpawner.language = s.lang
    for service in c.JupyterHub.services:
        if service.get("name") == hub_grader.SERVICE:
            service["environment"] = {**service.get("environment", {}), "LABKIT_LANG": s.lang}
