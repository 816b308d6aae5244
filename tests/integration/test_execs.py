"""Lesson 08's exercises against the real daemon: the variants a learner types, and the near-misses.

Every command below is typed for real (``labkit.sh`` or ``labkit.interactive``), then
checked. ``sandbox`` is the exercise's own container: each test starts from
``labkit.setup("exec.file")`` and resets the exercise afterwards, so nothing stays.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from labkit import exercises
from labkit.core import engine, wait
from labkit.core.interactive import interactive
from labkit.core.shell import sh
from labkit.exercises.lesson08_interactive_and_exec import SANDBOX, TARGET
from labkit.exercises.machinery.model import CheckResult

pytestmark = pytest.mark.docker

LESSON = "08"


def run(command: str, **kwargs: object) -> str:
    return sh(command, lesson=LESSON, quiet=True, **kwargs).output  # type: ignore[arg-type]


def status() -> str | None:
    container = engine.find_container(SANDBOX)
    return None if container is None else container.status


def await_status(wanted: str) -> None:
    wait.until(lambda: status() == wanted, f"sandbox to be {wanted}", timeout=15, detail=lambda: f"it is {status()}")


@pytest.fixture
def sandbox(docker_client: object) -> Iterator[None]:
    """A fresh ``sandbox`` from the exercise's setup; removed afterwards whatever happened."""
    exercise = exercises.get("exec.file")
    try:
        exercises.setup("exec.file")
        assert status() == "running"
        yield
    finally:
        exercises.reset_exercise(exercise)


@pytest.fixture
def host_file() -> Iterator[Path]:
    """The host's own /root/hello.txt, restored to what it was (a redirect on the host writes it)."""
    path = Path(TARGET)
    backup = path.with_name(".hello.txt.labkit-test-backup")
    existed = path.exists()
    if existed:
        shutil.move(path, backup)
    try:
        yield path
    finally:
        path.unlink(missing_ok=True)
        if existed:
            shutil.move(backup, path)


def check_file() -> CheckResult:
    return exercises.check("exec.file")


# ---- exec.file: what passes ---------------------------------------------------------------


@pytest.mark.parametrize(
    "command",
    [
        "docker exec sandbox sh -c 'echo hi > /root/hello.txt'",
        "docker container exec sandbox sh -c 'printf hi > /root/hello.txt'",
        "docker exec -w /root sandbox sh -c 'echo hi > hello.txt'",
        "docker exec --workdir=/root sandbox bash -c 'echo hi >hello.txt'",
        'docker exec sandbox bash -c "echo hi | tee /root/hello.txt"',
    ],
)
def test_exec_variants_pass(sandbox: None, command: str) -> None:
    assert not check_file().passed
    run(command)
    result = check_file()
    assert result.passed, result
    assert status() == "running"


def test_input_piped_into_exec_i_passes(sandbox: None) -> None:
    run("docker exec -i sandbox sh -c 'cat > /root/hello.txt'", input="hi\n")
    assert check_file().passed


@pytest.mark.parametrize(
    "command", ["docker exec -it sandbox bash", "docker container exec --interactive --tty sandbox sh"]
)
def test_typing_in_an_exec_shell_passes_and_exit_keeps_it_running(sandbox: None, command: str) -> None:
    with interactive(command, show=False, timeout=20) as term:
        term.run("echo hi > /root/hello.txt")
        assert term.exit() == 0
    assert status() == "running"
    result = check_file()
    assert result.passed, result


def test_docker_cp_is_indistinguishable_and_passes(sandbox: None, tmp_path: Path) -> None:
    # The check reads state only; the module docstring says so.
    source = tmp_path / "hello.txt"
    source.write_text("hi\n")
    run(f"docker cp {source} sandbox:/root/hello.txt")
    assert check_file().passed


# ---- exec.file: the near-misses -----------------------------------------------------------


def test_without_setup_it_names_the_missing_container(docker_client: object) -> None:
    exercises.reset_exercise(exercises.get("exec.file"))
    result = check_file()
    assert not result.passed
    assert result.message == "There is no container named sandbox."
    assert 'labkit.setup("exec.file")' in (result.hint or "")


def test_attach_and_exit_is_its_own_near_miss_and_start_recovers(sandbox: None) -> None:
    with interactive("docker attach sandbox", show=False, timeout=20) as term:
        term.run("echo hi > /root/hello.txt")
        term.exit()
    await_status("exited")
    result = check_file()
    assert not result.passed
    assert result.message.startswith("/root/hello.txt holds hi, but sandbox has stopped: its main shell ended")
    assert "docker attach sandbox" in result.message
    assert "docker start sandbox" in (result.hint or "") and "docker exec -it sandbox bash" in (result.hint or "")
    run("docker start sandbox")  # the same container, with its files
    assert check_file().passed


def test_attach_and_detach_keys_keep_it_running_and_pass(sandbox: None) -> None:
    with interactive("docker attach sandbox", show=False, timeout=20) as term:
        term.run("echo hi > /root/hello.txt")
        term.detach()
    assert status() == "running"
    assert check_file().passed


def test_killed_sandbox_is_named_as_stopped(sandbox: None) -> None:
    run("docker exec sandbox sh -c 'echo hi > /root/hello.txt'")
    run("docker kill sandbox")
    await_status("exited")
    result = check_file()
    assert not result.passed
    assert "was stopped (exit code 137" in result.message
    assert "docker start sandbox" in (result.hint or "")


