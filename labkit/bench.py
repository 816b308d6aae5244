"""``make bench``: what labkit costs over the raw docker CLI, how fast checks answer, how long the notebooks take,
and what the classroom server takes (:mod:`labkit.bench_classroom`).

Prints a table, then one JSON line (always the last line) for CI to parse; a part that
was skipped gives ``null`` figures. Everything the bench creates carries its own session
label and is removed at the end, also on an error or Ctrl-C; answers and setup records
go to a throwaway state folder, and the classroom server's database to another.

Example:
    $ .venv/bin/python -m labkit.bench --quick --skip-notebooks
    $ .venv/bin/python -m labkit.bench --classroom-only --classroom-seconds 3 --classroom-learners 10
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from labkit import bench_classroom, exercises
from labkit.bench_classroom import ClassroomRun
from labkit.classroom.limits import EVENTS_PER_MINUTE
from labkit.cli import exits
from labkit.core import engine, paths
from labkit.core.cleanup import remove_labelled
from labkit.core.errors import CommandFailed, LabkitError
from labkit.core.shell import sh
from labkit.core.wait import until

COMMAND = ["docker", "run", "--rm", "busybox", "true"]
RATIO_TARGET = 1.10
CHECK_P95_TARGET_MS = 300.0
CLASSROOM_P95_TARGET_MS = 150.0
REQUIRED_KEYS = ("overhead_ratio_sh", "overhead_ratio_sdk", "check_p50_ms", "check_p95_ms", "notebooks_wall_s")
CLASSROOM_KEYS = (
    "classroom_rps",
    "classroom_post_p95_ms",
    "classroom_learners",
    "classroom_seconds",
    "classroom_events_acked",
    "classroom_events_lost_after_kill9",
)
CLASSROOM_EXTRA = (
    "classroom_post_p50_ms",
    "classroom_pace_s",  # seconds between one learner's posts; 0: back to back
    "classroom_events_per_minute",  # the server's limit per learner during the run
    "classroom_posts_failed",  # load phase, by HTTP status or "connection"/"timeout"
    "classroom_stream_results",
    "classroom_stream_reconnects",  # times the page's stream fell too far behind, was closed and reconnected
    "classroom_stream_behind_s",  # after the last post, until the stream showed it; null: not within 5 s
    "classroom_kill9_in_flight",
    "classroom_kill9_resent",  # posts that failed while the server was down, sent again until acknowledged
    "classroom_restart_s",
)
WAYS = {"raw": "raw docker CLI", "sh": "labkit.sh", "sdk": "docker SDK"}
MARK = {True: "✔", False: "✗"}


def percentile(samples: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100), linear between the closest ranks (numpy's default method).

    Raises:
        ValueError: there are no samples.

    Example:
        >>> percentile([4, 1, 3, 2], 50)
        2.5
    """
    if not samples:
        raise ValueError("percentile of no samples")
    ordered = sorted(samples)
    position = (len(ordered) - 1) * q / 100
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def ratio(samples: Sequence[float], baseline: Sequence[float]) -> float:
    """Median of ``samples`` over median of ``baseline``: 1.0 means no overhead."""
    return percentile(samples, 50) / percentile(baseline, 50)


@dataclass(frozen=True)
class NotebookRun:
    """One notebook executed end to end: its wall time and, if a cell failed, a one-line summary."""

    name: str
    seconds: float
    error: str | None = None


@dataclass
class Report:
    """Everything measured; :func:`summary` and :func:`render` turn it into figures and text."""

    context: Mapping[str, str]
    runs: (
        Mapping[str, Sequence[float]] | None
    )  # way ("raw", "sh", "sdk") -> ms per run; None: skipped (--classroom-only)
    checks_ms: Sequence[float]
    exercise_count: int
    notebooks: Sequence[NotebookRun] | None = None  # None: skipped
    classroom: ClassroomRun | None = None  # None: skipped
    notes: list[str] = field(default_factory=list)


