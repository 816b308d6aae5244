"""``labkit doctor``: is this machine ready for the lab? One row per thing that matters."""

from __future__ import annotations

import html
import shutil
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from labkit.core import engine, http
from labkit.core.errors import HttpUnreachable
from labkit.core.probes import port_publishers
from labkit.features import images
from labkit.features.registry import mirror as registry

#: Host ports the lessons publish containers on.
LESSON_PORTS = (8080, 8081)
#: JupyterLab's default port: the lessons avoid it, and the lab runs elsewhere.
JUPYTER_DEFAULT_PORT = 8888
MIN_FREE_GB, WARN_FREE_GB = 1.0, 3.0

_MARK = {"ok": "✔", "warn": "!", "fail": "✗"}


@dataclass(frozen=True)
class Row:
    """One line of the report."""

    name: str
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
        width = max(len(row.name) for row in self.rows)
        lines = []
        for row in self.rows:
            lines.append(f"{_MARK[row.status]} {row.name:<{width}}  {row.detail}")
            if row.fix and row.status != "ok":
                lines.append(f"  {'':<{width}}  → {row.fix}")
        lines.append("ready for the lab" if self.ready else "not ready: fix the rows marked ✗")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.render_text()

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(self.render_text())

    def _repr_html_(self) -> str:
        colors = {"ok": "#1e7e34", "warn": "#9a6700", "fail": "#c0392b"}
        body = "".join(
            f'<tr><td style="color:{colors[r.status]}">{_MARK[r.status]}</td><td>{html.escape(r.name)}</td>'
            f"<td>{html.escape(r.detail)}"
            + (f"<br><i>→ {html.escape(r.fix)}</i>" if r.fix and r.status != "ok" else "")
            + "</td></tr>"
            for r in self.rows
        )
        verdict = "ready for the lab" if self.ready else "not ready: fix the rows marked ✗"
        return f'<table class="labkit-doctor">{body}</table><p><b>{verdict}</b></p>'


def _port_holder(port: int, published: dict[int, str]) -> str | None:
    """Who holds a host port: a container's name, "another program", or None when free."""
    if port in published:
        return f"container {published[port]}"
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("0.0.0.0", port))
        except OSError:
            return "another program"
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
            f"{engine.docker_host()} — Engine {version.get('Version')} on {info.get('OperatingSystem')}",
        )
    )
    report.rows.append(
        Row(
            "API version",
            "ok",
            f"daemon {version.get('ApiVersion')} (min {version.get('MinAPIVersion')}), labkit uses {client.api.api_version}",
        )
    )
    report.rows.append(Row("Storage driver", "ok", str(info.get("Driver"))))

    has_mirror = registry.MIRROR_URL in registry.daemon_mirrors(info)
    report.rows.append(
        Row(
            "Registry mirror",
            "ok" if has_mirror else "warn",
            f"{registry.MIRROR_URL} configured"
            if has_mirror
            else "not configured: offline pulls go to Docker Hub and fail",
            'start dockerd with --registry-mirror http://127.0.0.1:5000 (Docker Desktop: Settings → Docker Engine → "registry-mirrors")',
        )
    )

    states = images.status()
    missing = [s.name for s in states if not s.present]
    report.rows.append(
        Row(
            "Lesson images",
            "fail" if missing else "ok",
            f"missing: {', '.join(missing)}" if missing else f"all {len(states)} present",
            "labkit images ensure (works offline)",
        )
    )

    reg = registry.status()
    ungated = registry.half_running() if reg.running else None
    if ungated:
        report.rows.append(
            Row("Local registry", "warn", f"{reg.url}: {ungated}", "labkit registry up starts it again behind its gate")
        )
    elif reg.running:
        report.rows.append(Row("Local registry", "ok", f"{reg.url}, {len(reg.repositories)} repositories"))
    else:
        report.rows.append(
            Row(
                "Local registry",
                "fail" if has_mirror else "warn",
                f"not running at {reg.url}",
                "labkit registry up",
            )
        )

    published = _published_ports(client)
    for port in LESSON_PORTS:
        holder = _port_holder(port, published)
        if holder is None:
            report.rows.append(Row(f"Port {port}", "ok", "free"))
        elif holder.startswith("container"):
            report.rows.append(
                Row(f"Port {port}", "warn", f"used by {holder}", "labkit reset frees the lab's containers")
            )
        else:
            report.rows.append(Row(f"Port {port}", "fail", f"used by {holder}", f"stop whatever listens on {port}"))
    if _port_holder(JUPYTER_DEFAULT_PORT, published) is not None:
        who = "JupyterLab" if _is_jupyter(JUPYTER_DEFAULT_PORT) else _port_holder(JUPYTER_DEFAULT_PORT, published)
        report.rows.append(Row(f"Port {JUPYTER_DEFAULT_PORT}", "ok", f"held by {who}; the lessons never publish on it"))

    root = Path(str(info.get("DockerRootDir") or "/var/lib/docker"))
    where = root if root.exists() else Path.home()
    free_gb = shutil.disk_usage(where).free / 1e9
    status = "fail" if free_gb < MIN_FREE_GB else "warn" if free_gb < WARN_FREE_GB else "ok"
    report.rows.append(
        Row("Disk space", status, f"{free_gb:.1f} GB free at {where}", "free some space: docker system prune")
    )
    return report
