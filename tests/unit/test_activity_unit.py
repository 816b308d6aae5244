"""Progress reporting: the reducers of the daemon's streams and the text faces (no daemon)."""

from __future__ import annotations

import io

import pytest

from labkit.core import activity
from labkit.core.activity import (
    PlainFace,
    QuietFace,
    Snapshot,
    Task,
    TtyFace,
)
from labkit.features.images import debootstrap
from labkit.features.streams import BuildSteps, LayerTally, parse_step


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


# --- pull / push events ---------------------------------------------------------------------

# Recorded from a real `pull` of a two-layer image whose base layer the daemon already had.
PULL = [
    {"status": "Pulling from labkit-test/activity", "id": "t2"},
    {"status": "Already exists", "progressDetail": {}, "id": "base"},
    {"status": "Pulling fs layer", "progressDetail": {}, "id": "aaa"},
    {"status": "Pulling fs layer", "progressDetail": {}, "id": "bbb"},
    {"status": "Waiting", "progressDetail": {}, "id": "bbb"},
    {"status": "Downloading", "progressDetail": {"current": 1000, "total": 3000}, "progress": "[=>  ]", "id": "aaa"},
    {"status": "Downloading", "progressDetail": {"current": 3000, "total": 3000}, "id": "aaa"},
    {"status": "Verifying Checksum", "progressDetail": {}, "id": "aaa"},
    {"status": "Download complete", "progressDetail": {}, "id": "aaa"},
    {"status": "Downloading", "progressDetail": {"current": 500, "total": 1000}, "id": "bbb"},
    {"status": "Download complete", "progressDetail": {}, "id": "bbb"},
    {"status": "Extracting", "progressDetail": {"current": 3000, "total": 3000}, "id": "aaa"},
    {"status": "Pull complete", "progressDetail": {}, "id": "aaa"},
    {"status": "Extracting", "progressDetail": {"current": 1000, "total": 1000}, "id": "bbb"},
    {"status": "Pull complete", "progressDetail": {}, "id": "bbb"},
    {"status": "Digest: sha256:9aab"},
    {"status": "Status: Downloaded newer image for 127.0.0.1:5000/labkit-test/activity:t2"},
]


def tally_after(events: list[dict[str, object]]) -> LayerTally:
    tally = LayerTally()
    for event in events:
        tally.feed(event)
    return tally


def test_pull_events_add_up_to_the_bytes_of_the_layers_that_move() -> None:
    assert tally_after(PULL[:4]).total is None  # sizes not announced yet
    waiting = tally_after(PULL[:6])
    assert (waiting.done, waiting.total) == (1000, None)  # bbb is still waiting: its size is unknown
    both = tally_after(PULL[:10])
    assert (both.done, both.total, both.note()) == (3500, 4000, "1/2 layers")
    assert both.phase == ""
    done = tally_after(PULL[:12])
    assert (done.done, done.total, done.phase, done.note()) == (4000, 4000, "extracting", "extracting 0/2 layers")
    final = tally_after(PULL)
    assert (final.done, final.total, final.note()) == (4000, 4000, "extracting 2/2 layers")
    assert "base" in final.layers and final.layers["base"].skipped


def test_push_events_count_pushed_bytes_and_skip_mounted_layers() -> None:
    events = [
        {"status": "The push refers to repository [127.0.0.1:5000/labkit-test/activity]"},
        {"status": "Preparing", "progressDetail": {}, "id": "aaa"},
        {"status": "Preparing", "progressDetail": {}, "id": "base"},
        {"status": "Mounted from library/busybox", "progressDetail": {}, "id": "base"},
        {"status": "Pushing", "progressDetail": {"current": 512, "total": 2048}, "id": "aaa"},
        {"status": "Pushing", "progressDetail": {"current": 2048, "total": 2048}, "id": "aaa"},
        {"status": "Pushed", "progressDetail": {}, "id": "aaa"},
        {"status": "t2: digest: sha256:9aab size: 735"},
        {"progressDetail": {}, "aux": {"Tag": "t2", "Digest": "sha256:9aab", "Size": 735}},
    ]
    tally = tally_after(events[:5])
    assert (tally.done, tally.total, tally.note()) == (512, 2048, "0/1 layers")
    tally = tally_after(events)
    assert (tally.done, tally.total, tally.note(), tally.phase) == (2048, 2048, "1/1 layers", "")