def summary(report: Report) -> dict[str, Any]:
    """The figures of the final JSON line: the required keys, the classroom's, then medians and counts.

    A part that did not run gives ``null`` for its figures (skipped notebooks: 0.0 s, as always).
    """
    checks = report.checks_ms or [0.0]
    notebooks = report.notebooks or []
    runs = report.runs or {}
    room = classroom_figures(report.classroom) if report.classroom else dict.fromkeys(CLASSROOM_KEYS + CLASSROOM_EXTRA)
    return {
        "overhead_ratio_sh": round(ratio(runs["sh"], runs["raw"]), 3) if runs else None,
        "overhead_ratio_sdk": round(ratio(runs["sdk"], runs["raw"]), 3) if runs else None,
        "check_p50_ms": round(percentile(checks, 50), 2) if runs else None,
        "check_p95_ms": round(percentile(checks, 95), 2) if runs else None,
        "notebooks_wall_s": round(float(sum(n.seconds for n in notebooks)), 2),
        **{key: room[key] for key in CLASSROOM_KEYS},
        **{f"{way}_median_ms": round(percentile(runs[way], 50), 1) if runs else None for way in WAYS},
        "runs": len(runs.get("raw", [])),
        "check_samples": len(report.checks_ms),
        "notebooks": len(notebooks),
        "notebooks_failed": [n.name for n in notebooks if n.error],
        **{key: room[key] for key in CLASSROOM_EXTRA},
    }


def classroom_figures(room: ClassroomRun) -> dict[str, Any]:
    """The classroom's figures: :data:`CLASSROOM_KEYS`, then :data:`CLASSROOM_EXTRA`."""
    posts = room.post_ms or [0.0]
    return {
        "classroom_rps": round(len(room.post_ms) / room.seconds, 1) if room.seconds else 0.0,
        "classroom_post_p95_ms": round(percentile(posts, 95), 1),
        "classroom_learners": room.learners,
        "classroom_seconds": round(room.seconds, 1),
        "classroom_events_acked": room.acked,
        "classroom_events_lost_after_kill9": room.lost,
        "classroom_post_p50_ms": round(percentile(posts, 50), 1),
        "classroom_pace_s": room.pace,
        "classroom_events_per_minute": room.events_per_minute,
        "classroom_posts_failed": dict(room.failed),
        "classroom_stream_results": room.stream_results,
        "classroom_stream_reconnects": room.stream_reconnects,
        "classroom_stream_behind_s": None if room.stream_behind_s is None else round(room.stream_behind_s, 2),
        "classroom_kill9_in_flight": room.in_flight_at_kill,
        "classroom_kill9_resent": room.resent,
        "classroom_restart_s": round(room.restart_s, 2),
    }


def render(report: Report) -> str:
    """The readable table, then the JSON line as the very last line."""
    figures = summary(report)
    ctx = report.context
    lines = [f"labkit bench — {', '.join(f'{k} {v}' for k, v in ctx.items())}", ""]
    if report.runs is None:
        lines.append("docker overhead, check() and notebooks: skipped (--classroom-only)")
    else:
        lines += _render_docker(report, figures)
    lines += ["", *_render_classroom(report.classroom, figures)]
    lines += [f"note: {note}" for note in report.notes]
    return "\n".join([*lines, "", json.dumps(figures, ensure_ascii=False)])


