"""A real virtual machine next to a real container, measured side by side (lesson 01).

The VM half boots Debian's own Linux kernel under ``qemu-system-x86_64`` with a
tiny initramfs: Debian's static busybox and an ``/init`` script that prints what
the guest sees (its kernel release, its memory), waits for one line from the
host (so qemu's memory can be sampled while the guest is alive), and powers off.
Everything comes from local materials: the kernel from ``apt-get download``, the
busybox from ``busybox-static``; both are cached in ``state_dir()/vm``.

The container half starts a busybox container and reads the same facts from the
host side: the kernel it sees, its memory cgroup, and its main process in the
host's own ``/proc``.

Example:
    >>> from labkit import vm
    >>> vm.parse_markers("LABKIT-VM kernel=6.1.0-56-amd64\\r\\nnoise\\n")["kernel"]
    '6.1.0-56-amd64'
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import html
import io
import os
import platform
import re
import selectors
import shutil
import signal
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from labkit import engine, wait
from labkit.errors import CommandFailed, LabkitError, NotSupported, WaitTimeout
from labkit.paths import state_dir
from labkit.shell import sh

LESSON = "01"
QEMU = "qemu-system-x86_64"
#: Every line the guest's /init prints for the host starts with this.
MARK = "LABKIT-VM"
#: Debian's (then Ubuntu's) meta-package that depends on the current kernel package.
KERNEL_META_PACKAGES = ("linux-image-amd64", "linux-image-generic")
#: A working KVM reaches init in well under a second; a guest that says nothing by then is stuck.
KVM_PROBE_SECONDS = 3.0
#: TCG emulates every instruction: about 5 s to init on a quiet machine, far more on a busy one.
BOOT_TIMEOUT = 90.0
GUEST_MEMORY_MB = 256
KERNEL_CMDLINE = "console=ttyS0 quiet panic=-1"
#: The container the lesson measures.
CONTAINER_NAME = "lab01-box"
CONTAINER_IMAGE = "busybox"

INIT_SCRIPT = f"""#!/bin/sh
# labkit's tiny VM: say what this machine sees, wait for the host, power off.
bb=/bin/busybox
$bb mount -t proc proc /proc
echo "{MARK} kernel=$($bb uname -r)"
echo "{MARK} memtotal_kb=$($bb awk '/^MemTotal:/ {{print $2}}' /proc/meminfo)"
echo "{MARK} uptime=$($bb cut -d ' ' -f 1 /proc/uptime)"
echo "{MARK} ready"
# The host samples qemu's memory now, then sends one line: a handshake, no fixed wait.
read -r reply
echo "{MARK} bye"
$bb poweroff -f
"""

_MARKER = re.compile(rf"{MARK} (\w+)(?:=(\S*))?")
#: Terminal control sequences the firmware and kernel write to the serial console.
_ESCAPES = re.compile(r"\x1b(?:\[[0-9;?]*[A-Za-z]|[A-Za-z])")


def vm_dir() -> Path:
    """Where the kernel and the initramfs are cached."""
    path = state_dir() / "vm"
    path.mkdir(parents=True, exist_ok=True)
    return path


def qemu_missing() -> str | None:
    """Why the VM half cannot run here, or ``None`` when ``qemu-system-x86_64`` is installed."""
    if shutil.which(QEMU) is None:
        return f"{QEMU} is not installed (on Debian or Ubuntu: apt-get install qemu-system-x86)"
    return None


# --- the kernel --------------------------------------------------------------------------


def parse_kernel_depends(text: str) -> str | None:
    """The kernel package a meta-package depends on, from ``apt-cache depends`` output.

    Example:
        >>> parse_kernel_depends("linux-image-amd64\\n  Depends: linux-image-6.1.0-56-amd64\\n")
        'linux-image-6.1.0-56-amd64'
    """
    for line in text.splitlines():
        match = re.match(r"^\s*\|?Depends:\s*(linux-image-\d[\w.+-]*)\s*$", line)
        if match:
            return match.group(1)
    return None


def kernel_release_of(package: str) -> str:
    """``linux-image-6.1.0-56-amd64`` → ``6.1.0-56-amd64`` (the name of its ``/boot/vmlinuz-*``)."""
    return package.removeprefix("linux-image-")


def _run(argv: list[str], timeout: float, cwd: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run a helper program quietly.

    Raises:
        NotSupported: the program is not installed.
        WaitTimeout: it ran past ``timeout``.
    """
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False, cwd=cwd)
    except FileNotFoundError as e:
        raise NotSupported(f"`{argv[0]}` is not available to fetch a kernel for the VM", "the VM half needs Debian or Ubuntu (apt)") from e
    except subprocess.TimeoutExpired as e:
        raise WaitTimeout(f"`{' '.join(argv)}`", timeout) from e


