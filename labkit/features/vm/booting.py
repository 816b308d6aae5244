"""Booting the VM under ``qemu-system-x86_64``, measuring it, and powering it off.

KVM is tried briefly when ``/dev/kvm`` is usable, then TCG; the guest's serial
console is read against deadlines for the ``LABKIT-VM`` lines its ``/init`` prints,
and qemu is always killed at the end.
"""

from __future__ import annotations

import contextlib
import os
import re
import selectors
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from labkit.core import fmt
from labkit.core.errors import LabkitError, NotSupported, VmTimeout
from labkit.core.i18n import _
from labkit.features.vm.guest import MARK, QEMU, GuestFiles, prepare

#: A working KVM reaches init in well under a second; a guest that says nothing by then is stuck.
KVM_PROBE_SECONDS = 3.0
#: TCG emulates every instruction: about 5 s to init on a quiet machine, far more on a busy one.
BOOT_TIMEOUT = 90.0
GUEST_MEMORY_MB = 256
KERNEL_CMDLINE = "console=ttyS0 quiet panic=-1"

_MARKER = re.compile(rf"{MARK} (\w+)(?:=(\S*))?")
#: Terminal control sequences the firmware and kernel write to the serial console.
_ESCAPES = re.compile(r"\x1b(?:\[[0-9;?]*[A-Za-z]|[A-Za-z])")


def parse_markers(text: str) -> dict[str, str]:
    """The ``LABKIT-VM key=value`` lines the guest printed (``ready`` and ``bye`` map to ``""``)."""
    found: dict[str, str] = {}
    for raw in _ESCAPES.sub("", text).splitlines():
        match = _MARKER.search(raw)
        if match:
            found[match.group(1)] = (match.group(2) or "").strip()
    return found


def parse_vmrss_kb(status: str) -> int | None:
    """``VmRSS`` from a ``/proc/<pid>/status`` text, in kB.

    Example:
        >>> parse_vmrss_kb("Name:\\tqemu\\nVmRSS:\\t  183456 kB\\n")
        183456
    """
    match = re.search(r"^VmRSS:\s+(\d+)\s+kB", status, re.MULTILINE)
    return int(match.group(1)) if match else None


def kvm_usable(device: str = "/dev/kvm") -> bool:
    """Whether this process may open ``/dev/kvm`` (it exists and is read-writable)."""
    return os.path.exists(device) and os.access(device, os.R_OK | os.W_OK)


def plan_accelerators(kvm: bool, forced: str | None = None) -> list[tuple[str, float | None]]:
    """Which accelerators to try, in order, each with a deadline to the first marker.

    KVM runs the guest on the real CPU and is fast when it works, but on some hosts
    (nested virtualisation) a guest hangs under it: it gets a short deadline to prove
    itself. TCG, qemu's own emulator, always works and gets the full timeout.

    Example:
        >>> plan_accelerators(True)
        [('kvm', 3.0), ('tcg', None)]
        >>> plan_accelerators(False)
        [('tcg', None)]
    """
    if forced:
        return [(forced, None)]
    return [("kvm", KVM_PROBE_SECONDS), ("tcg", None)] if kvm else [("tcg", None)]


def qemu_argv(files: GuestFiles, accelerator: str, memory_mb: int = GUEST_MEMORY_MB) -> list[str]:
    """The qemu command line: no display, no disk, no network, the serial port on stdio."""
    return [
        QEMU, "-nographic", "-no-reboot", "-accel", accelerator, "-m", str(memory_mb), "-nic", "none",
        "-kernel", str(files.kernel), "-initrd", str(files.initrd), "-append", KERNEL_CMDLINE,
    ]  # fmt: skip


@dataclass(frozen=True)
class BootReport:
    """What one VM boot measured."""

    accelerator: str
    boot_seconds: float
    kernel_release: str
    mem_total_kb: int
    guest_uptime_seconds: float
    qemu_rss_kb: int | None
    clean_shutdown: bool
    total_seconds: float
    notes: tuple[str, ...] = ()

    def __str__(self) -> str:
        rss = fmt.size(self.qemu_rss_kb * 1024, "mib") if self.qemu_rss_kb else _("unknown")
        lines = [
            _("accelerator: {accelerator}").format(accelerator=self.accelerator),
            *(_("  ({note})").format(note=note) for note in self.notes),
            _("boot to /init: {boot:.2f} s (the guest's own uptime then: {uptime:.2f} s)").format(
                boot=self.boot_seconds, uptime=self.guest_uptime_seconds
            ),
            _("guest kernel: {release}").format(release=self.kernel_release),
            _("guest MemTotal: {size}").format(size=fmt.size(self.mem_total_kb * 1024, "mib")),
            _("qemu process RSS on the host: {rss}").format(rss=rss),
            _("powered off cleanly: {answer} (whole run {seconds:.2f} s)").format(
                answer=_("yes") if self.clean_shutdown else _("no"), seconds=self.total_seconds
            ),
        ]
        return "\n".join(lines)

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(str(self))


class _Stuck(Exception):
    """An accelerator that did not reach init in its probe time (internal: falls back)."""