def test_paused_sandbox(sandbox: None) -> None:
    run("docker exec sandbox sh -c 'echo hi > /root/hello.txt'")
    run("docker pause sandbox")
    try:
        result = check_file()
        assert not result.passed and "paused" in result.message
        assert "docker unpause sandbox" in (result.hint or "")
    finally:
        run("docker unpause sandbox")
    assert check_file().passed


def test_redirect_run_by_the_host_shell(sandbox: None, host_file: Path) -> None:
    run("docker exec sandbox echo hi > /root/hello.txt")  # the `>` is the host shell's
    assert host_file.read_text() == "hi\n"
    result = check_file()
    assert not result.passed
    assert result.message == "sandbox has no /root/hello.txt, but this machine has one, holding 'hi\\n'."
    assert "belongs to your own shell" in (result.hint or "")


@pytest.mark.parametrize(
    ("command", "stray"),
    [
        ("docker exec sandbox sh -c 'echo hi > hello.txt'", "/hello.txt"),  # exec starts in /
        ("docker exec sandbox sh -c 'echo hi > /root/hello'", "/root/hello"),
        ("docker exec sandbox sh -c 'echo hi > /root/Hello.txt'", "/root/Hello.txt"),
    ],
)
def test_wrong_name_or_folder_is_named(sandbox: None, command: str, stray: str) -> None:
    run(command)
    result = check_file()
    assert not result.passed
    assert result.message == f"sandbox has no /root/hello.txt, but it has {stray}."
    assert "exactly /root/hello.txt" in (result.hint or "")


@pytest.mark.parametrize(
    ("command", "message"),
    [
        ("docker exec sandbox sh -c 'echo Hi > /root/hello.txt'", "holds 'Hi\\n': the case differs."),
        ("docker exec sandbox sh -c 'echo hi >> /root/hello.txt; echo hi >> /root/hello.txt'", "holds hi 2 times."),
        ("docker exec sandbox touch /root/hello.txt", "exists but is empty."),
        ("docker exec sandbox sh -c 'echo \"hi \" > /root/hello.txt'", "holds 'hi \\n': there are extra spaces."),
        (
            'docker exec sandbox sh -c "echo \'\\"hi\\"\' > /root/hello.txt"',
            "holds '\"hi\"\\n': the quotes went into the file.",
        ),
        ("docker exec sandbox sh -c 'echo hello > /root/hello.txt'", "holds 'hello\\n', not hi."),
        ("docker exec sandbox mkdir /root/hello.txt", "is a directory, not a file."),
    ],
)
def test_wrong_content_is_named(sandbox: None, command: str, message: str) -> None:
    run(command)
    result = check_file()
    assert not result.passed
    assert result.message == f"/root/hello.txt in sandbox {message}", result
    assert result.hint


def test_a_wrong_file_fixed_passes(sandbox: None) -> None:
    run("docker exec sandbox sh -c 'echo Hi > /root/hello.txt'")
    assert not check_file().passed
    run("docker exec sandbox sh -c 'echo hi > /root/hello.txt'")
    assert check_file().passed


# ---- commands.base64 ------------------------------------------------------------------


@pytest.fixture
def base64_exercise(docker_client: object) -> Iterator[None]:
    try:
        yield
    finally:
        exercises.reset_exercise(exercises.get("commands.base64"))


@pytest.mark.parametrize(
    "command",
    [
        "docker run --rm busybox sh -c 'echo -n my-secret | base64'",
        "docker container run --rm busybox sh -c 'printf %s my-secret | base64'",
        "docker run --rm -i busybox base64",  # the secret fed through -i, encoded inside
        "docker run --rm debian:bookworm bash -c 'echo -n my-secret | base64'",
        "docker run --rm busybox echo -n my-secret | base64",  # base64 ran on the host: same value, cannot be told apart
    ],
)
def test_answers_computed_by_each_variant_pass(base64_exercise: None, command: str) -> None:
    output = run(command, input="my-secret" if " -i " in command else None)
    result = exercises.check("commands.base64", answer=output)
    assert result.passed, result


def test_no_answer_yet_is_not_passed(base64_exercise: None) -> None:
    exercises.reset_exercise(exercises.get("commands.base64"))
    result = exercises.check("commands.base64")
    assert not result.passed and result.message == "No answer recorded yet."


def test_echo_without_n_is_the_named_near_miss(base64_exercise: None) -> None:
    output = run("docker run --rm busybox sh -c 'echo my-secret | base64'")
    result = exercises.check("commands.base64", answer=output)
    assert not result.passed
    assert result.message == "bXktc2VjcmV0Cg== is the base64 of my-secret followed by a newline."
    assert "echo -n" in (result.hint or "")


def test_another_string_is_decoded(base64_exercise: None) -> None:
    output = run("docker run --rm busybox sh -c 'echo -n my-secrets | base64'")
    result = exercises.check("commands.base64", answer=output)
    assert not result.passed and result.message.endswith("decodes to 'my-secrets', not 'my-secret'.")


def test_quotes_and_spaces_are_forgiven_and_recorded(base64_exercise: None) -> None:
    assert exercises.check("commands.base64", answer='  "bXktc2VjcmV0"\n').passed
    assert exercises.check("commands.base64").passed  # the recorded answer is checked again