def test_an_error_event_is_kept() -> None:
    tally = tally_after([{"errorDetail": {"message": "manifest unknown"}, "error": "manifest unknown"}])
    assert tally.error == "manifest unknown" and tally.done == 0


# --- build steps --------------------------------------------------------------------------


def test_build_steps_are_parsed_from_the_stream() -> None:
    assert parse_step("Step 10/12 : RUN apk add curl\n") == (10, 12, "RUN apk add curl")
    assert parse_step("Successfully built 0123") is None
    steps = BuildSteps()
    events = [
        {"stream": "Step 1/2 : FROM busybox:latest"},
        {"stream": "\n"},
        {"stream": " ---> 3f57d9401f8d\n"},
        {"stream": "Step 2/2 : COPY hello /\n"},
        {"stream": " ---> 5c3d\n"},
        {"aux": {"ID": "sha256:5c3d"}},
        {"stream": "Successfully built 5c3d\n"},
    ]
    started = [steps.feed(e) for e in events]
    assert started == [True, False, False, True, False, False, False]
    assert (steps.step, steps.steps, steps.instruction, steps.image_id, steps.error) == (
        2,
        2,
        "COPY hello /",
        "sha256:5c3d",
        None,
    )


def test_a_failed_build_keeps_its_error_and_last_lines() -> None:
    steps = BuildSteps()
    for event in [
        {"stream": "Step 1/1 : RUN false\n"},
        {"stream": " ---> Running in 1a2b\n"},
        {"error": "The command '/bin/sh -c false' returned a non-zero code: 1"},
    ]:
        steps.feed(event)
    assert steps.error and "non-zero code" in steps.error and steps.image_id is None
    assert steps.log == ["Step 1/1 : RUN false", " ---> Running in 1a2b"]


# --- debootstrap --------------------------------------------------------------------------


def test_debootstrap_lines_drive_phase_and_package_count() -> None:
    out, live = io.StringIO(), io.StringIO()
    with activity.showing(live, "plain"), activity.task("building debian:bookworm", unit="items") as t:
        progress = debootstrap.DebootstrapProgress(out, started=0.0, task=t)
        for line in ["I: Retrieving InRelease", "I: Resolving dependencies of required packages..."]:
            progress.feed(line)
        for package in ("apt", "bash", "libc6"):
            progress.feed(f"I: Retrieving {package} 1.0")
        assert (progress.phase, progress.count, t.snap.total) == ("downloading packages", 3, None)
        for package in ("apt", "bash", "libc6"):
            progress.feed(f"I: Validating {package} 1.0")
        progress.feed("I: Extracting apt...")
        assert (t.snap.note, t.snap.done, t.snap.total) == ("extracting packages", 1, 3)
        progress.feed("I: Configuring the base system...")
        assert t.snap.note == "configuring the base system"
    lines = live.getvalue().splitlines()
    assert "building debian:bookworm: downloading packages (3)" not in lines  # one line per phase, not per package
    assert "building debian:bookworm: downloading packages (1)" in lines
    assert "building debian:bookworm: extracting packages (1/3)" in lines
    assert sum("downloading packages" in line for line in lines) == 1
    milestones = [line.split("] ", 1)[1] for line in out.getvalue().splitlines()]
    assert milestones == [
        "reading the package index",
        "resolving dependencies",
        "downloading packages",
        "extracting 3 packages",
        "configuring the base system",
    ]


# --- faces ----------------------------------------------------------------------------------


def run(face: activity.Face, clock: Clock, *, delay: float = 0.0) -> Task:
    """A 10 MB transfer in 1 MB chunks, each 0.05 s apart."""
    t = Task("saving", face, total=10_000_000, delay=delay, clock=clock)
    for _ in range(10):
        clock.now += 0.05
        t.advance(1_000_000)
    return t


