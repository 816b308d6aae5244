"""Lesson 01's pure logic, without qemu or a daemon: initramfs, markers, accelerators, cgroups, the check."""

from __future__ import annotations

import gzip
import shutil
import subprocess
from pathlib import Path

import pytest

from labkit.exercises.lesson01_vm_vs_container import kernel_verdict
from labkit.features import vm


def _read_newc(data: bytes) -> dict[str, tuple[int, bytes, tuple[int, int]]]:
    """A tiny newc reader: name → (mode, data, (rdevmajor, rdevminor))."""
    members = {}
    offset = 0
    while True:
        assert data[offset : offset + 6] == b"070701"
        fields = [int(data[offset + 6 + 8 * i : offset + 14 + 8 * i], 16) for i in range(13)]
        mode, size, rmaj, rmin, namesize = fields[1], fields[6], fields[9], fields[10], fields[11]
        name_start = offset + 110
        name = data[name_start : name_start + namesize - 1].decode()
        body = name_start + namesize
        body += -body % 4
        if name == "TRAILER!!!":
            return members
        members[name] = (mode, data[body : body + size], (rmaj, rmin))
        offset = body + size
        offset += -offset % 4


class TestInitramfs:
    def test_holds_busybox_init_console_and_mount_points(self) -> None:
        members = _read_newc(gzip.decompress(vm.build_initramfs(b"\x7fELF fake busybox")))
        assert members["bin/busybox"] == (0o100755, b"\x7fELF fake busybox", (0, 0))
        assert members["bin/sh"][0] == 0o120777 and members["bin/sh"][1] == b"busybox"
        assert members["dev/console"] == (0o020600, b"", (5, 1))
        assert members["init"][0] == 0o100755
        for folder in ("bin", "dev", "proc", "sys"):
            assert members[folder][0] == 0o040755

    def test_is_the_same_bytes_every_time(self) -> None:
        assert vm.build_initramfs(b"x") == vm.build_initramfs(b"x")

    def test_init_reports_markers_waits_for_the_host_then_powers_off(self) -> None:
        script = vm.INIT_SCRIPT
        assert script.startswith("#!/bin/sh\n")
        assert "mount -t proc proc /proc" in script
        for key in ("kernel=", "memtotal_kb=", "uptime=", "ready", "bye"):
            assert f"{vm.MARK} {key}" in script
        # the handshake comes between "ready" and "bye", and poweroff is last
        assert script.index("ready") < script.index("read -r") < script.index("bye") < script.index("poweroff -f")
        assert "sleep" not in script

    @pytest.mark.skipif(shutil.which("cpio") is None, reason="cpio cross-check needs cpio")
    def test_real_cpio_lists_the_same_members(self) -> None:
        listing = subprocess.run(
            ["cpio", "-t", "--quiet"],
            input=vm.newc_archive(vm.initramfs_entries(b"bb")),
            capture_output=True,
            check=True,
        ).stdout.decode()
        assert listing.split() == ["bin", "bin/busybox", "bin/sh", "dev", "dev/console", "proc", "sys", "init"]


class TestMarkers:
    CONSOLE = (
        "\x1bc\x1b[?7l\x1b[2J\x1b[0mSeaBIOS (version 1.16.2)\r\nBooting from ROM...\r\n"
        "\x1bc\x1b[?7l\x1b[2JLABKIT-VM kernel=6.1.0-56-amd64\r\n"
        "LABKIT-VM memtotal_kb=210752\r\nLABKIT-VM uptime=2.79\r\nLABKIT-VM ready\r\npoweroff\r\nLABKIT-VM bye\r\n"
    )

    def test_reads_every_marker_through_terminal_escapes(self) -> None:
        assert vm.parse_markers(self.CONSOLE) == {
            "kernel": "6.1.0-56-amd64",
            "memtotal_kb": "210752",
            "uptime": "2.79",
            "ready": "",
            "bye": "",
        }

    def test_a_half_received_console_has_only_what_arrived(self) -> None:
        partial = self.CONSOLE[: self.CONSOLE.index("LABKIT-VM memtotal")]
        assert vm.parse_markers(partial) == {"kernel": "6.1.0-56-amd64"}

    def test_vmrss(self) -> None:
        assert vm.parse_vmrss_kb("Name:\tqemu-system-x86\nVmPeak:\t 999 kB\nVmRSS:\t  221904 kB\n") == 221904
        assert vm.parse_vmrss_kb("Name:\tzombie\n") is None


class TestAccelerators:
    def test_kvm_must_prove_itself_quickly_then_tcg(self) -> None:
        plan = vm.plan_accelerators(kvm=True)
        assert [name for name, _ in plan] == ["kvm", "tcg"]
        assert plan[0][1] is not None and plan[0][1] <= 5 and plan[1][1] is None

    def test_no_kvm_means_tcg_only(self) -> None:
        assert vm.plan_accelerators(kvm=False) == [("tcg", None)]

    def test_forced(self) -> None:
        assert vm.plan_accelerators(kvm=True, forced="tcg") == [("tcg", None)]

    def test_kvm_usable_needs_the_device(self, tmp_path: Path) -> None:
        assert not vm.kvm_usable(str(tmp_path / "no-kvm"))

    def test_qemu_command_line(self) -> None:
        files = vm.GuestFiles(Path("/k/vmlinuz-6.1.0-56-amd64"), Path("/k/initramfs.cpio.gz"))
        argv = vm.qemu_argv(files, "tcg")
        assert argv[0] == vm.QEMU and "-nographic" in argv and "-no-reboot" in argv
        assert argv[argv.index("-accel") + 1] == "tcg" and argv[argv.index("-m") + 1] == "256"
        assert argv[argv.index("-append") + 1] == "console=ttyS0 quiet panic=-1"
        assert files.kernel_release == "6.1.0-56-amd64"