def kernel_package() -> str:
    """The kernel package this machine's release currently offers (asks apt).

    Runs ``apt-get update`` once when the package lists are missing.

    Raises:
        NotSupported: no apt, or no kernel meta-package in its lists.
        CommandFailed: ``apt-get update`` failed.
    """
    for attempt in range(2):
        for meta in KERNEL_META_PACKAGES:
            found = parse_kernel_depends(_run(["apt-cache", "depends", meta], 30).stdout)
            if found:
                return found
        if attempt == 0:
            if os.geteuid() != 0:
                break
            update = _run(["apt-get", "update"], 300)
            if update.returncode != 0:
                raise CommandFailed("apt-get update", update.returncode, update.stdout + update.stderr)
    raise NotSupported(
        "apt knows no Linux kernel package (linux-image-amd64) to boot the VM with",
        "run `apt-get update` as root, then run the cell again",
    )


def extract_vmlinuz(deb: Path, dest: Path) -> Path:
    """Copy ``/boot/vmlinuz-*`` out of a kernel ``.deb`` (the modules are not needed: no disks, no network).

    Raises:
        LabkitError: the package holds no kernel image.
    """
    stream = subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(deb)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        assert stream.stdout is not None
        with tarfile.open(fileobj=stream.stdout, mode="r|") as archive:
            for member in archive:
                if re.fullmatch(r"\./boot/vmlinuz-[\w.+-]+", member.name) and member.isfile():
                    source = archive.extractfile(member)
                    assert source is not None
                    target = dest / Path(member.name).name
                    tmp = target.with_suffix(".part")
                    with open(tmp, "wb") as out:
                        shutil.copyfileobj(source, out)
                    os.replace(tmp, target)
                    return target
    finally:
        if stream.stdout is not None:
            stream.stdout.close()
        stream.wait()
    raise LabkitError(f"{deb.name} holds no /boot/vmlinuz-*", "delete it and run the cell again")


def ensure_kernel(package: str | None = None) -> Path:
    """The guest kernel, downloaded and cached on first use.

    Args:
        package: e.g. ``linux-image-6.1.0-56-amd64``; asks apt when omitted.

    Raises:
        NotSupported: no apt to fetch a kernel with.
        LabkitError: the download failed (one line, with what apt said).
    """
    cache = vm_dir()
    if package is None:
        try:
            package = kernel_package()
        except NotSupported:
            cached = sorted(cache.glob("vmlinuz-*"))
            if cached:  # offline, or apt gone: a kernel fetched before still boots
                return cached[-1]
            raise
    target = cache / f"vmlinuz-{kernel_release_of(package)}"
    if target.is_file():
        return target
    with tempfile.TemporaryDirectory(dir=cache, prefix=".download-") as tmp:
        # apt's download sandbox user cannot write to a root-only temp dir: let it in.
        os.chmod(tmp, 0o777)
        done = _run(["apt-get", "download", package], 600, cwd=tmp)
        debs = sorted(Path(tmp).glob("*.deb"))
        if done.returncode != 0 or not debs:
            reason = next((line for line in (done.stderr + done.stdout).splitlines() if line.startswith("E:")), "no .deb appeared")
            raise LabkitError(
                f"could not download the VM's kernel {package}: {reason}",
                "check that `apt-get download " + package + "` works (run `apt-get update` first), then run the cell again",
            )
        extracted = extract_vmlinuz(debs[0], Path(tmp))
        os.replace(extracted, target)
    return target


