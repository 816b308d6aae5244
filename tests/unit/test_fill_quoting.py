"""Setup's values go into solution commands as quoted shell words, never as shell text (issue 12)."""

from __future__ import annotations

import re
import shlex
import subprocess
from pathlib import Path

import pytest

from labkit.exercises import all_exercises
from labkit.exercises.machinery.runner import fill

NASTY = "/tmp/ws with space;touch PWNED;'q\"$(touch PWNED2)`touch PWNED3`/archives/hello.tar"


def test_a_value_is_one_word_whatever_it_holds() -> None:
    filled = fill("docker save --output {path} labkit/hello-dock", {"path": NASTY})
    assert shlex.split(filled) == ["docker", "save", "--output", NASTY, "labkit/hello-dock"]


def test_a_plain_value_reads_as_typed() -> None:
    assert (
        fill("docker rmi {image}", {"image": "localhost:5000/lab/pull:v2"}) == "docker rmi localhost:5000/lab/pull:v2"
    )


def test_a_list_is_one_word_per_item() -> None:
    assert shlex.split(fill("docker rm {names}", {"names": ["a", "b c", "d;e"]})) == ["docker", "rm", "a", "b c", "d;e"]


def test_a_value_joined_to_more_text_stays_one_word() -> None:
    filled = fill("docker run --rm -v {path}:/zone x", {"path": NASTY})
    assert shlex.split(filled)[3:5] == ["-v", f"{NASTY}:/zone"]


def test_go_templates_and_unreported_placeholders_are_untouched() -> None:
    assert fill("docker inspect -f '{{.Id}}' {x}", {"Id": "no"}) == "docker inspect -f '{{.Id}}' {x}"


def test_the_shell_runs_nothing_a_value_holds(tmp_path: Path) -> None:
    """Through a real shell: the value comes out as it went in, and no file appears."""
    folder = str(tmp_path)
    done = subprocess.run(
        ["bash", "-c", fill("printf '%s\\n' {path}", {"path": NASTY})], cwd=folder, capture_output=True, text=True
    )
    assert done.stdout == NASTY + "\n"
    assert not list(Path(folder).iterdir())


@pytest.mark.parametrize("exercise", [e for e in all_exercises() if e.solution], ids=lambda e: e.id)
def test_no_solution_puts_a_placeholder_inside_quotes(exercise: object) -> None:
    """``"{path}"`` would hold the quoted value's own quotes: a placeholder stands outside quotes."""
    for line in exercise.solution:  # type: ignore[attr-defined]
        for match in re.finditer(r"(?<!\{)\{(\w+)\}(?!\})", line):
            before = line[: match.start()]
            assert before.count('"') % 2 == 0 and before.count("'") % 2 == 0, f"{exercise}: {line}"
