"""Showing the results: start-up times as a bar chart, and the VM and the container side by side."""

from __future__ import annotations

import html

from labkit.core import fmt
from labkit.core.i18n import _
from labkit.features.vm.booting import GUEST_MEMORY_MB, BootReport
from labkit.features.vm.container import ContainerReport


def bar_chart_svg(rows: list[tuple[str, float]], width: int = 560, unit: str = "s") -> str:
    """Horizontal bars as inline SVG, longest bar = full width (no plotting library needed).

    Example:
        >>> bar_chart_svg([("a", 1.0), ("b", 0.5)]).count("<rect")
        2
    """
    label_w, bar_w, row_h = 200, width - 200 - 70, 28
    top = max((value for _label, value in rows), default=0) or 1.0
    parts = [
        (
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{row_h * len(rows) + 8}" '
            'font-family="sans-serif" font-size="13" role="img" aria-label="start-up times">'
        )
    ]
    for i, (label, value) in enumerate(rows):
        y = 4 + i * row_h
        length = max(value / top * bar_w, 1.0)
        parts.append(f'<text x="{label_w - 8}" y="{y + 18}" text-anchor="end">{html.escape(label)}</text>')
        parts.append(f'<rect x="{label_w}" y="{y + 4}" width="{length:.1f}" height="{row_h - 8}" fill="#2b6cb0"/>')
        parts.append(f'<text x="{label_w + length + 6:.1f}" y="{y + 18}">{value:.2f} {unit}</text>')
    parts.append("</svg>")
    return "".join(parts)


def comparison_table(vm: BootReport | None, box: ContainerReport, vm_skipped: str = "") -> str:
    """The side-by-side table as HTML; values are formatted so nbval's sanitizers can mask them."""

    def mib(value: float | None) -> str:
        return fmt.size(value, "mib") if value is not None else _("unknown")

    skipped = html.escape(vm_skipped or _("not measured"))
    rows = [
        (
            _("Start-up"),
            _("{seconds:.2f} s to /init").format(seconds=vm.boot_seconds) if vm else skipped,
            _("{seconds:.2f} s from <code>docker run -d</code> to running").format(seconds=box.start_seconds),
        ),
        (
            _("Kernel"),
            _("its own: {release}").format(release=html.escape(vm.kernel_release)) if vm else skipped,
            _("the host's: {release}").format(release=html.escape(box.kernel_release)),
        ),
        (
            _("Memory"),
            _("{rss} (qemu's RSS; the guest was given {mib} MiB)").format(
                rss=mib(vm.qemu_rss_kb * 1024 if vm.qemu_rss_kb else None), mib=GUEST_MEMORY_MB
            )
            if vm
            else skipped,
            f"{mib(box.memory_bytes)} ({html.escape(box.memory_source)})",
        ),
        (
            _("What runs it"),
            _("a hypervisor (qemu) emulating a whole computer, with a guest kernel inside"),
            _("the container runtime starting isolated processes on the host kernel"),
        ),
    ]
    head = f"<tr><th></th><th>{_('Virtual machine')}</th><th>{_('Container')}</th></tr>"
    body = "".join(f"<tr><th>{label}</th><td>{a}</td><td>{b}</td></tr>" for label, a, b in rows)
    return f'<table class="labkit-compare">{head}{body}</table>'