# --- the initramfs -------------------------------------------------------------------------


@dataclass(frozen=True)
class CpioEntry:
    """One member of a ``newc`` cpio archive."""

    name: str
    mode: int
    data: bytes = b""
    rdev: tuple[int, int] = (0, 0)


def newc_archive(entries: Iterable[CpioEntry], mtime: int = 0) -> bytes:
    """A ``cpio -o -H newc`` archive, written directly.

    Written here rather than by ``cpio`` so the device node ``/dev/console`` can be
    added without ``mknod`` (the kernel needs it to give ``/init`` a console), and so
    the archive is the same bytes every time.

    Example:
        >>> newc_archive([CpioEntry("init", 0o100755, b"x")])[:6]
        b'070701'
    """
    out = io.BytesIO()

    def write(name: str, mode: int, data: bytes, ino: int, rdev: tuple[int, int]) -> None:
        encoded = name.encode() + b"\0"
        fields = (ino, mode, 0, 0, 1, mtime, len(data), 0, 0, rdev[0], rdev[1], len(encoded), 0)
        out.write(b"070701" + b"".join(f"{value:08X}".encode() for value in fields))
        out.write(encoded)
        out.write(b"\0" * (-out.tell() % 4))
        out.write(data)
        out.write(b"\0" * (-out.tell() % 4))

    for ino, entry in enumerate(entries, start=1):
        write(entry.name, entry.mode, entry.data, ino, entry.rdev)
    write("TRAILER!!!", 0, b"", 0, (0, 0))
    return out.getvalue()


def initramfs_entries(busybox: bytes, init: str = INIT_SCRIPT) -> list[CpioEntry]:
    """What the guest's root filesystem holds: busybox, ``/init``, and the folders it mounts on."""
    return [
        CpioEntry("bin", 0o040755),
        CpioEntry("bin/busybox", 0o100755, busybox),
        CpioEntry("bin/sh", 0o120777, b"busybox"),  # a symlink: /init's #!/bin/sh
        CpioEntry("dev", 0o040755),
        CpioEntry("dev/console", 0o020600, rdev=(5, 1)),
        CpioEntry("proc", 0o040755),
        CpioEntry("sys", 0o040755),
        CpioEntry("init", 0o100755, init.encode()),
    ]


def build_initramfs(busybox: bytes, init: str = INIT_SCRIPT) -> bytes:
    """The gzipped initramfs, identical bytes for identical inputs."""
    return gzip.compress(newc_archive(initramfs_entries(busybox, init)), mtime=0)


def ensure_initramfs() -> Path:
    """The initramfs, built from Debian's static busybox and cached by content.

    Raises:
        NotSupported: busybox-static is not installed.
    """
    from labkit.images.builders import find_static_busybox

    busybox = find_static_busybox().read_bytes()
    digest = hashlib.sha256(busybox + INIT_SCRIPT.encode()).hexdigest()[:12]
    target = vm_dir() / f"initramfs-{digest}.cpio.gz"
    if not target.is_file():
        tmp = target.with_suffix(".part")
        tmp.write_bytes(build_initramfs(busybox))
        os.replace(tmp, target)
    for stale in target.parent.glob("initramfs-*.cpio.gz"):  # built from an older busybox or /init
        if stale != target:
            stale.unlink(missing_ok=True)
    return target


@dataclass(frozen=True)
class GuestFiles:
    """The kernel and initramfs the VM boots from."""

    kernel: Path
    initrd: Path

    @property
    def kernel_release(self) -> str:
        return self.kernel.name.removeprefix("vmlinuz-")

    def __str__(self) -> str:
        return (
            f"kernel: Linux {self.kernel_release} from Debian ({self.kernel.stat().st_size / 2**20:.1f} MiB)\n"
            f"initramfs: busybox + /init ({self.initrd.stat().st_size / 2**20:.1f} MiB)"
        )

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(str(self))