class _Console:
    """qemu's serial console on a pipe, read against deadlines."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self.proc = proc
        self.text = ""
        assert proc.stdout is not None
        self._fd = proc.stdout.fileno()
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._fd, selectors.EVENT_READ)

    def close(self) -> None:
        self._selector.close()

    def until(self, key: str, deadline: float) -> float | None:
        """Read until marker ``key`` appears; its arrival time, or ``None`` at the deadline or EOF."""
        while key not in parse_markers(self.text):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            if not self._selector.select(min(remaining, 0.5)):
                continue
            data = os.read(self._fd, 65536)
            if not data:
                return None
            self.text += data.decode(errors="replace")
        return time.monotonic()

    def last_line(self) -> str:
        lines = [line.strip() for line in self.text.splitlines() if line.strip()]
        return lines[-1][:160] if lines else "no output"


def _rss_kb(pid: int) -> int | None:
    try:
        return parse_vmrss_kb(Path(f"/proc/{pid}/status").read_text())
    except OSError:
        return None


def _kill(proc: subprocess.Popen[bytes]) -> None:
    """Stop qemu by its pid, whatever state it is in."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=10)
    for stream in (proc.stdin, proc.stdout):
        if stream is not None:
            with contextlib.suppress(OSError):
                stream.close()


def _boot_once(files: GuestFiles, accelerator: str, probe: float | None, timeout: float, memory_mb: int) -> BootReport:
    started = time.monotonic()
    deadline = started + timeout
    try:
        proc = subprocess.Popen(
            qemu_argv(files, accelerator, memory_mb),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    except FileNotFoundError as e:
        raise NotSupported(
            _("{program} is not installed").format(program=QEMU), "apt-get install qemu-system-x86"
        ) from e
    console = _Console(proc)
    try:
        at_init = console.until("kernel", min(deadline, started + probe) if probe else deadline)
        if at_init is None:
            if proc.poll() is not None or probe:
                if proc.poll() is not None:
                    raise _Stuck(
                        _("{accelerator}: qemu exited at once ({line})").format(
                            accelerator=accelerator, line=console.last_line()
                        )
                    )
                raise _Stuck(
                    _("{accelerator}: the guest did not reach /init within {seconds:g} s").format(
                        accelerator=accelerator, seconds=probe
                    )
                )
            raise VmTimeout(
                _("the VM ({accelerator}) to reach /init").format(accelerator=accelerator), timeout, console.last_line()
            )
        if console.until("ready", deadline) is None:
            raise VmTimeout(_("the VM's /init to report"), timeout, console.last_line())
        rss = _rss_kb(proc.pid)  # sampled while the guest sits in `read`, alive
        assert proc.stdin is not None
        proc.stdin.write(b"poweroff\n")
        proc.stdin.flush()
        said_bye = console.until("bye", deadline) is not None
        try:
            code = proc.wait(timeout=max(deadline - time.monotonic(), 0.1))
        except subprocess.TimeoutExpired:
            code = None
        total = time.monotonic() - started
        markers = parse_markers(console.text)
        try:
            return BootReport(
                accelerator=accelerator,
                boot_seconds=at_init - started,
                kernel_release=markers["kernel"],
                mem_total_kb=int(markers.get("memtotal_kb") or 0),
                guest_uptime_seconds=float(markers.get("uptime") or 0),
                qemu_rss_kb=rss,
                clean_shutdown=said_bye and code == 0,
                total_seconds=total,
            )
        except (KeyError, ValueError) as e:
            raise LabkitError(
                _("the VM printed markers labkit cannot read: {markers}").format(markers=markers),
                _("delete the vm folder in labkit's state dir and retry"),
            ) from e
    finally:
        console.close()
        _kill(proc)


def boot(timeout: float = BOOT_TIMEOUT, memory_mb: int = GUEST_MEMORY_MB, accelerator: str | None = None) -> BootReport:
    """Boot the VM, measure it, and power it off. qemu is always killed at the end.

    Args:
        timeout: seconds the whole boot may take (TCG on a busy machine is slow).
        memory_mb: the guest's RAM.
        accelerator: ``"kvm"`` or ``"tcg"`` to force one (so does ``LABKIT_VM_ACCEL``);
            by default KVM is tried briefly when ``/dev/kvm`` is usable, then TCG.

    Raises:
        NotSupported: qemu, apt or busybox-static is missing.
        VmTimeout: the guest did not report in time.
        LabkitError: the kernel could not be fetched.

    Example:
        >>> report = boot()  # doctest: +SKIP
        >>> report.kernel_release  # doctest: +SKIP
        '6.1.0-56-amd64'
    """
    files = prepare()
    notes: list[str] = []
    plan = plan_accelerators(kvm_usable(), accelerator or os.environ.get("LABKIT_VM_ACCEL"))
    for name, probe in plan:
        try:
            report = _boot_once(files, name, probe, timeout, memory_mb)
        except _Stuck as e:
            notes.append(_("{problem}, so qemu fell back to the next accelerator").format(problem=e))
            continue
        return BootReport(**{**report.__dict__, "notes": tuple(notes)})
    raise LabkitError(
        _("the VM did not boot with any accelerator ({names})").format(names="; ".join(notes)),
        _("run `labkit doctor`, then the cell again"),
    )
