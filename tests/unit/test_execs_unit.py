"""Lesson 08's verdicts as pure logic: facts in, verdict out (no daemon)."""

from __future__ import annotations

import base64

import pytest

from labkit.exercises.lesson08_interactive_and_exec import (
    FileFacts,
    base64_verdict,
    encode,
    file_verdict,
    normalize_answer,
)


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


# ---- commands.base64 ------------------------------------------------------------------


@pytest.mark.parametrize(
    "answer", ["bXktc2VjcmV0", " bXktc2VjcmV0\n", "'bXktc2VjcmV0'", '"bXktc2VjcmV0"', "`bXktc2VjcmV0`"]
)
def test_the_right_answer_passes_with_spaces_and_quotes_forgiven(answer: str) -> None:
    assert base64_verdict(answer).passed


def test_encode_matches_the_command_line_tool() -> None:
    assert encode("my-secret") == "bXktc2VjcmV0"
    assert normalize_answer(" 'x' ") == "x"


@pytest.mark.parametrize(
    ("answer", "message", "hint_part"),
    [
        ("bXktc2VjcmV0Cg==", "bXktc2VjcmV0Cg== is the base64 of my-secret followed by a newline.", "echo -n"),
        ("my-secret", "That is the secret itself, not its base64.", "base64"),
        ("BXKTC2VJCMV0", "The letters are right but their case is not: base64 tells upper from lower case.", "exactly"),
        ("", "The answer is empty.", "printed"),
        ("my secret!", "'my secret!' is not base64 text.", "letters, digits"),
        (b64(b"-n my-secret\n"), f"{b64(b'-n my-secret' + bytes([10]))} decodes to '-n my-secret\\n'", "printf"),
        (b64(b"my-secrets"), "bXktc2VjcmV0cw== decodes to 'my-secrets', not 'my-secret'.", "no newline"),
        (b64(b"my-secret\r\n"), "decodes to 'my-secret\\r\\n', not 'my-secret'.", "no newline"),
    ],
)
def test_near_misses_are_named(answer: str, message: str, hint_part: str) -> None:
    verdict = base64_verdict(answer)
    assert not verdict.passed
    assert message in verdict.message
    assert hint_part in (verdict.hint or "")


def test_missing_padding_is_still_decoded() -> None:
    verdict = base64_verdict("bXktc2VjcmV0cw")  # my-secrets without its ==
    assert "decodes to 'my-secrets'" in verdict.message


# ---- exec.file ----------------------------------------------------------------------


def running(content: bytes | None, kind: str = "file", **extra: object) -> FileFacts:
    size = len(content) if content is not None else 0
    return FileFacts(exists=True, status="running", exit_code=0, kind=kind, content=content, size=size, **extra)  # type: ignore[arg-type]


@pytest.mark.parametrize("content", [b"hi", b"hi\n", b"hi\r\n", b"hi\n\n"])
def test_echo_and_printf_both_pass(content: bytes) -> None:
    verdict = file_verdict(running(content))
    assert verdict.passed and verdict.evidence["status"] == "running"


def test_no_container() -> None:
    verdict = file_verdict(FileFacts(exists=False))
    assert not verdict.passed and "setup" in (verdict.hint or "")


def test_right_file_in_a_stopped_container_is_the_attach_near_miss() -> None:
    facts = FileFacts(exists=True, status="exited", exit_code=0, kind="file", content=b"hi\n", size=3)
    verdict = file_verdict(facts)
    assert not verdict.passed
    assert verdict.message.startswith("/root/hello.txt holds hi, but sandbox has stopped")
    assert "docker start sandbox" in (verdict.hint or "")


def test_stopped_without_the_file_says_only_that_it_stopped() -> None:
    verdict = file_verdict(FileFacts(exists=True, status="exited", exit_code=130))
    assert verdict.message.startswith("sandbox has stopped: its main shell ended (exit code 130)")


@pytest.mark.parametrize("code", [137, 143])
def test_stop_or_kill_is_told_apart_from_exit(code: int) -> None:
    verdict = file_verdict(FileFacts(exists=True, status="exited", exit_code=code))
    assert f"was stopped (exit code {code}" in verdict.message


@pytest.mark.parametrize(("state", "word"), [("paused", "unpause"), ("created", "docker start")])
def test_other_states(state: str, word: str) -> None:
    verdict = file_verdict(FileFacts(exists=True, status=state, kind="file", content=b"hi", size=2))
    assert not verdict.passed and word in (verdict.hint or "")


def test_strays_come_before_the_host_copy() -> None:
    verdict = file_verdict(running(None, kind="missing", strays=("/hello.txt",), host_copy=b"hi\n"))
    assert verdict.message == "sandbox has no /root/hello.txt, but it has /hello.txt."


def test_host_copy_is_named() -> None:
    verdict = file_verdict(running(None, kind="missing", host_copy=b"hi\n"))
    assert "this machine has one" in verdict.message and "a shell" in (verdict.hint or "")


def test_a_big_file_is_named_by_its_size() -> None:
    facts = FileFacts(exists=True, status="running", kind="file", content=b"x" * 4096, size=100_000)
    verdict = file_verdict(facts)
    assert "holds 100000 bytes" in verdict.message


@pytest.mark.parametrize(
    ("content", "part"),
    [
        (b"", "is empty"),
        (b"Hi\n", "case differs"),
        (b"HI", "case differs"),
        (b"hi\nhi\n", "hi 2 times"),
        (b" hi\n", "extra spaces"),
        (b"'hi'\n", "quotes went into the file"),
        (b"hi\n\nbye\n", "not hi"),
    ],
)
def test_wrong_contents(content: bytes, part: str) -> None:
    verdict = file_verdict(running(content))
    assert not verdict.passed and part in verdict.message, verdict.message
