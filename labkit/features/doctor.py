"""``labkit doctor``: is this machine ready for the lab? One row per thing that matters."""

from __future__ import annotations

import html
import shutil
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from labkit.core import engine, fmt, http
from labkit.core.errors import HttpUnreachable
from labkit.core.i18n import N_, _
from labkit.core.probes import port_publishers
from labkit.features import images
from labkit.features.registry import mirror as registry

#: Host ports the lessons publish containers on.
LESSON_PORTS = (8080, 8081)
#: JupyterLab's default port: the lessons avoid it, and the lab runs elsewhere.
JUPYTER_DEFAULT_PORT = 8888
MIN_FREE_GB, WARN_FREE_GB = 1.0, 3.0

_MARK = {"ok": "✔", "warn": "!", "fail": "✗"}
READY = N_("ready for the lab")
NOT_READY = N_("not ready: fix the rows marked ✗")
#: Row names, marked for the catalog; ``Port NNNN`` rows are named by :func:`_row_name`.
NAMES = (
    N_("Docker daemon"),
    N_("API version"),
    N_("Storage driver"),
    N_("Registry mirror"),
    N_("Lesson images"),
    N_("Local registry"),
    N_("Disk space"),
)


def _row_name(name: str) -> str:
    """A row's name in the current language (``Port 8080`` is a sentence with a number)."""
    if name.startswith("Port "):
        return _("Port {port}").format(port=name.removeprefix("Port "))
    return _(name)


@dataclass(frozen=True)
class Row:
    """One line of the report."""

    name: str  # English (marked with N_ where made): shown through _()
    status: str  # "ok" | "warn" | "fail"
    detail: str
    fix: str = ""


@dataclass
class Report:
    """The doctor's findings; ``ready`` when no row failed."""

    rows: list[Row] = field(default_factory=list)

    @property
    def ready(self) -> bool:
        return all(row.status != "fail" for row in self.rows)

    def to_dict(self) -> dict[str, Any]:
        return {"ready": self.ready, "rows": [vars(row) for row in self.rows]}

    def render_text(self) -> str:
        names = [_row_name(row.name) for row in self.rows]
        width = max(fmt.columns(name) for name in names)
        lines = []
        for row, name in zip(self.rows, names, strict=True):
            lines.append(f"{_MARK[row.status]} {fmt.ljust(name, width)}  {row.detail}")
            if row.fix and row.status != "ok":
                lines.append(f"  {'':<{width}}  → {row.fix}")
        lines.append(_(READY) if self.ready else _(NOT_READY))
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.render_text()

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(self.render_text())

    def _repr_html_(self) -> str:
        colors = {"ok": "#1e7e34", "warn": "#9a6700", "fail": "#c0392b"}
        body = "".join(
            f'<tr><td style="color:{colors[r.status]}">{_MARK[r.status]}</td><td>{html.escape(_row_name(r.name))}</td>'
            f"<td>{html.escape(r.detail)}"
            + (f"<br><i>→ {html.escape(r.fix)}</i>" if r.fix and r.status != "ok" else "")
            + "</td></tr>"
            for r in self.rows
        )
        verdict = _(READY) if self.ready else _(NOT_READY)
        return f'<table class="labkit-doctor">{body}</table><p><b>{verdict}</b></p>'


def _port_holder(port: int, published: dict[int, str]) -> str | None:
    """Who holds a host port: a container's name, "another program", or None when free."""
    if port in published:
        return _("container {name}").format(name=published[port])
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("0.0.0.0", port))
        except OSError:
            return _("another program")
    return None


def _is_jupyter(port: int) -> bool:
    try:
        answer = http.request("GET", f"http://127.0.0.1:{port}/api", timeout=1)
        return 200 <= answer.status < 300 and "version" in answer.json()
    except (HttpUnreachable, ValueError, TypeError):
        return False


def _published_ports(client: Any) -> dict[int, str]:
    return {port: holders[0][1] for port, holders in port_publishers(client).items()}


