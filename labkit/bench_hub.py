"""``make bench-hub``: what a classroom hub (``labkit hub``) costs on one machine, and how many learners it holds.

A benchmark, not a test: nothing here passes or fails on a figure. As root, it starts a
real hub with ``labkit hub up`` (on a free port, its state in a temporary folder, learners
named ``b<pid>n<i>``) and measures, over real HTTP and real learners' engines:

1. **Login to ready.** One learner logs in alone first (the figure with no one to share the
   CPU with), then ``learners`` log in at the same moment, each in a thread with its own
   ``requests`` session, through the hub's login page as a browser does (following the
   redirects). A learner is ready when their JupyterLab answers ``/user/NAME/api/status``
   **and** their own daemon has every course image (``docker image inspect`` as them). The
   CPU seconds the hub's process tree and the learners' processes spent on those starts are
   counted too: the projection's CPU figure.
2. **Memory per idle learner.** After a few idle seconds, the sum of USS and of PSS over
   every process of the learner's uid and of their subordinate uids (rootlesskit, dockerd,
   containerd, slirp4netns, the lab …); the hub's and its proxy's own; the machine's
   MemAvailable before the hub and with everyone idle. PSS shares the pages learners have in
   common (the lab's Python, dockerd's binary) among them, so PSS summed over learners is
   what they take together: the projection uses it.
3. **Check latency.** Every learner solves lesson 05's exercise as themselves
   (``docker run -d … -p 8080:80 labkit/hello-dock``), then all run ``labkit check
   run.publish-detach`` at the same moment, for a warm-up round (discarded) and ``rounds``
   timed ones. When the hub has a grading service (the lab's environment names it), the
   checks go through it as the lab would ask it (POST with the lab's token); otherwise each is
   ``python -m labkit check`` run as the learner in their namespace, and the output says so.
4. **A projection** for :data:`CLASS_SIZES` learners on machines of :data:`MACHINE_GIB`:
   arithmetic on the figures above, labelled as a projection (:func:`project`).

Everything is removed at the end (``labkit hub down --purge``, then any process, user or
folder it left), also on an error, Ctrl-C or SIGTERM. Prints a table, then one JSON line
(always the last), also written to ``test-artifacts/bench-hub.json``.

Example:
    $ sudo .venv/bin/python -m labkit.bench_hub --learners 10
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import psutil
import requests

from labkit.bench import percentile
from labkit.classroom import hub_admin
from labkit.classroom import learner_engine as le
from labkit.classroom.hub_config import Settings
from labkit.cli import exits
from labkit.core import paths, wait
from labkit.core.errors import LabkitError, WaitTimeout
from labkit.features import images

LEARNERS = 10
ROUNDS = 3
#: Seconds everyone stays idle before their memory is read (the lab's first requests settle).
IDLE_SECONDS = 5.0
CLASS_SIZES = (30, 100, 200)
MACHINE_GIB = (8, 16, 32, 64, 128)
#: vCPUs per machine size in the projection: general-purpose cloud machines give one per 4 GiB.
GIB_PER_VCPU = 4
#: GiB of every machine left to the system (kernel, page cache floor, sshd) in the projection.
RESERVE_GIB = 1.0
EXERCISE = "run.publish-detach"
#: The notebook a learner's lab opens first (the spawner's default URL).
WELCOME = "00-welcome.ipynb"
SOLVE = ["docker", "run", "-d", "--name", "hello-docker-container", "-p", "8080:80", "labkit/hello-dock"]
LABKIT = [sys.executable, "-m", "labkit"]
ARTIFACT = paths.REPO_DIR / "test-artifacts" / "bench-hub.json"
#: The hub's log, kept when its state folder goes.
HUB_LOG = ARTIFACT.with_name("bench-hub-hub.log")
HUB_LOG_FIX = f"read {HUB_LOG} (the hub's log, kept after the bench)"
#: Seconds one learner's lab may take from the login POST (the spawner's own limit is 180).
READY_TIMEOUT = 300.0
CHECK_TIMEOUT = 180.0
MIB = 1024**2
GIB = 1024**3


# --- pure parts ----------------------------------------------------------------------------


def spread(samples: Sequence[float]) -> dict[str, float | None]:
    """p50, p95 and max of ``samples`` (``None`` each when there are none).

    Example:
        >>> spread([1.0, 2.0, 3.0, 4.0])
        {'p50': 2.5, 'p95': 3.85, 'max': 4.0}
    """
    if not samples:
        return {"p50": None, "p95": None, "max": None}
    return {"p50": percentile(samples, 50), "p95": percentile(samples, 95), "max": float(max(samples))}


@dataclass(frozen=True)
class Costs:
    """What one learner and the hub cost, as measured: the projection's only inputs."""

    learner_bytes: float  # memory of one idle learner (mean PSS)
    hub_bytes: float  # the hub's and its proxy's memory with the measured learners
    hub_bytes_per_learner: float  # how much that grew per learner (never below 0)
    cpu_s_per_start: float  # CPU seconds one learner's start took (daemon, images, lab)
    alone_s: float  # one learner's login to ready with the machine to itself