def prepare() -> GuestFiles:
    """Fetch (first time only) and build what the VM boots from.

    Raises:
        NotSupported: qemu, apt or busybox-static is missing.
        LabkitError: the kernel download failed.
    """
    missing = qemu_missing()
    if missing:
        raise NotSupported(f"cannot boot a VM here: {missing}", "install it, or read on: the container half works without it")
    return GuestFiles(ensure_kernel(), ensure_initramfs())


def cached_kernel_releases() -> list[str]:
    """Kernel releases of the VM kernels fetched so far on this machine (no download)."""
    folder = state_dir() / "vm"  # reading only: no folder is made for this
    return sorted(p.name.removeprefix("vmlinuz-") for p in folder.glob("vmlinuz-*") if not p.name.endswith(".part"))


# --- booting ---------------------------------------------------------------------------


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
        [('kvm', 4.0), ('tcg', None)]
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
        rss = f"{self.qemu_rss_kb / 1024:.1f} MiB" if self.qemu_rss_kb else "unknown"
        lines = [
            f"accelerator: {self.accelerator}",
            *(f"  ({note})" for note in self.notes),
            f"boot to /init: {self.boot_seconds:.2f} s (the guest's own uptime then: {self.guest_uptime_seconds:.2f} s)",
            f"guest kernel: {self.kernel_release}",
            f"guest MemTotal: {self.mem_total_kb / 1024:.1f} MiB",
            f"qemu process RSS on the host: {rss}",
            f"powered off cleanly: {'yes' if self.clean_shutdown else 'no'} (whole run {self.total_seconds:.2f} s)",
        ]
        return "\n".join(lines)

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(str(self))


class VmTimeout(LabkitError):
    """The guest did not report in time."""

    def __init__(self, what: str, seconds: float, last_output: str) -> None:
        self.what = what
        self.seconds = seconds
        self.last_output = last_output
        super().__init__(
            f"gave up after {seconds:g} s waiting for {what} (last console line: {last_output})",
            "the machine may be busy: run the cell again, or give it longer with labkit.vm.boot(timeout=180)",
        )


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
        raise NotSupported(f"{QEMU} is not installed", "apt-get install qemu-system-x86") from e
    console = _Console(proc)
    try:
        at_init = console.until("kernel", min(deadline, started + probe) if probe else deadline)
        if at_init is None:
            if proc.poll() is not None or probe:
                if proc.poll() is not None:
                    raise _Stuck(f"{accelerator}: qemu exited at once ({console.last_line()})")
                raise _Stuck(f"{accelerator}: the guest did not reach /init within {probe:g} s")
            raise VmTimeout(f"the VM ({accelerator}) to reach /init", timeout, console.last_line())
        if console.until("ready", deadline) is None:
            raise VmTimeout("the VM's /init to report", timeout, console.last_line())
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
            raise LabkitError(f"the VM printed markers labkit cannot read: {markers}", "delete the vm folder in labkit's state dir and retry") from e
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
            notes.append(f"{e}, so qemu fell back to the next accelerator")
            continue
        return BootReport(**{**report.__dict__, "notes": tuple(notes)})
    raise LabkitError(f"the VM did not boot with any accelerator ({'; '.join(notes)})", "run `labkit doctor`, then the cell again")


# --- the container side ----------------------------------------------------------------


def parse_proc_cgroup(text: str) -> tuple[int, str] | None:
    """The memory cgroup of a process from ``/proc/<pid>/cgroup``: ``(1, path)`` or ``(2, path)``.

    cgroup v1 lists a ``memory`` controller line; pure v2 has only the ``0::`` line.

    Example:
        >>> parse_proc_cgroup("4:memory:/docker/abc\\n0::/docker/abc\\n")
        (1, '/docker/abc')
        >>> parse_proc_cgroup("0::/system.slice/docker-abc.scope\\n")
        (2, '/system.slice/docker-abc.scope')
    """
    unified = None
    for line in text.splitlines():
        parts = line.strip().split(":", 2)
        if len(parts) != 3:
            continue
        if "memory" in parts[1].split(","):
            return 1, parts[2]
        if parts[0] == "0" and parts[1] == "":
            unified = parts[2]
    return (2, unified) if unified is not None else None