def test_plain_face_prints_a_line_per_tenth_at_most() -> None:
    buffer = io.StringIO()
    t = Task("saving", PlainFace(buffer), total=100_000_000, delay=0.0, clock=Clock())
    for _ in range(1000):  # a thousand 100 kB chunks
        t.advance(100_000)
    t.close()
    lines = buffer.getvalue().splitlines()
    assert len(lines) == 11  # 0%..100%
    assert lines[0] == "saving: 0% (100 kB of 100 MB)"
    assert lines[-1] == "saving: 100% (100 MB of 100 MB)"


def test_tty_face_rewrites_one_line_and_clears_it_at_the_end() -> None:
    buffer, clock = io.StringIO(), Clock()
    t = run(TtyFace(buffer, width=80), clock)
    t.close()
    text = buffer.getvalue()
    assert "\n" not in text  # one line, rewritten in place
    frames = [frame.removesuffix("\x1b[K") for frame in text.split("\r") if frame]
    assert frames[0].startswith("saving [##   ") and frames[0].endswith("10% (1.0 MB of 10 MB)")
    assert frames[-2] == "saving [####################] 100% (10 MB of 10 MB)"
    assert frames[-1] == ""  # cleared: the operation's own last line starts on a clean line
    assert all(len(frame) < 80 for frame in frames)


def test_tty_face_redraws_at_most_ten_times_a_second_within_a_tenth() -> None:
    buffer, clock = io.StringIO(), Clock()
    t = Task("pulling", TtyFace(buffer, width=80), total=None, delay=0.0, clock=clock)
    for _ in range(100):
        clock.now += 0.01  # 100 updates in one second, all within the first 64 MB
        t.advance(1000)
    assert 9 <= buffer.getvalue().count("\r") <= 11


def test_nothing_is_shown_before_the_delay() -> None:
    buffer, clock = io.StringIO(), Clock()
    t = run(PlainFace(buffer), clock, delay=1.0)  # 0.5 s of work
    t.close()
    assert buffer.getvalue() == ""
    buffer, clock = io.StringIO(), Clock()
    t = Task("saving", PlainFace(buffer), total=10, delay=1.0, clock=clock)
    t.update(3)
    clock.now += 1.5
    t.update(4)
    assert buffer.getvalue() == "saving: 40% (1 kB of 1 kB)\n"  # the state when the delay ran out


def test_echo_clears_the_live_line_before_printing_and_draws_it_again() -> None:
    live, out, clock = io.StringIO(), io.StringIO(), Clock()
    t = Task("building", TtyFace(live, width=60), unit="items", delay=0.0, clock=clock)
    t.update(1, note="downloading packages")
    t.echo("  [  1.0 s] downloading packages", out)
    assert out.getvalue() == "  [  1.0 s] downloading packages\n"
    assert live.getvalue().split("\r")[2:] == [
        "\x1b[K",
        "building [                    ] downloading packages (1)\x1b[K",
    ]


def test_quiet_shows_nothing() -> None:
    buffer = io.StringIO()
    with activity.showing(buffer, "quiet"), activity.task("saving", total=10) as t:
        t.update(10)
    assert buffer.getvalue() == ""
    with activity.quiet():
        assert isinstance(activity.face_for(None), QuietFace)


def test_a_redirected_out_means_quiet_and_the_environment_can_choose(monkeypatch: pytest.MonkeyPatch) -> None:
    assert isinstance(activity.face_for(io.StringIO()), QuietFace)  # e.g. images.ensure(out=io.StringIO())
    monkeypatch.setenv("LABKIT_PROGRESS", "off")
    assert isinstance(activity.face_for(None), QuietFace)
    monkeypatch.setenv("LABKIT_PROGRESS", "plain")
    assert isinstance(activity.face_for(None), PlainFace)
    monkeypatch.delenv("LABKIT_PROGRESS")
    assert isinstance(activity.face_for(None), (PlainFace, TtyFace))  # no kernel here


def test_snapshot_text() -> None:
    assert Snapshot("x", "bytes").text() == ""
    assert Snapshot("x", "bytes", 70_000_000).text() == "70 MB"
    assert Snapshot("x", "steps", 3).text() == "step 3"
    assert Snapshot("x", "items", 0, None, "importing into Docker").text() == "importing into Docker"