@dataclass(frozen=True)
class Fit:
    """One class size on one machine size: a projection, not a measurement."""

    learners: int
    ram_gib: int
    vcpus: int
    need_gib: float
    fits: bool
    most_learners: int  # idle learners this machine holds
    last_ready_s: float  # when everyone logs in at once, until the last one is ready


def need_gib(learners: int, costs: Costs, reserve_gib: float = RESERVE_GIB) -> float:
    """GiB a machine needs for ``learners`` idle learners, the hub and the system's reserve.

    Example:
        >>> round(need_gib(100, Costs(256 * 1024**2, 128 * 1024**2, 0.0, 1.0, 5.0), reserve_gib=1.0), 3)
        26.125
    """
    hub = costs.hub_bytes + costs.hub_bytes_per_learner * learners
    return reserve_gib + (learners * costs.learner_bytes + hub) / GIB


def most_learners(ram_gib: float, costs: Costs, reserve_gib: float = RESERVE_GIB) -> int:
    """The most idle learners whose memory, with the hub's, fits in ``ram_gib`` less the reserve.

    Example:
        >>> most_learners(16, Costs(200 * 1024**2, 100 * 1024**2, 0.0, 1.0, 5.0), reserve_gib=1.0)
        76
    """
    room = (ram_gib - reserve_gib) * GIB - costs.hub_bytes
    each = costs.learner_bytes + costs.hub_bytes_per_learner
    return max(0, int(room // each)) if each > 0 else 0


def last_ready_s(learners: int, vcpus: int, costs: Costs) -> float:
    """Seconds until the last of ``learners`` who log in at once is ready: CPU-bound.

    Their starts need ``learners × cpu_s_per_start`` CPU seconds, shared by ``vcpus``; and
    none is ready sooner than one learner alone. Memory, disk and the hub's one Python
    thread are assumed not to be the bottleneck first.

    Example:
        >>> last_ready_s(100, 8, Costs(0.0, 0.0, 0.0, 2.0, 6.0))
        25.0
        >>> last_ready_s(2, 8, Costs(0.0, 0.0, 0.0, 2.0, 6.0))
        6.0
    """
    return max(costs.alone_s, learners * costs.cpu_s_per_start / max(vcpus, 1))


def project(
    costs: Costs,
    sizes: Iterable[int] = CLASS_SIZES,
    machines: Iterable[int] = MACHINE_GIB,
    gib_per_vcpu: int = GIB_PER_VCPU,
    reserve_gib: float = RESERVE_GIB,
) -> list[Fit]:
    """Every class size on every machine size (vCPUs: one per ``gib_per_vcpu`` GiB)."""
    fits = []
    for learners in sizes:
        need = need_gib(learners, costs, reserve_gib)
        for ram in machines:
            vcpus = max(1, ram // gib_per_vcpu)
            fits.append(
                Fit(
                    learners,
                    ram,
                    vcpus,
                    round(need, 2),
                    need <= ram,
                    most_learners(ram, costs, reserve_gib),
                    round(last_ready_s(learners, vcpus, costs), 1),
                )
            )
    return fits


# --- what was measured ---------------------------------------------------------------------


@dataclass(frozen=True)
class Memory:
    """Memory of a set of processes, in bytes."""

    uss: int = 0
    pss: int = 0
    rss: int = 0
    processes: int = 0

    def __add__(self, other: Memory) -> Memory:
        return Memory(
            self.uss + other.uss, self.pss + other.pss, self.rss + other.rss, self.processes + other.processes
        )


@dataclass
class HubRun:
    """Everything :func:`run` measured; :func:`figures` and :func:`render` turn it into numbers and text."""

    learners: int
    cpus: int
    load_before: tuple[float, float, float]
    load_after: tuple[float, float, float] = (0.0, 0.0, 0.0)
    alone_s: float = 0.0
    ready_s: list[float] = field(default_factory=list)
    cpu_burst: dict[str, float] = field(default_factory=dict)  # by kind: the hub's tree and the learners'
    machine_busy_s: float = 0.0  # every CPU of the machine, same span (other users included)
    burst_wall_s: float = 0.0
    idle: dict[str, Memory] = field(default_factory=dict)  # by learner: their lab open, no kernel
    notebook: dict[str, Memory] = field(default_factory=dict)  # the welcome notebook open: its kernel running
    kernels: int = 0  # kernels whose process started
    active: dict[str, Memory] = field(default_factory=dict)  # with lesson 05's container running
    hub_alone: Memory = Memory()  # hub, services and proxy with one learner
    hub: Memory = Memory()  # the JupyterHub process
    services: Memory = Memory()  # root's other processes under it (the grading service)
    proxy: Memory = Memory()
    available_before: int = 0
    available_idle: int = 0
    check_way: str = "run_as"  # or "grader"
    check_ms: list[float] = field(default_factory=list)
    checks_not_passed: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def cpu_s_burst(self) -> float:
        """CPU seconds the hub's tree and the learners' processes spent on the burst's starts."""
        return sum(self.cpu_burst.values())

    @property
    def overhead(self) -> Memory:
        """The hub, its services and its proxy."""
        return self.hub + self.services + self.proxy

    def costs(self) -> Costs:
        """One learner's memory with a notebook open (idle without, when no kernel was measured)."""
        pss = [m.pss for m in (self.notebook or self.idle).values()] or [0]
        # the hub's growth from one learner to all of them, per learner
        grown = self.overhead.pss - self.hub_alone.pss
        return Costs(
            learner_bytes=sum(pss) / len(pss),
            hub_bytes=float(self.overhead.pss),
            hub_bytes_per_learner=max(0.0, grown / max(1, self.learners)),
            cpu_s_per_start=self.cpu_s_burst / max(1, self.learners),
            alone_s=self.alone_s,
        )


def _mib(value: float) -> float:
    return round(value / MIB, 1)


def figures(run: HubRun) -> dict[str, Any]:
    """The JSON figures (seconds, MiB, GiB, ms), the projection last."""
    ready = spread(run.ready_s)
    checks = spread(run.check_ms)
    idle = list(run.idle.values())
    notebook = list(run.notebook.values())
    active = list(run.active.values())
    costs = run.costs()

    def mean(values: Sequence[float]) -> float | None:
        return _mib(sum(values) / len(values)) if values else None

    def most(values: Sequence[float]) -> float | None:
        return _mib(max(values)) if values else None

    return {
        "hub_learners": run.learners,
        "cpus": run.cpus,
        "load_before": list(run.load_before),
        "load_after": list(run.load_after),
        "login_alone_s": round(run.alone_s, 2),
        **{f"login_ready_{k}_s": None if v is None else round(v, 2) for k, v in ready.items()},
        "login_burst_wall_s": round(run.burst_wall_s, 2),
        "cpu_s_per_start": round(costs.cpu_s_per_start, 2),
        "cpu_s_burst_by_kind": {k: round(v, 1) for k, v in sorted(run.cpu_burst.items(), key=lambda i: -i[1])},
        "machine_busy_cpu_s": round(run.machine_busy_s, 1),
        "idle_pss_mean_mib": mean([m.pss for m in idle]),
        "idle_pss_max_mib": most([m.pss for m in idle]),
        "idle_uss_mean_mib": mean([m.uss for m in idle]),
        "idle_uss_max_mib": most([m.uss for m in idle]),
        "idle_processes_per_learner": max((m.processes for m in idle), default=0),
        "notebook_kernels": run.kernels,
        "notebook_pss_mean_mib": mean([m.pss for m in notebook]),
        "notebook_pss_max_mib": most([m.pss for m in notebook]),
        "notebook_uss_mean_mib": mean([m.uss for m in notebook]),
        "active_pss_mean_mib": mean([m.pss for m in active]),
        "active_pss_max_mib": most([m.pss for m in active]),
        "hub_pss_mib": _mib(run.hub.pss),
        "services_pss_mib": _mib(run.services.pss),
        "proxy_pss_mib": _mib(run.proxy.pss),
        "overhead_alone_pss_mib": _mib(run.hub_alone.pss),
        "hub_uss_mib": _mib(run.hub.uss),
        "services_uss_mib": _mib(run.services.uss),
        "proxy_uss_mib": _mib(run.proxy.uss),
        "mem_available_before_gib": round(run.available_before / GIB, 2),
        "mem_available_idle_gib": round(run.available_idle / GIB, 2),
        "check_way": run.check_way,
        **{f"check_{k}_ms": None if v is None else round(v, 1) for k, v in checks.items()},
        "check_samples": len(run.check_ms),
        "checks_not_passed": run.checks_not_passed,
        "projection": [asdict(f) for f in project(costs)],
        "notes": run.notes,
    }


def render(run: HubRun, stamp: Mapping[str, str]) -> str:
    """The readable table, then the JSON figures as the very last line."""
    f = figures(run)
    costs = run.costs()

    def load(values: Sequence[float]) -> str:
        return " ".join(f"{v:.2f}" for v in values)

    lines = [
        f"labkit bench-hub — {', '.join(f'{k} {v}' for k, v in stamp.items())}",
        f"load average (1, 5, 15 min): {load(run.load_before)} before, {load(run.load_after)} after "
        f"on {run.cpus} CPUs (other users of this machine share them)",
        "",
        f"login to ready (JupyterLab answers and the learner's daemon has all {len(images.CATALOG)} course images):",
        f"  one learner alone        {run.alone_s:7.1f} s",
        f"  {run.learners} at once: p50 {f['login_ready_p50_s']} s, p95 {f['login_ready_p95_s']} s, "
        f"max {f['login_ready_max_s']} s (all ready {run.burst_wall_s:.1f} s after the first POST)",
        f"  CPU for those starts: {run.cpu_s_burst:.1f} CPU-s in the hub's tree and the learners' processes "
        f"({costs.cpu_s_per_start:.2f} per learner); the machine's busy time meanwhile {run.machine_busy_s:.1f} CPU-s",
        f"  where: {_breakdown(run.cpu_burst)}; the hub's includes the commands it ran as the learner and reaped "
        "(`docker load`'s client, the notebooks' copy)",
        "",
        f"memory per idle learner ({len(run.idle)} learners, every process of their uid and subuids, "
        f"up to {f['idle_processes_per_learner']} each):",
        f"  their lab open, no kernel: PSS mean {f['idle_pss_mean_mib']} MiB, max {f['idle_pss_max_mib']} MiB; "
        f"USS mean {f['idle_uss_mean_mib']} MiB, max {f['idle_uss_max_mib']} MiB",
        f"  the welcome notebook open, its kernel started, nothing run in it ({run.kernels} kernels): PSS mean "
        f"{f['notebook_pss_mean_mib']} MiB, max {f['notebook_pss_max_mib']} MiB; USS mean {f['notebook_uss_mean_mib']} MiB",
        f"  then lesson 05's container running too: PSS mean {f['active_pss_mean_mib']} MiB, "
        f"max {f['active_pss_max_mib']} MiB",
        f"  the hub process: PSS {f['hub_pss_mib']} MiB (USS {f['hub_uss_mib']}); its services (grader): PSS "
        f"{f['services_pss_mib']} MiB (USS {f['services_uss_mib']}); its proxy: PSS {f['proxy_pss_mib']} MiB "
        f"(USS {f['proxy_uss_mib']}); the three with one learner: {f['overhead_alone_pss_mib']} MiB",
        f"  machine MemAvailable: {f['mem_available_before_gib']} GiB before the hub, "
        f"{f['mem_available_idle_gib']} GiB with everyone idle (other users' changes included)",
        "",
        f"`labkit check {EXERCISE}` while all {run.learners} check at once ({_check_way(run.check_way)}):",
        f"  {f['check_samples']} samples ({f['check_samples'] // max(1, run.learners)} rounds, warm-up discarded): "
        f"p50 {f['check_p50_ms']} ms, p95 {f['check_p95_ms']} ms, max {f['check_max_ms']} ms; "
        f"not passed: {run.checks_not_passed}",
        "",
        *_render_projection(costs, run),
    ]
    lines += [f"note: {note}" for note in run.notes]
    return "\n".join([*lines, "", json.dumps(f, ensure_ascii=False)])


def _breakdown(spent: Mapping[str, float], shown: int = 6) -> str:
    """The kinds of process that spent the most CPU seconds, largest first, the rest summed."""
    ranked = sorted(spent.items(), key=lambda item: -item[1])
    parts = [f"{kind} {seconds:.1f}" for kind, seconds in ranked[:shown]]
    rest = sum(seconds for _, seconds in ranked[shown:])
    return ", ".join(parts + ([f"others {rest:.1f}"] if ranked[shown:] else [])) + " (CPU-s)"


def _check_way(way: str) -> str:
    if way == "grader":
        return "through the hub's grading service, with each lab's token"
    return "no grading service on this hub: `python -m labkit check` run as each learner in their namespace"


def _render_projection(costs: Costs, run: HubRun) -> list[str]:
    fits = project(costs)
    here = last_ready_s(run.learners, run.cpus, costs)
    measured = max(run.ready_s, default=0.0)
    head = "".join(f"{f'{ram} GiB/{max(1, ram // GIB_PER_VCPU)} vCPU':>17}" for ram in MACHINE_GIB)
    lines = [
        "PROJECTION, not a measurement: memory = learners × "
        f"{costs.learner_bytes / MIB:.0f} MiB (PSS, notebook open) + the hub's {costs.hub_bytes / MIB:.0f} MiB "
        f"(+{costs.hub_bytes_per_learner / MIB:.1f} MiB per learner) + {RESERVE_GIB:g} GiB for the system;",
        f"  last of them ready when all log in at once = max({costs.alone_s:.1f} s alone, learners × "
        f"{costs.cpu_s_per_start:.2f} CPU-s ÷ vCPUs), one vCPU per {GIB_PER_VCPU} GiB; learners' containers "
        "and a lesson's images cost more than idle",
        f"  the same arithmetic for this run ({run.learners} at once on {run.cpus} CPUs) gives {here:.0f} s; "
        f"measured: {measured:.0f} s (the rest: other users' load, and what the model leaves out)",
        f"  {'learners':<10}{'needs':>9}{head}",
    ]
    for learners in CLASS_SIZES:
        row = [f for f in fits if f.learners == learners]
        cells = "".join(f"{('fits' if f.fits else 'NO') + f', {f.last_ready_s:.0f} s':>17}" for f in row)
        lines.append(f"  {learners:<10}{row[0].need_gib:>6.1f} GiB{cells}")
    most = "".join(f"{f.most_learners:>17}" for f in fits if f.learners == CLASS_SIZES[0])
    lines.append(f"  {'most idle learners':<19}{most}")
    return lines


# --- the machine ---------------------------------------------------------------------------


def _memory(procs: Iterable[psutil.Process]) -> Memory:
    total = Memory()
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            info = proc.memory_full_info()
            total += Memory(int(info.uss), int(getattr(info, "pss", 0)), int(info.rss), 1)
    return total


def _live(proc: psutil.Process) -> bool:
    try:
        return bool(proc.status() != psutil.STATUS_ZOMBIE)
    except psutil.Error:
        return False


def _owned(uid: int, ranges: Sequence[tuple[int, int]]) -> Callable[[int], bool]:
    return lambda real: real == uid or any(start <= real < start + count for start, count in ranges)


def learner_processes(names: Sequence[str]) -> dict[str, list[psutil.Process]]:
    """Every live process of each learner's uid or of their subordinate uids (their containers' users)."""
    subuids = le.parse_subids(Path("/etc/subuid").read_text()) if Path("/etc/subuid").exists() else {}
    owners: dict[str, Callable[[int], bool]] = {}
    for name in names:
        user = le._lookup(le.unix_name(name))
        if user is not None:
            owners[name] = _owned(user.uid, subuids.get(user.unix_user, []))
    found: dict[str, list[psutil.Process]] = {name: [] for name in owners}
    for proc in psutil.process_iter(["uids"]):
        uids = proc.info["uids"]
        if uids is None or not _live(proc):
            continue
        for name, owns in owners.items():
            if owns(uids.real):
                found[name].append(proc)
                break
    return found


def _tree(pid: int | None) -> list[psutil.Process]:
    if pid is None:
        return []
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.Error:
        return []


def _proxy_pid(state: Path) -> int | None:
    with contextlib.suppress(OSError, ValueError):
        return int((state / "proxy.pid").read_text().strip())
    return None


def hub_memory(state: Path) -> tuple[Memory, Memory, Memory]:
    """The hub process's memory, its services' (root's other processes under it), and its proxy's."""
    proxy = _tree(_proxy_pid(state))
    skip = {p.pid for p in proxy}
    tree = [p for p in _tree(hub_admin.hub_pid(state)) if p.pid not in skip and _uid(p) == 0]
    return _memory(tree[:1]), _memory(tree[1:]), _memory(proxy)


def _cmdline(proc: psutil.Process) -> list[str]:
    with contextlib.suppress(psutil.Error):
        return list(proc.cmdline())
    return []


def _uid(proc: psutil.Process) -> int | None:
    with contextlib.suppress(psutil.Error):
        return int(proc.uids().real)
    return None


#: What a process is, for the CPU breakdown, by a word of its command line (the first that matches).
KINDS = (
    ("jupyterhub-singleuser", "lab"),
    ("ipykernel", "kernel"),
    ("grader", "grader"),
    ("configurable-http-proxy", "proxy"),
    ("jupyterhub", "hub"),  # with what it ran and reaped: `docker load`, the notebooks' copy
)

Snapshot = dict[tuple[int, float, str], float]


def _kind(proc: psutil.Process) -> str:
    line = " ".join(_cmdline(proc))
    for word, kind in KINDS:
        if word in line:
            return kind
    with contextlib.suppress(psutil.Error):
        return str(proc.name())
    return "?"


def _cpu_snapshot(procs: Iterable[psutil.Process]) -> Snapshot:
    """CPU seconds by (pid, start time, kind), each with its reaped children's."""
    seen: Snapshot = {}
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            t = proc.cpu_times()
            seen[(proc.pid, proc.create_time(), _kind(proc))] = t.user + t.system + t.children_user + t.children_system
    return seen


def _cpu_spent(before: Snapshot, after: Snapshot) -> dict[str, float]:
    """CPU seconds spent between two snapshots, by kind of process (one new in ``after`` counts whole)."""
    spent: dict[str, float] = {}
    for key, seconds in after.items():
        spent[key[2]] = spent.get(key[2], 0.0) + seconds - before.get(key, 0.0)
    return spent


def _machine_busy() -> float:
    t = psutil.cpu_times()
    return float(sum(t) - t.idle - getattr(t, "iowait", 0.0))


# --- the run -------------------------------------------------------------------------------


@dataclass
class _Hub:
    state: Path
    url: str
    passwords: dict[str, str]
    refs: list[str]
    stop: threading.Event = field(default_factory=threading.Event)
    sessions: dict[str, requests.Session] = field(default_factory=dict)  # each learner's, logged in

    def engine(self, name: str) -> le.LearnerEngine:
        user = le._lookup(le.unix_name(name))
        engine = le.running(user) if user is not None else None
        if engine is None:
            raise LabkitError(f"{name}'s engine is not running", HUB_LOG_FIX)
        return engine

    def scope(self, names: Sequence[str]) -> list[psutil.Process]:
        """The processes whose CPU a learner's start spends: the hub's tree and the learners'."""
        mine = {p.pid: p for p in _tree(hub_admin.hub_pid(self.state))}
        for procs in learner_processes(names).values():
            mine.update((p.pid, p) for p in procs)
        return list(mine.values())


def _session() -> requests.Session:
    session = requests.Session()
    session.trust_env = False  # as labkit.core.http's: the hub is on loopback, no proxy reaches it
    return session


def _images_present(hub: _Hub, name: str) -> bool:
    try:
        engine = hub.engine(name)
    except LabkitError:
        return False
    return le.run_as(engine, ["docker", "image", "inspect", "--format", "{{.Id}}", *hub.refs]).returncode == 0


def _log_in(hub: _Hub, name: str, ready: threading.Barrier | None = None) -> float:
    """Seconds from the login POST to the learner's lab answering with their course images in their daemon."""
    session = hub.sessions[name] = _session()
    session.get(f"{hub.url}/hub/login", timeout=30).raise_for_status()
    if ready is not None:
        ready.wait(timeout=READY_TIMEOUT)
    began = time.monotonic()
    answer = session.post(
        f"{hub.url}/hub/login?next=",
        data={"username": name, "password": hub.passwords[name], "_xsrf": session.cookies.get("_xsrf", "")},
        timeout=READY_TIMEOUT,
    )  # following the redirects starts the learner's lab, as a browser's login does
    if not answer.history or answer.history[0].status_code != 302:
        raise LabkitError(f"the hub refused {name}'s login ({answer.status_code})", HUB_LOG_FIX)
    status_url = f"{hub.url}/user/{name}/api/status"

    def lab_answers() -> bool:
        if hub.stop.is_set():
            raise LabkitError("the bench is stopping", "")
        lab = session.get(f"{hub.url}/user/{name}/lab", timeout=30)  # the lab's OAuth dance with the hub
        if lab.status_code == 500 and "/spawn-pending/" in lab.url:
            raise LabkitError(f"{name}'s lab failed to start: {hub_admin._log_tail(hub.state, 3)}", HUB_LOG_FIX)
        status = session.get(status_url, timeout=10)
        return status.status_code == 200 and status.url == status_url and "started" in status.json()

    wait.until(
        lambda: lab_answers() and _images_present(hub, name),
        f"{name}'s lab and course images",
        timeout=READY_TIMEOUT,
        retry_on=(requests.RequestException, ValueError),
        detail=lambda: hub_admin._log_tail(hub.state, 3),
    )
    return time.monotonic() - began


def _open_notebook(hub: _Hub, name: str) -> bool:
    """Open the welcome notebook as JupyterLab's page does (a session, so a kernel) and wait for its process.

    The kernel's process is found by its id, which its connection file's name carries (the
    kernel's ``execution_state`` stays "starting" until a page connects to it, which no page
    does here). Returns whether it started in time (the memory is read either way).
    """
    session = hub.sessions[name]
    base = f"{hub.url}/user/{name}/api"
    xsrf = {"X-XSRFToken": session.cookies.get("_xsrf", path=f"/user/{name}/") or ""}
    spec = session.get(f"{base}/kernelspecs", timeout=30).json()["default"]
    body: dict[str, Any] = {"path": WELCOME, "name": WELCOME, "type": "notebook", "kernel": {"name": spec}}
    answer = session.post(f"{base}/sessions", json=body, headers=xsrf, timeout=120)
    if answer.status_code not in (200, 201):
        raise LabkitError(f"{name}'s lab would not open {WELCOME} ({answer.status_code})", answer.text[:200])
    kernel = str(answer.json()["kernel"]["id"])

    def started() -> bool:
        return any(kernel in " ".join(_cmdline(p)) for p in learner_processes([name]).get(name, []))

    try:
        wait.until(started, f"{name}'s kernel", timeout=READY_TIMEOUT / 3)
    except WaitTimeout:
        return False
    return True


def _at_once(names: Sequence[str], work: Callable[[str, threading.Barrier], float]) -> list[float]:
    """``work`` for every name in its own thread, all released at the same moment; raises the first failure."""
    barrier = threading.Barrier(len(names))

    def one(name: str) -> float:
        try:
            return work(name, barrier)
        except BaseException:
            barrier.abort()  # the others stop waiting for this one
            raise

    pool = ThreadPoolExecutor(max_workers=len(names))
    try:
        futures = [pool.submit(one, name) for name in names]
        return [f.result() for f in futures]
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


def _lab_environ(hub: _Hub, name: str) -> dict[str, str]:
    uid = hub.engine(name).user.uid
    for proc in psutil.process_iter(["uids", "cmdline"]):
        uids, cmdline = proc.info["uids"], proc.info["cmdline"] or []
        if uids and uids.real == uid and any("jupyterhub-singleuser" in part for part in cmdline):
            with contextlib.suppress(psutil.Error):
                return dict(proc.environ())
    raise LabkitError(f"{name}'s lab process is not running", HUB_LOG_FIX)


def _checker(hub: _Hub, name: str) -> tuple[str, Callable[[], bool]]:
    """How ``name``'s check is run: ("grader", POST to the hub's grader) or ("run_as", the CLI as them)."""
    env = _lab_environ(hub, name)
    grader, token = env.get("LABKIT_HUB_GRADER"), env.get("JUPYTERHUB_API_TOKEN")
    if grader and token:
        url = f"{grader.rstrip('/')}/check/{EXERCISE}"

        def through_grader() -> bool:
            answer = _session().post(url, json={}, headers={"Authorization": f"token {token}"}, timeout=CHECK_TIMEOUT)
            if answer.status_code != 200:
                raise LabkitError(f"the grader answered {answer.status_code} for {name}", answer.text[:200])
            return bool(answer.json().get("passed"))

        return "grader", through_grader
    engine = hub.engine(name)
    argv = [Settings.load(hub.state).python, "-m", "labkit", "check", EXERCISE]  # a Python learners can run
    return "run_as", lambda: le.run_as(engine, argv, timeout=CHECK_TIMEOUT).returncode == 0


def _checks(hub: _Hub, run: HubRun, names: Sequence[str], rounds: int) -> None:
    def solve(name: str) -> None:
        engine = hub.engine(name)
        le.run_as(engine, ["docker", "rm", "-f", "hello-docker-container"])
        done = le.run_as(engine, SOLVE)
        if done.returncode != 0:
            raise LabkitError(f"lesson 05's `docker run` failed for {name}: {done.stderr.strip()[-200:]}", "")

    with ThreadPoolExecutor(max_workers=len(names)) as pool:
        list(pool.map(solve, names))
    checkers = {name: _checker(hub, name) for name in names}
    run.check_way = "grader" if all(way == "grader" for way, _ in checkers.values()) else "run_as"
    for round_number in range(rounds + 1):  # the first is a warm-up, discarded

        def check(name: str, barrier: threading.Barrier, timed: bool = round_number > 0) -> float:
            barrier.wait(timeout=CHECK_TIMEOUT)
            began = time.perf_counter()
            passed = checkers[name][1]()
            took = (time.perf_counter() - began) * 1000
            if timed and not passed:
                run.checks_not_passed += 1
            return took

        took = _at_once(names, check)
        if round_number:
            run.check_ms += took


def _up(state: Path, names: Sequence[str], out: Callable[[str], None]) -> tuple[str, dict[str, str]]:
    roster = state.parent / "roster.csv"
    roster.write_text("username\n" + "".join(f"{n}\n" for n in names))
    port = hub_admin.free_port()
    argv = [*LABKIT, "hub", "up", "--roster", str(roster), "--port", str(port), "--state", str(state)]
    argv += ["--idle-timeout", "0", "--memory", "none", "--pids", "none"]
    out(f"bench-hub: {' '.join(argv[2:])}")
    done = subprocess.run(argv, capture_output=True, text=True, timeout=600, check=False)
    if done.returncode != 0:
        raise LabkitError(f"`labkit hub up` failed: {(done.stderr or done.stdout).strip()[-400:]}", "read it above")
    with (state / "passwords.csv").open() as f:
        passwords = {row["username"]: row["password"] for row in csv.DictReader(f)}
    return f"http://127.0.0.1:{port}", passwords


def _down(state: Path, names: Sequence[str]) -> list[str]:
    """``labkit hub down --purge``, then whatever it left (processes, users, the folder); returns problems."""
    problems = []
    uids = set()
    for name in names:
        user = le._lookup(le.unix_name(name))
        if user is not None:
            uids.add(user.uid)
    with contextlib.suppress(OSError):
        shutil.copyfile(state / "hub.log", HUB_LOG)
    if state.exists():
        done = subprocess.run(
            [*LABKIT, "hub", "down", "--purge", "--state", str(state)],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        if done.returncode != 0:
            problems.append(f"`labkit hub down --purge` failed: {(done.stderr or done.stdout).strip()[-300:]}")
    for proc in psutil.process_iter(["uids"]):
        if proc.info["uids"] and proc.info["uids"].real in uids:
            with contextlib.suppress(psutil.Error):
                proc.kill()
                problems.append(f"killed a leftover learner process {proc.pid}")
    for name in names:
        user = le._lookup(le.unix_name(name))
        if user is not None:
            try:
                le.remove_user(user)
            except LabkitError as e:
                problems.append(str(e))
    shutil.rmtree(state.parent, ignore_errors=True)
    return problems


def run(learners: int = LEARNERS, rounds: int = ROUNDS, idle_seconds: float = IDLE_SECONDS) -> HubRun:
    """Start a hub, measure (see the module's docstring), take everything down again.

    Raises:
        LabkitError: not root, the hub did not come up, or a learner's lab never became ready.
    """
    if os.geteuid() != 0:
        raise LabkitError("a classroom hub makes learners' users and engines as root", "run it with sudo")

    def out(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    tag = f"b{os.getpid()}"
    alone, *burst = [f"{tag}n{i}" for i in range(learners + 1)]
    state = Path(tempfile.mkdtemp(prefix="lk-bench-hub-")) / "hub"
    HUB_LOG.parent.mkdir(exist_ok=True)
    result = HubRun(learners, os.cpu_count() or 1, os.getloadavg())
    try:
        result.available_before = psutil.virtual_memory().available
        url, passwords = _up(state, [alone, *burst], out)
        hub = _Hub(state, url, passwords, [e.name for e in images.CATALOG])
        try:
            out(f"bench-hub: {alone} logs in alone")
            result.alone_s = _log_in(hub, alone)
            result.hub_alone = sum(hub_memory(state), Memory())
            out(f"bench-hub: {learners} learners log in at once")
            cpu_before, busy_before, began = _cpu_snapshot(hub.scope([alone])), _machine_busy(), time.monotonic()
            result.ready_s = _at_once(burst, lambda name, barrier: _log_in(hub, name, barrier))
            result.burst_wall_s = time.monotonic() - began
            result.cpu_burst = _cpu_spent(cpu_before, _cpu_snapshot(hub.scope([alone, *burst])))
            result.machine_busy_s = _machine_busy() - busy_before
            everyone = [alone, *burst]
            out(f"bench-hub: everyone idle for {idle_seconds:g} s, then their memory")
            time.sleep(idle_seconds)  # the idle time being measured, not a wait for something to happen
            result.idle = {n: _memory(p) for n, p in learner_processes(everyone).items()}
            out(f"bench-hub: everyone opens {WELCOME} (a kernel each), idle {idle_seconds:g} s, their memory again")
            with ThreadPoolExecutor(max_workers=len(everyone)) as pool:
                result.kernels = sum(pool.map(lambda name: _open_notebook(hub, name), everyone))
            time.sleep(idle_seconds)  # as above: idle on purpose
            result.notebook = {n: _memory(p) for n, p in learner_processes(everyone).items()}
            result.hub, result.services, result.proxy = hub_memory(state)
            result.available_idle = psutil.virtual_memory().available
            if result.kernels < len(everyone):
                result.notes.append(f"{len(everyone) - result.kernels} kernel(s) did not start in time")
            out(f"bench-hub: lesson 05 solved by {learners} learners, then {rounds + 1} rounds of checks at once")
            _checks(hub, result, burst, rounds)
            result.active = {n: _memory(p) for n, p in learner_processes(burst).items()}
        finally:
            hub.stop.set()
    finally:
        result.load_after = os.getloadavg()
        out("bench-hub: labkit hub down --purge")
        result.notes += _down(state, [alone, *burst])
    if learners < 10:
        result.notes.append(f"{learners} learners: p95 of so few samples is close to their max")
    return result


def _terminated(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # SIGTERM cleans up as Ctrl-C does


def main(argv: Sequence[str] | None = None) -> int:
    """Run the bench: 0 done, 2 it could not run (not root, the hub did not come up …), 130 interrupted."""
    return exits.run(lambda: _bench(argv), program="labkit bench-hub")


def _bench(argv: Sequence[str] | None) -> int:
    parser = exits.Parser(prog="python -m labkit.bench_hub", description=__doc__.split("\n")[0] if __doc__ else "")
    parser.add_argument("--learners", type=int, default=LEARNERS, help=f"learners logging in at once ({LEARNERS})")
    parser.add_argument("--rounds", type=int, default=ROUNDS, help=f"timed rounds of checks at once ({ROUNDS})")
    parser.add_argument("--idle", type=float, default=IDLE_SECONDS, help="idle seconds before memory is read")
    args = parser.parse_args(argv)
    if args.learners < 1 or args.rounds < 1 or args.idle < 0:
        parser.error("--learners and --rounds must be at least 1, --idle not negative")
    signal.signal(signal.SIGTERM, _terminated)
    result = run(args.learners, args.rounds, args.idle)
    stamp = {"CPUs": str(result.cpus), "RAM": f"{psutil.virtual_memory().total / GIB:.0f} GiB"}
    stamp |= {"kernel": platform.release(), "Python": platform.python_version()}
    text = render(result, stamp)
    ARTIFACT.parent.mkdir(exist_ok=True)
    ARTIFACT.write_text(json.dumps({**figures(result), "machine": stamp}, indent=2, ensure_ascii=False) + "\n")
    print(text, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
