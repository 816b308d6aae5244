"""Lesson 01 for real: a VM boots with its own kernel, a container shares the host's, the check tells them apart."""

from __future__ import annotations

import os
import platform
import shutil
from pathlib import Path

import pytest

from labkit import exercises
from labkit.core.engine import LABEL_LESSON
from labkit.core.shell import sh
from labkit.features import vm

pytestmark = pytest.mark.docker


@pytest.mark.slow
@pytest.mark.skipif(shutil.which(vm.QEMU) is None, reason="qemu-system-x86 is not installed (CI provisions it)")
def test_a_real_vm_boots_with_its_own_kernel_and_memory() -> None:
    report = vm.boot()
    files = vm.prepare()
    assert report.kernel_release == files.kernel_release  # the guest runs the kernel we gave it
    assert report.kernel_release != platform.release()  # ... not the host's
    assert 150 * 1024 < report.mem_total_kb <= vm.GUEST_MEMORY_MB * 1024  # about the RAM qemu was given
    assert report.qemu_rss_kb and report.qemu_rss_kb > 10 * 1024
    assert report.clean_shutdown and report.accelerator in ("kvm", "tcg")
    assert 0 < report.boot_seconds < vm.BOOT_TIMEOUT
    # qemu is gone: no process of ours is left holding the kernel file
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        assert str(files.kernel).encode() not in cmdline


def test_a_container_sees_the_hosts_kernel_and_is_a_host_process(docker_client: object) -> None:
    try:
        report = vm.start_container("lab01-test-box")
        assert report.kernel_release == report.daemon_kernel == platform.release()
        assert report.start_seconds < 30 and report.roundtrip_seconds < 30
        assert report.memory_bytes and report.memory_bytes > 0
        assert report.host_cmdline == "sleep 3600"  # the container's PID 1, seen in the host's /proc
        assert "containerd-shim" in report.host_parent
        assert any(row.endswith("sleep 3600") for row in report.top)
        container = docker_client.containers.get("lab01-test-box")  # type: ignore[attr-defined]
        assert container.labels[LABEL_LESSON] == "01"
    finally:
        vm.remove_container("lab01-test-box")
    assert not vm.remove_container("lab01-test-box")


class TestKernelCheck:
    @pytest.fixture(autouse=True)
    def _clean(self, docker_client: object) -> object:
        exercises.reset_exercise(exercises.get("vm.kernel"))
        yield
        exercises.reset_exercise(exercises.get("vm.kernel"))

    def test_no_answer_is_not_yet(self) -> None:
        result = exercises.check("vm.kernel")
        assert not result.passed and result.hint

    def test_the_containers_uname_passes_with_or_without_newline(self) -> None:
        seen = sh("docker run --rm busybox uname -r", quiet=True, lesson="01").output
        assert exercises.check("vm.kernel", answer=seen).passed
        assert exercises.check("vm.kernel", answer=seen.strip()).passed
        assert exercises.check("vm.kernel").passed  # the answer is remembered

    def test_uname_a_is_rejected_with_its_hint(self) -> None:
        line = sh("docker run --rm busybox uname -a", quiet=True, lesson="01").output
        result = exercises.check("vm.kernel", answer=line)
        assert not result.passed and "uname -r" in (result.hint or "")

    def test_dockers_version_is_rejected(self, docker_client: object) -> None:
        version = docker_client.version()["Version"]  # type: ignore[attr-defined]
        result = exercises.check("vm.kernel", answer=version)
        assert not result.passed and "Docker's own version" in result.message

    @pytest.mark.skipif(shutil.which(vm.QEMU) is None, reason="qemu-system-x86 is not installed")
    def test_the_vms_kernel_is_rejected(self) -> None:
        release = vm.prepare().kernel_release  # fetched, so the check knows it as the VM's
        result = exercises.check("vm.kernel", answer=release)
        assert not result.passed and "virtual machine" in result.message
