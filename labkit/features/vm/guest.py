"""What the VM boots from: Debian's own kernel and a tiny initramfs, both cached in ``state_dir()/vm``.

The kernel comes from ``apt-get download`` (only ``/boot/vmlinuz-*`` is kept); the
initramfs holds Debian's static busybox and an ``/init`` script that prints what the
guest sees, waits for one line from the host, and powers off.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from labkit.core import fmt, state
from labkit.core.errors import CommandFailed, LabkitError, NotSupported, WaitTimeout
from labkit.core.i18n import _
from labkit.core.paths import state_dir
from labkit.features.images.builders import find_static_busybox

QEMU = "qemu-system-x86_64"
#: Every line the guest's /init prints for the host starts with this.
MARK = "LABKIT-VM"
#: Debian's (then Ubuntu's) meta-package that depends on the current kernel package.
KERNEL_META_PACKAGES = ("linux-image-amd64", "linux-image-generic")

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


def vm_dir() -> Path:
    """Where the kernel and the initramfs are cached."""
    path = state_dir() / "vm"
    path.mkdir(parents=True, exist_ok=True)
    return path


def qemu_missing() -> str | None:
    """Why the VM half cannot run here, or ``None`` when ``qemu-system-x86_64`` is installed."""
    if shutil.which(QEMU) is None:
        return _("{program} is not installed (on Debian or Ubuntu: apt-get install qemu-system-x86)").format(
            program=QEMU
        )
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
        raise NotSupported(
            _("`{program}` is not available to fetch a kernel for the VM").format(program=argv[0]),
            _("the VM half needs Debian or Ubuntu (apt)"),
        ) from e
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
        _("apt knows no Linux kernel package (linux-image-amd64) to boot the VM with"),
        _("run `apt-get update` as root, then run the cell again"),
    )


def extract_vmlinuz(deb: Path, dest: Path) -> Path:
    """Copy ``/boot/vmlinuz-*`` out of a kernel ``.deb`` (the modules are not needed: no disks, no network).

    Raises:
        LabkitError: the package holds no kernel image.
    """
    stream = subprocess.Popen(
        ["dpkg-deb", "--fsys-tarfile", str(deb)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
    )
    try:
        assert stream.stdout is not None
        with tarfile.open(fileobj=stream.stdout, mode="r|") as archive:
            for member in archive:
                if re.fullmatch(r"\./boot/vmlinuz-[\w.+-]+", member.name) and member.isfile():
                    source = archive.extractfile(member)
                    assert source is not None
                    target = dest / Path(member.name).name
                    with state.replacing(target) as out:
                        shutil.copyfileobj(source, out)
                    return target
    finally:
        if stream.stdout is not None:
            stream.stdout.close()
        stream.wait()
    raise LabkitError(_("{name} holds no /boot/vmlinuz-*").format(name=deb.name), _("delete it and run the cell again"))


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
            reason = next(
                (line for line in (done.stderr + done.stdout).splitlines() if line.startswith("E:")), "no .deb appeared"
            )
            raise LabkitError(
                _("could not download the VM's kernel {package}: {reason}").format(package=package, reason=reason),
                _(
                    "check that `apt-get download {package}` works (run `apt-get update` first), then run the cell again"
                ).format(package=package),
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

    busybox = find_static_busybox().read_bytes()
    digest = hashlib.sha256(busybox + INIT_SCRIPT.encode()).hexdigest()[:12]
    target = vm_dir() / f"initramfs-{digest}.cpio.gz"
    if not target.is_file():
        state.write_bytes(target, build_initramfs(busybox))
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
        kernel = _("kernel: Linux {release} from Debian ({size})").format(
            release=self.kernel_release, size=fmt.size(self.kernel.stat().st_size, "mib")
        )
        initramfs = _("initramfs: busybox + /init ({size})").format(size=fmt.size(self.initrd.stat().st_size, "mib"))
        return f"{kernel}\n{initramfs}"

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
        raise NotSupported(
            _("cannot boot a VM here: {missing}").format(missing=missing),
            _("install it, or read on: the container half works without it"),
        )
    return GuestFiles(ensure_kernel(), ensure_initramfs())


def cached_kernel_releases() -> list[str]:
    """Kernel releases of the VM kernels fetched so far on this machine (no download)."""
    folder = state_dir() / "vm"  # reading only: no folder is made for this
    return sorted(p.name.removeprefix("vmlinuz-") for p in folder.glob("vmlinuz-*") if not p.name.endswith(".part"))
