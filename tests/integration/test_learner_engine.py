"""Two learners' own rootless engines on this machine: isolated, both on port 8080, kept across a restart.

Root only, as a classroom server runs. Each test module run makes two Unix users
``lk-t<pid>a`` and ``lk-t<pid>b``; the fixture stops their daemons (by the recorded pid)
and deletes the users, homes and /run/user dirs, even when a test fails. The machine's own
daemon is only read from (``docker save busybox`` into the image cache).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from labkit.classroom import learner_engine as le
from labkit.core import http, wait

pytestmark = [
    pytest.mark.docker,
    pytest.mark.slow,
    pytest.mark.skipif(os.geteuid() != 0, reason="learners' engines are made by root on a classroom server"),
]

#: The first learner's limits (the second has none): small enough for a safe, quick test.
LIMITS = le.Limits(memory=300 << 20, pids=200)
PAGE = "sh -c 'mkdir -p /w && echo {text} > /w/index.html && exec httpd -f -p 80 -h /w'"


@pytest.fixture(scope="module")
def cache() -> Iterator[Path]:
    directory = Path(tempfile.mkdtemp(prefix="lk-images-"))  # in /tmp, which learners may traverse
    try:
        directory.chmod(0o755)
        yield le.cache_images(["busybox"], directory / "images.tar")
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="module")
def engines(cache: Path) -> Iterator[tuple[le.LearnerEngine, le.LearnerEngine]]:
    users: list[le.LearnerUser] = []
    try:
        started = []
        for suffix in "ab":
            user = le.ensure_user(f"t{os.getpid() % 100000}{suffix}")
            users.append(user)
            if suffix == "a":
                started.append(le.start(user, limits=LIMITS))
            else:
                started.append(le.start(user, lab_port=_free_port()))
            le.load_images(user, cache)
        yield started[0], started[1]
    finally:
        for user in users:
            le.remove_user(user)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _docker(engine: le.LearnerEngine, command: str) -> subprocess.CompletedProcess[str]:
    return le.run_as(engine, ["sh", "-c", f"docker {command}"])


def test_each_learner_runs_containers_and_reaches_only_their_own_daemon(
    engines: tuple[le.LearnerEngine, le.LearnerEngine],
) -> None:
    a, b = engines
    for engine in engines:
        assert le.status(engine.user) == "running"
        done = _docker(engine, "run --rm busybox echo hello")
        assert done.returncode == 0 and done.stdout.strip() == "hello", done.stderr
    assert a.user.socket != b.user.socket
    to_b = _docker(a, f"-H {b.user.docker_host} ps")
    assert to_b.returncode != 0 and "permission denied" in to_b.stderr
    to_host = _docker(a, "-H unix:///var/run/docker.sock ps")
    assert to_host.returncode != 0 and "permission denied" in to_host.stderr


def test_privileged_root_in_a_container_cannot_read_the_hosts_shadow(
    engines: tuple[le.LearnerEngine, le.LearnerEngine],
) -> None:
    done = _docker(engines[0], "run --rm --privileged -v /:/host busybox cat /host/etc/shadow")
    assert done.returncode != 0 and "Permission denied" in done.stderr
    assert "root:" not in done.stdout


def test_both_learners_publish_8080_and_each_reaches_their_own(
    engines: tuple[le.LearnerEngine, le.LearnerEngine],
) -> None:
    for engine, text in zip(engines, ("page-of-a", "page-of-b"), strict=True):
        done = _docker(engine, f"run -d --name web -p 8080:80 busybox {PAGE.format(text=text)}")
        assert done.returncode == 0, done.stderr
    for engine, text in zip(engines, ("page-of-a", "page-of-b"), strict=True):
        curl = ["curl", "-s", "--max-time", "5", "--retry", "20", "--retry-connrefused", "--retry-delay", "0"]
        got = le.run_as(engine, [*curl, "http://127.0.0.1:8080/"])
        assert got.stdout.strip() == text, got.stderr
    uids = {e.user.uid for e in engines}
    for conn in psutil.net_connections(kind="tcp"):  # the host's network namespace
        if conn.status == psutil.CONN_LISTEN and conn.laddr.port == 8080 and conn.pid:
            assert psutil.Process(conn.pid).uids().real not in uids, "a learner's 8080 is on the host"
    for engine in engines:
        _docker(engine, "rm -f web")


def test_an_image_survives_stop_and_start(engines: tuple[le.LearnerEngine, le.LearnerEngine]) -> None:
    a = engines[0]
    assert _docker(a, "tag busybox mine:kept").returncode == 0
    le.stop(a)
    assert le.status(a.user) == "stopped"
    assert not le.learner_cgroups(a.user), "the stopped engine's cgroups are left"
    again = le.start(a.user, limits=LIMITS)
    assert _docker(again, "image inspect mine:kept").returncode == 0


def _cgroup_file(engine: le.LearnerEngine, name: str) -> str:
    group = next(g for g in engine.cgroups if (g / name).exists())
    return (group / name).read_text()


def _counter(text: str, key: str) -> int:
    return next((int(line.split()[1]) for line in text.splitlines() if line.split()[:1] == [key]), 0)


def test_a_fork_bomb_and_a_memory_hog_stay_within_the_learners_limits(
    engines: tuple[le.LearnerEngine, le.LearnerEngine],
) -> None:
    enforced = le.limits_enforced()
    if not (enforced["memory"] and enforced["pids"]):
        pytest.skip(f"this machine cannot limit learners: {enforced}")
    a, b = le.running(engines[0].user), engines[1]
    assert a is not None and a.cgroups and not b.cgroups
    tree = [psutil.Process(a.pid), *psutil.Process(a.pid).children(recursive=True)]
    for proc in tree:  # rootlesskit, dockerd, containerd: born in the learner's cgroups
        assert f"/{le.CGROUP_GROUP}/{a.user.unix_user}" in Path(f"/proc/{proc.pid}/cgroup").read_text(), proc
    assert _cgroup_file(a, "pids.max").strip() == "200"

    bomb = "for i in $(seq 500); do sleep 20 & done; echo all 500 started"
    in_container = _docker(a, f"run --rm busybox sh -c '{bomb}'")
    assert in_container.returncode != 0 and "all 500" not in in_container.stdout, in_container
    assert "fork" in in_container.stderr, in_container.stderr
    assert _counter(_cgroup_file(a, "pids.events"), "max") > 0
    in_lab = le.run_as(a, ["sh", "-c", bomb.replace("sleep 20", "sleep 2")])  # as a lab's terminal runs
    assert in_lab.returncode != 0 and "all 500" not in in_lab.stdout, in_lab
    assert _docker(b, "run --rm busybox echo unaffected").stdout.strip() == "unaffected"
    assert subprocess.run(["true"], check=False).returncode == 0  # the host forks
    wait.until(lambda: int(_cgroup_file(a, "pids.current")) < 100, "the bomb's sleeps to end", timeout=10)

    hog = _docker(a, "run --rm busybox dd if=/dev/zero of=/dev/null bs=600M count=1")
    assert hog.returncode == 137, hog  # SIGKILL by the OOM killer, in the learner's cgroup
    memory = _cgroup_file(a, "memory.events" if (a.cgroups[0] / "memory.events").exists() else "memory.oom_control")
    assert _counter(memory, "oom_kill") > 0, memory
    assert _docker(b, "run --rm busybox dd if=/dev/zero of=/dev/null bs=600M count=1").returncode == 0
    assert _docker(a, "run --rm busybox echo recovered").stdout.strip() == "recovered"  # the daemon survived


def test_a_lab_port_in_the_namespace_is_published_on_the_hosts_loopback(
    engines: tuple[le.LearnerEngine, le.LearnerEngine],
) -> None:
    b = engines[1]
    assert b.lab_port is not None
    page = Path(tempfile.mkdtemp(prefix="lk-lab-"))
    try:
        page.chmod(0o755)
        (page / "index.html").write_text("the lab of b\n")
        (page / "index.html").chmod(0o644)
        serve = ["busybox", "httpd", "-f", "-p", f"127.0.0.1:{b.lab_port}", "-h", str(page)]
        lab = subprocess.Popen(le.in_netns(b, serve), env=le.user_env(b.user))  # as a lab would run
        try:
            got = wait.until(
                lambda: http.session().get(f"http://127.0.0.1:{b.lab_port}/", timeout=2).text,
                "the lab's port on the host",
                timeout=10,
                retry_on=(OSError,),
            )
            assert got == "the lab of b\n"
        finally:
            lab.terminate()
            lab.wait(timeout=5)
    finally:
        shutil.rmtree(page, ignore_errors=True)