def memory_files(container_id: str, proc_cgroup: str | None = None, root: Path = Path("/sys/fs/cgroup")) -> list[Path]:
    """Where a container's memory usage may be read, most precise first.

    From the process's own cgroup when known, then the usual places for the
    cgroupfs (``docker/<id>``) and systemd (``docker-<id>.scope``) drivers.
    """
    found = parse_proc_cgroup(proc_cgroup) if proc_cgroup else None
    candidates = []
    if found:
        version, rel = found
        rel = rel.lstrip("/")
        candidates.append(root / "memory" / rel / "memory.usage_in_bytes" if version == 1 else root / rel / "memory.current")
    candidates += [
        root / "memory" / "docker" / container_id / "memory.usage_in_bytes",
        root / "memory" / "system.slice" / f"docker-{container_id}.scope" / "memory.usage_in_bytes",
        root / "system.slice" / f"docker-{container_id}.scope" / "memory.current",
        root / "docker" / container_id / "memory.current",
    ]
    return list(dict.fromkeys(candidates))  # the first of each, in order


def parse_cmdline(raw: bytes) -> str:
    """``/proc/<pid>/cmdline`` (NUL-separated) as a command line."""
    return " ".join(part.decode(errors="replace") for part in raw.split(b"\0") if part)


def parse_status_field(status: str, key: str) -> str | None:
    """One field of ``/proc/<pid>/status``."""
    match = re.search(rf"^{re.escape(key)}:\s*(.*)$", status, re.MULTILINE)
    return match.group(1).strip() if match else None


@dataclass(frozen=True)
class ContainerReport:
    """What the container side measured."""

    name: str
    start_seconds: float
    roundtrip_seconds: float
    kernel_release: str
    daemon_kernel: str
    host_kernel: str
    memory_bytes: int | None
    memory_source: str
    host_pid: int
    host_cmdline: str
    host_parent: str
    top: tuple[str, ...] = field(default=())

    def __str__(self) -> str:
        mem = f"{self.memory_bytes / 2**20:.1f} MiB" if self.memory_bytes is not None else "unknown"
        return "\n".join(
            [
                f"docker run -d → running: {self.start_seconds:.2f} s",
                f"docker run --rm busybox true, whole round trip: {self.roundtrip_seconds:.2f} s",
                f"kernel seen inside (uname -r): {self.kernel_release}",
                f"daemon's kernel (docker info): {self.daemon_kernel}",
                f"this computer's kernel (platform.release()): {self.host_kernel}",
                f"container memory from its cgroup: {mem} ({self.memory_source})",
            ]
        )

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(str(self))


def container_memory(container_id: str, pid: int) -> tuple[int | None, str]:
    """A container's memory usage in bytes, and where it was read.

    Reads the memory cgroup file (v1 or v2) when this process can see it; falls back
    to the daemon's stats (Docker Desktop, a remote daemon).
    """
    try:
        proc_cgroup = Path(f"/proc/{pid}/cgroup").read_text()
    except OSError:
        proc_cgroup = None
    for path in memory_files(container_id, proc_cgroup):
        try:
            value = int(path.read_text().strip())
        except (OSError, ValueError):
            continue
        kind = "cgroup v1" if path.name == "memory.usage_in_bytes" else "cgroup v2"
        return value, f"{kind} {path.name}"
    with engine.converted():
        stats = engine.client().containers.get(container_id).stats(stream=False)
    usage = (stats.get("memory_stats") or {}).get("usage")
    return (int(usage) if usage is not None else None), "docker stats"


def _timed(command: str) -> float:
    started = time.monotonic()
    sh(command, lesson=LESSON, quiet=True, timeout=60)
    return time.monotonic() - started