def _render_docker(report: Report, figures: Mapping[str, Any]) -> list[str]:
    assert report.runs is not None
    lines = [
        f"`{' '.join(COMMAND)}`: {figures['runs']} interleaved runs per way (warm-up round discarded)",
        f"  {'way':<16}{'median ms':>10}{'p95 ms':>9}{'ratio':>8}  target",
    ]
    for way, label in WAYS.items():
        samples = report.runs[way]
        line = f"  {label:<16}{percentile(samples, 50):>10.1f}{percentile(samples, 95):>9.1f}"
        if way != "raw":
            value = figures[f"overhead_ratio_{way}"]
            line += f"{value:>8.3f}  ≤ {RATIO_TARGET:.2f} {MARK[value <= RATIO_TARGET]}"
        lines.append(line)
    p95 = figures["check_p95_ms"]
    lines += ["", f"check(): {report.exercise_count} exercise(s), {figures['check_samples']} samples"]
    lines.append(
        f"  p50 {figures['check_p50_ms']:.1f} ms, p95 {p95:.1f} ms  target p95 ≤ {CHECK_P95_TARGET_MS:.0f} ms {MARK[p95 <= CHECK_P95_TARGET_MS]}"
    )
    lines += ["", "notebooks (nbclient, end to end):"]
    if report.notebooks is None:
        lines.append("  skipped (--skip-notebooks)")
    elif not report.notebooks:
        lines.append("  no notebooks in notebooks/: 0.0 s")
    for run in report.notebooks or []:
        lines.append(f"  {run.name:<32}{run.seconds:>8.1f} s" + (f"  FAILED: {run.error}" if run.error else ""))
    if report.notebooks:
        lines.append(f"  {'total':<32}{figures['notebooks_wall_s']:>8.1f} s")
    return lines


def _render_classroom(room: ClassroomRun | None, figures: Mapping[str, Any]) -> list[str]:
    if room is None:
        return ["classroom: skipped (--skip-classroom)"]
    if room.pace:
        pace = f"every {room.pace:g} s or so"
    else:
        pace = f"back to back: {room.learners} posts always in flight, so the mean latency is learners ÷ rps"
    if room.events_per_minute == EVENTS_PER_MINUTE:
        limit = f"the server keeps its limit of {EVENTS_PER_MINUTE} events a minute per learner"
    else:
        limit = (
            f"the server runs with --events-per-minute {room.events_per_minute:.10g} (its limit of "
            f"{EVENTS_PER_MINUTE} lifted: this measures capacity, not a class's pace)"
        )
    if room.stream_behind_s is None:
        stream = f"{room.stream_results} results, still behind {bench_classroom.DRAIN:g} s after the last post"
    else:
        stream = f"{room.stream_results} results, up to date {room.stream_behind_s:.2f} s after the last post"
    if room.stream_reconnects:
        stream += f"; fell too far behind and reconnected {room.stream_reconnects} time(s) (a fresh snapshot each)"
    p95 = figures["classroom_post_p95_ms"]
    failed = ", ".join(f"{why} {n}" for why, n in sorted(room.failed.items())) or "none"
    return [
        f"classroom: {room.learners} learners for {room.seconds:.1f} s, the instructor's stream open and read;",
        f"  learners post {pace};",
        f"  {limit}",
        f"  posts: {len(room.post_ms)} acknowledged, {figures['classroom_rps']:.1f}/s; not acknowledged: {failed}",
        f"  p50 {figures['classroom_post_p50_ms']:.1f} ms, p95 {p95:.1f} ms  "
        f"target p95 ≤ {CLASSROOM_P95_TARGET_MS:.0f} ms {MARK[p95 <= CLASSROOM_P95_TARGET_MS]}",
        f"  instructor's stream: {stream} {MARK[room.stream_behind_s is not None and not room.stream_reconnects]}",
        f"  kill -9 with {room.in_flight_at_kill} posts in flight, restarted on the same database in "
        f"{room.restart_s:.2f} s ({room.resent} posts failed meanwhile and were sent again):",
        f"  {room.acked} events acknowledged in all, {room.lost} missing from the database {MARK[room.lost == 0]}",
    ]


def time_runs(ways: Mapping[str, Callable[[], object]], runs: int, rng: random.Random) -> dict[str, list[float]]:
    """Time every way ``runs`` times, round-robin in a fresh random order each round, so drift hits all alike.

    One extra warm-up round runs first and is discarded. Returns milliseconds per way.
    """
    samples: dict[str, list[float]] = {name: [] for name in ways}
    for round_number in range(runs + 1):
        order = list(ways)
        rng.shuffle(order)
        for name in order:
            start = time.perf_counter()
            ways[name]()
            elapsed_ms = (time.perf_counter() - start) * 1000
            if round_number:
                samples[name].append(elapsed_ms)
    return samples


