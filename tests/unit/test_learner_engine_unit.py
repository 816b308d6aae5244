"""The pure parts of learners' engines: subordinate id ranges, names, command lines."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest

from labkit.classroom import learner_engine as le
from labkit.core.errors import LabkitError

USER = le.LearnerUser("ada", "lk-ada", 1005, 1005, Path("/home/lk-ada"))


def test_subids_are_parsed_and_damaged_lines_skipped() -> None:
    text = "lk-a:100000:65536\n#x\nlk-b:abc:1\nroot:1:2:3\nlk-a:400000:10\n"
    assert le.parse_subids(text) == {"lk-a": [(100000, 65536), (400000, 10)]}


@pytest.mark.parametrize(
    ("text", "start"),
    [
        ("", 100000),
        ("a:100000:65536\n", 165536),
        ("a:100000:65536\nb:165536:65536\n", 231072),
        ("a:100000:65536\nb:300000:65536\n", 165536),  # the gap fits exactly
        ("b:300000:65536\na:100000:65536\n", 165536),  # any order
        ("a:100000:65536\nb:200000:65536\n", 265536),  # the gap is too small
        ("a:1000:50\n", 100000),  # below the minimum
        ("a:90000:20000\n", 110000),  # straddles the minimum
    ],
)
def test_a_free_range_overlaps_none(text: str, start: int) -> None:
    found = le.free_subid_start(text)
    assert found == start
    for begin, size in (r for rs in le.parse_subids(text).values() for r in rs):
        assert found + le.SUBID_COUNT <= begin or begin + size <= found


def test_unix_names() -> None:
    assert le.unix_name("Ada-2") == "lk-ada-2"
    for bad in ("", "2ada", "ad a", "ädä", "a/b", "x" * 30):
        with pytest.raises(LabkitError):
            le.unix_name(bad)


def test_paths_follow_the_uid() -> None:
    assert USER.docker_host == "unix:///run/user/1005/docker.sock"
    assert USER.data_root == Path("/home/lk-ada/.local/share/docker")


def test_the_daemon_keeps_published_ports_in_its_namespace() -> None:
    argv, env = le.daemon_command(USER)
    assert argv[:5] == ["setpriv", "--reuid=1005", "--regid=1005", "--init-groups", "--"]
    assert argv[5] == str(le.ROOTLESS_SCRIPT)
    assert "--userland-proxy-path=/usr/sbin/docker-proxy" in argv
    assert env["DOCKERD_ROOTLESS_ROOTLESSKIT_PORT_DRIVER"] == "none"
    assert env["XDG_RUNTIME_DIR"] == "/run/user/1005" and env["HOME"] == "/home/lk-ada"
    assert "/usr/sbin" in env["PATH"].split(":") and "DOCKER_HOST" not in env


def test_a_lab_port_is_the_only_one_on_the_host() -> None:
    _argv, env = le.daemon_command(USER, lab_port=19001)
    assert env["DOCKERD_ROOTLESS_ROOTLESSKIT_PORT_DRIVER"] == "builtin"
    assert "--publish=127.0.0.1:19001:19001/tcp" in env["DOCKERD_ROOTLESS_ROOTLESSKIT_FLAGS"].split()


def test_a_lab_process_joins_the_namespace_then_drops_to_the_learner() -> None:
    assert le.netns_command(42, USER, ["curl", "x"]) == [
        "nsenter",
        "--net=/proc/42/ns/net",
        "--",
        "setpriv",
        "--reuid=1005",
        "--regid=1005",
        "--init-groups",
        "--",
        "curl",
        "x",
    ]


def test_a_process_joins_its_cgroups_before_it_becomes_the_command() -> None:
    procs = [
        Path("/sys/fs/cgroup/memory/labkit/lk-ada/cgroup.procs"),
        Path("/sys/fs/cgroup/pids/labkit/lk-ada/cgroup.procs"),
    ]
    argv = le.in_cgroup(procs, ["setpriv", "id"])
    assert argv[:3] == ["sh", "-c", le.JOIN_CGROUPS]
    assert argv[4:] == [str(procs[0]), str(procs[1]), "--", "setpriv", "id"]
    engine = le.LearnerEngine(USER, 42, None, 0.0, None, tuple(p.parent for p in procs))
    assert engine.cgroup_procs == procs


def test_v1_limits_open_swap_first_and_v2_keeps_learners_off_swap() -> None:
    assert le.limit_files("v1", "memory", le.Limits(memory=1000)) == [
        ("memory.memsw.limit_in_bytes", "-1"),
        ("memory.limit_in_bytes", "1000"),
        ("memory.memsw.limit_in_bytes", "1000"),
    ]
    assert le.limit_files("v2", "memory", le.Limits(pids=5)) == [("memory.max", "max"), ("memory.swap.max", "max")]
    assert le.limit_files("v2", "pids", le.Limits(pids=5)) == [("pids.max", "5")]
    assert not le.Limits().any and le.Limits(pids=1).any


def test_the_cgroup_version_is_read_from_the_mount(tmp_path: Path) -> None:
    (tmp_path / "cgroup.controllers").write_text("cpuset cpu io memory pids\n")
    assert le.cgroup_version(tmp_path) == "v2"
    (tmp_path / "cgroup.controllers").write_text("cpu io\n")
    assert le.cgroup_version(tmp_path) is None
    (tmp_path / "cgroup.controllers").unlink()
    for controller in ("memory", "pids"):
        (tmp_path / controller).mkdir()
        (tmp_path / controller / "cgroup.procs").write_text("")
    assert le.cgroup_version(tmp_path) == "v1"


def test_the_image_ids_of_an_archive_come_from_its_manifest(tmp_path: Path) -> None:
    digest = "a" * 64
    manifest = json.dumps([{"Config": f"blobs/sha256/{digest}"}, {"Config": f"{'b' * 64}.json"}]).encode()
    with tarfile.open(tmp_path / "images.tar", "w") as tar:
        info = tarfile.TarInfo("manifest.json")
        info.size = len(manifest)
        tar.addfile(info, io.BytesIO(manifest))
    assert le.archive_image_ids(tmp_path / "images.tar") == {f"sha256:{digest}", f"sha256:{'b' * 64}"}
    assert le.archive_image_ids(tmp_path / "missing.tar") == set()
