"""The engine matrix's pure parts: the namespace script, the firewall's tables, the records, the CLI's answers.

Running an engine for real (root, debootstrap, a second dockerd) is what ``make test-engine``
does with every notebook; these tests need no daemon.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from labkit.core.errors import LabkitError
from labkit.features.engines import catalog, daemon, rootfs


def test_the_namespace_script_pivots_into_the_rootfs_with_host_folders_at_their_own_paths() -> None:
    script = daemon.namespace_script(
        Path("/e/sid/rootfs"), Path("/e/sid/docker"), [Path("/root"), Path("/my work")], ["dockerd", "-H", "x"]
    )
    lines = script.splitlines()
    assert lines[0] == "set -e"
    # pivot_root wants a mount point: the rootfs is bound onto itself before anything else.
    assert lines[1] == "mount --bind /e/sid/rootfs /e/sid/rootfs" and lines[2] == "cd /e/sid/rootfs"
    assert "mkdir -p ./root && mount --rbind /root ./root" in lines
    assert "mkdir -p './my work' && mount --rbind '/my work' './my work'" in lines  # quoted, never split
    # The data root appears inside at its host path, so GraphDriver paths mean the same on both sides.
    assert "mkdir -p ./e/sid/docker && mount --bind /e/sid/docker ./e/sid/docker" in lines
    pivot = lines.index("mkdir -p .host && pivot_root . .host")
    assert lines[pivot + 1] == "cd / && umount -l /.host"  # the host's root is not left reachable
    assert lines[-1] == "exec dockerd -H x"  # exec: the recorded pid is dockerd's own
    assert all("chroot" not in line for line in lines)


def test_the_namespace_script_runs_under_sh() -> None:
    script = daemon.namespace_script(Path("/r"), Path("/d"), [Path("/tmp")], ["dockerd"])
    assert subprocess.run(["sh", "-n", "-c", script], check=False).returncode == 0


def test_host_binds_are_the_top_level_folders_that_are_not_the_systems(tmp_path: Path) -> None:
    for name in ("root", "home", "tmp", "work", "usr", "etc", "var", "proc", "lib64"):
        (tmp_path / name).mkdir()
    (tmp_path / "bin").symlink_to("usr/bin")
    (tmp_path / "vmlinuz").write_text("")
    assert daemon.host_binds(tmp_path) == [Path("/home"), Path("/root"), Path("/tmp"), Path("/work")]


def test_the_firewall_tables_an_iptables_save_names() -> None:
    saved = "# Generated\n*filter\n:INPUT ACCEPT [0:0]\n-A FORWARD -j DOCKER-USER\nCOMMIT\n*nat\nCOMMIT\n"
    assert daemon.tables(saved) == ["filter", "nat"]
    assert daemon.tables("") == []


def test_an_unknown_engine_names_the_known_ones() -> None:
    with pytest.raises(LabkitError) as caught:
        catalog.lookup("bookworm")
    assert "no engine called 'bookworm'" in str(caught.value) and "trixie, sid" in caught.value.fix


def test_the_matrix_is_debian_13_then_unstable() -> None:
    assert [(e.name, e.engine) for e in catalog.ENGINES.values()] == [("trixie", "26.1"), ("sid", "28.5")]
    assert "docker.io" in catalog.PACKAGES and "procps" in catalog.PACKAGES  # docker top runs the engine's ps


def test_engine_files_live_under_labkit_engines_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LABKIT_ENGINES_DIR", str(tmp_path))
    sid = catalog.lookup("sid")
    assert catalog.rootfs_dir(sid) == tmp_path / "sid" / "rootfs"
    assert catalog.data_dir(sid) == tmp_path / "sid" / "docker"


def test_a_rootfs_counts_as_built_only_with_its_record(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LABKIT_ENGINES_DIR", str(tmp_path))
    sid = catalog.lookup("sid")
    assert rootfs.record(sid) is None
    folder = catalog.rootfs_dir(sid)
    folder.mkdir(parents=True)
    (folder / rootfs.RECORD).write_text("{not json")
    assert rootfs.record(sid) is None
    (folder / rootfs.RECORD).write_text(json.dumps({"engine": "trixie"}))
    assert rootfs.record(sid) is None  # another engine's record
    (folder / rootfs.RECORD).write_text(json.dumps({"engine": "sid", "packages": {"docker.io": "28.5.2"}}))
    assert rootfs.record(sid) == {"engine": "sid", "packages": {"docker.io": "28.5.2"}}


def test_the_apt_config_accepts_an_expired_unstable_release_and_skips_recommends() -> None:
    assert 'Check-Valid-Until "false"' in rootfs.APT_CONFIG and 'Install-Recommends "false"' in rootfs.APT_CONFIG
    assert rootfs.POLICY_RC.rstrip().endswith("exit 101")  # 101: "action forbidden by policy"


def _labkit(*args: str, env_dir: Path) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/bin:/bin", "LABKIT_ENGINES_DIR": str(env_dir), "HOME": str(env_dir)}
    return subprocess.run(
        [sys.executable, "-m", "labkit", "engine", *args], capture_output=True, text=True, env=env, timeout=60
    )


def test_engine_up_without_a_name_is_one_line_and_exit_2(tmp_path: Path) -> None:
    done = _labkit("up", env_dir=tmp_path)
    assert done.returncode == 2 and "needs an engine name: trixie, sid" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr


def test_engine_down_with_nothing_running_says_so(tmp_path: Path) -> None:
    done = _labkit("down", env_dir=tmp_path)
    assert done.returncode == 0 and done.stdout.strip() == "no engine started by labkit is running"


def test_engine_list_shows_what_is_built(tmp_path: Path) -> None:
    done = _labkit("list", "--json", env_dir=tmp_path)
    rows = json.loads(done.stdout)
    assert [(r["engine"], r["docker.io"], r["running"]) for r in rows] == [
        ("trixie", None, False),
        ("sid", None, False),
    ]
