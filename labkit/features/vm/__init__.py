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

The package, one module per concern:

- :mod:`labkit.vm.guest`: what the VM boots from (Debian's kernel, the initramfs);
- :mod:`labkit.vm.booting`: booting it under qemu, measuring it, powering it off;
- :mod:`labkit.vm.container`: the container half, measured from the host side;
- :mod:`labkit.vm.show`: the side-by-side chart and table.

Example:
    >>> from labkit import vm
    >>> vm.parse_markers("LABKIT-VM kernel=6.1.0-56-amd64\\r\\nnoise\\n")["kernel"]
    '6.1.0-56-amd64'
"""

from __future__ import annotations

from labkit.core.errors import CommandFailed, LabkitError, NotSupported, VmTimeout, WaitTimeout
from labkit.features.vm.booting import (
    BOOT_TIMEOUT,
    GUEST_MEMORY_MB,
    KERNEL_CMDLINE,
    KVM_PROBE_SECONDS,
    BootReport,
    boot,
    kvm_usable,
    parse_markers,
    parse_vmrss_kb,
    plan_accelerators,
    qemu_argv,
)
from labkit.features.vm.container import (
    CONTAINER_IMAGE,
    CONTAINER_NAME,
    LESSON,
    ContainerReport,
    container_memory,
    host_process,
    memory_files,
    parse_cmdline,
    parse_proc_cgroup,
    parse_status_field,
    remove_container,
    start_container,
)
from labkit.features.vm.guest import (
    INIT_SCRIPT,
    KERNEL_META_PACKAGES,
    MARK,
    QEMU,
    CpioEntry,
    GuestFiles,
    build_initramfs,
    cached_kernel_releases,
    ensure_initramfs,
    ensure_kernel,
    extract_vmlinuz,
    initramfs_entries,
    kernel_package,
    kernel_release_of,
    newc_archive,
    parse_kernel_depends,
    prepare,
    qemu_missing,
    vm_dir,
)
from labkit.features.vm.show import bar_chart_svg, comparison_table

__all__ = [
    "BOOT_TIMEOUT",
    "CONTAINER_IMAGE",
    "CONTAINER_NAME",
    "GUEST_MEMORY_MB",
    "INIT_SCRIPT",
    "KERNEL_CMDLINE",
    "KERNEL_META_PACKAGES",
    "KVM_PROBE_SECONDS",
    "LESSON",
    "MARK",
    "QEMU",
    "BootReport",
    "CommandFailed",
    "ContainerReport",
    "CpioEntry",
    "GuestFiles",
    "LabkitError",
    "NotSupported",
    "VmTimeout",
    "WaitTimeout",
    "bar_chart_svg",
    "boot",
    "build_initramfs",
    "cached_kernel_releases",
    "comparison_table",
    "container_memory",
    "ensure_initramfs",
    "ensure_kernel",
    "extract_vmlinuz",
    "host_process",
    "initramfs_entries",
    "kernel_package",
    "kernel_release_of",
    "kvm_usable",
    "memory_files",
    "newc_archive",
    "parse_cmdline",
    "parse_kernel_depends",
    "parse_markers",
    "parse_proc_cgroup",
    "parse_status_field",
    "parse_vmrss_kb",
    "plan_accelerators",
    "prepare",
    "qemu_argv",
    "qemu_missing",
    "remove_container",
    "start_container",
    "vm_dir",
]
