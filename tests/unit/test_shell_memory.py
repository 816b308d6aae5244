"""``sh()`` keeps a bounded tail of a command's output in memory (issue 12), and says when it cut."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from labkit.core import shell
from labkit.core.paths import REPO_DIR
from labkit.core.shell import KEEP_BYTES, _Tail, sh

#: Runs in a fresh interpreter, so the measure is sh()'s alone: ~100 MB streamed to stdout (here /dev/null).
_MEASURE = """
import json, sys, threading
import psutil
from labkit.core.shell import sh
process = psutil.Process()
before = process.memory_info().rss
peak, done_event = [before], threading.Event()
def sample():  # the highest RSS seen while the command runs (ru_maxrss would count the parent's, from fork)
    while not done_event.wait(0.005):
        peak.append(process.memory_info().rss)
sampler = threading.Thread(target=sample)
sampler.start()
done = sh("head -c 104857600 /dev/zero | tr '\\\\0' x | fold -w 99", label=False)
done_event.set()
sampler.join()
after = process.memory_info().rss
json.dump({"before": before, "after": after, "peak": max(peak), "kept": len(done.output), "dropped": done.dropped,
           "first": done.output.splitlines()[0], "last": done.output.splitlines()[-1]}, sys.stderr)
"""


def test_a_short_output_is_kept_whole() -> None:
    done = sh("seq 1 5", quiet=True, label=False)
    assert done.output == "1\n2\n3\n4\n5\n" and done.dropped == 0


def test_a_long_output_keeps_its_end_and_says_what_it_let_go(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shell, "KEEP_BYTES", 1000)
    done = sh("seq 1 100000", quiet=True, label=False)
    first, *lines = done.output.splitlines()
    assert first.startswith("… first ") and first.endswith(" of output not kept (labkit keeps the end)")
    assert lines[-1] == "100000" and lines[0].isdigit()  # whole lines, up to the very end
    assert len("\n".join(lines)) <= 1000 + 65536
    assert done.dropped + len("\n".join(lines)) + 1 == len("".join(f"{n}\n" for n in range(1, 100001)))


def test_a_failure_still_shows_the_last_lines(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shell, "KEEP_BYTES", 1000)
    with pytest.raises(shell.CommandFailed) as failed:
        sh("seq 1 100000; echo the real reason; exit 3", quiet=True, label=False)
    assert "the real reason" in str(failed.value)


def test_the_tail_lets_go_of_whole_chunks_only_while_enough_remains() -> None:
    tail = _Tail(10)
    for piece in ("aaaa\n", "bbbb\n", "cccc\n", "dddd\n"):
        tail.add(piece, len(piece))
    assert tail.dropped == 10  # "aaaa\n" and "bbbb\n" went: the 10 bytes left are enough
    assert tail.finish() == "… first 0.0 MB of output not kept (labkit keeps the end)\ncccc\ndddd\n"
    assert tail.dropped == 10


def test_the_kept_text_starts_on_a_whole_line() -> None:
    tail = _Tail(8)
    for piece in ("aaaa\nbb", "bb\ncc", "cc\ndd"):
        tail.add(piece, len(piece))
    assert tail.finish().splitlines()[1:] == ["cccc", "dd"]  # not "bb" or "cc", cut mid-line
    assert tail.dropped == 10


def test_memory_stays_bounded_with_100_mb_of_output() -> None:
    """Before issue 12, 100 MB of output raised the peak by about 200 MiB; now by about 20."""
    env = dict(os.environ, PYTHONPATH=str(REPO_DIR))
    done = subprocess.run(
        [sys.executable, "-c", _MEASURE], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=120
    )
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stderr)
    assert seen["dropped"] > 95 * 2**20 and seen["kept"] <= KEEP_BYTES + 2**16 + 200
    assert seen["first"].startswith("… first 10") and seen["last"] == "x" * (104857600 % 99)
    grew = max(seen["peak"], seen["after"]) - seen["before"]
    assert grew < 48 * 2**20, f"sh() held {grew / 2**20:.0f} MiB for 100 MB of output: {seen}"