class TestKernelPackage:
    def test_depends_line(self) -> None:
        text = "linux-image-amd64\n  Depends: linux-image-6.1.0-56-amd64\n"
        assert vm.parse_kernel_depends(text) == "linux-image-6.1.0-56-amd64"
        assert vm.kernel_release_of("linux-image-6.1.0-56-amd64") == "6.1.0-56-amd64"

    def test_ubuntu_generic_and_nothing(self) -> None:
        ubuntu = "linux-image-generic\n  Depends: linux-image-6.8.0-31-generic\n  Depends: linux-firmware\n"
        assert vm.parse_kernel_depends(ubuntu) == "linux-image-6.8.0-31-generic"
        assert vm.parse_kernel_depends("") is None


class TestCgroups:
    ID = "646c2b7bc9cea610824486aee2e45135c676c24ab9b73c0f5ea2c05492315d79"

    def test_v1_memory_controller(self) -> None:
        text = f"9:name=systemd:/docker/{self.ID}\n4:memory:/docker/{self.ID}\n0::/docker/{self.ID}\n"
        assert vm.parse_proc_cgroup(text) == (1, f"/docker/{self.ID}")
        files = vm.memory_files(self.ID, text, Path("/cg"))
        assert files[0] == Path(f"/cg/memory/docker/{self.ID}/memory.usage_in_bytes")

    def test_v2_unified(self) -> None:
        text = f"0::/system.slice/docker-{self.ID}.scope\n"
        assert vm.parse_proc_cgroup(text) == (2, f"/system.slice/docker-{self.ID}.scope")
        assert vm.memory_files(self.ID, text, Path("/cg"))[0] == Path(
            f"/cg/system.slice/docker-{self.ID}.scope/memory.current"
        )

    def test_without_proc_the_usual_places_for_both_drivers(self) -> None:
        files = vm.memory_files(self.ID, None, Path("/cg"))
        assert Path(f"/cg/memory/docker/{self.ID}/memory.usage_in_bytes") in files
        assert Path(f"/cg/system.slice/docker-{self.ID}.scope/memory.current") in files
        assert vm.parse_proc_cgroup("garbage") is None

    def test_reads_from_a_fake_cgroup_tree(self, tmp_path: Path) -> None:
        target = tmp_path / "docker" / self.ID / "memory.current"
        target.parent.mkdir(parents=True)
        target.write_text("794624\n")
        found = [p for p in vm.memory_files(self.ID, f"0::/docker/{self.ID}\n", tmp_path) if p.exists()]
        assert found == [target] and int(found[0].read_text()) == 794624

    def test_proc_helpers(self) -> None:
        assert vm.parse_cmdline(b"sleep\x003600\x00") == "sleep 3600"
        assert vm.parse_status_field("Name:\tsleep\nPPid:\t29594\n", "PPid") == "29594"


class TestShowing:
    def test_bar_chart_structure(self) -> None:
        svg = vm.bar_chart_svg([("VM", 10.0), ("container", 0.5)], width=560)
        assert svg.startswith("<svg") and svg.count("<rect") == 2 and "10.00 s" in svg and "0.50 s" in svg
        assert 'width="290.0"' in svg  # the longest bar fills the bar area: 560 - 200 - 70

    def test_comparison_table_without_a_vm(self) -> None:
        box = vm.ContainerReport(
            "b",
            0.4,
            0.5,
            "6.1.0-9-amd64",
            "6.1.0-9-amd64",
            "6.1.0-9-amd64",
            2**20,
            "cgroup v1",
            7,
            "sleep 3600",
            "containerd-shim",
        )
        table = vm.comparison_table(None, box, "qemu is not installed")
        assert "qemu is not installed" in table and "the host&#x27;s: 6.1.0-9-amd64" not in table
        assert "the host's: 6.1.0-9-amd64" in table and "1.0 MiB" in table


class TestKernelVerdict:
    DAEMON = "6.18.44-fc-v595"

    def verdict(self, answer: str, host: str = DAEMON) -> object:
        return kernel_verdict(answer, self.DAEMON, ["6.1.0-56-amd64"], {"20.10.24+dfsg1", "28.2.2"}, host)

    @pytest.mark.parametrize("answer", [DAEMON, f"{DAEMON}\n", f"  {DAEMON} "])
    def test_right(self, answer: str) -> None:
        assert self.verdict(answer).passed  # type: ignore[attr-defined]

    @pytest.mark.parametrize(
        ("answer", "needle"),
        [
            ("6.1.0-56-amd64", "virtual machine booted"),
            (f"Linux box {DAEMON} #1 SMP x86_64 GNU/Linux", "uname -a"),
            ("20.10.24+dfsg1", "Docker's own version"),
            ("28.2.2", "Docker's own version"),
            ("5.15.0-91-generic", "not the one containers"),
            ("banana", "does not look like a kernel release"),
            ("", "empty"),
        ],
    )
    def test_near_misses_are_named(self, answer: str, needle: str) -> None:
        verdict = self.verdict(answer)
        assert not verdict.passed and needle in verdict.message and verdict.hint  # type: ignore[attr-defined]

    def test_docker_desktop_host_kernel(self) -> None:
        verdict = kernel_verdict("23.1.0", "6.10.14-linuxkit", [], set(), "23.1.0")
        assert not verdict.passed and "Docker Desktop" in verdict.message