def time_checks(check: Callable[[str], object], ids: Sequence[str], repeat: int) -> list[float]:
    """Milliseconds per ``check(id)``, ``repeat`` times for every id, in whatever state the daemon is in."""
    samples = []
    for _ in range(repeat):
        for exercise_id in ids:
            start = time.perf_counter()
            check(exercise_id)
            samples.append((time.perf_counter() - start) * 1000)
    return samples


def _docker_ways() -> dict[str, Callable[[], object]]:
    client = engine.client()

    def raw() -> None:
        done = subprocess.run(COMMAND, capture_output=True, text=True)
        if done.returncode:
            raise CommandFailed(" ".join(COMMAND), done.returncode, done.stdout + done.stderr)

    def sdk() -> None:
        with engine.converted("busybox"):
            client.containers.run("busybox", "true", remove=True, labels=engine.labels("bench"))

    return {"raw": raw, "sh": lambda: sh("docker run --rm busybox true", lesson="bench", quiet=True), "sdk": sdk}


def run_notebooks(folder: Path) -> list[NotebookRun]:
    """Execute every ``*.ipynb`` in ``folder`` with this interpreter's kernel; nothing is written back."""
    # reason: nbformat and nbclient take ~50 ms to import, and --skip-notebooks needs neither
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    results = []
    for path in sorted(folder.glob("*.ipynb")):
        where = {"cell": "before the first cell"}
        client = NotebookClient(
            nbformat.read(path, as_version=4),
            timeout=600,
            kernel_name="python3",
            resources={"metadata": {"path": str(folder)}},
            on_cell_start=lambda cell, cell_index, where=where: where.update(
                cell=f"cell {cell_index} (id {cell.get('id', '?')})"
            ),
        )
        # Whatever kernelspec "python3" resolves to, run this venv's ipykernel.
        kernel_spec = client.create_kernel_manager().kernel_spec
        assert kernel_spec is not None  # "python3" always resolves: ipykernel is a dependency
        kernel_spec.argv = [
            sys.executable,
            "-m",
            "ipykernel_launcher",
            "-f",
            "{connection_file}",
        ]
        start, error = time.perf_counter(), None
        try:
            client.execute()
        except CellExecutionError as e:
            error = f"{where['cell']}: {e.ename}: {str(e.evalue).splitlines()[0] if e.evalue else ''}"
        except Exception as e:  # a dead kernel or a cell timeout fails this notebook, reported in one line
            error = f"{where['cell']}: {type(e).__name__}: {(str(e).strip().splitlines() or [''])[0][:200]}"
        results.append(NotebookRun(path.name, time.perf_counter() - start, error))
    return results


def machine_context() -> dict[str, str]:
    """Daemon and host facts for the table header."""
    version = engine.client().version()
    return {
        "daemon": f"{version.get('Version')} (API {version.get('ApiVersion')})",
        "kernel": f"{version.get('KernelVersion')} {version.get('Arch')}",
        "CPUs": str(os.cpu_count()),
        "Python": platform.python_version(),
    }