def start_container(name: str = CONTAINER_NAME) -> ContainerReport:
    """Start a busybox container (labelled lesson 01) and measure it from the host side.

    The container keeps running (``sleep``) so the lesson can look at it; ``labkit.reset(lesson="01")``
    or :func:`remove_container` removes it.

    Raises:
        DaemonUnavailable: the daemon did not answer.
        CommandFailed: docker refused to run the container.
        WaitTimeout: it did not reach ``running``.
    """
    remove_container(name)
    client = engine.client()
    started = time.monotonic()
    sh(f"docker run -d --name {name} {CONTAINER_IMAGE} sleep 3600", lesson=LESSON, quiet=True, timeout=60)
    with engine.converted():
        container = client.containers.get(name)
        wait.container_running(container)
        start_seconds = time.monotonic() - started
        roundtrip = _timed(f"docker run --rm {CONTAINER_IMAGE} true")
        kernel = container.exec_run(["uname", "-r"]).output.decode().strip()
        daemon_kernel = str(client.info().get("KernelVersion", "")).strip()
        container.reload()
        pid = int(container.attrs["State"]["Pid"])
        top = tuple(" ".join(row) for row in (container.top().get("Processes") or []))
    memory, source = container_memory(container.id, pid)
    cmdline, parent = host_process(pid)
    return ContainerReport(
        name=name,
        start_seconds=start_seconds,
        roundtrip_seconds=roundtrip,
        kernel_release=kernel,
        daemon_kernel=daemon_kernel,
        host_kernel=platform.release(),
        memory_bytes=memory,
        memory_source=source,
        host_pid=pid,
        host_cmdline=cmdline,
        host_parent=parent,
        top=top,
    )


def host_process(pid: int) -> tuple[str, str]:
    """A host process's command line and its parent's name, read from the host's ``/proc``.

    Returns ``("", "")`` when this process cannot see it (the daemon runs in another
    VM, as with Docker Desktop).
    """
    try:
        cmdline = parse_cmdline(Path(f"/proc/{pid}/cmdline").read_bytes())
        ppid = parse_status_field(Path(f"/proc/{pid}/status").read_text(), "PPid") or ""
        parent = parse_status_field(Path(f"/proc/{ppid}/status").read_text(), "Name") or ""
    except OSError:
        return "", ""
    return cmdline, parent


def remove_container(name: str = CONTAINER_NAME) -> bool:
    """Remove the lesson's container if it exists. Returns whether there was one."""
    found = engine.find_container(name)
    if found is None or found.name != name:
        return False
    with engine.converted(), contextlib.suppress(Exception):
        found.remove(force=True)
    return True


# --- showing the results ------------------------------------------------------------------


def bar_chart_svg(rows: list[tuple[str, float]], width: int = 560, unit: str = "s") -> str:
    """Horizontal bars as inline SVG, longest bar = full width (no plotting library needed).

    Example:
        >>> bar_chart_svg([("a", 1.0), ("b", 0.5)]).count("<rect")
        2
    """
    label_w, bar_w, row_h = 200, width - 200 - 70, 28
    top = max((value for _, value in rows), default=0) or 1.0
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
        return f"{value / 2**20:.1f} MiB" if value is not None else "unknown"

    skipped = html.escape(vm_skipped or "not measured")
    rows = [
        (
            "Start-up",
            f"{vm.boot_seconds:.2f} s to /init" if vm else skipped,
            f"{box.start_seconds:.2f} s from <code>docker run -d</code> to running",
        ),
        (
            "Kernel",
            f"its own: {html.escape(vm.kernel_release)}" if vm else skipped,
            f"the host's: {html.escape(box.kernel_release)}",
        ),
        (
            "Memory",
            f"{mib(vm.qemu_rss_kb * 1024 if vm.qemu_rss_kb else None)} (qemu's RSS; the guest was given {GUEST_MEMORY_MB} MiB)" if vm else skipped,
            f"{mib(box.memory_bytes)} ({html.escape(box.memory_source)})",
        ),
        (
            "What runs it",
            "a hypervisor (qemu) emulating a whole computer, with a guest kernel inside",
            "the container runtime starting isolated processes on the host kernel",
        ),
    ]
    head = "<tr><th></th><th>Virtual machine</th><th>Container</th></tr>"
    body = "".join(f"<tr><th>{label}</th><td>{a}</td><td>{b}</td></tr>" for label, a, b in rows)
    return f'<table class="labkit-compare">{head}{body}</table>'