def run_doctor() -> Report:
    """Inspect the daemon, images, registry, ports and disk.

    Raises:
        DaemonUnavailable: nothing to inspect; the one line says how to start Docker.
    """

    client = engine.client()
    report = Report()
    with engine.converted():
        info = client.info()
        version = client.version()
    report.rows.append(
        Row(
            "Docker daemon",
            "ok",
            _("{host} — Engine {version} on {os}").format(
                host=engine.docker_host(), version=version.get("Version"), os=info.get("OperatingSystem")
            ),
        )
    )
    report.rows.append(
        Row(
            "API version",
            "ok",
            _("daemon {api} (min {min_api}), labkit uses {ours}").format(
                api=version.get("ApiVersion"), min_api=version.get("MinAPIVersion"), ours=client.api.api_version
            ),
        )
    )
    report.rows.append(Row("Storage driver", "ok", str(info.get("Driver"))))

    has_mirror = registry.MIRROR_URL in registry.daemon_mirrors(info)
    report.rows.append(
        Row(
            "Registry mirror",
            "ok" if has_mirror else "warn",
            _("{url} configured").format(url=registry.MIRROR_URL)
            if has_mirror
            else _("not configured: offline pulls go to Docker Hub and fail"),
            _(
                "start dockerd with --registry-mirror http://127.0.0.1:5000 "
                '(Docker Desktop: Settings → Docker Engine → "registry-mirrors")'
            ),
        )
    )

    states = images.status()
    missing = [s.name for s in states if not s.present]
    report.rows.append(
        Row(
            "Lesson images",
            "fail" if missing else "ok",
            _("missing: {names}").format(names=", ".join(missing))
            if missing
            else _("all {n} present").format(n=len(states)),
            _("labkit images ensure (works offline)"),
        )
    )

    reg = registry.status()
    ungated = registry.half_running() if reg.running else None
    if ungated:
        report.rows.append(
            Row(
                "Local registry",
                "warn",
                f"{reg.url}: {ungated}",
                _("labkit registry up starts it again behind its gate"),
            )
        )
    elif reg.running:
        report.rows.append(
            Row(
                "Local registry",
                "ok",
                _("{url}, {n} repositories").format(url=reg.url, n=len(reg.repositories)),
            )
        )
    else:
        report.rows.append(
            Row(
                "Local registry",
                "fail" if has_mirror else "warn",
                _("not running at {url}").format(url=reg.url),
                "labkit registry up",
            )
        )

    published = _published_ports(client)
    for port in LESSON_PORTS:
        holder = _port_holder(port, published)
        if holder is None:
            report.rows.append(Row(f"Port {port}", "ok", _("free")))
        elif port in published:
            report.rows.append(
                Row(
                    f"Port {port}",
                    "warn",
                    _("used by {holder}").format(holder=holder),
                    _("labkit reset frees the lab's containers"),
                )
            )
        else:
            report.rows.append(
                Row(
                    f"Port {port}",
                    "fail",
                    _("used by {holder}").format(holder=holder),
                    _("stop whatever listens on {port}").format(port=port),
                )
            )
    if _port_holder(JUPYTER_DEFAULT_PORT, published) is not None:
        who = "JupyterLab" if _is_jupyter(JUPYTER_DEFAULT_PORT) else _port_holder(JUPYTER_DEFAULT_PORT, published)
        report.rows.append(
            Row(
                f"Port {JUPYTER_DEFAULT_PORT}",
                "ok",
                _("held by {who}; the lessons never publish on it").format(who=who),
            )
        )

    root = Path(str(info.get("DockerRootDir") or "/var/lib/docker"))
    where = root if root.exists() else Path.home()
    free_gb = shutil.disk_usage(where).free / 1e9
    status = "fail" if free_gb < MIN_FREE_GB else "warn" if free_gb < WARN_FREE_GB else "ok"
    report.rows.append(
        Row(
            "Disk space",
            status,
            _("{free:.1f} GB free at {where}").format(free=free_gb, where=where),
            _("free some space: docker system prune"),
        )
    )
    return report