def host_context() -> dict[str, str]:
    """Host facts for the table header, when no daemon is asked (``--classroom-only``)."""
    return {
        "kernel": f"{platform.release()} {platform.machine()}",
        "CPUs": str(os.cpu_count()),
        "Python": platform.python_version(),
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Run the bench: 0 done, 1 a notebook failed or the classroom lost an event, 2 labkit could not run it."""
    return exits.run(lambda: _bench(argv), program="labkit bench")


def _bench(argv: Sequence[str] | None) -> int:
    parser = exits.Parser(
        prog="python -m labkit.bench",
        description="labkit overhead, check latency, notebook wall time and the classroom server's figures.",
    )
    parser.add_argument("--runs", type=int, default=21, help="timed runs per way (default 21)")
    parser.add_argument("--checks", type=int, default=30, help="checks per exercise (default 30)")
    parser.add_argument("--quick", action="store_true", help="5 runs and 5 checks each, for development")
    parser.add_argument("--skip-notebooks", action="store_true", help="do not execute the notebooks")
    parser.add_argument("--seed", type=int, default=None, help="seed for the order within each round")
    room = parser.add_mutually_exclusive_group()
    room.add_argument("--classroom-only", action="store_true", help="only the classroom part (needs no Docker)")
    room.add_argument("--skip-classroom", action="store_true", help="do not run the classroom part")
    parser.add_argument(
        "--classroom-seconds", type=float, default=60.0, help="length of the classroom's load (default 60)"
    )
    parser.add_argument("--classroom-learners", type=int, default=100, help="simulated learners (default 100)")
    parser.add_argument(
        "--classroom-pace",
        type=float,
        default=0.0,
        help="seconds between one learner's posts, on average (default 0: back to back, the server's limit "
        "per learner lifted; 1 or more keeps the limit of 60 a minute)",
    )
    args = parser.parse_args(argv)
    if args.classroom_seconds <= 0 or args.classroom_learners < 1 or args.classroom_pace < 0:
        parser.error("--classroom-seconds and --classroom-learners must be positive, --classroom-pace not negative")
    if args.classroom_only:
        report = Report(context=host_context(), runs=None, checks_ms=[], exercise_count=0)
    else:
        report = _docker_part(args, argv)
    if not args.skip_classroom:
        report.classroom = bench_classroom.run(
            args.classroom_learners, args.classroom_seconds, args.classroom_pace, args.seed
        )
    print(render(report), flush=True)
    lost = report.classroom is not None and report.classroom.lost > 0
    return 1 if lost or any(n.error for n in report.notebooks or []) else 0


def _docker_part(args: argparse.Namespace, argv: Sequence[str] | None) -> Report:
    """The overhead over the docker CLI, the checks and the notebooks, on this bench's own session label."""
    runs, checks = (5, 5) if args.quick else (max(args.runs, 1), max(args.checks, 1))
    inherited = os.environ.get("LABKIT_SESSION", "")
    if inherited and not inherited.startswith("bench-"):
        # Cleanup removes by session: never share one with a learner's lab.
        env = {**os.environ, "LABKIT_SESSION": f"bench-{secrets.token_hex(4)}"}
        os.execve(
            sys.executable, [sys.executable, "-m", "labkit.bench", *(sys.argv[1:] if argv is None else argv)], env
        )
    client = engine.client()  # no daemon: one line and exit 2, before anything is created
    state = tempfile.mkdtemp(prefix="labkit-bench-")
    # Notebook kernels inherit these: same session label, throwaway state and workspace, this venv first on PATH.
    os.environ.update(
        LABKIT_SESSION=engine.session_id(),
        LABKIT_STATE_DIR=state,
        LABKIT_WORKSPACE=os.path.join(state, "work"),
        PATH=os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")]),
    )
    try:
        until(lambda: client.images.list(name="busybox:latest"), "image busybox:latest (being rebuilt?)", timeout=120)
        ids = [exercise.id for exercise in exercises.all_exercises()]
        report = Report(
            context=machine_context(),
            runs=time_runs(_docker_ways(), runs, random.Random(args.seed)),
            checks_ms=time_checks(exercises.check, ids, checks),
            exercise_count=len(ids),
            notebooks=None if args.skip_notebooks else run_notebooks(paths.REPO_DIR / "notebooks"),
        )
    finally:
        # Also on an error or Ctrl-C (reported by run() after this): remove what the bench created.
        try:
            removed = remove_labelled(session=engine.session_id())
            if removed.containers or removed.images:
                print(f"labkit bench: cleanup {removed}", file=sys.stderr)
        except LabkitError as e:
            print(f"labkit bench: cleanup failed: {e}", file=sys.stderr)
        shutil.rmtree(state, ignore_errors=True)
    if runs < 20:
        report.notes.append(f"{runs} runs per way: fewer than the 20 a comparable figure needs")
    return report


if __name__ == "__main__":
    sys.exit(main())
